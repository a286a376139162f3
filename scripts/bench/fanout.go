package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scalable-chat-go/bench/internal/hist"
	"github.com/scalable-chat-go/bench/internal/procfs"
	"github.com/scalable-chat-go/bench/internal/report"
	"github.com/scalable-chat-go/bench/internal/server"
	"github.com/scalable-chat-go/bench/internal/stamp"
	"github.com/scalable-chat-go/server/sioclient"
)

// Bounds of the fanout mode: every run is bounded in count and time.
const (
	maxReceivers = 50000
	maxSenders   = 100
	maxRate      = 10000
	maxRates     = 20
	maxDuration  = 2 * time.Minute
	maxWarmup    = 30 * time.Second
	maxDrain     = time.Minute
	maxText      = 2000
	// probeTimeout bounds the wait until every connection receives
	// broadcasts (our server adds a socket to the live room after its
	// CONNECT answer).
	probeTimeout = 30 * time.Second
)

type fanoutFlags struct {
	common
	stepFlags
	receivers, senders int
	rates              []float64
}

// stepFlags are the flags of a measured step that fanout, cluster and
// rooms share: its schedule and its messages.
type stepFlags struct {
	duration, warmup time.Duration
	drain            time.Duration
	text             int
	readBuffer       int
}

// registerStep registers the step flags; what says what a step is (per
// rate, per shape).
func (f *stepFlags) registerStep(fs *flag.FlagSet, what string) {
	fs.DurationVar(&f.duration, "duration", 10*time.Second, "measured sending time "+what)
	fs.DurationVar(&f.warmup, "warmup", 2*time.Second, "sending at the rate before the measurement starts")
	fs.DurationVar(&f.drain, "drain", 10*time.Second, "longest wait for deliveries after the last send; later ones count as missing")
	fs.IntVar(&f.text, "text", 120, "message text length, characters (the stamp included)")
	fs.IntVar(&f.readBuffer, "read-buffer", 4096, "bench read buffer per connection, bytes")
}

// checkStep checks the step flags.
func (f *stepFlags) checkStep() error {
	switch {
	case f.duration <= 0 || f.duration > maxDuration:
		return usagef("-duration %s: want (0, %s]", f.duration, maxDuration)
	case f.warmup < 0 || f.warmup > maxWarmup:
		return usagef("-warmup %s: want 0..%s", f.warmup, maxWarmup)
	case f.drain <= 0 || f.drain > maxDrain:
		return usagef("-drain %s: want (0, %s]", f.drain, maxDrain)
	case f.text < 1 || f.text > maxText:
		return usagef("-text %d: want 1..%d", f.text, maxText)
	case f.readBuffer < 256 || f.readBuffer > 1<<20:
		return usagef("-read-buffer %d: want 256..1048576", f.readBuffer)
	}
	return nil
}

type ratesFlag struct{ rates *[]float64 }

func (f ratesFlag) String() string {
	if f.rates == nil {
		return ""
	}
	var s []string
	for _, r := range *f.rates {
		s = append(s, strconv.FormatFloat(r, 'f', -1, 64))
	}
	return strings.Join(s, ",")
}

func (f ratesFlag) Set(v string) error {
	var out []float64
	for _, p := range strings.Split(v, ",") {
		r, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || !(r > 0 && r <= maxRate) {
			return fmt.Errorf("rate %q: want a number of messages per second in (0, %d]", p, maxRate)
		}
		out = append(out, r)
	}
	if len(out) > maxRates {
		return fmt.Errorf("%d rates: at most %d", len(out), maxRates)
	}
	*f.rates = out
	return nil
}

// FanoutResult is the JSON of a fanout run.
type FanoutResult struct {
	Meta   Meta          `json:"meta"`
	Points []FanoutPoint `json:"points"`
}

