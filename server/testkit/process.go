package testkit

import (
	"bytes"
	"math/rand/v2"
	"net"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Ports that FreePort hands out: below the kernel's ephemeral range (32768
// and up on Linux, where outgoing connections get their local port), so no
// connection can take one between the pick and the bind, and above the
// ports scripts/services gives the checkouts' services (20000-29999).
const (
	freePortLow  = 30000
	freePortHigh = 32767
)

// FreePort returns a TCP port that nothing listens on at 127.0.0.1 now (see
// freePortLow). Another process may still take it before the caller binds
// it: a server that can bind port 0 and say which it got is safer, and a
// launcher that sees "address already in use" should start again on
// another.
func FreePort(t testing.TB) int {
	t.Helper()
	for range 200 {
		port := freePortLow + rand.IntN(freePortHigh-freePortLow+1)
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil {
			ln.Close()
			return port
		}
	}
	t.Fatalf("no free port in %d-%d after 200 tries", freePortLow, freePortHigh)
	return 0
}

// Output is what a process writes, kept for the failure message; safe for
// concurrent use. OnLine, when set before the process starts, sees each
// complete line as it is written.
type Output struct {
	OnLine func(line string)

	mu      sync.Mutex
	b       bytes.Buffer
	partial []byte
}

// Write implements io.Writer.
func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	o.b.Write(p)
	var lines []string
	if o.OnLine != nil {
		o.partial = append(o.partial, p...)
		for {
			i := bytes.IndexByte(o.partial, '\n')
			if i < 0 {
				break
			}
			lines = append(lines, string(o.partial[:i]))
			o.partial = o.partial[i+1:]
		}
	}
	o.mu.Unlock()
	for _, l := range lines {
		o.OnLine(l)
	}
	return len(p), nil
}

// String returns everything written so far.
func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

// Process is a child process of a test, in a process group of its own (what
// it starts in turn ends with it), its output kept.
type Process struct {
	Name string
	Cmd  *exec.Cmd
	Out  *Output
	// Exited is closed once the process has exited; Cmd.ProcessState is
	// set then.
	Exited chan struct{}
}

// Start starts cmd with its stdout and stderr going to out (a new Output
// when nil), in a new process group. When t ends the group is killed
// (SIGKILL) and, if t failed, the output is logged under name.
func Start(t testing.TB, name string, cmd *exec.Cmd, out *Output) *Process {
	t.Helper()
	if out == nil {
		out = &Output{}
	}
	cmd.Stdout, cmd.Stderr = out, out
	newGroup(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &Process{Name: name, Cmd: cmd, Out: out, Exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.Exited) }()
	t.Cleanup(func() {
		killGroup(cmd)
		<-p.Exited
		if t.Failed() {
			t.Logf("%s output:\n%s", name, out.String())
		}
	})
	return p
}

// Signal sends s to the process (not to its group).
func (p *Process) Signal(s syscall.Signal) {
	_ = p.Cmd.Process.Signal(s)
}

// Done reports whether the process has exited.
func (p *Process) Done() bool {
	select {
	case <-p.Exited:
		return true
	default:
		return false
	}
}

// Wait waits up to within for the exit and returns its code (-1 for a
// signal), or fails t naming the process and showing its output.
func (p *Process) Wait(t testing.TB, within time.Duration) int {
	t.Helper()
	select {
	case <-p.Exited:
	case <-time.After(within):
		t.Fatalf("%s did not exit within %v:\n%s", p.Name, within, p.Out.String())
	}
	return p.Cmd.ProcessState.ExitCode()
}
