package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scalable-chat-go/bench/internal/procfs"
	"github.com/scalable-chat-go/bench/internal/report"
	"github.com/scalable-chat-go/bench/internal/server"
	"github.com/scalable-chat-go/bench/internal/services"
	"github.com/scalable-chat-go/server/sioclient"
)

// The storm mode: what it costs when a crashed node's clients all come
// back at once (issue 27).
//
// Two nodes of ours on Redis streams. -clients clients connect to node A
// and receive -before messages; A is killed (SIGKILL); -missed messages
// are sent through node B while A is down; then every client reconnects
// at once, to B (-to other) or to A started again (-to restarted), in one
// of two ways:
//
//   - resume: with {pid, offset}, as socket.io-client does: it is sent
//     exactly the -missed messages (from the node's copy of the stream);
//   - fresh: without, as a client that does not resume: it is sent the
//     history page (HISTORY_LIMIT, 50; fewer when fewer were sent), from
//     the store and the ring. This is the reference: what a reconnect
//     storm costs without resuming.
//
// A client is caught up once it has every message it is owed (resume: the
// missed ones; fresh: the page). Reported per storm: the time from the
// first dial to the last client caught up, each client's time (p50, p99,
// max), the node's CPU and the Redis server's over the storm, what each
// client was sent, and for resume whether it was exact (every missed
// message once, nothing else).

// Bounds of the storm mode.
const (
	maxStormClients = 20000
	maxStormMissed  = 5000
	stormHistory    = 50
)

type stormFlags struct {
	common
	clients, before, missed int
	to                      []string
	redisURL                string
	wait                    time.Duration
}

// StormResult is the JSON of a storm run.
type StormResult struct {
	Meta   Meta         `json:"meta"`
	Storms []StormPoint `json:"storms"`
}

// StormPoint is one storm's figures.
type StormPoint struct {
	To        string `json:"to"`
	Reconnect string `json:"reconnect"`
	Clients   int    `json:"clients"`
	CaughtUp  int    `json:"caught_up"`
	// Owed is what each client is to be sent: the missed messages
	// (resume) or the history page (fresh).
	Owed int `json:"owed_per_client"`
	// StormMS runs from the first dial to the last client caught up; the
	// quantiles are each client's time from its dial to caught up.
	StormMS float64 `json:"storm_ms"`
	P50MS   float64 `json:"p50_ms"`
	P99MS   float64 `json:"p99_ms"`
	MaxMS   float64 `json:"max_ms"`
	// ServerCPUMS and RedisCPUMS are CPU time over the storm; per client
	// too.
	ServerCPUMS    float64 `json:"server_cpu_ms"`
	ServerCPUPerMS float64 `json:"server_cpu_ms_per_client"`
	RedisCPUMS     float64 `json:"redis_cpu_ms"`
	// Received is the messages the clients got over the storm; Extra the
	// ones a resumed client was not owed (seen before, or twice).
	Received int64 `json:"messages_received"`
	Extra    int64 `json:"extra"`
	// Resumed and ResumeGaps are the node's chat_resumed_total and
	// chat_resume_gaps_total after the storm.
	Resumed    float64 `json:"resumed"`
	ResumeGaps float64 `json:"resume_gaps"`
}