// FanoutPoint is one server at one offered rate.
type FanoutPoint struct {
	Server string `json:"server"`
	Label  string `json:"label"`
	// Backend is what the nodes shared (cluster mode): "redis", one
	// server, or "cluster", a Redis Cluster.
	Backend string `json:"backend,omitempty"`
	// Rate is the offered rate, messages per second (all senders).
	Rate      float64 `json:"rate"`
	Receivers int     `json:"receivers"`
	Senders   int     `json:"senders"`
	// Nodes is how many server processes shared the connections (cluster
	// mode; the figures of CPU and memory are their sums).
	Nodes int    `json:"nodes,omitempty"`
	Error string `json:"error,omitempty"`

	// Sent is how many measured messages went out; SendRate their real
	// rate; SendLagMaxMs the largest delay of a send behind its schedule.
	Sent         int64   `json:"sent"`
	SendRate     float64 `json:"send_rate"`
	SendLagMaxMs float64 `json:"send_lag_max_ms"`
	// Expected = Sent × Receivers; Delivered counts receptions, Missing
	// the expected ones that did not arrive within the drain time,
	// Duplicates the extra ones; OutOfOrder counts receptions older than
	// one already seen from the same sender.
	Expected   int64   `json:"expected"`
	Delivered  int64   `json:"delivered"`
	Missing    int64   `json:"missing"`
	Duplicates int64   `json:"duplicates"`
	OutOfOrder int64   `json:"out_of_order"`
	LossPct    float64 `json:"loss_pct"`
	// Dropped counts receivers whose connection ended during the step;
	// Refused counts `error` events the senders got.
	Dropped int64 `json:"dropped"`
	Refused int64 `json:"refused"`

	// DeliveriesPerSec = Delivered / (last reception - first measured
	// send); Offered = Rate × Receivers.
	DeliveriesPerSec        float64 `json:"deliveries_per_sec"`
	OfferedDeliveriesPerSec float64 `json:"offered_deliveries_per_sec"`
	WindowSec               float64 `json:"window_sec"`

	LatencyMs Latency `json:"latency_ms"`

	// Server CPU over the window (first measured send to the end of the
	// drain), from /proc/<pid>/stat; per delivery it counts the copies
	// the senders receive too, as the server writes them.
	ServerCPUSec     float64 `json:"server_cpu_sec"`
	ServerUserSec    float64 `json:"server_user_sec"`
	ServerSysSec     float64 `json:"server_sys_sec"`
	ServerCores      float64 `json:"server_cores"`
	CPUPerDeliveryUs float64 `json:"cpu_per_delivery_us"`
	// UserPerDeliveryUs and SysPerDeliveryUs split CPUPerDeliveryUs into
	// user and system time.
	UserPerDeliveryUs float64 `json:"user_per_delivery_us"`
	SysPerDeliveryUs  float64 `json:"sys_per_delivery_us"`
	ServerRSSMB       float64 `json:"server_rss_mb"`
	ServerThreads     int     `json:"server_threads"`
	// Redis (cluster mode): the shared Redis server's CPU over the same
	// window, its cores and µs per delivery.
	RedisCPUSec           *float64 `json:"redis_cpu_sec,omitempty"`
	RedisCores            *float64 `json:"redis_cores,omitempty"`
	RedisCPUPerDeliveryUs *float64 `json:"redis_cpu_per_delivery_us,omitempty"`
	// Goroutines and SlowDisconnects come from the Go server's /metrics.
	Goroutines      *float64 `json:"goroutines,omitempty"`
	SlowDisconnects *float64 `json:"slow_disconnects,omitempty"`

	// The load generator's own CPU over the same window: if server and
	// bench together use all cores, the figures are the machine's, not
	// the server's.
	BenchCPUSec float64 `json:"bench_cpu_sec"`
	BenchCores  float64 `json:"bench_cores"`
	// BenchLag is how late a bench goroutine that sleeps 2 ms at a time
	// wakes up (p99, max): the part of a latency that may be the bench's.
	BenchLagP99Ms float64 `json:"bench_lag_p99_ms"`
	BenchLagMaxMs float64 `json:"bench_lag_max_ms"`
	// MachineCores is the whole machine's busy CPU over the window
	// (/proc/stat); OtherCores what neither the server nor the bench
	// process used (other processes, and kernel network work not charged
	// to either): other work on the machine disturbs the figures.
	MachineCores float64 `json:"machine_cores"`
	OtherCores   float64 `json:"other_cores"`
	LoadAverage  float64 `json:"load_average_1m"`
	Saturated    bool    `json:"saturated"`
	// With -quiet: the machine's busy cores just before the step, and
	// whether the wait for quiet gave up.
	BusyBefore float64 `json:"busy_before,omitempty"`
	NotQuiet   bool    `json:"not_quiet,omitempty"`
}

