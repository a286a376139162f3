// Package server starts and stops the servers the bench measures, each as
// a child process on a free loopback port, and samples them: our Go
// chat-server (built from the repository, or a given binary) and the Node
// socket.io 4.8 reference fixture (server/e2e/fixtures/original-server.js).
//
// Every process it starts it stops by its PID (SIGTERM, then SIGKILL after
// a bound); it never signals anything else.
package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/scalable-chat-go/bench/internal/procfs"
)

// Kind names a server implementation.
type Kind string

// The implementations the bench knows.
const (
	// Go is our chat-server.
	Go Kind = "go"
	// Node is the reference: Node socket.io 4.8 with the original's
	// fan-out.
	Node Kind = "node"
)

// ParseKind checks a kind given on the command line.
func ParseKind(s string) (Kind, error) {
	switch k := Kind(strings.TrimSpace(s)); k {
	case Go, Node:
		return k, nil
	}
	return "", fmt.Errorf("unknown server %q (want go or node)", s)
}

// Label is how reports name a kind.
func (k Kind) Label() string {
	switch k {
	case Go:
		return "ours (Go)"
	case Node:
		return "reference (Node)"
	}
	return string(k)
}

// LoadEnv is the Go server's environment for load: loopback, no rate or
// per-address limit (every bench connection comes from 127.0.0.1), no
// history replay, quiet logs. Options.GoEnv entries override it.
var LoadEnv = []string{
	"HOST=127.0.0.1",
	"RATE_LIMIT_PER_SEC=0",
	"MAX_CONNECTIONS_PER_IP=0",
	"HISTORY_LIMIT=0",
	"LOG_LEVEL=warn",
}

// Options configure a Launcher.
type Options struct {
	// Repo is the repository root (holding go.work and server/).
	Repo string
	// GoBinary is a chat-server binary to run; empty builds
	// Repo/server/cmd/chat-server into WorkDir.
	GoBinary string
	// GoEnv are KEY=VALUE settings for the Go server on top of LoadEnv.
	GoEnv []string
	// NodeScript is the reference server script; empty is
	// Repo/server/e2e/fixtures/original-server.js.
	NodeScript string
	// WorkDir holds the build, data directories and logs.
	WorkDir string
	// Progress receives one line per step (nil: discarded).
	Progress io.Writer
	// ReadyTimeout bounds a start (30 s when zero).
	ReadyTimeout time.Duration
	// StopTimeout is how long a SIGTERM may take before SIGKILL (20 s).
	StopTimeout time.Duration
}

// Launcher starts servers.
type Launcher struct {
	o      Options
	goBin  string
	info   map[string]string
	starts int
}

// NewLauncher returns a launcher; call Prepare before Start.
func NewLauncher(o Options) *Launcher {
	if o.NodeScript == "" {
		o.NodeScript = filepath.Join(o.Repo, "server", "e2e", "fixtures", "original-server.js")
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = 30 * time.Second
	}
	if o.StopTimeout <= 0 {
		o.StopTimeout = 20 * time.Second
	}
	return &Launcher{o: o, info: map[string]string{}}
}

// Info describes what runs: versions, commit, settings.
func (l *Launcher) Info() map[string]string { return l.info }

