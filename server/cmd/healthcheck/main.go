// Command healthcheck tells a container engine whether the chat server in
// the same container is ready. The server's image has no shell and no curl,
// so its HEALTHCHECK runs this: it sends GET /readyz and exits 0 when the
// answer is 200, and 1 otherwise (503 while the node starts or drains, no
// answer, a timeout), with the reason on stderr.
//
// Usage:
//
//	healthcheck [URL]
//
// URL defaults to http://127.0.0.1:$PORT/readyz (PORT as the server reads
// it, 8000 when unset). HEALTHCHECK_TIMEOUT bounds the request (default 3s).
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

// defaultTimeout bounds one probe when HEALTHCHECK_TIMEOUT is not set.
const defaultTimeout = 3 * time.Second

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stderr))
}

// run probes the URL that args and getenv give, reports a failure on
// stderr, and returns the exit status.
func run(args []string, getenv func(string) string, stderr io.Writer) int {
	url, timeout, err := settings(args, getenv)
	if err != nil {
		fmt.Fprintf(stderr, "healthcheck: %v\n", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := probe(ctx, http.DefaultTransport, url); err != nil {
		fmt.Fprintf(stderr, "healthcheck: %v\n", err)
		return 1
	}
	return 0
}

// settings reads the URL to probe and the timeout.
func settings(args []string, getenv func(string) string) (string, time.Duration, error) {
	if len(args) > 1 {
		return "", 0, fmt.Errorf("expected at most one argument (the URL), got %d", len(args))
	}
	url := ""
	if len(args) == 1 {
		url = args[0]
	} else {
		port := getenv("PORT")
		if port == "" {
			port = "8000"
		}
		url = "http://127.0.0.1:" + port + "/readyz"
	}
	timeout := defaultTimeout
	if v := getenv("HEALTHCHECK_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return "", 0, fmt.Errorf("HEALTHCHECK_TIMEOUT=%q: expected a positive duration such as 3s", v)
		}
		timeout = d
	}
	return url, timeout, nil
}

// probe sends GET url and returns nil when the answer is 200 OK.
func probe(ctx context.Context, rt http.RoundTripper, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("building the request for %s: %w", url, err)
	}
	res, err := rt.RoundTrip(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 512))
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", url, res.Status, body)
	}
	return nil
}