func runStorm(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := stormFlags{to: []string{"other", "restarted"}}
	fs := flag.NewFlagSet("storm", flag.ContinueOnError)
	fs.SetOutput(stderr)
	f.register(fs)
	f.servers = []server.Kind{server.Go}
	fs.IntVar(&f.clients, "clients", 1000, fmt.Sprintf("clients of the crashed node, reconnecting at once (1..%d)", maxStormClients))
	fs.IntVar(&f.before, "before", 20, "messages every client receives before the crash")
	fs.IntVar(&f.missed, "missed", 100, fmt.Sprintf("messages sent while the node is down (1..%d)", maxStormMissed))
	fs.Var(listSetFlag{&f.to}, "to", "where the clients come back: other (the node still up), restarted (the crashed one, started again); comma separated")
	fs.StringVar(&f.redisURL, "redis-url", os.Getenv("REDIS_URL"), `Redis on loopback (default $REDIS_URL, from eval "$(scripts/services up redis)")`)
	fs.DurationVar(&f.wait, "wait", time.Minute, "longest wait for a storm's clients to catch up")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: go run ./scripts/bench storm [flags]\n\n"+
			"A reconnect storm: -clients clients of a node that is killed come back at once, to the other\n"+
			"node or to the restarted one, resuming with their offset (streams mode) or fresh (the history\n"+
			"page: the reference). Ours alone, two nodes on Redis streams.\n\n")
		fs.PrintDefaults()
	}
	if err := f.parseOurs(fs, args, "the storm mode measures ours only (go)"); err != nil {
		return err
	}
	if f.clients < 1 || f.clients > maxStormClients {
		return usagef("-clients %d: want 1..%d", f.clients, maxStormClients)
	}
	if f.missed < 1 || f.missed > maxStormMissed || f.before < 1 || f.before > maxStormMissed {
		return usagef("-missed and -before: want 1..%d", maxStormMissed)
	}
	for _, t := range f.to {
		if t != "other" && t != "restarted" {
			return usagef("-to %q: want other or restarted", t)
		}
	}
	if f.redisURL == "" {
		return fmt.Errorf(`storm needs Redis: set REDIS_URL or -redis-url (start it with: eval "$(scripts/services up redis)")`)
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	redisPID, err := services.RedisPID(ctx, f.redisURL)
	if err != nil {
		return fmt.Errorf("the Redis server: %w", err)
	}
	s, cleanup, err := f.start(ctx, "storm", args, 2*f.clients+fdMargin, stderr)
	if err != nil {
		return err
	}
	defer cleanup()
	s.meta.Params = map[string]any{"clients": f.clients, "before": f.before, "missed": f.missed, "to": f.to, "history_limit": stormHistory}

	var points []StormPoint
	for _, to := range f.to {
		for _, how := range []string{"resume", "fresh"} {
			p, err := stormOnce(ctx, s, &f, to, how, redisPID, len(points))
			if err != nil {
				return err
			}
			points = append(points, p)
		}
	}
	res := StormResult{Meta: s.meta, Storms: points}
	md := s.header(fmt.Sprintf("storm: %d clients of a killed node come back at once, %d messages missed", f.clients, f.missed)) + stormTable(points)
	return s.publish(stdout, res, md, nil, tally{})
}

// listSetFlag is a comma separated list of words.
type listSetFlag struct{ v *[]string }

func (l listSetFlag) String() string {
	if l.v == nil {
		return ""
	}
	return strings.Join(*l.v, ",")
}

func (l listSetFlag) Set(s string) error {
	*l.v = nil
	for _, w := range strings.Split(s, ",") {
		if w = strings.TrimSpace(w); w != "" {
			*l.v = append(*l.v, w)
		}
	}
	return nil
}

// stormClient is one client: what it received, and when it caught up.
type stormClient struct {
	mu     sync.Mutex
	offset string
	pid    string
	got    map[string]int
	owed   map[string]bool // the ids it must get in the storm (resume)
	need   int             // how many messages make it caught up
	n      int
	start  time.Time
	done   time.Time
	extra  int64
	ready  chan struct{}
}

func (c *stormClient) on(frame []byte) {
	if !sioclient.IsEvent(frame, "message") {
		return
	}
	var ev []json.RawMessage
	if json.Unmarshal(frame[2:], &ev) != nil || len(ev) < 2 {
		return
	}
	var w struct{ ID string }
	_ = json.Unmarshal(ev[1], &w)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got[w.ID]++
	if len(ev) > 2 {
		_ = json.Unmarshal(ev[2], &c.offset)
	}
	if c.owed != nil && (!c.owed[w.ID] || c.got[w.ID] > 1) {
		c.extra++
	}
	c.n++
	if c.n == c.need && c.done.IsZero() {
		c.done = time.Now()
		close(c.ready)
	}
}

