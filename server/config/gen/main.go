// Command gen writes the settings reference from the settings' definitions
// in package config. In server/: go generate ./config (or go run
// ./config/gen -o docs/settings.md).
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/scalable-chat-go/server/config"
)

func main() {
	out := flag.String("o", config.ReferencePath, "the file to write")
	flag.Parse()
	if err := os.WriteFile(*out, config.Reference(), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}
