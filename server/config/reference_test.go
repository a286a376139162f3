package config

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The committed settings reference is what the definitions make: a
// setting added, renamed or given another default without regenerating
// the file fails here.
func TestReferenceIsUpToDate(t *testing.T) {
	path := filepath.Join("..", ReferencePath)
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v; make it with `go generate ./config` in server/", err)
	}
	want := Reference()
	if bytes.Equal(got, want) {
		return
	}
	gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	for i := range max(len(gl), len(wl)) {
		var g, w string
		if i < len(gl) {
			g = gl[i]
		}
		if i < len(wl) {
			w = wl[i]
		}
		if g != w {
			t.Fatalf("server/%s differs from the settings' definitions (settings.go) at line %d:\n  file:      %s\n  generated: %s\nRegenerate it: `go generate ./config` in server/ (or `go run ./config/gen`).",
				ReferencePath, i+1, g, w)
		}
	}
}

// Every setting is defined once, fully, with its section's rows together.
func TestDefinitions(t *testing.T) {
	seen := map[string]bool{}
	done := map[string]bool{}
	section := ""
	for _, s := range Settings() {
		if seen[s.Name] {
			t.Errorf("%s is defined twice", s.Name)
		}
		seen[s.Name] = true
		if s.Default == "" || s.Accepts == "" || s.Meaning == "" || s.Original == "" || s.Section == "" {
			t.Errorf("%s: every field of its reference row is needed: %+v", s.Name, s)
		}
		if s.Section != section {
			if done[s.Section] {
				t.Errorf("%s: section %q is split", s.Name, s.Section)
			}
			done[section] = true
			section = s.Section
		}
	}
}

// A variable the server does not define is not read: Known tells.
func TestKnown(t *testing.T) {
	for _, name := range []string{"PORT", "KAFKA_DLQ_TOPIC", "ADMIN_UI_PASSWORD_HASH"} {
		if !Known(name) {
			t.Errorf("Known(%q) = false", name)
		}
	}
	for _, name := range []string{"", "port", "KAFKA_DLQ", "REDIS_PASSWORD"} {
		if Known(name) {
			t.Errorf("Known(%q) = true", name)
		}
	}
}

func TestAnchor(t *testing.T) {
	for in, want := range map[string]string{
		"Server and protocol":          "server-and-protocol",
		"History, presence and typing": "history-presence-and-typing",
		"The Socket.IO Admin UI":       "the-socketio-admin-ui",
		"Several nodes (Redis)":        "several-nodes-redis",
	} {
		if got := anchor(in); got != want {
			t.Errorf("anchor(%q) = %q, want %q", in, got, want)
		}
	}
}