// stormOnce runs one storm on a fresh pair of nodes.
func stormOnce(ctx context.Context, s *session, f *stormFlags, to, how string, redisPID, n int) (StormPoint, error) {
	pt := StormPoint{To: to, Reconnect: how, Clients: f.clients}
	if _, _, err := s.waitQuiet(ctx); err != nil {
		return pt, err
	}
	o := server.StartOptions{Env: []string{"REDIS_URL=" + f.redisURL, "REDIS_ADAPTER_MODE=streams",
		fmt.Sprintf("REDIS_KEY_PREFIX=bench-storm-%d-%d", time.Now().UnixNano(), n), fmt.Sprintf("HISTORY_LIMIT=%d", stormHistory),
		"CONNECTION_RECOVERY_WINDOW=2m"}}
	s.meta.Servers["go_server_step_env"] = "each storm: two nodes with REDIS_ADAPTER_MODE=streams, HISTORY_LIMIT=50, a fresh REDIS_KEY_PREFIX"
	sys, err := startSystem(ctx, s, server.Go, 2, o)
	if err != nil {
		return pt, err
	}
	defer func() { _ = sys.stop(s) }()
	a, b := sys.nodes[0], sys.nodes[1]
	d := &sioclient.Dialer{ReadBufferSize: 4096}
	sender, _, err := d.Dial(ctx, b.URL, nil)
	if err != nil {
		return pt, err
	}
	senderGot := &stormClient{got: map[string]int{}, need: -1, ready: make(chan struct{})}
	go func() { _ = sender.Serve(senderGot.on) }()
	defer sender.Close()

	fmt.Fprintf(s.log, "storm %d (%s, %s): %d clients on node A\n", n+1, to, how, f.clients)
	clients := make([]*stormClient, f.clients)
	for i := range clients {
		clients[i] = &stormClient{got: map[string]int{}, need: f.before, ready: make(chan struct{})}
	}
	cs, err := dial(ctx, d, []string{a.URL}, f.clients, f.parallel, func(i int) func([]byte) { return clients[i].on })
	if err != nil {
		cs.close()
		return pt, err
	}
	for i, c := range cs.list {
		clients[i].pid = c.PID
	}
	say := func(prefix string, k int) error {
		for j := range k {
			msg := fmt.Sprintf(`42["event:message",{"message":"%s %d","username":"bench"}]`, prefix, j)
			if err := sender.Write([]byte(msg)); err != nil {
				return err
			}
			time.Sleep(2 * time.Millisecond)
		}
		return nil
	}
	if err := say("before", f.before); err != nil {
		return pt, err
	}
	if err := waitAll(ctx, clients, f.wait); err != nil {
		return pt, fmt.Errorf("before the crash: %w", err)
	}
	a.Kill()
	cs.close()
	senderGot.mu.Lock()
	seen := len(senderGot.got)
	senderGot.mu.Unlock()
	if err := say("missed", f.missed); err != nil {
		return pt, err
	}
	for deadline := time.Now().Add(f.wait); ; {
		senderGot.mu.Lock()
		k := len(senderGot.got)
		var missed []string
		if k == seen+f.missed {
			for id := range senderGot.got {
				missed = append(missed, id)
			}
		}
		senderGot.mu.Unlock()
		if missed != nil {
			for _, c := range clients {
				c.owed = map[string]bool{}
				for _, id := range missed {
					c.owed[id] = true
				}
				for id := range c.got {
					delete(c.owed, id)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			return pt, fmt.Errorf("node B delivered %d of %d messages", k-seen, f.missed)
		}
		time.Sleep(20 * time.Millisecond)
	}
	target := b
	if to == "restarted" {
		p, err := s.launcher.StartWith(ctx, server.Go, o)
		if err != nil {
			return pt, err
		}
		sys.nodes = append(sys.nodes, p)
		target = p
	}
	for _, c := range clients {
		c.got, c.n, c.extra, c.done, c.ready = map[string]int{}, 0, 0, time.Time{}, make(chan struct{})
		if how == "resume" {
			c.need = len(c.owed)
		} else {
			c.owed, c.need = nil, min(stormHistory, f.before+f.missed)
		}
	}
	pt.Owed = clients[0].need

	// The storm: every client dials at once.
	c0, err := procfs.ReadCPU(target.PID)
	if err != nil {
		return pt, err
	}
	r0, _ := procfs.ReadCPU(redisPID)
	start := time.Now()
	var wg sync.WaitGroup
	var failed atomic.Int64
	conns := make([]*sioclient.Conn, len(clients))
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var auth []byte
			if how == "resume" {
				auth, _ = json.Marshal(map[string]any{"pid": c.pid, "offset": c.offset})
			}
			c.mu.Lock()
			c.start = time.Now()
			c.mu.Unlock()
			conn, early, err := d.DialAuth(ctx, target.URL, nil, auth)
			if err != nil {
				failed.Add(1)
				return
			}
			conns[i] = conn
			for _, fr := range early {
				c.on(fr)
			}
			go func() { _ = conn.Serve(c.on) }()
		}()
	}
	wg.Wait()
	werr := waitAll(ctx, clients, f.wait)
	end := time.Now()
	c1, _ := procfs.ReadCPU(target.PID)
	r1, _ := procfs.ReadCPU(redisPID)
	time.Sleep(300 * time.Millisecond) // anything more (extra) arrives
	for _, c := range conns {
		if c != nil {
			_ = c.Close()
		}
	}
	var lat []float64
	for _, c := range clients {
		c.mu.Lock()
		if !c.done.IsZero() {
			pt.CaughtUp++
			lat = append(lat, float64(c.done.Sub(c.start))/float64(time.Millisecond))
			if c.done.After(end) {
				end = c.done
			}
		}
		pt.Received += int64(c.n)
		pt.Extra += c.extra
		c.mu.Unlock()
	}
	slices.Sort(lat)
	q := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))]
	}
	pt.StormMS = float64(end.Sub(start)) / float64(time.Millisecond)
	pt.P50MS, pt.P99MS, pt.MaxMS = q(0.5), q(0.99), q(1)
	pt.ServerCPUMS = float64(c1.Sub(c0).Total()) / float64(time.Millisecond)
	pt.ServerCPUPerMS = pt.ServerCPUMS / float64(f.clients)
	pt.RedisCPUMS = float64(r1.Sub(r0).Total()) / float64(time.Millisecond)
	if m, err := target.Metrics(ctx, "chat_resumed_total", `chat_resume_gaps_total{reason="log"}`); err == nil {
		pt.Resumed, pt.ResumeGaps = m["chat_resumed_total"], m[`chat_resume_gaps_total{reason="log"}`]
	}
	fmt.Fprintf(s.log, "  %d of %d caught up in %.0f ms (p99 %.0f ms), server CPU %.0f ms, %d failed dials\n",
		pt.CaughtUp, f.clients, pt.StormMS, pt.P99MS, pt.ServerCPUMS, failed.Load())
	if werr != nil || failed.Load() > 0 {
		return pt, fmt.Errorf("storm %s/%s: %d dials failed; %v", to, how, failed.Load(), werr)
	}
	return pt, nil
}

