package main

// Regression tests of issue 16 ("six defects a bad-input probe found") for
// the Engine.IO/Socket.IO session layer: polling sessions that leak after
// a fuzz (item 2), chunked polling bodies over MAX_HTTP_BUFFER_SIZE
// (item 4), the per-address cap under parallel handshakes (item 5),
// unknown events that amplify (item 6), invalid UTF-8 in WebSocket text
// frames, JSONP, and goroutines per idle connection. They run the real
// binary; each is bounded in count and time, and seeded where it draws
// random cases (FUZZ_SEED overrides the seed).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// fuzzSeed is the seed of the tests' random cases: FUZZ_SEED, or def.
func fuzzSeed(t *testing.T, def uint64) uint64 {
	t.Helper()
	if v := os.Getenv("FUZZ_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("FUZZ_SEED=%q: want a number", v)
		}
		return n
	}
	return def
}

// pollingFuzzer throws random polling requests at a server: handshakes,
// namespace connects, held, aborted and concurrent GETs, floods, odd query
// strings, junk bodies, closes, aborted upgrades. It never waits long for
// anything: every request has a short deadline.
type pollingFuzzer struct {
	t        *testing.T
	p        *proc
	rng      *rand.Rand
	client   *http.Client
	hostport string

	mu   sync.Mutex
	sids []string // sessions it opened, newest last
	ops  map[string]int
}

func newPollingFuzzer(t *testing.T, p *proc, seed uint64) *pollingFuzzer {
	return &pollingFuzzer{
		t:        t,
		p:        p,
		rng:      rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		client:   &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}},
		hostport: strings.TrimPrefix(p.URL, "http://"),
		ops:      map[string]int{},
	}
}

func (f *pollingFuzzer) base() string { return f.p.URL + "/socket.io/?EIO=4&transport=polling" }

// sid returns one of the sessions opened, or a made-up one now and then.
func (f *pollingFuzzer) sid() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.sids) == 0 || f.rng.IntN(20) == 0 {
		return "AAAAAAAAAAAAAAAAAAAAAAAA"
	}
	return f.sids[f.rng.IntN(len(f.sids))]
}

// do sends one request and reads its answer, within d.
func (f *pollingFuzzer) do(method, url, body string, d time.Duration) (int, string) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, r)
	if err != nil {
		return 0, ""
	}
	if body != "" {
		req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	}
	res, err := f.client.Do(req)
	if err != nil {
		return 0, ""
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	return res.StatusCode, string(b)
}

// raw writes req on a connection of its own, waits up to wait for a byte of
// the answer, and drops the connection (an aborted request).
func (f *pollingFuzzer) raw(req string, wait time.Duration) {
	c, err := net.DialTimeout("tcp", f.hostport, time.Second)
	if err != nil {
		return
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(wait + 50*time.Millisecond))
	if _, err := io.WriteString(c, req); err != nil {
		return
	}
	if wait > 0 {
		var b [1]byte
		_, _ = c.Read(b[:])
	}
}

func (f *pollingFuzzer) handshake() { f.handshakeSid() }

// handshakeSid opens a session, remembers it and returns its id ("" when
// the server refused).
func (f *pollingFuzzer) handshakeSid() string {
	code, body := f.do("GET", f.base(), "", time.Second)
	if code != 200 || !strings.HasPrefix(body, "0{") {
		return ""
	}
	i := strings.Index(body, `"sid":"`)
	if i < 0 {
		return ""
	}
	sid, _, _ := strings.Cut(body[i+len(`"sid":"`):], `"`)
	f.mu.Lock()
	f.sids = append(f.sids, sid)
	if len(f.sids) > 40 {
		f.sids = f.sids[1:] // forgotten: left to the heartbeat
	}
	f.mu.Unlock()
	return sid
}