// Prepare builds the Go server and installs the reference's npm packages
// when missing, as far as kinds need them.
func (l *Launcher) Prepare(ctx context.Context, kinds []Kind) error {
	for _, k := range kinds {
		switch k {
		case Go:
			if err := l.prepareGo(ctx); err != nil {
				return err
			}
		case Node:
			if err := l.prepareNode(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

func (l *Launcher) prepareGo(ctx context.Context) error {
	if l.o.GoBinary != "" {
		if _, err := os.Stat(l.o.GoBinary); err != nil {
			return fmt.Errorf("go server binary: %w", err)
		}
		l.goBin = l.o.GoBinary
		l.info["go_server"] = l.o.GoBinary
	} else {
		l.goBin = filepath.Join(l.o.WorkDir, "chat-server")
		fmt.Fprintf(l.o.Progress, "building server/cmd/chat-server\n")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", l.goBin, "./cmd/chat-server")
		cmd.Dir = filepath.Join(l.o.Repo, "server")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("build chat-server: %w\n%s", err, out)
		}
		l.info["go_server"] = "server/cmd/chat-server at " + gitRevision(ctx, l.o.Repo)
	}
	if out, err := exec.CommandContext(ctx, "go", "version", l.goBin).Output(); err == nil {
		if _, v, ok := strings.Cut(strings.TrimSpace(string(out)), ": "); ok {
			l.info["go_server_toolchain"] = v
		}
	}
	env := append(append([]string{}, LoadEnv...), l.o.GoEnv...)
	l.info["go_server_env"] = strings.Join(env, " ")
	return nil
}

// nodePackages are the npm packages of server/e2e the reference fixtures
// load; a missing one makes Prepare run npm ci there.
var nodePackages = []string{"socket.io", "@socket.io/redis-adapter", "redis", "kafkajs", "pg"}

func (l *Launcher) prepareNode(ctx context.Context) error {
	if _, err := os.Stat(l.o.NodeScript); err != nil {
		return fmt.Errorf("reference server script: %w", err)
	}
	e2e := filepath.Join(l.o.Repo, "server", "e2e")
	pkgJSON := func(name string) string { return filepath.Join(e2e, "node_modules", name, "package.json") }
	for _, name := range nodePackages {
		if _, err := os.Stat(pkgJSON(name)); err != nil {
			fmt.Fprintf(l.o.Progress, "installing the reference's npm packages (npm ci in server/e2e)\n")
			cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
			cmd.Dir = e2e
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("npm ci in %s: %w\n%s", e2e, err, out)
			}
			break
		}
	}
	for _, name := range nodePackages {
		var p struct{ Version string }
		if data, err := os.ReadFile(pkgJSON(name)); err != nil {
			return fmt.Errorf("npm package %s for the reference: %w", name, err)
		} else if err := json.Unmarshal(data, &p); err != nil {
			return fmt.Errorf("read %s: %w", pkgJSON(name), err)
		}
		l.info["node_"+name] = p.Version
	}
	out, err := exec.CommandContext(ctx, "node", "--version").Output()
	if err != nil {
		return fmt.Errorf("node for the reference: %w", err)
	}
	l.info["node"] = strings.TrimSpace(string(out))
	l.info["node_server"] = l.Rel(l.o.NodeScript)
	return nil
}

// Rel names a path relative to the repository when it is inside it.
func (l *Launcher) Rel(path string) string {
	rel, err := filepath.Rel(l.o.Repo, path)
	if err != nil || strings.HasPrefix(rel, "..") {
		return path
	}
	return rel
}

// Repo returns the repository root.
func (l *Launcher) Repo() string { return l.o.Repo }

// StartOptions are the settings of one start beyond the launcher's.
type StartOptions struct {
	// Env are KEY=VALUE settings for this process: for our server they
	// come after the load settings and before Options.GoEnv (so -env
	// still wins); for a Node script they are its settings.
	Env []string
	// Script runs this Node script (a path) instead of Options.NodeScript;
	// Node kind only.
	Script string
	// NodeArgs are options of node before the script (Node kind only),
	// e.g. --expose-gc for Process.CollectGarbage.
	NodeArgs []string
	// ReadyPath is the HTTP path answering 200 once the process is ready
	// (default /readyz for ours, /healthz for Node).
	ReadyPath string
	// Pprof has our server serve Go's profiler on a free loopback port
	// (PPROF_ADDR); see Process.CPUProfile.
	Pprof bool
}

// Start runs a server of kind k and waits until it is ready.
func (l *Launcher) Start(ctx context.Context, k Kind) (*Process, error) {
	return l.StartWith(ctx, k, StartOptions{})
}

// StartWith runs a process of kind k with o and waits until it is ready.
func (l *Launcher) StartWith(ctx context.Context, k Kind, o StartOptions) (*Process, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	l.starts++
	dir := filepath.Join(l.o.WorkDir, fmt.Sprintf("%s-%d", k, l.starts))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	base := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "PORT=" + strconv.Itoa(port)}
	var cmd *exec.Cmd
	var readyPath, pprofAddr string
	switch k {
	case Go:
		if l.goBin == "" {
			return nil, errors.New("start the Go server: not prepared")
		}
		cmd = exec.Command(l.goBin)
		cmd.Dir = dir // no stray .env from the working directory
		env := append(append(base, "DATA_DIR="+filepath.Join(dir, "data")), LoadEnv...)
		if o.Pprof {
			pp, err := freePort()
			if err != nil {
				return nil, err
			}
			pprofAddr = fmt.Sprintf("127.0.0.1:%d", pp)
			env = append(env, "PPROF_ADDR="+pprofAddr)
		}
		cmd.Env = append(append(env, o.Env...), l.o.GoEnv...)
		readyPath = "/readyz"
	case Node:
		script := l.o.NodeScript
		if o.Script != "" {
			script = o.Script
		}
		cmd = exec.Command("node", append(append([]string{}, o.NodeArgs...), script)...)
		cmd.Dir = filepath.Join(l.o.Repo, "server", "e2e")
		cmd.Env = append(append(base, "HOST=127.0.0.1"), o.Env...)
		readyPath = "/healthz"
	default:
		return nil, fmt.Errorf("start: unknown server %q", k)
	}
	if o.ReadyPath != "" {
		readyPath = o.ReadyPath
	}
	logPath := filepath.Join(dir, "server.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, so a Ctrl-C of the bench reaches it only
	// through Stop; killed if the bench dies without stopping it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s server: %w", k, err)
	}
	p := &Process{
		Kind: k, URL: fmt.Sprintf("http://127.0.0.1:%d", port), PID: cmd.Process.Pid,
		cmd: cmd, exited: make(chan struct{}), logPath: logPath, stopTimeout: l.o.StopTimeout,
		metrics: k == Go, pprofAddr: pprofAddr,
	}
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(p.exited)
	}()
	if err := p.waitReady(ctx, readyPath, l.o.ReadyTimeout); err != nil {
		_ = p.Stop(context.Background())
		return nil, err
	}
	return p, nil
}

