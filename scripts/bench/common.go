package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/scalable-chat-go/bench/internal/procfs"
	"github.com/scalable-chat-go/bench/internal/server"
)

// common are the flags every mode has. Later modes (cluster, pipeline) add
// their own beside them: -nodes and the services' URLs for cluster, the
// stores for pipeline.
type common struct {
	servers    []server.Kind
	out        string
	name       string
	repo       string
	goBin      string
	goEnv      listFlag
	nodeScript string
	timeout    time.Duration
	parallel   int
	cpuProfile string
	// quiet is the most the machine may be busy (cores) before a step
	// starts; quietMax bounds the wait for it.
	quiet    float64
	quietMax time.Duration
}

// listFlag is a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " ") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

type serversFlag struct{ kinds *[]server.Kind }

func (f serversFlag) String() string {
	if f.kinds == nil {
		return ""
	}
	var s []string
	for _, k := range *f.kinds {
		s = append(s, string(k))
	}
	return strings.Join(s, ",")
}

func (f serversFlag) Set(v string) error {
	var out []server.Kind
	for _, p := range strings.Split(v, ",") {
		k, err := server.ParseKind(p)
		if err != nil {
			return err
		}
		for _, seen := range out {
			if seen == k {
				return fmt.Errorf("server %q given twice", k)
			}
		}
		out = append(out, k)
	}
	*f.kinds = out
	return nil
}

func (c *common) register(fs *flag.FlagSet) {
	c.servers = []server.Kind{server.Go, server.Node}
	fs.Var(serversFlag{&c.servers}, "servers", "servers to measure, in this order: go (ours), node (the reference)")
	fs.StringVar(&c.out, "out", "", "results folder (default <repo>/scripts/bench/results)")
	fs.StringVar(&c.name, "name", "", "file name of the results, without extension (default <mode>-<UTC time>)")
	fs.StringVar(&c.repo, "repo", "", "repository root (default: found from the working directory)")
	fs.StringVar(&c.goBin, "go-bin", "", "run this chat-server binary instead of building server/cmd/chat-server (e.g. to compare two builds)")
	fs.Var(&c.goEnv, "env", "KEY=VALUE setting for our server on top of the load settings (repeatable)")
	fs.StringVar(&c.nodeScript, "node-script", "", "reference server script (default server/e2e/fixtures/original-server.js)")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Minute, "bound of the whole run")
	fs.IntVar(&c.parallel, "dial-parallel", 64, "connections opened at once")
	fs.Float64Var(&c.quiet, "quiet", 0, "before each step, wait until the machine is busy less than this many cores (0: do not wait); for shared machines")
	fs.DurationVar(&c.quietMax, "quiet-max", 5*time.Minute, "longest wait for -quiet before a step (then it runs anyway, noted)")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write the bench's own CPU profile to this file (to check the load generator)")
}

// parseFlags parses a mode's flags; a mistake is a usage error.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usagef("%s: %v", fs.Name(), err)
	}
	if fs.NArg() > 0 {
		return usagef("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	return nil
}

// parseOurs parses the flags of a mode that measures our server alone,
// checks the common ones, and refuses -servers other than go, saying why.
func (c *common) parseOurs(fs *flag.FlagSet, args []string, why string) error {
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := c.check(); err != nil {
		return err
	}
	if len(c.servers) != 1 || c.servers[0] != server.Go {
		return usagef("-servers: %s", why)
	}
	return nil
}

func (c *common) check() error {
	if len(c.servers) == 0 {
		return usagef("-servers: none given")
	}
	for _, kv := range c.goEnv {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return usagef("-env %q: want KEY=VALUE", kv)
		}
	}
	if c.timeout <= 0 || c.timeout > 3*time.Hour {
		return usagef("-timeout %s: want a duration up to 3h", c.timeout)
	}
	if c.quiet < 0 || c.quiet > float64(runtime.NumCPU()) {
		return usagef("-quiet %g: want 0..%d cores", c.quiet, runtime.NumCPU())
	}
	if c.quietMax < 0 || c.quietMax > time.Hour {
		return usagef("-quiet-max %s: want 0..1h", c.quietMax)
	}
	if c.parallel < 1 || c.parallel > 1024 {
		return usagef("-dial-parallel %d: want 1..1024", c.parallel)
	}
	if c.repo == "" {
		r, err := findRepo()
		if err != nil {
			return err
		}
		c.repo = r
	}
	if _, err := os.Stat(filepath.Join(c.repo, "server", "cmd", "chat-server")); err != nil {
		return usagef("-repo %s: no server/cmd/chat-server in it", c.repo)
	}
	if c.out == "" {
		c.out = filepath.Join(c.repo, "scripts", "bench", "results")
	}
	return nil
}

