package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/scalable-chat-go/bench/internal/procfs"
	"github.com/scalable-chat-go/bench/internal/report"
	"github.com/scalable-chat-go/bench/internal/server"
	"github.com/scalable-chat-go/server/sioclient"
)

// Bounds of the idle mode.
const (
	maxConns = 60000
	maxHold  = 10 * time.Minute
)

type idleFlags struct {
	common
	transport string
	conns     int
	hold      time.Duration
	settle    time.Duration
}

// IdleResult is the JSON of an idle run.
type IdleResult struct {
	Meta   Meta        `json:"meta"`
	Points []IdlePoint `json:"points"`
}

// IdlePoint is one server's figures.
type IdlePoint struct {
	Server    string `json:"server"`
	Label     string `json:"label"`
	Transport string `json:"transport"`
	Conns     int    `json:"conns"`
	Connected int    `json:"connected"`
	// Dropped counts connections that ended during the hold.
	Dropped    int64   `json:"dropped"`
	ConnectSec float64 `json:"connect_sec"`
	HoldSec    float64 `json:"hold_sec"`

	BaseRSSMB     float64 `json:"base_rss_mb"`
	RSSMB         float64 `json:"rss_mb"`
	RSSPerConnKB  float64 `json:"rss_per_conn_kb"`
	PeakRSSMB     float64 `json:"peak_rss_mb"`
	BaseThreads   int     `json:"base_threads"`
	Threads       int     `json:"threads"`
	ConnectCPUSec float64 `json:"connect_cpu_sec"`
	// IdleCores is the server's CPU use while the connections sat idle.
	IdleCores float64 `json:"idle_cores"`

	// From the Go server's /metrics (absent for the reference).
	BaseGoroutines     *float64 `json:"base_goroutines,omitempty"`
	Goroutines         *float64 `json:"goroutines,omitempty"`
	GoroutinesPerConn  *float64 `json:"goroutines_per_conn,omitempty"`
	HeapInusePerConnKB *float64 `json:"heap_inuse_per_conn_kb,omitempty"`
	StackPerConnKB     *float64 `json:"stack_inuse_per_conn_kb,omitempty"`

	// BenchRSSPerConnKB is the load generator's own memory per connection.
	BenchRSSPerConnKB float64 `json:"bench_rss_per_conn_kb"`
}

