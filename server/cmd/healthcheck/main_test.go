package main

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestRun(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte(`{"status":"ready"}`))
	})
	mux.HandleFunc("GET /draining", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(`{"status":"draining"}`))
	})
	mux.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))

	// A port nobody listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()

	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		code    int
		stderr  string
		maxTime time.Duration
	}{
		{name: "ready, URL from PORT", env: map[string]string{"PORT": port}, code: 0},
		{name: "ready, URL given", args: []string{srv.URL + "/readyz"}, code: 0},
		{name: "draining answers 503", args: []string{srv.URL + "/draining"}, code: 1, stderr: "503 Service Unavailable: {\"status\":\"draining\"}"},
		{name: "nothing listens", args: []string{"http://" + closed + "/readyz"}, code: 1, stderr: "connection refused"},
		{name: "timeout", args: []string{srv.URL + "/slow"}, env: map[string]string{"HEALTHCHECK_TIMEOUT": "200ms"}, code: 1, stderr: "deadline exceeded", maxTime: 2 * time.Second},
		{name: "bad timeout", env: map[string]string{"HEALTHCHECK_TIMEOUT": "soon"}, code: 2, stderr: `HEALTHCHECK_TIMEOUT="soon"`},
		{name: "negative timeout", env: map[string]string{"HEALTHCHECK_TIMEOUT": "-1s"}, code: 2, stderr: "positive duration"},
		{name: "two arguments", args: []string{"a", "b"}, code: 2, stderr: "at most one argument"},
		{name: "bad URL", args: []string{"http://[::1"}, code: 1, stderr: "building the request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			start := time.Now()
			code := run(tt.args, func(k string) string { return tt.env[k] }, &stderr)
			if code != tt.code {
				t.Fatalf("exit %d, want %d (stderr %q)", code, tt.code, stderr.String())
			}
			if tt.stderr == "" && stderr.Len() > 0 {
				t.Fatalf("unexpected stderr %q", stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.stderr) {
				t.Fatalf("stderr %q does not contain %q", stderr.String(), tt.stderr)
			}
			if tt.maxTime > 0 && time.Since(start) > tt.maxTime {
				t.Fatalf("took %v, more than %v", time.Since(start), tt.maxTime)
			}
		})
	}
}

func TestSettings(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		url     string
		timeout time.Duration
	}{
		{name: "defaults", url: "http://127.0.0.1:8000/readyz", timeout: 3 * time.Second},
		{name: "PORT", env: map[string]string{"PORT": "9000"}, url: "http://127.0.0.1:9000/readyz", timeout: 3 * time.Second},
		{name: "URL wins over PORT", args: []string{"http://[::1]:8001/readyz"}, env: map[string]string{"PORT": "9000"}, url: "http://[::1]:8001/readyz", timeout: 3 * time.Second},
		{name: "timeout", env: map[string]string{"HEALTHCHECK_TIMEOUT": "1500ms"}, url: "http://127.0.0.1:8000/readyz", timeout: 1500 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url, timeout, err := settings(tt.args, func(k string) string { return tt.env[k] })
			if err != nil {
				t.Fatal(err)
			}
			if url != tt.url || timeout != tt.timeout {
				t.Fatalf("got %s %v, want %s %v", url, timeout, tt.url, tt.timeout)
			}
		})
	}
}