// waitAll waits until every client caught up, at most within.
func waitAll(ctx context.Context, clients []*stormClient, within time.Duration) error {
	t := time.NewTimer(within)
	defer t.Stop()
	for i, c := range clients {
		c.mu.Lock()
		ready := c.ready
		c.mu.Unlock()
		select {
		case <-ready:
		case <-t.C:
			return fmt.Errorf("client %d of %d did not catch up within %s", i+1, len(clients), within)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func stormTable(points []StormPoint) string {
	t := report.Table{
		Header: []string{"back to", "reconnect", "clients", "owed each", "caught up", "storm ms", "p50 ms", "p99 ms", "max ms",
			"node CPU ms", "CPU ms/client", "Redis CPU ms", "extra", "resumed", "resume gaps"},
		Right: []bool{false, false, true, true, true, true, true, true, true, true, true, true, true, true, true},
	}
	byKey := map[string]StormPoint{}
	for _, p := range points {
		byKey[p.To+"/"+p.Reconnect] = p
		t.Rows = append(t.Rows, []string{p.To, p.Reconnect, fmt.Sprint(p.Clients), fmt.Sprint(p.Owed), fmt.Sprint(p.CaughtUp),
			report.Num(p.StormMS), report.Num(p.P50MS), report.Num(p.P99MS), report.Num(p.MaxMS),
			report.Num(p.ServerCPUMS), report.Num(p.ServerCPUPerMS), report.Num(p.RedisCPUMS), fmt.Sprint(p.Extra),
			report.Num(p.Resumed), report.Num(p.ResumeGaps)})
	}
	var b strings.Builder
	b.WriteString(t.Markdown())
	b.WriteString("\nresume / fresh (the reference: every client gets the history page instead):\n\n")
	r := report.Table{Header: []string{"back to", "storm time", "p99", "node CPU"}, Right: []bool{false, true, true, true}}
	for _, to := range []string{"other", "restarted"} {
		res, ok1 := byKey[to+"/resume"]
		fr, ok2 := byKey[to+"/fresh"]
		if ok1 && ok2 {
			r.Rows = append(r.Rows, []string{to, report.Ratio(res.StormMS, fr.StormMS), report.Ratio(res.P99MS, fr.P99MS),
				report.Ratio(res.ServerCPUMS, fr.ServerCPUMS)})
		}
	}
	b.WriteString(r.Markdown())
	return b.String()
}