// packets is a random payload of n Engine.IO packets.
func (f *pollingFuzzer) packets(n int) string {
	kinds := []string{
		`42["event:message",{"message":"fuzz","username":"f"}]`, `42["x"]`, `40`, `41`, `2`, `3`, `6`, `5`,
		`42`, `4`, `42["event:message"]`, `43["x"]`, `4{}`, `9`, ``, `2probe`, `42[` + strings.Repeat(`[`, 200),
	}
	parts := make([]string, n)
	for i := range parts {
		parts[i] = kinds[f.rng.IntN(len(kinds))]
	}
	return strings.Join(parts, "\x1e")
}

func (f *pollingFuzzer) junk(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(f.rng.IntN(256))
	}
	return string(b)
}

var oddQueries = []string{
	"EIO=3&transport=polling", "EIO=5&transport=polling", "EIO=&transport=polling", "transport=polling",
	"EIO=4&transport=foo", "EIO=4&transport=websocket", "EIO=4&transport=polling&sid=", "EIO=4&transport=polling&j=0",
	"EIO=4&transport=polling&j=abc", "EIO=4&transport=polling&b64=1", "EIO=4&transport=polling&t=%ff%fe",
	"EIO=4&transport=polling&sid=%00%00", "EIO=4&transport=polling&sid=" + strings.Repeat("A", 2000),
	"EIO=4&EIO=3&transport=polling", "EIO=4&transport=polling&transport=websocket",
}

// step runs one random case; the names count how often each ran.
func (f *pollingFuzzer) step() {
	rng := f.rng
	ops := []struct {
		name   string
		weight int
		run    func()
	}{
		{"handshake", 10, f.handshake},
		{"connect", 8, func() { f.do("POST", f.base()+"&sid="+f.sid(), "40", 500*time.Millisecond) }},
		{"poll", 8, func() {
			f.do("GET", f.base()+"&sid="+f.sid(), "", time.Duration(20+rng.IntN(300))*time.Millisecond)
		}},
		{"aborted GET", 8, func() {
			f.raw("GET /socket.io/?EIO=4&transport=polling&sid="+f.sid()+" HTTP/1.1\r\nHost: x\r\n\r\n",
				time.Duration(rng.IntN(40))*time.Millisecond)
		}},
		{"concurrent GETs", 6, func() {
			sid, n, d := f.sid(), 2+rng.IntN(3), time.Duration(50+rng.IntN(300))*time.Millisecond
			var wg sync.WaitGroup
			for range n {
				wg.Add(1)
				go func() { defer wg.Done(); f.do("GET", f.base()+"&sid="+sid, "", d) }()
			}
			wg.Wait()
		}},
		// The sequence that leaked: a namespace CONNECT handled while its
		// session closes (an aborted or overlapping GET, a close packet)
		// left a socket counted as connected that never got its
		// disconnect (about 2 in 100 on the library's edge).
		{"connect racing a close", 12, func() {
			sid := f.handshakeSid()
			if sid == "" {
				return
			}
			url := f.base() + "&sid=" + sid
			var wg sync.WaitGroup
			race := func(fn func()) { wg.Add(1); go func() { defer wg.Done(); fn() }() }
			race(func() { f.do("POST", url, "40", 500*time.Millisecond) })
			switch rng.IntN(4) {
			case 0: // an aborted GET
				d := time.Duration(rng.IntN(4)) * time.Millisecond
				race(func() { f.do("GET", url, "", d) })
			case 1: // two GETs at once: the session closes on the overlap
				race(func() { f.do("GET", url, "", 200*time.Millisecond) })
				race(func() { f.do("GET", url, "", 200*time.Millisecond) })
			case 2: // a close packet
				race(func() { f.do("POST", url, "1", 500*time.Millisecond) })
			case 3: // an upgrade probe dropped
				race(func() { f.do("GET", url, "", 200*time.Millisecond) })
				race(func() {
					d := websocket.Dialer{HandshakeTimeout: time.Second}
					if ws, _, err := d.Dial("ws://"+f.hostport+"/socket.io/?EIO=4&transport=websocket&sid="+sid, nil); err == nil {
						ws.Close()
					}
				})
			}
			wg.Wait()
		}},
		{"flood", 6, func() {
			f.do("POST", f.base()+"&sid="+f.sid(), f.packets(1+rng.IntN(1500)), time.Second)
		}},
		{"odd query", 6, func() {
			q := oddQueries[rng.IntN(len(oddQueries))]
			if rng.IntN(2) == 0 {
				q += "&sid=" + f.sid()
			}
			method := []string{"GET", "POST", "PUT", "DELETE", "OPTIONS"}[rng.IntN(5)]
			f.do(method, f.p.URL+"/socket.io/?"+q, f.packets(rng.IntN(3)), 300*time.Millisecond)
		}},
		{"junk POST", 6, func() { f.do("POST", f.base()+"&sid="+f.sid(), f.junk(1+rng.IntN(3000)), 500*time.Millisecond) }},
		{"short body", 4, func() {
			f.raw(fmt.Sprintf("POST /socket.io/?EIO=4&transport=polling&sid=%s HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"+
				"Content-Length: 5000\r\n\r\n%s", f.sid(), f.packets(1+rng.IntN(20))), time.Duration(rng.IntN(50))*time.Millisecond)
		}},
		{"close", 3, func() { f.do("POST", f.base()+"&sid="+f.sid(), "1", 300*time.Millisecond) }},
		{"aborted upgrade", 4, func() {
			d := websocket.Dialer{HandshakeTimeout: time.Second}
			ws, _, err := d.Dial("ws://"+f.hostport+"/socket.io/?EIO=4&transport=websocket&sid="+f.sid(), nil)
			if err != nil {
				return
			}
			defer ws.Close()
			_ = ws.WriteMessage(websocket.TextMessage, []byte("2probe"))
			if rng.IntN(2) == 0 {
				_ = ws.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
				_, _, _ = ws.ReadMessage()
			}
			if rng.IntN(3) == 0 {
				_ = ws.WriteMessage(websocket.TextMessage, []byte("5"))
			}
		}},
	}
	total := 0
	for _, o := range ops {
		total += o.weight
	}
	n := rng.IntN(total)
	for _, o := range ops {
		if n < o.weight {
			o.run()
			f.mu.Lock()
			f.ops[o.name]++
			f.mu.Unlock()
			return
		}
		n -= o.weight
	}
}