// Process is a running server.
type Process struct {
	Kind Kind
	// URL is its base URL, http://127.0.0.1:<port>.
	URL string
	PID int

	cmd         *exec.Cmd
	exited      chan struct{}
	logPath     string
	stopTimeout time.Duration
	metrics     bool
	pprofAddr   string
}

// CPUProfile takes a CPU profile of the process over d from its profiler
// (started with StartOptions.Pprof) and returns it (pprof format).
func (p *Process) CPUProfile(ctx context.Context, d time.Duration) ([]byte, error) {
	if p.pprofAddr == "" {
		return nil, fmt.Errorf("%s server (pid %d) was started without its profiler", p.Kind, p.PID)
	}
	secs := max(int(d.Round(time.Second)/time.Second), 1)
	ctx, cancel := context.WithTimeout(ctx, time.Duration(secs)*time.Second+30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", p.pprofAddr, secs), nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("CPU profile of %s server: %w", p.Kind, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
	if err == nil && res.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s: %s", res.Status, bytes.TrimSpace(body))
	}
	if err != nil {
		return nil, fmt.Errorf("CPU profile of %s server: %w", p.Kind, err)
	}
	return body, nil
}

// CollectGarbage has the process collect its garbage now: our server
// through Go's profiler (started with StartOptions.Pprof; it collects
// before it writes a heap profile), a Node fixture that offers GET /gc
// (server/e2e/fixtures/rooms-server.js, run with --expose-gc).
func (p *Process) CollectGarbage(ctx context.Context) error {
	url := p.URL + "/gc"
	if p.Kind == Go {
		if p.pprofAddr == "" {
			return fmt.Errorf("%s server (pid %d) was started without its profiler", p.Kind, p.PID)
		}
		url = "http://" + p.pprofAddr + "/debug/pprof/heap?gc=1"
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("collect the garbage of %s server: %w", p.Kind, err)
	}
	body, _ := io.ReadAll(io.LimitReader(res.Body, 64<<20))
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("collect the garbage of %s server: %s %s", p.Kind, res.Status, clip(body))
	}
	return nil
}

// LiveHeap collects our server's garbage (CollectGarbage) and returns the
// heap then in use, in bytes, from /metrics: what the live objects take,
// without the garbage a reading at any other moment includes.
func (p *Process) LiveHeap(ctx context.Context) (float64, error) {
	if err := p.CollectGarbage(ctx); err != nil {
		return 0, err
	}
	v, err := p.Metrics(ctx, "go_memstats_heap_inuse_bytes")
	if err != nil {
		return 0, err
	}
	heap, ok := v["go_memstats_heap_inuse_bytes"]
	if !ok {
		return 0, fmt.Errorf("%s server's /metrics has no go_memstats_heap_inuse_bytes", p.Kind)
	}
	return heap, nil
}

