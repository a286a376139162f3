package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scalable-chat-go/bench/internal/procfs"
	"github.com/scalable-chat-go/bench/internal/report"
	"github.com/scalable-chat-go/bench/internal/server"
	"github.com/scalable-chat-go/server/sioclient"
)

// The live mode: what presence and typing cost our server.
//
// One server, -conns connections that each name themselves (auth
// {username}), and these steps in turn, each measured over -duration:
//
//   - idle: nobody types, nobody comes or goes (the presence tick still runs
//     every PRESENCE_INTERVAL);
//   - typing, for each count in -typists: that many connections type as the
//     web client does while composing: `typing` true every 2 s, and every
//     third time false instead (as when the message goes); the server tells
//     every other connection of a start and a stop, and renews every half
//     TYPING_TIMEOUT;
//   - churn: -churn connections a second leave and as many new users come,
//     so every presence tick sends the whole list (-conns users) to
//     everyone, with presence:join and presence:leave.
//
// The reference has no presence or typing: this mode runs ours alone.

// Bounds of the live mode.
const (
	maxLiveConns  = 20000
	maxLiveChurn  = 200
	maxLiveDur    = 2 * time.Minute
	typingPeriod  = 2 * time.Second // the web client renews this often
	typingCycle   = 6 * time.Second // then stops (its message goes)
	liveEventKind = 4
)

type liveFlags struct {
	common
	conns    int
	typists  []int
	churn    float64
	duration time.Duration
	settle   time.Duration
}

// LiveResult is the JSON of a live run.
type LiveResult struct {
	Meta   Meta        `json:"meta"`
	Points []LivePoint `json:"points"`
}

// LivePoint is one step's figures.
type LivePoint struct {
	Step    string  `json:"step"`
	Conns   int     `json:"conns"`
	Typists int     `json:"typists"`
	Churn   float64 `json:"churn_per_sec"`
	Seconds float64 `json:"seconds"`
	// TypingSent is the typing events the bench sent; the rest are what
	// the connections received, per kind.
	TypingSent     int64 `json:"typing_sent"`
	TypingReceived int64 `json:"typing_received"`
	Presence       int64 `json:"presence_received"`
	Joins          int64 `json:"joins_received"`
	Leaves         int64 `json:"leaves_received"`
	// PresenceMB is the size of the presence frames received, in MB.
	PresenceMB float64 `json:"presence_mb"`
	// ServerDeliveries is chat_deliveries_total's increase, by event.
	ServerDeliveries map[string]float64 `json:"server_deliveries"`
	ServerCores      float64            `json:"server_cores"`
	// OverIdleCores is ServerCores less the idle step's.
	OverIdleCores float64 `json:"over_idle_cores"`
	// USPerDelivery is the CPU over idle per event received (typing,
	// presence, join and leave together).
	USPerDelivery float64 `json:"us_per_delivery"`
	// USPerTypingIn is the CPU over idle per typing event sent (typing steps).
	USPerTypingIn float64 `json:"us_per_typing_in"`
	BenchCores    float64 `json:"bench_cores"`
	MachineCores  float64 `json:"machine_busy_cores"`
	RSSMB         float64 `json:"server_rss_mb"`
	Dropped       int64   `json:"dropped"`
}

