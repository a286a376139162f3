package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/scalable-chat-go/server/testkit"
)

// binary is built with the race detector; plainBinary without, for the
// tests that measure latency or CPU.
var binary, plainBinary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "chat-server-test-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "chat-server")
	plainBinary = filepath.Join(dir, "chat-server-plain")
	for bin, args := range map[string][]string{binary: {"-race"}, plainBinary: nil} {
		if out, err := exec.Command("go", append(append([]string{"build"}, args...), "-o", bin, ".")...).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build chat-server: %v\n%s", err, out)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a chat-server process under test.
type proc struct {
	t       *testing.T
	cmd     *exec.Cmd
	URL     string
	DataDir string
	logs    *syncBuffer
	exited  chan struct{}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// start runs chat-server with env on top of the test defaults, in dataDir
// (a new temporary directory when empty), and waits until it is ready.
func start(t *testing.T, dataDir string, env ...string) *proc {
	t.Helper()
	return startBinary(t, binary, dataDir, env...)
}

// startBinary is start with another build of the server.
func startBinary(t *testing.T, bin, dataDir string, env ...string) *proc {
	t.Helper()
	p := launchBinary(t, bin, dataDir, env...)
	p.awaitReady()
	return p
}

// launch runs chat-server like start, without waiting for it.
func launch(t *testing.T, dataDir string, env ...string) *proc {
	t.Helper()
	return launchBinary(t, binary, dataDir, env...)
}

// launchBinary is launch with another build of the server.
func launchBinary(t *testing.T, bin, dataDir string, env ...string) *proc {
	t.Helper()
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	port := freePort(t)
	p := &proc{t: t, URL: fmt.Sprintf("http://127.0.0.1:%d", port), DataDir: dataDir, logs: &syncBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(bin)
	p.cmd.Env = append([]string{
		"PATH=" + os.Getenv("PATH"), "HOST=127.0.0.1", fmt.Sprintf("PORT=%d", port), "DATA_DIR=" + dataDir,
		"PRESENCE_INTERVAL=200ms", "DEBUG=" + os.Getenv("SERVER_DEBUG"),
	}, env...)
	p.cmd.Stderr = p.logs
	p.cmd.Stdout = p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.signal(syscall.SIGKILL)
		<-p.exited
		if t.Failed() {
			t.Logf("server log:\n%s", p.logs.String())
		}
	})
	return p
}

// awaitReady waits until /readyz answers 200, failing the test if the
// server exits first or takes longer than 30 s.
func (p *proc) awaitReady() {
	t := p.t
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-p.exited:
			t.Fatalf("server exited early:\n%s", p.logs.String())
		default:
		}
		if res, err := http.Get(p.URL + "/readyz"); err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("server not ready:\n%s", p.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *proc) signal(s os.Signal) {
	if p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(s)
	}
}

// stop sends SIGTERM and returns the exit code.
func (p *proc) stop() int {
	p.t.Helper()
	p.signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		p.t.Fatalf("server did not exit within 30 s of SIGTERM:\n%s", p.logs.String())
	}
	return p.cmd.ProcessState.ExitCode()
}

func (p *proc) getJSON(t *testing.T, path string, into any) int {
	t.Helper()
	res, err := http.Get(p.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if err := json.NewDecoder(res.Body).Decode(into); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return res.StatusCode
}

// wire is a `message` event as a test reads it.
type wire struct {
	Message, Username, ID, CreatedAt string
}

func toWire(v any) wire {
	m, _ := v.(map[string]any)
	s := func(k string) string { x, _ := m[k].(string); return x }
	return wire{s("message"), s("username"), s("id"), s("createdAt")}
}

// awaitServers waits until the node's /readyz counts at least n servers in
// its cluster.
func (p *proc) awaitServers(n int) {
	p.t.Helper()
	testkit.Until(p.t, 10*time.Second, fmt.Sprintf("%s to see %d nodes through Redis", p.URL, n), func() (bool, string) {
		var ready struct{ Servers int64 }
		code := p.getJSON(p.t, "/readyz", &ready)
		return code == 200 && ready.Servers >= int64(n), fmt.Sprintf("/readyz %d, servers %d", code, ready.Servers)
	})
}

// awaitCheck waits until /readyz reports the check name with status, and
// also, when more is set, until more holds.
func (p *proc) awaitCheck(name, status string, within time.Duration, more func() (bool, string)) {
	p.t.Helper()
	testkit.Until(p.t, within, fmt.Sprintf("%s %s in /readyz of %s", name, status, p.URL), func() (bool, string) {
		var ready struct {
			Checks map[string]struct{ Status, Error string }
		}
		p.getJSON(p.t, "/readyz", &ready)
		c := ready.Checks[name]
		seen := fmt.Sprintf("%s: %s %s", name, c.Status, c.Error)
		if c.Status != status {
			return false, seen
		}
		if more == nil {
			return true, seen
		}
		ok, also := more()
		return ok, seen + "; " + also
	})
}
