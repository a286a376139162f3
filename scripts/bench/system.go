package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/scalable-chat-go/bench/internal/procfs"
	"github.com/scalable-chat-go/bench/internal/server"
)

// system is what a mode measures: one server process today, several
// nodes of one kind in the cluster mode. Connections spread over its nodes
// round-robin; its CPU and memory are the sums over them.
type system struct {
	kind  server.Kind
	nodes []*server.Process
}

// startSystem starts n nodes of kind k, each with o.
func startSystem(ctx context.Context, s *session, k server.Kind, n int, o server.StartOptions) (*system, error) {
	sys := &system{kind: k}
	for range n {
		p, err := s.launcher.StartWith(ctx, k, o)
		if err != nil {
			_ = sys.stop(s)
			return nil, err
		}
		sys.nodes = append(sys.nodes, p)
	}
	return sys, nil
}

// urls returns the nodes' base URLs.
func (sys *system) urls() []string {
	var out []string
	for _, p := range sys.nodes {
		out = append(out, p.URL)
	}
	return out
}

// stop stops every node; it reports the failures to stop in time.
func (sys *system) stop(s *session) error {
	var errs []error
	for _, p := range sys.nodes {
		if err := p.Stop(context.Background()); err != nil {
			fmt.Fprintf(s.log, "%v\n", err)
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// exited returns the log of a node that is no longer running, or "".
func (sys *system) exited() string {
	for _, p := range sys.nodes {
		if p.Exited() {
			return fmt.Sprintf("%s server (pid %d) exited; its log ends:\n%s", p.Kind, p.PID, p.LogTail(20))
		}
	}
	return ""
}

// cpu returns the nodes' CPU time so far, summed.
func (sys *system) cpu() (procfs.CPU, error) {
	var sum procfs.CPU
	for _, p := range sys.nodes {
		c, err := procfs.ReadCPU(p.PID)
		if err != nil {
			return sum, fmt.Errorf("%s server: %w", p.Kind, err)
		}
		sum.User += c.User
		sum.System += c.System
	}
	return sum, nil
}

// sample reads every node; CPU, memory, threads and the Go runtime
// figures are summed (NaN when a node has none).
func (sys *system) sample(ctx context.Context) (server.Sample, error) {
	sum := server.Sample{At: time.Now()}
	for i, p := range sys.nodes {
		x, err := p.Sample(ctx)
		if err != nil {
			return sum, err
		}
		if i == 0 {
			sum.Goroutines, sum.HeapInuse, sum.StackInuse, sum.SlowDisconnects = 0, 0, 0, 0
		}
		sum.CPU.User += x.CPU.User
		sum.CPU.System += x.CPU.System
		sum.Status.RSS += x.Status.RSS
		sum.Status.HWM += x.Status.HWM
		sum.Status.Threads += x.Status.Threads
		sum.Goroutines += x.Goroutines
		sum.HeapInuse += x.HeapInuse
		sum.StackInuse += x.StackInuse
		sum.SlowDisconnects += x.SlowDisconnects
	}
	if len(sys.nodes) == 0 {
		sum.Goroutines, sum.HeapInuse, sum.StackInuse, sum.SlowDisconnects = math.NaN(), math.NaN(), math.NaN(), math.NaN()
	}
	return sum, nil
}

// describe names the system for progress lines.
func (sys *system) describe() string {
	if len(sys.nodes) == 1 {
		return sys.kind.Label()
	}
	var pids []string
	for _, p := range sys.nodes {
		pids = append(pids, fmt.Sprint(p.PID))
	}
	return fmt.Sprintf("%s, %d nodes (pids %s)", sys.kind.Label(), len(sys.nodes), strings.Join(pids, ", "))
}