func runIdle(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f idleFlags
	fs := flag.NewFlagSet("idle", flag.ContinueOnError)
	fs.SetOutput(stderr)
	f.register(fs)
	fs.IntVar(&f.conns, "conns", 5000, fmt.Sprintf("idle connections (1..%d)", maxConns))
	fs.StringVar(&f.transport, "transport", "websocket", "websocket, or polling (idle long-polling sessions, each holding a GET)")
	fs.DurationVar(&f.hold, "hold", 10*time.Second, "how long the connections sit idle before the memory is read")
	fs.DurationVar(&f.settle, "settle", time.Second, "pause after a server is ready, before its baseline is read")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: go run ./scripts/bench idle [flags]\n\nOpens -conns idle WebSocket connections to each server and reports what each costs.\n\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := f.check(); err != nil {
		return err
	}
	if f.conns < 1 || f.conns > maxConns {
		return usagef("-conns %d: want 1..%d", f.conns, maxConns)
	}
	if f.transport != "websocket" && f.transport != "polling" {
		return usagef("-transport %q: want websocket or polling", f.transport)
	}
	if f.hold < 0 || f.hold > maxHold {
		return usagef("-hold %s: want 0..%s", f.hold, maxHold)
	}
	if f.settle < 0 || f.settle > time.Minute {
		return usagef("-settle %s: want 0..1m", f.settle)
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()

	s, cleanup, err := f.start(ctx, "idle", args, f.conns+fdMargin, stderr)
	if err != nil {
		return err
	}
	defer cleanup()
	s.meta.Params = map[string]any{"conns": f.conns, "transport": f.transport, "hold": f.hold.String(), "settle": f.settle.String()}

	res := IdleResult{Meta: s.meta}
	for _, k := range f.servers {
		p, err := idleOne(ctx, s, &f, k)
		if err != nil {
			return fmt.Errorf("idle, %s: %w", k.Label(), err)
		}
		res.Points = append(res.Points, p)
	}
	what := map[string]string{"websocket": "WebSocket connections", "polling": "long-polling sessions"}[f.transport]
	md := s.header(fmt.Sprintf("idle: %d %s, held %s", f.conns, what, f.hold)) + idleTable(res.Points)
	return s.publish(stdout, res, md, nil, tally{})
}

func idleOne(ctx context.Context, s *session, f *idleFlags, k server.Kind) (IdlePoint, error) {
	pt := IdlePoint{Server: string(k), Label: k.Label(), Transport: f.transport, Conns: f.conns, HoldSec: f.hold.Seconds()}
	if _, _, err := s.waitQuiet(ctx); err != nil {
		return pt, err
	}
	sys, err := startSystem(ctx, s, k, 1, server.StartOptions{})
	if err != nil {
		return pt, err
	}
	defer func() { _ = sys.stop(s) }()
	if err := sleepCtx(ctx, f.settle); err != nil {
		return pt, err
	}
	base, err := sys.sample(ctx)
	if err != nil {
		return pt, err
	}
	benchBase, _ := procfs.ReadStatus(0)

	fmt.Fprintf(s.log, "%s: opening %d %s connections\n", k.Label(), f.conns, f.transport)
	t0 := time.Now()
	var dropped func() int64
	if f.transport == "polling" {
		ps, err := dialPolling(ctx, sys.urls(), f.conns, f.parallel)
		defer ps.close()
		if err != nil {
			return pt, fmt.Errorf("open polling sessions (%d open): %w", ps.open.Load(), err)
		}
		pt.Connected = int(ps.open.Load())
		dropped = ps.dropped.Load
	} else {
		d := &sioclient.Dialer{ReadBufferSize: 1024}
		cs, err := dial(ctx, d, sys.urls(), f.conns, f.parallel, func(int) func([]byte) { return func([]byte) {} })
		defer cs.close()
		if err != nil {
			return pt, fmt.Errorf("open connections (%d open): %w", cs.open(), err)
		}
		pt.Connected = cs.open()
		dropped = cs.dropped.Load
	}
	pt.ConnectSec = time.Since(t0).Seconds()
	connected, err := sys.sample(ctx)
	if err != nil {
		return pt, err
	}
	fmt.Fprintf(s.log, "%s: %d connections open in %.1fs; holding them %s\n", k.Label(), pt.Connected, pt.ConnectSec, f.hold)
	if err := sleepCtx(ctx, f.hold); err != nil {
		return pt, err
	}
	if log := sys.exited(); log != "" {
		return pt, errors.New(log)
	}
	end, err := sys.sample(ctx)
	if err != nil {
		return pt, err
	}
	benchEnd, _ := procfs.ReadStatus(0)
	pt.Dropped = dropped()

	n := float64(pt.Connected)
	const mb, kb = 1 << 20, 1 << 10
	pt.BaseRSSMB = float64(base.Status.RSS) / mb
	pt.RSSMB = float64(end.Status.RSS) / mb
	pt.PeakRSSMB = float64(end.Status.HWM) / mb
	pt.RSSPerConnKB = float64(end.Status.RSS-base.Status.RSS) / n / kb
	pt.BaseThreads, pt.Threads = base.Status.Threads, end.Status.Threads
	pt.ConnectCPUSec = connected.CPU.Sub(base.CPU).Total().Seconds()
	if held := end.At.Sub(connected.At).Seconds(); held > 0 {
		pt.IdleCores = end.CPU.Sub(connected.CPU).Total().Seconds() / held
	}
	pt.BenchRSSPerConnKB = float64(benchEnd.RSS-benchBase.RSS) / n / kb
	pt.BaseGoroutines, pt.Goroutines = ptr(base.Goroutines), ptr(end.Goroutines)
	pt.GoroutinesPerConn = ptr((end.Goroutines - base.Goroutines) / n)
	pt.HeapInusePerConnKB = ptr((end.HeapInuse - base.HeapInuse) / n / kb)
	pt.StackPerConnKB = ptr((end.StackInuse - base.StackInuse) / n / kb)
	fmt.Fprintf(s.log, "%s: %.1f KB RSS per connection\n", k.Label(), pt.RSSPerConnKB)
	return pt, nil
}

func idleTable(points []IdlePoint) string {
	t := report.Table{
		Header: []string{"server", "connections", "RSS empty MB", "RSS MB", "RSS/conn KB", "goroutines/conn", "heap/conn KB", "stack/conn KB", "threads", "connect s", "idle cores"},
		Right:  []bool{false, true, true, true, true, true, true, true, true, true, true},
	}
	for _, p := range points {
		t.Rows = append(t.Rows, []string{
			p.Label, fmt.Sprintf("%d", p.Connected), report.Num(p.BaseRSSMB), report.Num(p.RSSMB), report.Num(p.RSSPerConnKB),
			opt(p.GoroutinesPerConn), opt(p.HeapInusePerConnKB), opt(p.StackPerConnKB),
			fmt.Sprintf("%d → %d", p.BaseThreads, p.Threads), report.Num(p.ConnectSec), report.Num(p.IdleCores),
		})
	}
	ours, ref := find(points, func(p IdlePoint) string { return p.Server })
	if ours != nil && ref != nil {
		t.Rows = append(t.Rows, []string{
			"**ours/reference**", "", report.Ratio(ours.BaseRSSMB, ref.BaseRSSMB), report.Ratio(ours.RSSMB, ref.RSSMB),
			"**" + report.Ratio(ours.RSSPerConnKB, ref.RSSPerConnKB) + "**", "", "", "", "",
			report.Ratio(ours.ConnectSec, ref.ConnectSec), report.Ratio(ours.IdleCores, ref.IdleCores),
		})
	}
	var dropped []string
	for _, p := range points {
		if p.Dropped > 0 {
			dropped = append(dropped, fmt.Sprintf("%s dropped %d connections during the hold", p.Label, p.Dropped))
		}
	}
	out := t.Markdown()
	out += "\nRSS/conn = (RSS with the connections − RSS of the empty server) / connections, from /proc/<pid>/status, no forced GC. " +
		"Goroutines, heap and stack per connection: deltas of the Go server's /metrics.\n"
	for _, d := range dropped {
		out += "\nWarning: " + d + ".\n"
	}
	return out
}

// find returns the Go and the Node entries of points.
func find[T any](points []T, kind func(T) string) (ours, ref *T) {
	for i := range points {
		switch server.Kind(kind(points[i])) {
		case server.Go:
			ours = &points[i]
		case server.Node:
			ref = &points[i]
		}
	}
	return ours, ref
}

// ptr returns a pointer to v, or nil when v is NaN (a figure the server
// does not report).
func ptr(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

// ratioOpt is report.Ratio of two optional figures.
func ratioOpt(a, b *float64) string {
	if a == nil || b == nil {
		return "-"
	}
	return report.Ratio(*a, *b)
}

func opt(v *float64) string {
	if v == nil {
		return "-"
	}
	return report.Num(*v)
}