// findRepo walks up from the working directory to the folder holding
// go.work and server/.
func findRepo() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if fileExists(filepath.Join(dir, "go.work")) && fileExists(filepath.Join(dir, "server", "go.mod")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", usagef("not inside the scalable-chat-go repository (no go.work with server/ above the working directory); give -repo")
		}
		dir = parent
	}
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// session is what a mode runs with: the launcher, a work folder, the
// report's header.
type session struct {
	c        *common
	launcher *server.Launcher
	work     string
	meta     Meta
	log      io.Writer
}

// Meta heads every result file.
type Meta struct {
	Mode    string            `json:"mode"`
	Date    time.Time         `json:"date"`
	Command string            `json:"command"`
	Machine Machine           `json:"machine"`
	Servers map[string]string `json:"servers"`
	Params  map[string]any    `json:"params"`
}

// Machine describes where the run happened.
type Machine struct {
	CPU      string  `json:"cpu"`
	Cores    int     `json:"cores"`
	MemoryGB float64 `json:"memory_gb"`
	OS       string  `json:"os"`
	Kernel   string  `json:"kernel"`
	Go       string  `json:"go"`
}

func (m Machine) String() string {
	return fmt.Sprintf("%s, %d cores, %.0f GB, %s, Linux %s, %s", m.CPU, m.Cores, m.MemoryGB, m.OS, m.Kernel, m.Go)
}

func machine() Machine {
	m := Machine{Cores: runtime.NumCPU(), Go: runtime.Version()}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if f, err := os.Open("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var kb float64
			if _, err := fmt.Sscanf(sc.Text(), "MemTotal: %f kB", &kb); err == nil {
				m.MemoryGB = kb / (1 << 20)
				break
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if f, err := os.Open("/etc/os-release"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "PRETTY_NAME="); ok {
				m.OS = strings.Trim(v, `"`)
			}
		}
		f.Close()
	}
	return m
}

// start prepares a session: file limit, work folder, servers built.
// Call the returned cleanup when done.
func (c *common) start(ctx context.Context, mode string, args []string, fds int, log io.Writer) (*session, func(), error) {
	if err := raiseFileLimit(uint64(fds)); err != nil {
		return nil, nil, err
	}
	work, err := os.MkdirTemp("", "chat-bench-")
	if err != nil {
		return nil, nil, err
	}
	cleanup := func() { _ = os.RemoveAll(work) }
	if c.cpuProfile != "" {
		pf, err := os.Create(c.cpuProfile)
		if err != nil {
			cleanup()
			return nil, nil, fmt.Errorf("-cpuprofile: %w", err)
		}
		if err := pprof.StartCPUProfile(pf); err != nil {
			pf.Close()
			cleanup()
			return nil, nil, fmt.Errorf("-cpuprofile: %w", err)
		}
		rm := cleanup
		cleanup = func() { pprof.StopCPUProfile(); pf.Close(); rm() }
	}
	l := server.NewLauncher(server.Options{
		Repo: c.repo, GoBinary: c.goBin, GoEnv: c.goEnv, NodeScript: c.nodeScript, WorkDir: work, Progress: log,
	})
	if err := l.Prepare(ctx, c.servers); err != nil {
		cleanup()
		return nil, nil, err
	}
	s := &session{c: c, launcher: l, work: work, log: log, meta: Meta{
		Mode: mode, Date: time.Now().UTC().Truncate(time.Second), Command: command(mode, args),
		Machine: machine(), Servers: l.Info(), Params: map[string]any{},
	}}
	if c.name == "" {
		c.name = mode + "-" + s.meta.Date.Format("20060102-150405")
	}
	return s, cleanup, nil
}

// fdMargin is the open files a process needs beside its connections
// (listener, store, HTTP clients, standard streams).
const fdMargin = 256

