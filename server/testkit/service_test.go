package testkit

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// serviceRead is a test's own read of a service variable.
var serviceRead = regexp.MustCompile(`os\.(Getenv|LookupEnv)\("(DATABASE_URL|REDIS_URL|REDIS_CLUSTER_NODES|KAFKA_BROKERS)"\)`)

// Every test of the module that needs a service gets it through Service,
// so `go test -short ./...` with no service running passes: a test that
// read REDIS_URL itself failed there once. Outage tests (build tag
// outage) never run under -short and may read the variables to find the
// ports they cut.
func TestServicesAreReadThroughService(t *testing.T) {
	root := ".."
	var bad []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if strings.HasPrefix(string(src), "//go:build outage") {
			return nil
		}
		for i, line := range strings.Split(string(src), "\n") {
			if serviceRead.MatchString(line) {
				bad = append(bad, path+":"+strconv.Itoa(i+1))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(bad) > 0 {
		t.Errorf("tests read a service variable themselves; use testkit.Service (it skips under -short, fails when unset):\n%s", strings.Join(bad, "\n"))
	}
}
