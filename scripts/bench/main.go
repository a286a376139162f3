// Command bench measures the chat server against the Node socket.io 4.8
// reference in one invocation, side by side, on loopback.
//
//	go run ./scripts/bench idle   [flags]   memory and goroutines per idle WebSocket connection
//	go run ./scripts/bench fanout [flags]   deliveries/s, loss, latency and CPU per delivery
//	go run ./scripts/bench live   [flags]   the server CPU of presence and typing (ours alone)
//	go run ./scripts/bench rooms  [flags]   messages to rooms (join, to(room).emit) and what rooms cost a socket
//	go run ./scripts/bench storm  [flags]   a reconnect storm after a crash: resuming against fresh
//
// Each run starts the servers itself (our chat-server, built from this
// repository, and server/e2e/fixtures/original-server.js), one after the
// other with the same load, and writes JSON, a Markdown table and (fanout)
// an SVG chart to the results folder. Every run is bounded in time and in
// count. See scripts/bench/README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		var ue usageError
		if errors.As(err, &ue) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// usageError is a mistake on the command line.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

const usage = `usage: go run ./scripts/bench <mode> [flags]

modes:
  idle      N idle WebSocket connections: RSS, threads and (Go) goroutines,
            heap and stack per connection, over the empty server
  fanout    N receivers, S senders, a sweep of offered rates: deliveries/s,
            loss, end-to-end latency, server CPU per delivery, bench CPU
  cluster   (not yet) fanout over several Go nodes through Redis
  pipeline  messages/s from accepted to stored: into SQLite, through Kafka
            into PostgreSQL, and our consumer against the original's design
  live      what presence and typing cost our server: N named connections
            idle, with typists, with users coming and going (ours alone)
  rooms     messages to rooms: N clients over R rooms, S senders, each
            message to one room: deliveries/s, loss, isolation, latency, CPU
            per delivery (user, system); and the RSS of a socket's extra rooms
  storm     a reconnect storm: the clients of a killed node come back at
            once, resuming with their offset against fresh (history page)

Run "go run ./scripts/bench <mode> -h" for a mode's flags.
`

// run is the whole command; main only adds the process's exit.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usagef("no mode given")
	}
	mode, rest := args[0], args[1:]
	switch mode {
	case "idle":
		return runIdle(ctx, rest, stdout, stderr)
	case "fanout":
		return runFanout(ctx, rest, stdout, stderr)
	case "cluster":
		return runCluster(ctx, rest, stdout, stderr)
	case "pipeline":
		return runPipeline(ctx, rest, stdout, stderr)
	case "live":
		return runLive(ctx, rest, stdout, stderr)
	case "rooms":
		return runRooms(ctx, rest, stdout, stderr)
	case "storm":
		return runStorm(ctx, rest, stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return usagef("unknown mode %q", mode)
}

// command returns the command line as the user would type it, for reports.
func command(mode string, args []string) string {
	parts := []string{"go run ./scripts/bench", mode}
	for _, a := range args {
		if strings.ContainsAny(a, " \t\"'$") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}