func runLive(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := liveFlags{typists: []int{10, 100}}
	fs := flag.NewFlagSet("live", flag.ContinueOnError)
	fs.SetOutput(stderr)
	f.register(fs)
	f.servers = []server.Kind{server.Go}
	fs.IntVar(&f.conns, "conns", 1000, fmt.Sprintf("named connections (2..%d)", maxLiveConns))
	fs.Var(intListFlag{&f.typists}, "typists", "typing steps: connections typing at once, comma separated (empty: none)")
	fs.Float64Var(&f.churn, "churn", 10, fmt.Sprintf("users leaving and as many coming per second in the churn step (0: no churn step; at most %d)", maxLiveChurn))
	fs.DurationVar(&f.duration, "duration", 10*time.Second, "length of each measured step (at most 2m)")
	fs.DurationVar(&f.settle, "settle", 3*time.Second, "pause before each step (presence settles, typing ends)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: go run ./scripts/bench live [flags]\n\n"+
			"What presence and typing cost our server: -conns named connections idle, then with\n"+
			"-typists typing as the web client does, then with -churn users coming and going a second.\n"+
			"Ours alone (the reference has neither).\n\n")
		fs.PrintDefaults()
	}
	if err := f.parseOurs(fs, args, "the live mode measures ours only (go): the reference has no presence or typing"); err != nil {
		return err
	}
	if f.conns < 2 || f.conns > maxLiveConns {
		return usagef("-conns %d: want 2..%d", f.conns, maxLiveConns)
	}
	for _, n := range f.typists {
		if n < 1 || n > f.conns {
			return usagef("-typists %d: want 1..-conns (%d)", n, f.conns)
		}
	}
	if f.churn < 0 || f.churn > maxLiveChurn {
		return usagef("-churn %g: want 0..%d", f.churn, maxLiveChurn)
	}
	if f.duration < time.Second || f.duration > maxLiveDur {
		return usagef("-duration %s: want 1s..%s", f.duration, maxLiveDur)
	}
	if f.settle < 0 || f.settle > time.Minute {
		return usagef("-settle %s: want 0..1m", f.settle)
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()

	// Churn opens up to churn × duration more connections.
	extra := int(f.churn*f.duration.Seconds()) + 1
	s, cleanup, err := f.start(ctx, "live", args, f.conns+extra+fdMargin, stderr)
	if err != nil {
		return err
	}
	defer cleanup()
	s.meta.Params = map[string]any{"conns": f.conns, "typists": f.typists, "churn": f.churn, "duration": f.duration.String(), "settle": f.settle.String()}

	points, err := liveRun(ctx, s, &f)
	res := LiveResult{Meta: s.meta, Points: points}
	md := s.header(fmt.Sprintf("live: presence and typing, %d named connections, ours", f.conns)) + liveTable(points)
	paths, werr := s.write(res, md, nil)
	if err != nil {
		return err
	}
	if werr != nil {
		return werr
	}
	fmt.Fprint(stdout, md)
	fmt.Fprintf(stdout, "\nwritten: %v\n", paths)
	return nil
}

// liveConn is one named connection and what it received.
type liveConn struct {
	c   *sioclient.Conn
	got [liveEventKind]atomic.Int64 // typing, presence, presence:join, presence:leave
	// presenceBytes counts the bytes of the presence frames.
	presenceBytes atomic.Int64
	// leaving: the churn closes it (not a drop).
	leaving atomic.Bool
	done    chan struct{}
}

var liveEvents = [liveEventKind]string{"typing", "presence", "presence:join", "presence:leave"}

func (lc *liveConn) on(frame []byte) {
	name := sioclient.EventName(frame)
	if name == nil {
		return
	}
	for i, e := range liveEvents {
		if string(name) == e {
			lc.got[i].Add(1)
			if i == 1 {
				lc.presenceBytes.Add(int64(len(frame)))
			}
			return
		}
	}
}

// livePool holds the connections; users get names user<n>.
type livePool struct {
	d       *sioclient.Dialer
	url     string
	mu      sync.Mutex
	conns   []*liveConn
	gone    []*liveConn // closed by the churn, still counted
	nextID  int
	dropped atomic.Int64
	closing atomic.Bool
	wg      sync.WaitGroup
}

func (p *livePool) open(ctx context.Context) (*liveConn, error) {
	p.mu.Lock()
	p.nextID++
	id := p.nextID
	p.mu.Unlock()
	auth := []byte(`{"username":"user` + strconv.Itoa(id) + `"}`)
	c, early, err := p.d.DialAuth(ctx, p.url, nil, auth)
	if err != nil {
		return nil, err
	}
	lc := &liveConn{c: c, done: make(chan struct{})}
	for _, f := range early {
		lc.on(f)
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer close(lc.done)
		_ = c.Serve(lc.on)
		if !p.closing.Load() && !lc.leaving.Load() {
			p.dropped.Add(1)
		}
	}()
	return lc, nil
}

// totals sums what every connection (the gone ones too) received, and
// the bytes of the presence frames.
func (p *livePool) totals() (t [liveEventKind]int64, presenceBytes int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, list := range [][]*liveConn{p.conns, p.gone} {
		for _, lc := range list {
			for i := range t {
				t[i] += lc.got[i].Load()
			}
			presenceBytes += lc.presenceBytes.Load()
		}
	}
	return t, presenceBytes
}

func (p *livePool) close() {
	p.closing.Store(true)
	p.mu.Lock()
	all := append(append([]*liveConn(nil), p.conns...), p.gone...)
	p.mu.Unlock()
	for _, lc := range all {
		_ = lc.c.Close()
	}
	p.wg.Wait()
}