// raiseFileLimit lifts this process's open-file limit to at least need
// (the servers it starts inherit it): the soft limit up to the hard one,
// and, with the privilege to, the hard one too.
func raiseFileLimit(need uint64) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("read the open-file limit: %w", err)
	}
	if lim.Cur >= need {
		return nil
	}
	want := lim
	want.Cur = max(lim.Cur, min(lim.Max, max(need, 65536)))
	if need > lim.Max {
		want.Cur, want.Max = need, need
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
		if need > lim.Max {
			return fmt.Errorf("this run needs %d open files, the hard limit is %d and cannot be raised (%v): use fewer connections", need, lim.Max, err)
		}
		return fmt.Errorf("raise the open-file limit to %d: %w", want.Cur, err)
	}
	return nil
}

// write stores the result as <name>.json and <name>.md (and the chart as
// <name>.svg when given) in the results folder, and returns the paths.
func (s *session) write(result any, markdown string, svg []byte) ([]string, error) {
	if err := os.MkdirAll(s.c.out, 0o755); err != nil {
		return nil, fmt.Errorf("results folder: %w", err)
	}
	base := filepath.Join(s.c.out, s.c.name)
	data, err := json.MarshalIndent(result, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode results: %w", err)
	}
	files := map[string][]byte{base + ".json": append(data, '\n'), base + ".md": []byte(markdown)}
	paths := []string{base + ".json", base + ".md"}
	if svg != nil {
		files[base+".svg"] = svg
		paths = append(paths, base+".svg")
	}
	for _, p := range paths {
		if err := os.WriteFile(p, files[p], 0o644); err != nil {
			return nil, fmt.Errorf("write results: %w", err)
		}
	}
	return paths, nil
}

// header is the Markdown heading of a result: what ran, where, when.
func (s *session) header(title string) string {
	var b strings.Builder
	m := s.meta
	fmt.Fprintf(&b, "### %s\n\n", title)
	fmt.Fprintf(&b, "- command: `%s`\n", m.Command)
	fmt.Fprintf(&b, "- date: %s\n", m.Date.Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(&b, "- machine: %s\n", m.Machine)
	if v, ok := m.Servers["go_server"]; ok {
		fmt.Fprintf(&b, "- ours: %s (%s), env `%s`\n", v, m.Servers["go_server_toolchain"], m.Servers["go_server_env"])
		if e, ok := m.Servers["go_server_step_env"]; ok {
			fmt.Fprintf(&b, "  (%s)\n", e)
		}
	}
	if v, ok := m.Servers["node_consumer"]; ok {
		fmt.Fprintf(&b, "- reference: %s, Node %s\n", v, m.Servers["node"])
	} else if v, ok := m.Servers["node_server"]; ok {
		fmt.Fprintf(&b, "- reference: %s, socket.io %s, Node %s\n", v, m.Servers["node_socket.io"], m.Servers["node"])
	}
	for _, k := range []string{"go_server_cluster", "node_server_cluster"} {
		if v, ok := m.Servers[k]; ok {
			fmt.Fprintf(&b, "- %s cluster: %s\n", map[string]string{"go_server_cluster": "our", "node_server_cluster": "reference"}[k], v)
		}
	}
	b.WriteString("\n")
	return b.String()
}

// waitQuiet waits, when -quiet is set, until the machine's busy CPU over
// a second is below it, at most -quiet-max. It returns the busy cores of
// the last second and whether the machine was quiet.
func (s *session) waitQuiet(ctx context.Context) (busy float64, quiet bool, err error) {
	if s.c.quiet <= 0 {
		return 0, true, nil
	}
	deadline := time.Now().Add(s.c.quietMax)
	said := false
	for {
		m0, err := procfs.ReadMachine()
		if err != nil {
			return 0, false, err
		}
		t0 := time.Now()
		if err := sleepCtx(ctx, time.Second); err != nil {
			return 0, false, err
		}
		m1, err := procfs.ReadMachine()
		if err != nil {
			return 0, false, err
		}
		busy = m1.Sub(m0).Busy.Seconds() / time.Since(t0).Seconds()
		if busy < s.c.quiet {
			return busy, true, nil
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(s.log, "the machine is still busy (%.2f cores) after %s; going on\n", busy, s.c.quietMax)
			return busy, false, nil
		}
		if !said {
			fmt.Fprintf(s.log, "waiting for the machine to be quiet (busy %.2f cores, want < %.2f)\n", busy, s.c.quiet)
			said = true
		}
	}
}

// sleepCtx sleeps for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
