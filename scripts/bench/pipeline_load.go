package main

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scalable-chat-go/bench/internal/hist"
	"github.com/scalable-chat-go/bench/internal/report"
	"github.com/scalable-chat-go/bench/internal/stamp"
	"github.com/scalable-chat-go/server/sioclient"
)

// loadRun is the state of one load step: senders that emit their share
// of the messages with acknowledgement callbacks, at most a window of them
// unacknowledged each.
type loadRun struct {
	base    time.Time
	warm    int64   // warm-up messages per sender (ack ids 0..warm-1)
	shares  []int64 // measured messages per sender (ack ids warm..)
	senders []loadSender
	hist    *hist.Sharded

	warmAcked atomic.Int64 // warm-up acknowledgements, either way
	acked     atomic.Int64 // measured {ok: true}
	nacked    atomic.Int64 // measured {ok: false}
	lastAck   atomic.Int64 // clock of the last measured acknowledgement

	mu      sync.Mutex
	refused map[string]int64
}

type loadSender struct {
	slots  chan struct{}
	sentAt []atomic.Int64 // by ack id: clock of the send
	_      [32]byte
}

func newLoadRun(senders int, warm, messages int64, window int) *loadRun {
	r := &loadRun{base: time.Now(), warm: warm, shares: shares(messages, senders), hist: hist.NewSharded(16),
		senders: make([]loadSender, senders), refused: map[string]int64{}}
	for j := range r.senders {
		r.senders[j].slots = make(chan struct{}, window)
		r.senders[j].sentAt = make([]atomic.Int64, warm+r.shares[j])
	}
	return r
}

// shares splits n messages over senders, the first ones taking one more
// when it does not divide.
func shares(n int64, senders int) []int64 {
	out := make([]int64, senders)
	for j := range out {
		out[j] = n / int64(senders)
		if int64(j) < n%int64(senders) {
			out[j]++
		}
	}
	return out
}

func (r *loadRun) now() int64 { return int64(time.Since(r.base)) }

// handler reads sender j's frames: acknowledgements free a slot of its
// window; broadcasts (every sender receives every message) are ignored.
func (r *loadRun) handler(j int) func([]byte) {
	st := &r.senders[j]
	return func(f []byte) {
		a, isAck := parseAck(f)
		if !isAck || a.id < 0 || a.id >= int64(len(st.sentAt)) {
			return
		}
		select {
		case <-st.slots:
		default:
		}
		if a.id < r.warm {
			r.warmAcked.Add(1)
			if !a.ok {
				r.refuse(a.code)
			}
			return
		}
		now := r.now()
		r.hist.Record(j, uint64(max(now-st.sentAt[a.id].Load(), 0)/1000))
		if a.ok {
			r.acked.Add(1)
		} else {
			r.nacked.Add(1)
			r.refuse(a.code)
		}
		for {
			last := r.lastAck.Load()
			if now <= last || r.lastAck.CompareAndSwap(last, now) {
				break
			}
		}
	}
}

func (r *loadRun) refuse(code string) {
	if code == "" {
		code = "unknown"
	}
	r.mu.Lock()
	r.refused[code]++
	r.mu.Unlock()
}