func liveRun(ctx context.Context, s *session, f *liveFlags) ([]LivePoint, error) {
	var points []LivePoint
	if _, _, err := s.waitQuiet(ctx); err != nil {
		return points, err
	}
	sys, err := startSystem(ctx, s, server.Go, 1, server.StartOptions{})
	if err != nil {
		return points, err
	}
	defer func() { _ = sys.stop(s) }()
	p := &livePool{d: &sioclient.Dialer{ReadBufferSize: 4096}, url: sys.nodes[0].URL}
	defer p.close()

	fmt.Fprintf(s.log, "opening %d named connections\n", f.conns)
	p.conns = make([]*liveConn, f.conns)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, f.parallel)
	for range min(f.parallel, f.conns) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= f.conns || ctx.Err() != nil {
					return
				}
				lc, err := p.open(ctx)
				if err != nil {
					errs <- fmt.Errorf("connection %d: %w", i+1, err)
					return
				}
				p.mu.Lock()
				p.conns[i] = lc
				p.mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return points, err
	}

	measure := func(step string, typists int, churn float64, load func(ctx context.Context) int64) (LivePoint, error) {
		pt := LivePoint{Step: step, Conns: f.conns, Typists: typists, Churn: churn}
		if err := sleepCtx(ctx, f.settle); err != nil {
			return pt, err
		}
		if _, _, err := s.waitQuiet(ctx); err != nil {
			return pt, err
		}
		d0, err := deliveries(ctx, sys.nodes[0])
		if err != nil {
			return pt, err
		}
		got0, bytes0 := p.totals()
		m0, _ := procfs.ReadMachine()
		b0, _ := procfs.ReadCPU(0)
		x0, err := sys.sample(ctx)
		if err != nil {
			return pt, err
		}
		lctx, cancel := context.WithTimeout(ctx, f.duration)
		sent := int64(0)
		if load != nil {
			sent = load(lctx)
		} else {
			<-lctx.Done()
		}
		cancel()
		// What was sent before the end (the typists' last stop too) is
		// still on its way: the step ends when it arrived.
		if err := sleepCtx(ctx, 300*time.Millisecond); err != nil {
			return pt, err
		}
		x1, err := sys.sample(ctx)
		if err != nil {
			return pt, err
		}
		b1, _ := procfs.ReadCPU(0)
		m1, _ := procfs.ReadMachine()
		got1, bytes1 := p.totals()
		d1, err := deliveries(ctx, sys.nodes[0])
		if err != nil {
			return pt, err
		}
		secs := x1.At.Sub(x0.At).Seconds()
		pt.Seconds = secs
		pt.TypingSent = sent
		pt.TypingReceived = got1[0] - got0[0]
		pt.Presence = got1[1] - got0[1]
		pt.Joins = got1[2] - got0[2]
		pt.Leaves = got1[3] - got0[3]
		pt.PresenceMB = float64(bytes1-bytes0) / (1 << 20)
		pt.ServerDeliveries = map[string]float64{}
		for k, v := range d1 {
			if dv := v - d0[k]; dv > 0 {
				pt.ServerDeliveries[k] = dv
			}
		}
		pt.ServerCores = x1.CPU.Sub(x0.CPU).Total().Seconds() / secs
		pt.BenchCores = b1.Sub(b0).Total().Seconds() / secs
		pt.MachineCores = m1.Sub(m0).Busy.Seconds() / secs
		pt.RSSMB = float64(x1.Status.RSS) / (1 << 20)
		pt.Dropped = p.dropped.Load()
		fmt.Fprintf(s.log, "%s: server %.3f cores, %d typing and %d presence events received\n", step, pt.ServerCores, pt.TypingReceived, pt.Presence+pt.Joins+pt.Leaves)
		return pt, nil
	}

	idle, err := measure("idle", 0, 0, nil)
	if err != nil {
		return points, err
	}
	points = append(points, idle)
	for _, n := range f.typists {
		pt, err := measure(fmt.Sprintf("%d typing", n), n, 0, func(ctx context.Context) int64 { return typeAway(ctx, p.conns[:n]) })
		if err != nil {
			return points, err
		}
		points = append(points, pt)
	}
	if f.churn > 0 {
		pt, err := measure(fmt.Sprintf("churn %g/s", f.churn), 0, f.churn, func(ctx context.Context) int64 { return churn(ctx, p, f.churn, s.log) })
		if err != nil {
			return points, err
		}
		points = append(points, pt)
	}
	for i := range points {
		over := points[i].ServerCores - idle.ServerCores
		points[i].OverIdleCores = over
		recv := points[i].TypingReceived + points[i].Presence + points[i].Joins + points[i].Leaves
		if i > 0 && recv > 0 {
			points[i].USPerDelivery = over * points[i].Seconds / float64(recv) * 1e6
		}
		if points[i].TypingSent > 0 {
			points[i].USPerTypingIn = over * points[i].Seconds / float64(points[i].TypingSent) * 1e6
		}
	}
	if log := sys.exited(); log != "" {
		return points, fmt.Errorf("%s", log)
	}
	return points, nil
}

