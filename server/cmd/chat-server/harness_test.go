package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/scalable-chat-go/server/testkit"
)

// binary is built with the race detector; plainBinary without, for the
// tests that measure latency or CPU.
var binary, plainBinary string

// buildDir holds the binaries TestMain builds, and faultBinary.
var buildDir string

var faultBuild struct {
	once sync.Once
	bin  string
	err  error
}

// faultBinary returns the server built with the race detector and the tag
// faulthooks (the consumer's KAFKA_TEST_CRASH_AFTER_COMMIT), built on first
// use: only the crash tests need it.
func faultBinary(t *testing.T) string {
	t.Helper()
	faultBuild.once.Do(func() {
		bin := filepath.Join(buildDir, "chat-server-faulthooks")
		if out, err := exec.Command("go", "build", "-race", "-tags", "faulthooks", "-o", bin, ".").CombinedOutput(); err != nil {
			faultBuild.err = fmt.Errorf("build chat-server -tags faulthooks: %v\n%s", err, out)
			return
		}
		faultBuild.bin = bin
	})
	if faultBuild.err != nil {
		t.Fatal(faultBuild.err)
	}
	return faultBuild.bin
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "chat-server-test-")
	if err != nil {
		panic(err)
	}
	buildDir = dir
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
	t *testing.T
	*testkit.Process
	cmd *exec.Cmd
	// URL is the server's, once it said where it listens (awaitReady).
	URL     string
	DataDir string
	logs    *testkit.Output
	exited  chan struct{}
	// listening receives the address of the "chat-server ready" line.
	listening chan string
}

// readyAddr finds the address in the server's "chat-server ready" line.
var readyAddr = regexp.MustCompile(`msg="chat-server ready" addr=(\S+)`)

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

// launchBinary is launch with another build of the server. Unless env sets
// PORT, the server binds port 0 and its "chat-server ready" line says which
// port it got: no other process can take it first.
func launchBinary(t *testing.T, bin, dataDir string, env ...string) *proc {
	t.Helper()
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	p := &proc{t: t, DataDir: dataDir, listening: make(chan string, 1)}
	p.logs = &testkit.Output{OnLine: func(line string) {
		if m := readyAddr.FindStringSubmatch(line); m != nil {
			select {
			case p.listening <- m[1]:
			default:
			}
		}
	}}
	cmd := exec.Command(bin)
	cmd.Env = append([]string{
		"PATH=" + os.Getenv("PATH"), "HOST=127.0.0.1", "PORT=0", "DATA_DIR=" + dataDir,
		"PRESENCE_INTERVAL=200ms", "DEBUG=" + os.Getenv("SERVER_DEBUG"),
	}, env...)
	p.Process = testkit.Start(t, "chat-server", cmd, p.logs)
	p.cmd, p.exited = cmd, p.Exited
	return p
}

// awaitReady waits until the server says where it listens and /readyz
// answers 200 there, failing the test if the server exits first or takes
// longer than 30 s.
func (p *proc) awaitReady() {
	t := p.t
	t.Helper()
	deadline := time.After(30 * time.Second)
	if p.URL == "" {
		select {
		case addr := <-p.listening:
			p.URL = "http://" + addr
		case <-p.exited:
			t.Fatalf("server exited early:\n%s", p.logs.String())
		case <-deadline:
			t.Fatalf("no \"chat-server ready\" line within 30 s (is LOG_LEVEL above info?):\n%s", p.logs.String())
		}
	}
	last := "no answer yet"
	for {
		select {
		case <-p.exited:
			t.Fatalf("server exited early:\n%s", p.logs.String())
		case <-deadline:
			t.Fatalf("server not ready at %s within 30 s (last: %s):\n%s", p.URL, last, p.logs.String())
		default:
		}
		res, err := http.Get(p.URL + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return
			}
			last = res.Status
		} else {
			last = err.Error()
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *proc) signal(s syscall.Signal) { p.Signal(s) }

// stop sends SIGTERM and returns the exit code.
func (p *proc) stop() int {
	p.t.Helper()
	p.signal(syscall.SIGTERM)
	return p.Wait(p.t, 30*time.Second)
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