// send has every sender emit its messages of ack ids [from, to(j)) and
// returns when all are written (not acknowledged).
func (r *loadRun) send(ctx context.Context, cs *conns, text int, measured bool) error {
	var wg sync.WaitGroup
	errs := make(chan error, len(r.senders))
	for j := range r.senders {
		from, to := int64(0), r.warm
		if measured {
			from, to = r.warm, r.warm+r.shares[j]
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := &r.senders[j]
			buf := make([]byte, 0, text+128)
			for id := from; id < to; id++ {
				select {
				case st.slots <- struct{}{}:
				case <-ctx.Done():
					errs <- ctx.Err()
					return
				}
				buf = appendAckedMessage(buf[:0], id, j, text)
				st.sentAt[id].Store(r.now())
				if err := cs.list[j].Write(buf); err != nil {
					errs <- fmt.Errorf("sender %d: %w", j, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// appendAckedMessage appends the frame of `event:message` {message,
// username} with acknowledgement id, its text `pipeline|<sender>|<id>|`
// padded with 'x' to text characters.
func appendAckedMessage(dst []byte, id int64, sender, text int) []byte {
	dst = append(dst, "42"...)
	dst = strconv.AppendInt(dst, id, 10)
	dst = append(dst, `["event:message",{"message":"`...)
	start := len(dst)
	dst = append(dst, "pipeline|"...)
	dst = strconv.AppendInt(dst, int64(sender), 10)
	dst = append(dst, '|')
	dst = strconv.AppendInt(dst, id, 10)
	dst = append(dst, '|')
	for len(dst)-start < text {
		dst = append(dst, 'x')
	}
	return append(dst, `","username":"`+stamp.Username+`"}]`...)
}

// ack is an acknowledgement frame's content.
type ack struct {
	id   int64
	ok   bool
	code string // the error's code when not ok
}

var (
	okTrue    = []byte(`"ok":true`)
	codeField = []byte(`"code":"`)
)

// parseAck reads an acknowledgement frame to namespace "/",
// `43<id>[{"ok":true,...}]` or `43<id>[{"ok":false,"error":{"code":...}}]`;
// it reports false for any other frame.
func parseAck(f []byte) (ack, bool) {
	if sioclient.Classify(f) != sioclient.KindAck {
		return ack{}, false
	}
	i := 2
	var id int64
	for ; i < len(f) && f[i] >= '0' && f[i] <= '9'; i++ {
		if i >= 20 {
			return ack{}, false
		}
		id = id*10 + int64(f[i]-'0')
	}
	if i == 2 || i >= len(f) || f[i] != '[' {
		return ack{}, false
	}
	a := ack{id: id, ok: bytes.Contains(f[i:], okTrue)}
	if !a.ok {
		if k := bytes.Index(f[i:], codeField); k >= 0 {
			rest := f[i+k+len(codeField):]
			if end := bytes.IndexByte(rest, '"'); end >= 0 {
				a.code = string(rest[:end])
			}
		}
	}
	return a, true
}

// load connects the senders to sys's nodes (spread round-robin), warms up
// (every sender's warm-up messages acknowledged and counted by doneMetric,
// so the store, the topic and the consumer group are ready), then sends
// the measured messages as fast as the windows allow. The step ends when
// doneMetric, summed over the nodes, counts every acknowledged message:
// chat_messages_stored_total for the direct writer (an acknowledgement
// then already means stored: the end is the last acknowledgement), or
// chat_kafka_consumed_total for the Kafka pipeline (a row committed, or a
// dead letter). db is the step's PostgreSQL database ("" for SQLite).
func (p *pipeline) load(ctx context.Context, pt *PipelinePoint, sys *system, db, doneMetric string) error {
	f := p.f
	pt.Senders, pt.Window, pt.Messages = f.senders, f.window, int64(f.messages)
	r := newLoadRun(f.senders, pipelineWarmup, int64(f.messages), f.window)
	t := time.Now()
	sc, err := dial(ctx, &sioclient.Dialer{ReadBufferSize: f.readBuffer}, sys.urls(), f.senders, f.parallel, r.handler)
	defer sc.close()
	if err != nil {
		return fmt.Errorf("connect senders: %w", err)
	}
	fmt.Fprintf(p.s.log, "%s, %s: %d senders connected in %.1fs\n", sys.describe(), pt.Path, f.senders, time.Since(t).Seconds())

	// Warm-up.
	warmTotal := r.warm * int64(f.senders)
	if err := r.send(ctx, sc, f.text, false); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	deadline := time.Now().Add(f.stepTimeout)
	if err := p.until(ctx, deadline, "the warm-up's acknowledgements", func() (bool, error) {
		return r.warmAcked.Load() >= warmTotal, nil
	}); err != nil {
		return err
	}
	if n := r.refusedTotal(); n > 0 {
		return fmt.Errorf("warm-up: %d messages refused: %v", n, r.refusedMap())
	}
	var base float64
	if err := p.until(ctx, deadline, "the warm-up's messages to be stored ("+doneMetric+")", func() (bool, error) {
		v, err := sum(ctx, sys, doneMetric)
		base = v
		return v >= float64(warmTotal), err
	}); err != nil {
		return err
	}

	// The measurement.
	w0, err := p.mark(ctx, sys, db)
	if err != nil {
		return err
	}
	t0 := r.now()
	profiled := p.profile(ctx, pt, sys)
	defer profiled()
	sendErr := make(chan error, 1)
	go func() { sendErr <- r.send(ctx, sc, f.text, true) }()
	var (
		done   float64
		series []report.Point
		sent   bool
	)
	total := int64(f.messages)
	timer := time.NewTimer(f.poll)
	defer timer.Stop()
	for {
		select {
		case err := <-sendErr:
			if err != nil {
				return fmt.Errorf("send: %w", err)
			}
			sent = true
			continue
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
		}
		v, err := sum(ctx, sys, doneMetric)
		if err != nil {
			return err
		}
		done = v - base
		timer.Reset(pollInterval(f.poll, done, float64(total)))
		now := r.now()
		series = append(series, report.Point{X: float64(now-t0) / 1e9, Y: done})
		answered := r.acked.Load() + r.nacked.Load()
		if sent && answered >= total && done >= float64(r.acked.Load()) {
			break
		}
		if n := sc.dropped.Load(); n > 0 {
			return fmt.Errorf("%d of %d sender connections were closed by the server (%d of %d messages answered)%s",
				n, f.senders, answered, total, slowNote(ctx, sys))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %s, %d of %d messages answered, %.0f stored (-step-timeout)", f.stepTimeout, answered, total, done)
		}
	}
	tEnd := r.now()
	w1, err := p.mark(ctx, sys, db)
	if err != nil {
		return err
	}
	if doneMetric == storedMetric {
		tEnd = r.lastAck.Load() // committed before it was acknowledged
	}
	end, err := sys.sample(ctx)
	if err != nil {
		return err
	}

	acked := r.acked.Load()
	pt.Stored = acked
	pt.Refused = r.refusedMap()
	pt.WindowSec = float64(tEnd-t0) / 1e9
	if pt.WindowSec > 0 {
		pt.StoredPerSec = float64(acked) / pt.WindowSec
	}
	if ackSpan := float64(r.lastAck.Load()-t0) / 1e9; ackSpan > 0 {
		pt.AckedPerSec = float64(acked) / ackSpan
	}
	h := r.hist.Merge()
	ms := func(us uint64) float64 { return float64(us) / 1000 }
	pt.AckLatency = &Latency{P50: ms(h.Quantile(0.5)), P95: ms(h.Quantile(0.95)), P99: ms(h.Quantile(0.99)), Max: ms(h.Max), Mean: h.Mean() / 1000}
	account(pt, w0, w1, acked)
	pt.ServerRSSMB = float64(end.Status.RSS) / (1 << 20)
	pt.Series = thin(series, maxSeriesPoints)
	pt.Complete = true
	if db != "" {
		if pt.Rows, pt.DistinctIDs, err = p.pg.Rows(ctx, db); err != nil {
			return err
		}
		if want := warmTotal + acked; pt.Rows != want || pt.DistinctIDs != want {
			return fmt.Errorf("PostgreSQL holds %d rows (%d ids), want %d (warm-up and measured messages acknowledged)", pt.Rows, pt.DistinctIDs, want)
		}
	}
	if int64(done) != acked {
		return fmt.Errorf("%s counts %.0f measured messages, %d were acknowledged", doneMetric, done, acked)
	}
	fmt.Fprintf(p.s.log, "%s, %s: %s messages stored/s (acknowledged %s/s, ack p99 %s ms), %s µs CPU/message, server %.2f cores\n",
		pt.Label, pt.Path, report.Num(pt.StoredPerSec), report.Num(pt.AckedPerSec), report.Num(pt.AckLatency.P99),
		report.Num(pt.ServerCPUPerUs), pt.ServerCores)
	return nil
}

// slowNote tells how many clients our nodes cut as slow, when they did.
func slowNote(ctx context.Context, sys *system) string {
	v, err := sum(ctx, sys, "chat_slow_client_disconnects_total")
	if err != nil || v == 0 {
		return ""
	}
	return fmt.Sprintf(": our nodes cut %.0f as slow readers (SEND_QUEUE_LIMIT)", v)
}

func (r *loadRun) refusedTotal() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var n int64
	for _, v := range r.refused {
		n += v
	}
	return n
}

func (r *loadRun) refusedMap() map[string]int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.refused) == 0 {
		return nil
	}
	out := make(map[string]int64, len(r.refused))
	for k, v := range r.refused {
		out[k] = v
	}
	return out
}

// until polls cond every -poll until it holds, fails, or the deadline
// passes (an error naming what).
func (p *pipeline) until(ctx context.Context, deadline time.Time, what string, cond func() (bool, error)) error {
	for {
		ok, err := cond()
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("waited %s for %s", p.f.stepTimeout, what)
		}
		if err := sleepCtx(ctx, p.f.poll); err != nil {
			return err
		}
	}
}

// consume measures a consumer that sys's processes run from the pre-filled
// topic into database db: it reads chat_kafka_consumed_total (summed over
// the nodes) every -poll from the moment they are ready until it counts
// every record, or for at most bound. The rate is over the first reading
// that saw a record stored to the reading that saw the last one.
func (p *pipeline) consume(ctx context.Context, pt *PipelinePoint, sys *system, db string, records int64, bound time.Duration) error {
	ready := time.Now()
	profiled := p.profile(ctx, pt, sys)
	defer profiled()
	// CPU is taken from ready to the end: a consumer that stores in
	// batches shows its first rows only once a batch is written, so a
	// window from the first row seen would miss most of its work.
	w1, err := p.mark(ctx, sys, db)
	if err != nil {
		return err
	}
	var (
		w2           window
		first        = -1.0
		t1, tLast    time.Time
		last, vFirst float64
		series       []report.Point
	)
	timer := time.NewTimer(p.f.poll)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
		}
		v, err := sum(ctx, sys, consumedMetric)
		if err != nil {
			return err
		}
		timer.Reset(pollInterval(p.f.poll, v, float64(records)))
		now := time.Now()
		series = append(series, report.Point{X: now.Sub(ready).Seconds(), Y: v})
		if first < 0 && v > 0 {
			first, t1, vFirst = v, now, v
		}
		if v > last {
			last, tLast = v, now
		}
		if int64(v) >= records {
			pt.Complete = true
			break
		}
		if now.Sub(ready) >= bound {
			break
		}
	}
	if w2, err = p.mark(ctx, sys, db); err != nil {
		return err
	}
	end, err := sys.sample(ctx)
	if err != nil {
		return err
	}
	pt.Stored = int64(last)
	pt.Series = thin(series, maxSeriesPoints)
	pt.ServerRSSMB = float64(end.Status.RSS) / (1 << 20)
	if first < 0 {
		return fmt.Errorf("no record stored within %s", bound)
	}
	pt.TotalSec = tLast.Sub(ready).Seconds()
	pt.WindowSec = tLast.Sub(t1).Seconds()
	n := int64(last - vFirst)
	if pt.WindowSec > 0 && n > 0 {
		pt.StoredPerSec = float64(n) / pt.WindowSec
	} else if pt.TotalSec > 0 { // everything came in one reading
		pt.StoredPerSec = last / pt.TotalSec
	}
	account(pt, w1, w2, int64(last))
	if pt.Rows, pt.DistinctIDs, err = p.pg.Rows(ctx, db); err != nil {
		return err
	}
	// A consumer stopped at its bound may have stored a few more rows
	// since the last reading; one that finished holds exactly its count.
	if pt.DistinctIDs != pt.Rows || pt.Rows < pt.Stored || (pt.Complete && pt.Rows != pt.Stored) {
		return fmt.Errorf("PostgreSQL holds %d rows (%d ids), the consumer counted %d records", pt.Rows, pt.DistinctIDs, pt.Stored)
	}
	state := "all"
	if !pt.Complete {
		state = fmt.Sprintf("%d of %d (stopped after %s)", pt.Stored, records, bound)
	}
	fmt.Fprintf(p.s.log, "%s, %s: %s records stored (%s), %s/s sustained, %s µs CPU/record (+ %s in PostgreSQL)\n",
		pt.Label, pt.Path, state, fmt.Sprintf("%.2fs after ready", pt.TotalSec), report.Num(pt.StoredPerSec),
		report.Num(pt.ServerCPUPerUs), opt(pt.DBCPUPerUs))
	return nil
}

// finePoll is how often the counters are read once the end is near.
const finePoll = 5 * time.Millisecond

// pollInterval is the wait before the next reading of a counter at done of
// total: finePoll until the first is counted and for the last tenth, -poll
// in between, so that the start and the end of the window are seen within
// a few milliseconds (a short run was otherwise measured over a few
// milliseconds of its end) while the scrapes (each costs the measured
// process some CPU) stay few.
func pollInterval(coarse time.Duration, done, total float64) time.Duration {
	if done <= 0 || (total > 0 && done >= 0.9*total) {
		return min(coarse, finePoll)
	}
	return coarse
}

// thin keeps at most n points of a series, evenly spread, the last kept.
func thin(ps []report.Point, n int) []report.Point {
	if len(ps) <= n || n < 2 {
		return ps
	}
	out := make([]report.Point, 0, n)
	step := float64(len(ps)-1) / float64(n-1)
	for i := 0; i < n; i++ {
		out = append(out, ps[int(float64(i)*step+0.5)])
	}
	return out
}

// sortedKeys returns m's keys in order.
func sortedKeys(m map[string]int64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