// clip is the start of a body, for errors.
func clip(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) > 200 {
		b = b[:200]
	}
	return string(b)
}

func (p *Process) waitReady(ctx context.Context, path string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: time.Second}
	for {
		select {
		case <-p.exited:
			return fmt.Errorf("%s server exited before it was ready:\n%s", p.Kind, p.LogTail(20))
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if res, err := client.Get(p.URL + path); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s server not ready within %s:\n%s", p.Kind, timeout, p.LogTail(20))
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM and waits for the exit; after the stop timeout (or
// when ctx ends) it sends SIGKILL.
func (p *Process) Stop(ctx context.Context) error {
	if p.Exited() {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(p.stopTimeout)
	defer t.Stop()
	select {
	case <-p.exited:
		return nil
	case <-t.C:
	case <-ctx.Done():
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
	return fmt.Errorf("%s server (pid %d) did not stop within %s of SIGTERM; killed", p.Kind, p.PID, p.stopTimeout)
}

// Kill ends the process at once, as a crash does (SIGKILL to its PID:
// no shutdown, nothing flushed), and waits for the exit.
func (p *Process) Kill() {
	if p.Exited() {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// LogTail returns the last n lines of the server's output.
func (p *Process) LogTail(n int) string {
	data, _ := os.ReadFile(p.logPath)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Sample is a process's state at one moment.
type Sample struct {
	At     time.Time
	CPU    procfs.CPU
	Status procfs.Status
	// Goroutines, HeapInuse and StackInuse (bytes) come from the Go
	// server's /metrics; NaN for the reference.
	Goroutines, HeapInuse, StackInuse float64
	// SlowDisconnects counts clients the Go server cut for a full send
	// queue (NaN for the reference).
	SlowDisconnects float64
}

// Sample reads the process's CPU time and memory from /proc and, for the
// Go server, its runtime figures from /metrics.
func (p *Process) Sample(ctx context.Context) (Sample, error) {
	s := Sample{At: time.Now(), Goroutines: math.NaN(), HeapInuse: math.NaN(), StackInuse: math.NaN(), SlowDisconnects: math.NaN()}
	var err error
	if s.CPU, err = procfs.ReadCPU(p.PID); err != nil {
		return s, fmt.Errorf("sample %s server: %w", p.Kind, err)
	}
	if s.Status, err = procfs.ReadStatus(p.PID); err != nil {
		return s, fmt.Errorf("sample %s server: %w", p.Kind, err)
	}
	if !p.metrics {
		return s, nil
	}
	v, err := p.Metrics(ctx, "go_goroutines", "go_memstats_heap_inuse_bytes", "go_memstats_stack_inuse_bytes",
		"chat_slow_client_disconnects_total")
	if err != nil {
		return s, err
	}
	get := func(name string) float64 {
		if x, ok := v[name]; ok {
			return x
		}
		return math.NaN()
	}
	s.Goroutines = get("go_goroutines")
	s.HeapInuse = get("go_memstats_heap_inuse_bytes")
	s.StackInuse = get("go_memstats_stack_inuse_bytes")
	s.SlowDisconnects = get("chat_slow_client_disconnects_total")
	return s, nil
}

// Metrics scrapes the process's GET /metrics (Prometheus text) and returns
// the named unlabelled metrics it has.
func (p *Process) Metrics(ctx context.Context, names ...string) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+"/metrics", nil)
	res, err := metricsClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s server metrics: %w", p.Kind, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 8<<20))
	if err != nil {
		return nil, fmt.Errorf("scrape %s server metrics: %w", p.Kind, err)
	}
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s server metrics: %s", p.Kind, res.Status)
	}
	return procfs.PromValues(body, names...), nil
}

// metricsClient keeps its connections, so that frequent scrapes cost no
// new connection each.
var metricsClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// gitRevision describes the repository's checked-out commit, with
// "+changes" when the work tree differs from it.
func gitRevision(ctx context.Context, repo string) string {
	out, err := exec.CommandContext(ctx, "git", "-C", repo, "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		return "unknown commit"
	}
	rev := strings.TrimSpace(string(out))
	if st, err := exec.CommandContext(ctx, "git", "-C", repo, "status", "--porcelain", "--", "server").Output(); err == nil && len(bytes.TrimSpace(st)) > 0 {
		rev += "+changes"
	}
	return rev
}