// Issue 16, item 2: after a polling fuzz every session is gone once the
// heartbeat has run out: chat_connections returns to zero, and presence
// counts only who is really there. On the library's edge 2 to 9 sockets
// stayed counted: a namespace CONNECT handled while its session closed
// ("connect racing a close") left a socket that never got its disconnect,
// either because the library stored it in its client after the client's
// close had run, or because it disconnected before the edge's connection
// handler listened for that.
func TestPollingFuzzLeavesNoSession(t *testing.T) {
	seed := fuzzSeed(t, 16)
	const cases, workers = 3000, 6
	p := start(t, "", "PING_INTERVAL=300ms", "PING_TIMEOUT=300ms", "MAX_CONNECTIONS_PER_IP=0",
		"RATE_LIMIT_PER_SEC=0", "HISTORY_LIMIT=0", "PRESENCE_INTERVAL=100ms")
	// The server is built with the race detector: the fuzz is a race test
	// of the session layer too.
	defer func() {
		if n := strings.Count(p.logs.String(), "WARNING: DATA RACE"); n > 0 {
			t.Errorf("the server reported %d data races during the fuzz (its log follows)", n)
		}
	}()
	began := time.Now()
	var wg sync.WaitGroup
	var next atomic.Int64
	fuzzers := make([]*pollingFuzzer, workers)
	for w := range workers {
		fuzzers[w] = newPollingFuzzer(t, p, seed+uint64(w))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= cases && time.Since(began) < 40*time.Second {
				fuzzers[w].step()
			}
		}()
	}
	wg.Wait()
	ran := map[string]int{}
	for _, f := range fuzzers {
		f.client.CloseIdleConnections()
		for k, v := range f.ops {
			ran[k] += v
		}
	}
	t.Logf("seed %d: %d cases in %v: %v", seed, min(next.Load(), cases), time.Since(began).Round(time.Millisecond), ran)
	if res, err := http.Get(p.URL + "/healthz"); err != nil || res.StatusCode != 200 {
		t.Fatalf("the server stopped serving during the fuzz: %v", err)
	} else {
		res.Body.Close()
	}
	// Every session the fuzz left open times out within PING_INTERVAL +
	// PING_TIMEOUT (600 ms); allow ten times that.
	waitUntil(t, 6*time.Second, "every fuzzed session to be gone", func() (bool, string) {
		n := p.metric(t, "chat_connections")
		return n == 0, fmt.Sprintf("chat_connections %v", n)
	})
	c := dialSIO(t, p.URL, "websocket")
	waitUntil(t, 3*time.Second, "presence to count only the newcomer", func() (bool, string) {
		ev, _ := c.event("presence").(map[string]any)
		return ev["online"] == 1.0, fmt.Sprintf("presence %v", ev)
	})
}