// Latency is end-to-end: from just before the sender's write to the
// receiver's read, on one monotonic clock.
type Latency struct {
	P50  float64 `json:"p50"`
	P95  float64 `json:"p95"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

func runFanout(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := fanoutFlags{rates: []float64{25, 50, 70, 100, 150, 200}}
	fs := flag.NewFlagSet("fanout", flag.ContinueOnError)
	fs.SetOutput(stderr)
	f.register(fs)
	f.registerLoad(fs, 1)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: go run ./scripts/bench fanout [flags]\n\n"+
			"For each offered rate and each server: starts the server, connects the receivers and senders,\n"+
			"sends at the rate, and measures deliveries/s, loss, latency and CPU per delivery.\n\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := f.check(); err != nil {
		return err
	}
	if err := f.checkLoad(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()

	s, cleanup, err := f.start(ctx, "fanout", args, f.receivers+f.senders+fdMargin, stderr)
	if err != nil {
		return err
	}
	defer cleanup()
	s.meta.Params = f.params()
	title := fmt.Sprintf("fanout: %d receivers, %s, %s per rate after %s warm-up, %d-character texts",
		f.receivers, plural(f.senders, "sender"), f.duration, f.warmup, f.text)
	return sweep(ctx, s, &f, []topology{{nodes: 1}}, "fanout", title, stdout, stderr)
}

// registerLoad registers the load flags fanout and cluster share.
func (f *fanoutFlags) registerLoad(fs *flag.FlagSet, senders int) {
	fs.IntVar(&f.receivers, "receivers", 1000, fmt.Sprintf("receiving connections (1..%d)", maxReceivers))
	fs.IntVar(&f.senders, "senders", senders, fmt.Sprintf("sending connections, sharing the rate (1..%d); they receive too", maxSenders))
	fs.Var(ratesFlag{&f.rates}, "rates", "offered rates to sweep, messages per second over all senders, comma separated")
	f.registerStep(fs, "per rate")
}

// checkLoad checks the load flags.
func (f *fanoutFlags) checkLoad() error {
	switch {
	case f.receivers < 1 || f.receivers > maxReceivers:
		return usagef("-receivers %d: want 1..%d", f.receivers, maxReceivers)
	case f.senders < 1 || f.senders > maxSenders:
		return usagef("-senders %d: want 1..%d", f.senders, maxSenders)
	}
	return f.checkStep()
}

func (f *fanoutFlags) params() map[string]any {
	return map[string]any{
		"receivers": f.receivers, "senders": f.senders, "rates": f.rates, "duration": f.duration.String(),
		"warmup": f.warmup.String(), "drain": f.drain.String(), "text": f.text, "quiet": f.quiet,
	}
}

// topology is the system a fanout step measures: how many nodes, and the
// settings of each step's nodes (fanout: one node, none).
type topology struct {
	nodes int
	// backend names what the nodes share ("": nothing; "redis" or
	// "cluster" in cluster mode).
	backend string
	// env returns the extra settings of step's nodes of kind k (nil: none).
	env func(k server.Kind, step int) []string
	// redisPIDs are the shared Redis servers' processes (one, or the
	// cluster's nodes), whose CPU a step reports too (none: not measured).
	redisPIDs []int
}

// backendLabel is how reports name a backend.
func backendLabel(b string) string {
	switch b {
	case "redis":
		return "one Redis"
	case "cluster":
		return "Redis Cluster"
	}
	return b
}

// redisCPU is the CPU time the Redis servers pids used so far, summed.
func redisCPU(pids []int) (time.Duration, error) {
	var sum time.Duration
	for _, pid := range pids {
		c, err := procfs.ReadCPU(pid)
		if err != nil {
			return 0, fmt.Errorf("the CPU of Redis server %d: %w", pid, err)
		}
		sum += c.Total()
	}
	return sum, nil
}

// sweep runs every offered rate against every server, writes the results
// and prints the table.
func sweep(ctx context.Context, s *session, f *fanoutFlags, tops []topology, mode, title string, stdout, stderr io.Writer) error {
	// The receivers allocate little; a lazier GC keeps the bench's own
	// CPU low.
	defer debug.SetGCPercent(debug.SetGCPercent(400))

	res := FanoutResult{Meta: s.meta}
	var t tally
	// Rate by rate, each server in turn on fresh processes, so that both
	// see the same machine at about the same time.
	for _, rate := range f.rates {
		for _, top := range tops {
			for _, k := range f.servers {
				p, err := fanoutStep(ctx, s, f, top, k, rate, t.steps+1)
				if p.Error, err = t.take(ctx, err, fmt.Sprintf("%s, %s at %g msgs/s", mode, p.Label, rate), stderr); err != nil {
					return err
				}
				res.Points = append(res.Points, p)
			}
		}
	}
	md := s.header(title) + fanoutTable(res.Points)
	return s.publish(stdout, res, md, fanoutChart(title, res.Points, f.receivers), t)
}

// tally counts the steps of a run and their failures.
type tally struct{ steps, failed int }

// take counts a step that ended with err (nil: it succeeded). When the
// run's context ended it returns the error that stops the run; a step that
// failed otherwise is said on log, and its error's text is returned for
// the step's result.
func (t *tally) take(ctx context.Context, err error, what string, log io.Writer) (text string, stop error) {
	t.steps++
	switch {
	case err == nil:
		return "", nil
	case ctx.Err() != nil:
		return "", fmt.Errorf("%s: %w", what, err)
	}
	t.failed++
	fmt.Fprintf(log, "%s failed: %v\n", what, err)
	return err.Error(), nil
}

// publish writes the result files, prints the Markdown and their paths,
// and fails when a step of t did.
func (s *session) publish(stdout io.Writer, result any, md string, svg []byte, t tally) error {
	paths, err := s.write(result, md, svg)
	if err != nil {
		return err
	}
	fmt.Fprint(stdout, md)
	fmt.Fprintf(stdout, "\nwritten: %v\n", paths)
	if t.failed > 0 {
		return fmt.Errorf("%d of %d steps failed", t.failed, t.steps)
	}
	return nil
}

// fanoutRun is the state of one step, shared by the connections' readers.
type fanoutRun struct {
	base                          time.Time
	probeRun, warmRun, measureRun int64
	senders                       int
	perSender                     int64
	counts                        []atomic.Int32 // receptions per message: sender*perSender + seq
	hist                          *hist.Sharded
	rs                            []receiverState
	probedSenders                 []atomic.Bool
	senderCopies                  atomic.Int64
	refused                       atomic.Int64
	// rooms routes each message to the receivers of one room (the rooms
	// mode); nil: every receiver gets every message. wrongRoom counts
	// measured messages a receiver got from a room it is not in.
	rooms     *routing
	wrongRoom atomic.Int64
}

// receiverState is one receiver's, padded so that receivers on different
// cores do not share a cache line.
type receiverState struct {
	got        atomic.Int64
	last       atomic.Int64 // clock of the last measured reception
	outOfOrder atomic.Int64
	probed     atomic.Bool
	lastSeq    []int64 // per sender; its reader only
	_          [24]byte
}

var (
	messagePrefix = []byte(`42["message",`)
	errorPrefix   = []byte(`42["error",`)
)

func (r *fanoutRun) now() int64 { return int64(time.Since(r.base)) }

func (r *fanoutRun) receiver(i int) func([]byte) {
	rs := &r.rs[i]
	rs.lastSeq = make([]int64, r.senders)
	for j := range rs.lastSeq {
		rs.lastSeq[j] = -1
	}
	return func(f []byte) {
		if !bytes.HasPrefix(f, messagePrefix) {
			return
		}
		st, ok := stamp.Parse(f)
		if !ok {
			return
		}
		switch st.Run {
		case r.probeRun:
			rs.probed.Store(true)
		case r.measureRun:
			if r.rooms != nil && !r.rooms.delivers(i, st) {
				r.wrongRoom.Add(1)
				return
			}
			now := r.now()
			r.hist.Record(i, uint64(max(now-st.Sent, 0)/1000))
			if st.Sender < int64(r.senders) && st.Seq < r.perSender {
				r.counts[st.Sender*r.perSender+st.Seq].Add(1)
				if st.Seq <= rs.lastSeq[st.Sender] {
					rs.outOfOrder.Add(1)
				} else {
					rs.lastSeq[st.Sender] = st.Seq
				}
			}
			rs.got.Add(1)
			rs.last.Store(now)
		}
	}
}

func (r *fanoutRun) sender(j int) func([]byte) {
	return func(f []byte) {
		if bytes.HasPrefix(f, errorPrefix) {
			r.refused.Add(1)
			return
		}
		if !bytes.HasPrefix(f, messagePrefix) {
			return
		}
		st, ok := stamp.Parse(f)
		if !ok {
			return
		}
		switch st.Run {
		case r.probeRun:
			r.probedSenders[j].Store(true)
		case r.measureRun:
			r.senderCopies.Add(1)
		}
	}
}

func (r *fanoutRun) delivered() (n int64, last int64) {
	for i := range r.rs {
		n += r.rs[i].got.Load()
		last = max(last, r.rs[i].last.Load())
	}
	return n, last
}

func (r *fanoutRun) probed() (receivers, senders int) {
	for i := range r.rs {
		if r.rs[i].probed.Load() {
			receivers++
		}
	}
	for j := range r.probedSenders {
		if r.probedSenders[j].Load() {
			senders++
		}
	}
	return receivers, senders
}

func fanoutStep(ctx context.Context, s *session, f *fanoutFlags, top topology, k server.Kind, rate float64, step int) (pt FanoutPoint, err error) {
	pt = FanoutPoint{Server: string(k), Label: k.Label(), Backend: top.backend, Rate: rate, Receivers: f.receivers, Senders: f.senders,
		Nodes: top.nodes, OfferedDeliveriesPerSec: rate * float64(f.receivers)}
	if top.backend != "" {
		pt.Label += ", " + backendLabel(top.backend)
	}
	var env []string
	if top.env != nil {
		env = top.env(k, step)
	}
	sys, loadAvg, err := startStep(ctx, s, k, max(top.nodes, 1), server.StartOptions{Env: env}, &pt)
	if err != nil {
		return pt, err
	}
	defer func() { err = sys.stopStep(s, err) }()

	l, err := newSchedule(rate, f.duration, f.warmup, f.drain)
	if err != nil {
		return pt, err
	}
	l.frame = func(dst []byte, st stamp.Stamp, _ int64) []byte { return stamp.AppendEvent(dst, st, f.text) }
	r := newFanoutRun(step, f.receivers, f.senders, l.measured)

	d := &sioclient.Dialer{ReadBufferSize: f.readBuffer}
	t := time.Now()
	rc, err := dial(ctx, d, sys.urls(), f.receivers, f.parallel, r.receiver)
	defer rc.close()
	if err != nil {
		return pt, fmt.Errorf("connect receivers (%d open): %w", rc.open(), err)
	}
	sc, err := dial(ctx, d, sys.urls(), f.senders, f.parallel, r.sender)
	defer sc.close()
	if err != nil {
		return pt, fmt.Errorf("connect senders: %w", err)
	}
	fmt.Fprintf(s.log, "%s, %g msgs/s: %d receivers and %d senders connected in %.1fs\n",
		sys.describe(), rate, f.receivers, f.senders, time.Since(t).Seconds())

	// Probe until every connection receives broadcasts.
	probe := func(buf []byte, seq int64) error {
		buf = stamp.AppendEvent(buf[:0], stamp.Stamp{Run: r.probeRun, Seq: seq, Sent: r.now()}, 0)
		return sc.list[0].Write(buf)
	}
	if err := r.probe(ctx, probe, 100*time.Millisecond); err != nil {
		return pt, err
	}
	if err := r.measure(ctx, sys, top.redisPIDs, rc, sc, l, &pt); err != nil {
		return pt, err
	}
	pt.LoadAverage = loadAvg
	fmt.Fprintf(s.log, "%s, %g msgs/s: %s deliveries/s (offered %s), missing %d, p50 %s ms, p99 %s ms, %s µs CPU/delivery (%s user, %s system), server %.2f cores, bench %.2f cores\n",
		k.Label(), rate, report.Num(pt.DeliveriesPerSec), report.Num(pt.OfferedDeliveriesPerSec), pt.Missing,
		report.Num(pt.LatencyMs.P50), report.Num(pt.LatencyMs.P99), report.Num(pt.CPUPerDeliveryUs),
		report.Num(pt.UserPerDeliveryUs), report.Num(pt.SysPerDeliveryUs), pt.ServerCores, pt.BenchCores)
	return pt, nil
}

// startStep waits for -quiet (noting it in pt) and starts n fresh nodes of
// kind k with o; it returns them and the load average before the start.
func startStep(ctx context.Context, s *session, k server.Kind, n int, o server.StartOptions, pt *FanoutPoint) (*system, float64, error) {
	busy, quiet, err := s.waitQuiet(ctx)
	if err != nil {
		return nil, 0, err
	}
	pt.BusyBefore, pt.NotQuiet = busy, !quiet
	loadAvg, _ := procfs.LoadAverage()
	sys, err := startSystem(ctx, s, k, n, o)
	return sys, loadAvg, err
}

// stopStep stops the step's nodes; a step that failed gets the log of a
// node that exited added to its error.
func (sys *system) stopStep(s *session, err error) error {
	if err != nil {
		if log := sys.exited(); log != "" {
			err = fmt.Errorf("%w\n%s", err, log)
		}
	}
	_ = sys.stop(s)
	return err
}

// schedule is what a step sends: message k (warm-up ones first) at start +
// k/rate, from sender k mod S, then a drain.
type schedule struct {
	rate           float64
	warm, measured int64
	drain          time.Duration
	// frame appends the frame of message k, stamped st, to dst.
	frame func(dst []byte, st stamp.Stamp, k int64) []byte
}

// newSchedule checks that rate sends something over duration.
func newSchedule(rate float64, duration, warmup, drain time.Duration) (schedule, error) {
	l := schedule{rate: rate, drain: drain,
		measured: int64(math.Round(rate * duration.Seconds())), warm: int64(math.Round(rate * warmup.Seconds()))}
	if l.measured < 1 {
		return l, fmt.Errorf("%g msgs/s for %s sends no message", rate, duration)
	}
	return l, nil
}

// newFanoutRun is the state of a step of the given step number, with
// receivers and senders, measured messages in all.
func newFanoutRun(step, receivers, senders int, measured int64) *fanoutRun {
	runID := int64(step) * 10
	r := &fanoutRun{
		base: time.Now(), probeRun: runID + 1, warmRun: runID + 2, measureRun: runID + 3,
		senders: senders, perSender: (measured+int64(senders)-1)/int64(senders) + 1,
		hist: hist.NewSharded(16), rs: make([]receiverState, receivers),
		probedSenders: make([]atomic.Bool, senders),
	}
	r.counts = make([]atomic.Int32, int64(senders)*r.perSender)
	return r
}

// probe sends probes (send(buf, seq), every period) until every receiver
// and sender received one, at most probeTimeout, then lets the last ones
// land.
func (r *fanoutRun) probe(ctx context.Context, send func(buf []byte, seq int64) error, period time.Duration) error {
	buf := make([]byte, 0, 256)
	deadline := time.Now().Add(probeTimeout)
	for seq := int64(0); ; seq++ {
		if err := send(buf, seq); err != nil {
			return fmt.Errorf("send a probe: %w", err)
		}
		if err := sleepCtx(ctx, period); err != nil {
			return err
		}
		nr, ns := r.probed()
		if nr == len(r.rs) && ns == r.senders {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %s, %d of %d receivers and %d of %d senders still receive no broadcast",
				probeTimeout, len(r.rs)-nr, len(r.rs), r.senders-ns, r.senders)
		}
	}
	return sleepCtx(ctx, 200*time.Millisecond) // let the last probes land
}

// expected is how many receivers should get measured message seq of
// sender j: all of them, or the members of its room.
func (r *fanoutRun) expected(j, seq int64) int64 {
	if r.rooms != nil {
		return r.rooms.size[r.rooms.room(j, seq)]
	}
	return int64(len(r.rs))
}

// measure sends l from the senders sc to the receivers rc, drains, and
// fills pt's figures: deliveries, loss, latency, and the CPU of the
// system's nodes (and of the Redis servers redisPIDs, summed), the
// bench's and the machine's over the window.
func (r *fanoutRun) measure(ctx context.Context, sys *system, redisPIDs []int, rc, sc *conns, l schedule, pt *FanoutPoint) error {
	senders := len(sc.list)
	// Send on an absolute schedule: message k (warm-up ones first) at
	// start + k/rate, sender k mod S.
	total := l.warm + l.measured
	start := time.Now().Add(20 * time.Millisecond)
	at := func(k int64) time.Time { return start.Add(time.Duration(float64(k) / l.rate * float64(time.Second))) }
	t0 := at(l.warm)
	var (
		wg       sync.WaitGroup
		sent     atomic.Int64
		lastSend atomic.Int64
		maxLag   atomic.Int64
		sendErr  = make(chan error, senders)
	)
	sctx, stopSending := context.WithCancel(ctx)
	defer stopSending()
	for j := 0; j < senders; j++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 0, 512)
			var seq int64
			for k := int64(j); k < total; k += int64(senders) {
				due := at(k)
				if d := time.Until(due); d > 0 {
					if sleepCtx(sctx, d) != nil {
						return
					}
				}
				now := time.Now()
				for lag := int64(now.Sub(due)); ; {
					m := maxLag.Load()
					if lag <= m || maxLag.CompareAndSwap(m, lag) {
						break
					}
				}
				st := stamp.Stamp{Run: r.warmRun, Sender: int64(j), Seq: k, Sent: r.now()}
				if k >= l.warm {
					st.Run, st.Seq = r.measureRun, seq
				}
				buf = l.frame(buf[:0], st, k)
				if err := sc.list[j].Write(buf); err != nil {
					sendErr <- fmt.Errorf("sender %d: %w", j, err)
					stopSending()
					return
				}
				if k >= l.warm {
					seq++
					sent.Add(1)
					lastSend.Store(r.now())
				}
			}
		}()
	}
	if err := sleepUntil(ctx, t0); err != nil {
		return err
	}
	cpu0, err := sys.cpu()
	if err != nil {
		return err
	}
	redis0, err := redisCPU(redisPIDs)
	if err != nil {
		return err
	}
	self0, _ := procfs.ReadCPU(0)
	mach0, _ := procfs.ReadMachine()
	w0 := time.Now()
	lagCtx, stopLag := context.WithCancel(ctx)
	lagDone := make(chan hist.Snapshot, 1)
	go func() { lagDone <- measureLag(lagCtx, 2*time.Millisecond) }()
	defer stopLag()
	wg.Wait()
	select {
	case err := <-sendErr:
		return err
	default:
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}

	// Drain: until every expected delivery arrived, or the drain time is
	// over.
	pt.Sent = sent.Load()
	sentBy := sentPerSender(pt.Sent, l.warm, senders)
	for j := range senders {
		for seq := int64(0); seq < sentBy[j]; seq++ {
			pt.Expected += r.expected(int64(j), seq)
		}
	}
	drainEnd := time.Now().Add(l.drain)
	for {
		n, _ := r.delivered()
		if n >= pt.Expected || time.Now().After(drainEnd) {
			break
		}
		if err := sleepCtx(ctx, 10*time.Millisecond); err != nil {
			return err
		}
	}
	stopLag()
	lag := <-lagDone
	end, err := sys.sample(ctx)
	if err != nil {
		return err
	}
	self1, _ := procfs.ReadCPU(0)
	mach1, _ := procfs.ReadMachine()
	wall := end.At.Sub(w0).Seconds()

	// Figures.
	delivered, last := r.delivered()
	pt.Delivered = delivered
	firstSend := int64(t0.Sub(r.base))
	// The window spans at least the sending time (so a server that keeps
	// up shows the offered rate), and stretches to the last reception
	// when the server falls behind.
	pt.WindowSec = max(float64(max(last, lastSend.Load())-firstSend)/1e9, float64(pt.Sent)/l.rate)
	if pt.WindowSec > 0 {
		pt.DeliveriesPerSec = float64(delivered) / pt.WindowSec
	}
	if sendSpan := float64(lastSend.Load()-firstSend) / 1e9; sendSpan > 0 && pt.Sent > 1 {
		pt.SendRate = float64(pt.Sent-1) / sendSpan
	}
	pt.SendLagMaxMs = float64(maxLag.Load()) / 1e6
	for j := range senders {
		for seq := int64(0); seq < sentBy[j]; seq++ {
			want := r.expected(int64(j), seq)
			c := int64(r.counts[int64(j)*r.perSender+seq].Load())
			pt.Missing += max(want-c, 0)
			pt.Duplicates += max(c-want, 0)
		}
	}
	if pt.Expected > 0 {
		pt.LossPct = 100 * float64(pt.Missing) / float64(pt.Expected)
	}
	for i := range r.rs {
		pt.OutOfOrder += r.rs[i].outOfOrder.Load()
	}
	pt.Dropped = rc.dropped.Load()
	pt.Refused = r.refused.Load()
	h := r.hist.Merge()
	ms := func(us uint64) float64 { return float64(us) / 1000 }
	pt.LatencyMs = Latency{P50: ms(h.Quantile(0.5)), P95: ms(h.Quantile(0.95)), P99: ms(h.Quantile(0.99)), Max: ms(h.Max), Mean: h.Mean() / 1000}
	cpu := end.CPU.Sub(cpu0)
	pt.ServerCPUSec, pt.ServerUserSec, pt.ServerSysSec = cpu.Total().Seconds(), cpu.User.Seconds(), cpu.System.Seconds()
	if wall > 0 {
		pt.ServerCores = pt.ServerCPUSec / wall
	}
	if n := delivered + r.senderCopies.Load(); n > 0 {
		pt.CPUPerDeliveryUs = pt.ServerCPUSec / float64(n) * 1e6
		pt.UserPerDeliveryUs, pt.SysPerDeliveryUs = pt.ServerUserSec/float64(n)*1e6, pt.ServerSysSec/float64(n)*1e6
	}
	if len(redisPIDs) > 0 {
		redis1, err := redisCPU(redisPIDs)
		if err != nil {
			return err
		}
		sec := (redis1 - redis0).Seconds()
		pt.RedisCPUSec = &sec
		if wall > 0 {
			pt.RedisCores = ptr(sec / wall)
		}
		if n := delivered + r.senderCopies.Load(); n > 0 {
			pt.RedisCPUPerDeliveryUs = ptr(sec / float64(n) * 1e6)
		}
	}
	pt.ServerRSSMB = float64(end.Status.RSS) / (1 << 20)
	pt.ServerThreads = end.Status.Threads
	pt.Goroutines, pt.SlowDisconnects = ptr(end.Goroutines), ptr(end.SlowDisconnects)
	pt.BenchCPUSec = self1.Sub(self0).Total().Seconds()
	if wall > 0 {
		pt.BenchCores = pt.BenchCPUSec / wall
	}
	pt.BenchLagP99Ms, pt.BenchLagMaxMs = float64(lag.Quantile(0.99))/1000, float64(lag.Max)/1000
	if wall > 0 {
		pt.MachineCores = mach1.Sub(mach0).Busy.Seconds() / wall
		pt.OtherCores = max(pt.MachineCores-pt.ServerCores-pt.BenchCores, 0)
	}
	pt.Saturated = pt.ServerCores+pt.BenchCores > 0.9*float64(runtime.NumCPU())
	return nil
}

// sentPerSender returns how many measured messages each sender sent when
// the first sent messages went out: message k (warm-up ones first) goes
// from sender k mod senders, and the measured ones start at k = warm.
func sentPerSender(sent, warm int64, senders int) []int64 {
	out := make([]int64, senders)
	for k := warm; k < warm+sent; k++ {
		out[k%int64(senders)]++
	}
	return out
}

// measureLag sleeps period at a time until ctx ends and returns how late
// each wake-up was, in microseconds.
func measureLag(ctx context.Context, period time.Duration) hist.Snapshot {
	var h hist.Histogram
	t := time.NewTimer(period)
	defer t.Stop()
	for {
		due := time.Now().Add(period)
		t.Reset(period)
		select {
		case <-ctx.Done():
			return h.Snapshot()
		case now := <-t.C:
			h.Record(uint64(max(now.Sub(due), 0) / time.Microsecond))
		}
	}
}

func sleepUntil(ctx context.Context, t time.Time) error {
	if d := time.Until(t); d > 0 {
		return sleepCtx(ctx, d)
	}
	return nil
}

func fanoutTable(points []FanoutPoint) string {
	withRedis := false
	for _, p := range points {
		withRedis = withRedis || p.RedisCores != nil
	}
	// redis inserts the Redis column before the last one (bench cores)
	// when the run measured Redis.
	redis := func(row []string, cell string) []string { return beforeLast(row, cell, withRedis) }
	t := report.Table{
		Header: redis([]string{"msgs/s", "server", "deliveries/s", "missing", "p50 ms", "p95 ms", "p99 ms", "max ms",
			"server cores", "µs CPU/delivery", "µs user", "µs system", "bench cores"}, "redis cores"),
		Right: beforeLast([]bool{true, false, true, true, true, true, true, true, true, true, true, true, true}, true, withRedis),
	}
	var notes []string
	// Rows by rate, then by backend (cluster mode may run each rate on
	// one Redis and on a Redis Cluster).
	type group struct {
		rate    float64
		backend string
	}
	byGroup := map[group][]FanoutPoint{}
	var groups []group
	for _, p := range points {
		g := group{p.Rate, p.Backend}
		if _, ok := byGroup[g]; !ok {
			groups = append(groups, g)
		}
		byGroup[g] = append(byGroup[g], p)
	}
	for gi, g := range groups {
		rate, ps := g.rate, byGroup[g]
		for _, p := range ps {
			if p.Error != "" {
				t.Rows = append(t.Rows, redis([]string{rateText(rate), p.Label, "failed", "", "", "", "", "", "", "", "", "", ""}, ""))
				notes = append(notes, fmt.Sprintf("%s at %g msgs/s failed: %s", p.Label, rate, firstLine(p.Error)))
				continue
			}
			row := append([]string{rateText(rate), p.Label}, latencyCells(p)...)
			row = append(row, report.Num(p.ServerCores), report.Num(p.CPUPerDeliveryUs), report.Num(p.UserPerDeliveryUs), report.Num(p.SysPerDeliveryUs), benchCell(p))
			t.Rows = append(t.Rows, redis(row, opt(p.RedisCores)))
			notes = append(notes, stepNotes(p, fmt.Sprintf("%s at %g msgs/s", p.Label, rate))...)
		}
		ours, ref := find(ps, func(p FanoutPoint) string { return p.Server })
		if ours != nil && ref != nil && ours.Error == "" && ref.Error == "" {
			t.Rows = append(t.Rows, redis(ratioRow("**ours/reference**", ours, ref), ratioOpt(ours.RedisCores, ref.RedisCores)))
		}
		// After a rate's Redis Cluster rows, ours on the cluster against
		// ours on one Redis.
		if g.backend == "cluster" {
			for _, h := range groups[:gi] {
				if h.rate != rate || h.backend != "redis" {
					continue
				}
				one, _ := find(byGroup[h], func(p FanoutPoint) string { return p.Server })
				if ours != nil && one != nil && ours.Error == "" && one.Error == "" {
					t.Rows = append(t.Rows, redis(ratioRow("**ours: cluster/one Redis**", ours, one), ratioOpt(ours.RedisCores, one.RedisCores)))
				}
			}
		}
	}
	out := t.Markdown()
	out += "\ndeliveries/s: receptions over the time from the first measured send to the last reception; " +
		"missing: expected receptions that did not arrive within the drain time; latency: send to reception; " +
		"server CPU from /proc/<pid>/stat over the same window (summed over the nodes), per delivery including the senders' own copies, split into user and system time; "
	if withRedis {
		out += "redis cores: the shared Redis server's CPU over the same window (a Redis Cluster's: its six nodes', summed); "
	}
	out += "bench cores: the load generator's own CPU, (!) when server and bench together used over 90% of the machine.\n"
	return out + bullets(notes)
}

// latencyCells are a point's cells deliveries/s, missing, and p50, p95,
// p99 and max latency.
func latencyCells(p FanoutPoint) []string {
	missing := fmt.Sprintf("%d", p.Missing)
	if p.Missing > 0 {
		missing = fmt.Sprintf("%d (%.2f%%)", p.Missing, p.LossPct)
	}
	return []string{report.Num(p.DeliveriesPerSec), missing,
		report.Num(p.LatencyMs.P50), report.Num(p.LatencyMs.P95), report.Num(p.LatencyMs.P99), report.Num(p.LatencyMs.Max)}
}

// latencyRatios are the same cells of the ratio row, the p99's in bold.
func latencyRatios(ours, ref FanoutPoint) []string {
	return []string{report.Ratio(ours.DeliveriesPerSec, ref.DeliveriesPerSec), "",
		report.Ratio(ours.LatencyMs.P50, ref.LatencyMs.P50), report.Ratio(ours.LatencyMs.P95, ref.LatencyMs.P95),
		"**" + report.Ratio(ours.LatencyMs.P99, ref.LatencyMs.P99) + "**", report.Ratio(ours.LatencyMs.Max, ref.LatencyMs.Max)}
}

// benchCell is the bench's cores, (!) when the machine was saturated.
func benchCell(p FanoutPoint) string {
	if p.Saturated {
		return report.Num(p.BenchCores) + " (!)"
	}
	return report.Num(p.BenchCores)
}

// bullets is notes as a Markdown list after a blank line, "" when none.
func bullets(notes []string) string {
	out := ""
	for _, n := range notes {
		out += "\n- " + n
	}
	if len(notes) > 0 {
		out += "\n"
	}
	return out
}

// ratioRow is the row of a's figures over b's, labelled (the Redis cell
// aside).
func ratioRow(label string, a, b *FanoutPoint) []string {
	row := append([]string{"", label}, latencyRatios(*a, *b)...)
	return append(row, report.Ratio(a.ServerCores, b.ServerCores), "**"+report.Ratio(a.CPUPerDeliveryUs, b.CPUPerDeliveryUs)+"**",
		report.Ratio(a.UserPerDeliveryUs, b.UserPerDeliveryUs), report.Ratio(a.SysPerDeliveryUs, b.SysPerDeliveryUs), "")
}

// stepNotes are the notes of a step's point p, named by at: losses of
// connections, duplicates, disorder and refusals, and a disturbed machine
// or bench.
func stepNotes(p FanoutPoint, at string) []string {
	var notes []string
	if p.Dropped > 0 || p.Duplicates > 0 || p.OutOfOrder > 0 || p.Refused > 0 || (p.SlowDisconnects != nil && *p.SlowDisconnects > 0) {
		slow := 0.0
		if p.SlowDisconnects != nil {
			slow = *p.SlowDisconnects
		}
		notes = append(notes, fmt.Sprintf("%s: %d receivers dropped, %.0f cut as slow, %d duplicates, %d out of order, %d refused",
			at, p.Dropped, slow, p.Duplicates, p.OutOfOrder, p.Refused))
	}
	if p.NotQuiet {
		notes = append(notes, fmt.Sprintf("%s started on a busy machine (%.2f cores busy; -quiet gave up)", at, p.BusyBefore))
	}
	if p.OtherCores > 0.25 {
		notes = append(notes, fmt.Sprintf("%s: %.2f cores busy outside the server and the bench (load average %.1f): other work disturbed this step",
			at, p.OtherCores, p.LoadAverage))
	}
	if p.BenchLagP99Ms > 10 {
		notes = append(notes, fmt.Sprintf("%s: the bench's own wake-ups were up to %.0f ms late (p99 %.0f ms); latencies below that are not the server's alone",
			at, p.BenchLagMaxMs, p.BenchLagP99Ms))
	}
	if p.SendLagMaxMs > 50 {
		notes = append(notes, fmt.Sprintf("%s: a send was %.0f ms behind its schedule (the bench could not keep the rate)", at, p.SendLagMaxMs))
	}
	return notes
}

// beforeLast returns row with v inserted before its last element when on.
func beforeLast[T any](row []T, v T, on bool) []T {
	if !on || len(row) == 0 {
		return row
	}
	out := append(row[:len(row)-1:len(row)-1], v)
	return append(out, row[len(row)-1])
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func rateText(r float64) string { return strconv.FormatFloat(r, 'f', -1, 64) }

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

var seriesColor = map[server.Kind]string{server.Go: "#1f77b4", server.Node: "#ff7f0e"}

func fanoutChart(title string, points []FanoutPoint, receivers int) []byte {
	var kinds []server.Kind
	byKind := map[server.Kind][]FanoutPoint{}
	var rates []float64
	for _, p := range points {
		k := server.Kind(p.Server)
		if _, ok := byKind[k]; !ok {
			kinds = append(kinds, k)
		}
		if p.Error == "" {
			byKind[k] = append(byKind[k], p)
		}
		if len(rates) == 0 || rates[len(rates)-1] != p.Rate {
			rates = append(rates, p.Rate)
		}
	}
	series := func(y func(FanoutPoint) float64) []report.Series {
		var out []report.Series
		for _, k := range kinds {
			s := report.Series{Name: k.Label(), Color: seriesColor[k]}
			for _, p := range byKind[k] {
				s.Points = append(s.Points, report.Point{X: p.Rate, Y: y(p)})
			}
			out = append(out, s)
		}
		return out
	}
	offered := report.Series{Name: "offered", Color: "#999999", Dashed: true}
	for _, r := range rates {
		offered.Points = append(offered.Points, report.Point{X: r, Y: r * float64(receivers)})
	}
	return report.SVG(title, []report.Panel{
		{Title: "deliveries per second", XLabel: "offered messages/s", YLabel: "deliveries/s",
			Series: append(series(func(p FanoutPoint) float64 { return p.DeliveriesPerSec }), offered)},
		{Title: "p99 latency (log scale)", XLabel: "offered messages/s", YLabel: "ms", LogY: true,
			Marks:  []report.Mark{{Y: 100, Label: "100 ms"}, {Y: 250, Label: "250 ms"}},
			Series: series(func(p FanoutPoint) float64 { return p.LatencyMs.P99 })},
		{Title: "server CPU per delivery", XLabel: "offered messages/s", YLabel: "µs",
			Series: series(func(p FanoutPoint) float64 { return p.CPUPerDeliveryUs })},
	})
}