// typeAway has each connection type as the web client does until ctx
// ends, starts spread over the first renewal period; it returns the typing
// events sent.
func typeAway(ctx context.Context, typists []*liveConn) int64 {
	var sent atomic.Int64
	var wg sync.WaitGroup
	on, off := []byte(`42["typing",{"typing":true}]`), []byte(`42["typing",{"typing":false}]`)
	for i, lc := range typists {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if sleepCtx(ctx, typingPeriod*time.Duration(i)/time.Duration(len(typists))) != nil {
				return
			}
			t := time.NewTicker(typingPeriod)
			defer t.Stop()
			for k := 0; ; k++ {
				frame := on
				if (k+1)%int(typingCycle/typingPeriod) == 0 {
					frame = off
				}
				if lc.c.Write(frame) == nil {
					sent.Add(1)
				}
				select {
				case <-ctx.Done():
					if lc.c.Write(off) == nil { // the step ends with everyone stopped
						sent.Add(1)
					}
					return
				case <-t.C:
				}
			}
		}()
	}
	wg.Wait()
	return sent.Load()
}

// churn replaces rate connections a second (the oldest first) by new
// users until ctx ends; it returns 0 (no typing sent).
func churn(ctx context.Context, p *livePool, rate float64, log io.Writer) int64 {
	t := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer t.Stop()
	for k := 0; ; k++ {
		select {
		case <-ctx.Done():
			return 0
		case <-t.C:
		}
		p.mu.Lock()
		i := k % len(p.conns)
		old := p.conns[i]
		p.mu.Unlock()
		old.leaving.Store(true)
		_ = old.c.Close()
		<-old.done
		lc, err := p.open(ctx)
		if err != nil {
			if ctx.Err() == nil {
				fmt.Fprintf(log, "churn: %v\n", err)
			}
			return 0
		}
		p.mu.Lock()
		p.conns[i] = lc
		p.gone = append(p.gone, old)
		p.mu.Unlock()
	}
}

// deliveries reads chat_deliveries_total by event.
func deliveries(ctx context.Context, p *server.Process) (map[string]float64, error) {
	names := make([]string, 0, liveEventKind)
	for _, e := range liveEvents {
		names = append(names, `chat_deliveries_total{event="`+e+`"}`)
	}
	v, err := p.Metrics(ctx, names...)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, e := range liveEvents {
		out[e] = v[`chat_deliveries_total{event="`+e+`"}`]
	}
	return out, nil
}

func liveTable(points []LivePoint) string {
	t := report.Table{
		Header: []string{"step", "typing sent/s", "typing received/s", "presence received/s", "presence MB/s", "server cores", "over idle", "µs CPU per event received", "µs CPU per typing sent", "bench cores", "RSS MB"},
		Right:  []bool{false, true, true, true, true, true, true, true, true, true, true},
	}
	for _, p := range points {
		per := func(n int64) string { return report.Num(float64(n) / p.Seconds) }
		us := func(v float64) string {
			if v == 0 {
				return "-"
			}
			return report.Num(v)
		}
		t.Rows = append(t.Rows, []string{
			p.Step, per(p.TypingSent), per(p.TypingReceived), per(p.Presence + p.Joins + p.Leaves), fmt.Sprintf("%.1f", p.PresenceMB/p.Seconds),
			fmt.Sprintf("%.3f", p.ServerCores), fmt.Sprintf("%+.3f", p.OverIdleCores), us(p.USPerDelivery), us(p.USPerTypingIn),
			fmt.Sprintf("%.2f", p.BenchCores), report.Num(p.RSSMB),
		})
	}
	out := t.Markdown()
	out += "\nServer cores: utime + stime of /proc/<pid>/stat over the step. Over idle: less the idle step's. " +
		"µs CPU per event received: the CPU over idle per event the connections received (typing, presence, presence:join, presence:leave); " +
		"per typing sent: the same CPU per typing event the typists sent, its fan-out included. " +
		"Typists send typing true every 2 s and every third time false, as the web client while composing; the churn step replaces that many users a second.\n"
	var dropped int64
	for _, p := range points {
		dropped = max(dropped, p.Dropped)
	}
	if dropped > 0 {
		out += fmt.Sprintf("\nWarning: %d connections ended during the run.\n", dropped)
	}
	return out
}

// intListFlag is a comma separated list of whole numbers.
type intListFlag struct{ v *[]int }

func (f intListFlag) String() string {
	if f.v == nil {
		return ""
	}
	var s []string
	for _, n := range *f.v {
		s = append(s, strconv.Itoa(n))
	}
	return strings.Join(s, ",")
}

func (f intListFlag) Set(v string) error {
	var out []int
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		n, err := strconv.Atoi(p)
		if err != nil {
			return fmt.Errorf("%q is not a whole number", p)
		}
		out = append(out, n)
	}
	*f.v = out
	return nil
}