// pollConnected opens a polling session and joins namespace "/"; it
// returns the session's URL.
func pollConnected(t *testing.T, p *proc) string {
	t.Helper()
	poll := p.URL + "/socket.io/?EIO=4&transport=polling&sid=" + pollingHandshake(t, p)
	res, err := http.Post(poll, "text/plain;charset=UTF-8", strings.NewReader("40"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	res, err = http.Get(poll)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.HasPrefix(string(body), "40{") {
		t.Fatalf("namespace connect answered %q", body)
	}
	return poll
}

// sessionOpen reports whether the polling session at poll still exists: a
// GET is answered 200 with packets other than a close (the ping after
// PING_INTERVAL, at the latest).
func sessionOpen(t *testing.T, poll string) (bool, string) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	res, err := c.Get(poll)
	if err != nil {
		return false, err.Error()
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	saw := fmt.Sprintf("GET: %d %q", res.StatusCode, body)
	if res.StatusCode != 200 {
		return false, saw
	}
	for _, pk := range strings.Split(string(body), "\x1e") {
		if pk == "1" {
			return false, saw
		}
	}
	return true, saw
}

// Issue 16, item 4: a polling POST over MAX_HTTP_BUFFER_SIZE is refused as
// a whole, sent with Content-Length or chunked alike: 413 or the session
// closed, counted in chat_frames_too_large_total, and nothing past the
// limit processed (the chunked one had its first 64 KiB processed and the
// rest dropped, 200 OK, the session kept, nothing counted).
func TestOversizedPollingBodyIsRefusedChunkedOrNot(t *testing.T) {
	const limit = 64 << 10
	p := start(t, "", "RATE_LIMIT_PER_SEC=0", "HISTORY_LIMIT=0", "PING_INTERVAL=2s", "PING_TIMEOUT=5s")
	packet := `42["event:message",{"message":"over","username":"big"}]`
	var body strings.Builder
	for body.Len() < 320<<10 {
		if body.Len() > 0 {
			body.WriteByte(0x1e)
		}
		body.WriteString(packet)
	}
	withinLimit := float64(limit / (len(packet) + 1))

	for i, chunked := range []bool{false, true} {
		name := map[bool]string{false: "Content-Length", true: "chunked"}[chunked]
		poll := pollConnected(t, p)
		var r io.Reader = strings.NewReader(body.String())
		if chunked {
			r = struct{ io.Reader }{r} // no length known: net/http sends it chunked
		}
		req, _ := http.NewRequest("POST", poll, r)
		req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
		code := 0
		if res, err := http.DefaultClient.Do(req); err == nil {
			code = res.StatusCode
			res.Body.Close()
		}
		open, saw := false, ""
		if code != http.StatusRequestEntityTooLarge {
			open, saw = sessionOpen(t, poll)
		}
		if code != http.StatusRequestEntityTooLarge && open {
			t.Errorf("%s: a %d KB POST was answered %d and the session kept (%s)", name, body.Len()>>10, code, saw)
		}
		if n := p.metric(t, "chat_frames_too_large_total"); n != float64(i+1) {
			t.Errorf("%s: chat_frames_too_large_total = %v, want %d", name, n, i+1)
		}
		if n := p.metric(t, "chat_messages_received_total"); n > withinLimit {
			t.Errorf("%s: %v messages processed, more than fit in the first %d bytes (%v)", name, n, limit, withinLimit)
		} else {
			t.Logf("%s: answered %d, %v of its messages processed", name, code, n)
		}
	}
}

// Issue 16, item 5: the per-address cap holds under parallel WebSocket
// handshakes: 1,000 at once from one address, MAX_CONNECTIONS_PER_IP=256,
// admit exactly 256 (259-264 were admitted; polling gave exactly 256).
func TestParallelWebSocketHandshakesKeepThePerAddressCap(t *testing.T) {
	const attempts, perIP = 1000, 256
	p := start(t, "", fmt.Sprintf("MAX_CONNECTIONS_PER_IP=%d", perIP), "HTTP_MAX_CONNS_PER_IP=0", "HISTORY_LIMIT=0")
	url := "ws" + strings.TrimPrefix(p.URL, "http") + "/socket.io/?EIO=4&transport=websocket"
	var (
		wg                sync.WaitGroup
		admitted, refused atomic.Int64
		mu                sync.Mutex
		conns             []*websocket.Conn
		otherErrs         []string
	)
	ready := make(chan struct{})
	for range attempts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-ready
			d := websocket.Dialer{HandshakeTimeout: 20 * time.Second}
			c, res, err := d.Dial(url, nil)
			if err != nil {
				if res != nil && res.StatusCode == http.StatusTooManyRequests {
					refused.Add(1)
					return
				}
				mu.Lock()
				otherErrs = append(otherErrs, err.Error())
				mu.Unlock()
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
			if _, open, err := c.ReadMessage(); err == nil && bytes.HasPrefix(open, []byte("0{")) {
				admitted.Add(1)
			}
		}()
	}
	close(ready)
	wg.Wait()
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	t.Logf("%d handshakes at once: %d admitted, %d refused with 429, %d other errors %.3q",
		attempts, admitted.Load(), refused.Load(), len(otherErrs), otherErrs[:min(len(otherErrs), 3)])
	if admitted.Load() != perIP || refused.Load() != attempts-perIP {
		t.Fatalf("admitted %d and refused %d of %d parallel handshakes with MAX_CONNECTIONS_PER_IP=%d; want %d and %d",
			admitted.Load(), refused.Load(), attempts, perIP, perIP, attempts-perIP)
	}
}

// Issue 16, item 6: unknown events count against the rate limit and get
// at most one `error` a second, as rate_limited does. 100,000 of them over
// WebSocket got as many `error` packets (2.1 s of server CPU); a 64 KB
// polling POST of 8,000 got a 697 KB reply.
func TestUnknownEventsDoNotAmplify(t *testing.T) {
	// Without the race detector: the flood's CPU is reported.
	p := startBinary(t, plainBinary, "", "RATE_LIMIT_PER_SEC=20", "RATE_LIMIT_BURST=40", "HISTORY_LIMIT=0", "SEND_QUEUE_LIMIT=1000000")

	t.Run("websocket", func(t *testing.T) {
		c := dialSIO(t, p.URL, "websocket")
		var errorsSeen atomic.Int64
		stop := make(chan struct{})
		counted := make(chan struct{})
		go func() { // drain: the client's frame buffer must never fill
			defer close(counted)
			for {
				select {
				case f := <-c.frames:
					if strings.HasPrefix(f, `2["error",`) {
						errorsSeen.Add(1)
					}
				case <-stop:
					return
				}
			}
		}()
		cpu0 := processCPU(t, p)
		began := time.Now()
		const n = 100_000
		for i := range n {
			if err := c.send(`2["x"]`); err != nil {
				t.Fatalf("send %d: %v", i, err)
			}
		}
		// The socket's events are handled in order: the acknowledgement
		// of the next message comes after every unknown event was.
		var ack map[string]any
		select {
		case ack = <-c.emitAck(`{"message":"after the flood","username":"u"}`):
		case <-c.closed:
			t.Fatalf("the server closed the connection during the flood (%d error events)", errorsSeen.Load())
		case <-time.After(40 * time.Second):
			t.Fatalf("no acknowledgement within 40 s of %d unknown events (%d error events so far)", n, errorsSeen.Load())
		}
		took := time.Since(began)
		cpu := processCPU(t, p) - cpu0
		time.Sleep(300 * time.Millisecond) // the last error events
		close(stop)
		<-counted
		allowed := int64(took.Seconds()) + 2
		t.Logf("%d unknown events in %v: %d error events, %v of server CPU; the next message's ack %v",
			n, took.Round(time.Millisecond), errorsSeen.Load(), cpu.Round(10*time.Millisecond), ack)
		if errorsSeen.Load() > allowed {
			t.Errorf("%d error events for %d unknown events in %v; want at most one a second (%d)",
				errorsSeen.Load(), n, took.Round(time.Millisecond), allowed)
		}
		if e, _ := ack["error"].(map[string]any); ack["ok"] == true || e["code"] != "rate_limited" {
			t.Errorf("a message right after %d unknown events: ack %v, want rate_limited (unknown events count against the limit)", n, ack)
		}
	})

	t.Run("polling", func(t *testing.T) {
		poll := pollConnected(t, p)
		body := strings.Repeat(`42["x"]`+"\x1e", 8000)
		body = body[:len(body)-1]
		res, err := http.Post(poll, "text/plain;charset=UTF-8", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("a %d-byte POST of unknown events: %s", len(body), res.Status)
		}
		// Read what the server queued for the session, until a GET is held
		// (nothing more to say), at most 4 MB.
		const bound = 2 << 10
		reply := 0
		c := &http.Client{Timeout: time.Second}
		for reply <= 4<<20 {
			res, err := c.Get(poll)
			if err != nil {
				break // held: nothing more
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			reply += len(b)
			if res.StatusCode != 200 {
				break
			}
		}
		t.Logf("a %d-byte POST of 8,000 unknown events: a %d-byte reply", len(body), reply)
		if reply > bound {
			t.Errorf("the reply to a %d-byte POST of 8,000 unknown events is %d bytes; want at most %d", len(body), reply, bound)
		}
	})
}

// processCPU is the user and system CPU time p's process has used.
func processCPU(t *testing.T, p *proc) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command name, which is in parentheses: utime and
	// stime are the 12th and 13th, in clock ticks (100 a second).
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// RFC 6455 §8.1: a text frame that is not UTF-8 fails the connection with
// 1007 (it was taken, with U+FFFD in place of the bad bytes).
func TestInvalidUTF8TextFrameClosesWith1007(t *testing.T) {
	p := start(t, "", "HISTORY_LIMIT=0")
	c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(p.URL, "http")+"/socket.io/?EIO=4&transport=websocket", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if err := c.WriteMessage(websocket.TextMessage, []byte("40")); err != nil {
		t.Fatal(err)
	}
	for {
		_, f, err := c.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if bytes.HasPrefix(f, []byte("40{")) {
			break
		}
	}
	if err := c.WriteMessage(websocket.TextMessage, []byte("42[\"event:message\",{\"message\":\"bad \xff\xfe\",\"username\":\"u\"}]")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var seen []string
	for {
		_, f, err := c.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != websocket.CloseInvalidFramePayloadData {
				t.Fatalf("the connection ended with %v after %q; want a close with 1007 (invalid frame payload data)", err, seen)
			}
			break
		}
		seen = append(seen, string(f))
		if len(seen) > 20 {
			t.Fatalf("still open after an invalid UTF-8 text frame; received %q", seen)
		}
	}
	if res, err := http.Get(p.URL + "/healthz"); err != nil || res.StatusCode != 200 {
		t.Fatalf("the server stopped serving: %v", err)
	} else {
		res.Body.Close()
	}
}

// JSONP polling (`&j=0`, for browsers without XHR) is off: it answered a
// script without nosniff. Every polling response carries nosniff.
func TestJSONPIsOffAndPollingResponsesAreNosniff(t *testing.T) {
	p := start(t, "", "HISTORY_LIMIT=0")
	res, err := http.Get(p.URL + "/socket.io/?EIO=4&transport=polling&j=0")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusBadRequest {
		t.Errorf("a JSONP handshake was answered %d %s %q; want 400", res.StatusCode, res.Header.Get("Content-Type"), body)
	}

	sid := pollingHandshake(t, p)
	poll := p.URL + "/socket.io/?EIO=4&transport=polling&sid=" + sid
	checks := []struct {
		what, method, url, body string
	}{
		{"handshake", "GET", p.URL + "/socket.io/?EIO=4&transport=polling", ""},
		{"POST", "POST", poll, "40"},
		{"GET", "GET", poll, ""},
		{"unknown session", "GET", p.URL + "/socket.io/?EIO=4&transport=polling&sid=nope", ""},
		{"bad transport", "GET", p.URL + "/socket.io/?EIO=4&transport=foo", ""},
		{"preflight", "OPTIONS", poll, ""},
	}
	for _, c := range checks {
		var r io.Reader
		if c.body != "" {
			r = strings.NewReader(c.body)
		}
		req, _ := http.NewRequest(c.method, c.url, r)
		req.Header.Set("Origin", "https://chat.example")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if got := res.Header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("%s (%d): X-Content-Type-Options %q, want nosniff", c.what, res.StatusCode, got)
		}
	}
}

// The session layer holds an idle connection without a goroutine of its
// own: 200 idle WebSocket sessions add at most 20 goroutines to the empty
// server's (4.8 a WebSocket connection were measured on the library's
// session layer). An idle polling session holds a GET, as socket.io-client
// does, and net/http serves a waiting request with two goroutines (its
// connection's and the one that watches for the client leaving): 200 of
// them add at most 2 each and 20 (not meeting "none per idle connection"
// for polling would take answering held GETs outside net/http).
func TestIdleSessionsCostNoGoroutines(t *testing.T) {
	const each = 200
	for _, transport := range []string{"websocket", "polling"} {
		extra := 20.0
		if transport == "polling" {
			extra += 2 * each
		}
		t.Run(transport, func(t *testing.T) {
			p := startBinary(t, plainBinary, "", "MAX_CONNECTIONS_PER_IP=0", "HTTP_MAX_CONNS_PER_IP=0", "HISTORY_LIMIT=0")
			warm := dialSIO(t, p.URL, transport)
			warm.close()
			waitUntil(t, 5*time.Second, "the warm-up client gone", func() (bool, string) {
				n := p.metric(t, "chat_connections")
				return n == 0, fmt.Sprintf("chat_connections %v", n)
			})
			time.Sleep(500 * time.Millisecond)
			g0 := p.metric(t, "go_goroutines")
			var wg sync.WaitGroup
			sem := make(chan struct{}, 16)
			for range each {
				wg.Add(1)
				sem <- struct{}{}
				go func() {
					defer wg.Done()
					defer func() { <-sem }()
					dialSIO(t, p.URL, transport)
				}()
			}
			wg.Wait()
			waitUntil(t, 10*time.Second, "every session connected", func() (bool, string) {
				n := p.metric(t, "chat_connections")
				return n == each, fmt.Sprintf("chat_connections %v", n)
			})
			time.Sleep(time.Second) // idle
			g1 := p.metric(t, "go_goroutines")
			t.Logf("goroutines: %v empty, %v with %d idle %s sessions (%.2f a session)", g0, g1, each, transport, (g1-g0)/each)
			if g1-g0 > extra {
				t.Errorf("%d idle %s sessions added %v goroutines; want at most %v", each, transport, g1-g0, extra)
			}
		})
	}
}
