package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"
)

// WebSocket framing: frames split anywhere, fragments, control frames,
// and every way a client can break RFC 6455.
func TestWebSocketFraming(t *testing.T) {
	ts := bareEcho(t)
	// open's connection fails the subtest that opened it, not the parent.
	open := func(t *testing.T) *rawWS {
		r := ts.raw("EIO=4&transport=websocket")
		r.t = t
		if m := r.text(); !strings.HasPrefix(m, "0{") {
			t.Fatalf("open %q", m)
		}
		return r
	}
	t.Run("a frame split into single bytes", func(t *testing.T) {
		r := open(t)
		for _, b := range maskedFrame(true, opText, []byte("4split")) {
			r.write([]byte{b})
			time.Sleep(time.Millisecond)
		}
		if m := r.text(); m != "4split" {
			t.Fatalf("got %q", m)
		}
	})
	t.Run("many frames in one write, and a long one split", func(t *testing.T) {
		r := open(t)
		var b []byte
		for i := range 50 {
			b = append(b, maskedFrame(true, opText, []byte("4m"+strconv.Itoa(i)))...)
		}
		long := "4" + strings.Repeat("x", 70_000)
		lf := maskedFrame(true, opText, []byte(long))
		b = append(b, lf[:1000]...)
		r.write(b)
		time.Sleep(10 * time.Millisecond)
		r.write(lf[1000:])
		for i := range 50 {
			if m := r.text(); m != "4m"+strconv.Itoa(i) {
				t.Fatalf("frame %d: %q", i, m)
			}
		}
		if m := r.text(); m != long {
			t.Fatalf("the long frame: %d bytes", len(m))
		}
	})
	t.Run("a fragmented message with a ping inside", func(t *testing.T) {
		r := open(t)
		r.write(maskedFrame(false, opText, []byte("4frag")))
		r.write(maskedFrame(true, opPing, []byte("hi")))
		r.write(maskedFrame(false, opContinuation, []byte("ment")))
		r.write(maskedFrame(true, opContinuation, []byte("ed")))
		op, p := r.frame()
		if op != opPong || string(p) != "hi" {
			t.Fatalf("pong: %x %q", op, p)
		}
		if m := r.text(); m != "4fragmented" {
			t.Fatalf("got %q", m)
		}
	})
	for _, tt := range []struct {
		name  string
		frame []byte
		code  int
	}{
		{"an unmasked frame", []byte{0x81, 0x02, '4', 'x'}, closeProtocol},
		{"reserved bits", append([]byte{0xC1}, maskedFrame(true, opText, []byte("4x"))[1:]...), closeProtocol},
		{"an unknown opcode", maskedFrame(true, 0x3, []byte("4x")), closeProtocol},
		{"a fragmented control frame", maskedFrame(false, opPing, nil), closeProtocol},
		{"a continuation with no message", maskedFrame(true, opContinuation, []byte("x")), closeProtocol},
		{"invalid UTF-8 in a text frame", maskedFrame(true, opText, []byte{'4', 0xff, 0xfe}), closeInvalidData},
		{"an empty text frame", maskedFrame(true, opText, nil), closeProtocol},
		// Its header is enough: the server closes before the payload, and
		// a client still writing the rest would meet a reset.
		{"a frame over MaxPayload", maskedFrame(true, opText, make([]byte, 1_000_001))[:1000], closeTooBig},
		{"a close frame", maskedFrame(true, opClose, []byte{0x03, 0xe8}), closeNormal},
		{"a close frame with an invalid code", maskedFrame(true, opClose, []byte{0x03, 0xed}), closeProtocol},
	} {
		t.Run("closes with "+strconv.Itoa(tt.code)+" for "+tt.name, func(t *testing.T) {
			r := open(t)
			r.write(tt.frame)
			if code := r.closeCode(); code != tt.code {
				t.Fatalf("close code %d, want %d", code, tt.code)
			}
		})
	}
	t.Run("a new message inside a fragmented one", func(t *testing.T) {
		r := open(t)
		r.write(maskedFrame(false, opText, []byte("4a")))
		r.write(maskedFrame(true, opText, []byte("4b")))
		if code := r.closeCode(); code != closeProtocol {
			t.Fatalf("close code %d", code)
		}
	})
	if n := ts.metric("chat_frames_too_large_total"); n != 1 {
		t.Errorf("chat_frames_too_large_total = %v, want 1", n)
	}
}

// What net/http read past the handshake is not lost.
func TestWebSocketBytesAfterTheHandshake(t *testing.T) {
	ts := bareEcho(t)
	nc, err := net.Dial("tcp", strings.TrimPrefix(ts.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	req := "GET /engine.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: MDEyMzQ1Njc4OWFiY2RlZg==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	_, _ = nc.Write(append([]byte(req), maskedFrame(true, opText, []byte("4early"))...))
	r := &rawWS{t: t, nc: nc}
	r.br = newReader(nc)
	res, err := http.ReadResponse(r.br, nil)
	if err != nil || res.StatusCode != 101 {
		t.Fatalf("handshake: %v %v", err, res)
	}
	r.text() // open
	if m := r.text(); m != "4early" {
		t.Fatalf("got %q", m)
	}
}

func TestWebSocketHandshakeRefusals(t *testing.T) {
	ts := startEngine(t, quick(Options{Handler: &echo{}, AllowOrigin: func(o string) bool { return o == "http://ok.example" }}))
	for _, tt := range []struct {
		name   string
		header []string
		query  string
		code   int
	}{
		{"no upgrade header", []string{"Connection", "Upgrade", "Sec-WebSocket-Version", "13"}, "EIO=4&transport=websocket", 400},
		{"wrong version", []string{"Connection", "Upgrade", "Upgrade", "websocket", "Sec-WebSocket-Version", "8", "Sec-WebSocket-Key", "MDEyMzQ1Njc4OWFiY2RlZg=="}, "EIO=4&transport=websocket", 400},
		{"no key", []string{"Connection", "Upgrade", "Upgrade", "websocket", "Sec-WebSocket-Version", "13"}, "EIO=4&transport=websocket", 400},
		{"an origin not allowed", []string{"Origin", "http://evil.example", "Connection", "Upgrade", "Upgrade", "websocket", "Sec-WebSocket-Version", "13", "Sec-WebSocket-Key", "MDEyMzQ1Njc4OWFiY2RlZg=="}, "EIO=4&transport=websocket", 403},
		{"an unknown session", []string{"Connection", "Upgrade", "Upgrade", "websocket", "Sec-WebSocket-Version", "13", "Sec-WebSocket-Key", "MDEyMzQ1Njc4OWFiY2RlZg=="}, "EIO=4&transport=websocket&sid=nope", 400},
		{"an upgrade on the polling transport", []string{"Connection", "Upgrade", "Upgrade", "websocket", "Sec-WebSocket-Version", "13", "Sec-WebSocket-Key", "MDEyMzQ1Njc4OWFiY2RlZg=="}, "EIO=4&transport=polling", 400},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if code, body, _ := ts.do(http.MethodGet, tt.query, "", tt.header...); code != tt.code {
				t.Fatalf("%d %q, want %d", code, body, tt.code)
			}
		})
	}
}

func TestPollingRequests(t *testing.T) {
	h := &echo{}
	ts := startEngine(t, quick(Options{Handler: h, MaxPayload: 1000, BodyTimeout: 300 * time.Millisecond,
		AllowOrigin: func(o string) bool { return o == "http://ok.example" }}))
	t.Run("CORS: an allowed origin is echoed, another refused", func(t *testing.T) {
		code, _, hdr := ts.do(http.MethodGet, "EIO=4&transport=polling", "", "Origin", "http://ok.example")
		if code != 200 || hdr.Get("Access-Control-Allow-Origin") != "http://ok.example" || hdr.Get("X-Content-Type-Options") != "nosniff" {
			t.Fatalf("%d %v", code, hdr)
		}
		if code, _, _ := ts.do(http.MethodGet, "EIO=4&transport=polling", "", "Origin", "http://evil.example"); code != 403 {
			t.Fatalf("evil origin: %d", code)
		}
		code, _, hdr = ts.do(http.MethodOptions, "EIO=4&transport=polling", "", "Origin", "http://ok.example")
		if code != 204 || hdr.Get("Access-Control-Allow-Methods") == "" {
			t.Fatalf("preflight: %d %v", code, hdr)
		}
	})
	t.Run("JSONP is refused", func(t *testing.T) {
		if code, _ := ts.get("EIO=4&transport=polling&j=0"); code != 400 {
			t.Fatalf("JSONP: %d", code)
		}
	})
	t.Run("an unknown session and a bad method", func(t *testing.T) {
		if code, _ := ts.get(sidQuery("nope")); code != 400 {
			t.Fatalf("unknown sid: %d", code)
		}
		sid, _ := ts.handshake()
		if code, _, _ := ts.do(http.MethodPut, sidQuery(sid), ""); code != 400 {
			t.Fatalf("PUT: %d", code)
		}
	})
	t.Run("a body over MaxPayload, with Content-Length or chunked, closes the session", func(t *testing.T) {
		for _, chunked := range []bool{false, true} {
			sid, _ := ts.handshake()
			big := "40\x1e" + strings.Repeat(`42["x"]`+"\x1e", 300)
			req, _ := http.NewRequest(http.MethodPost, ts.url+"?"+sidQuery(sid), strings.NewReader(big))
			if chunked {
				req.ContentLength = -1
				req.Body = io.NopCloser(strings.NewReader(big))
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusRequestEntityTooLarge {
				t.Fatalf("chunked=%v: %d", chunked, res.StatusCode)
			}
			if code, _ := ts.get(sidQuery(sid)); code != 400 {
				t.Fatalf("chunked=%v: the session is still open (%d)", chunked, code)
			}
		}
		if n := ts.metric("chat_frames_too_large_total"); n != 2 {
			t.Fatalf("chat_frames_too_large_total = %v", n)
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.connects != 0 {
			t.Fatalf("a packet of a refused body was handled: %d connects", h.connects)
		}
	})
	t.Run("a body that trickles is cut after BodyTimeout", func(t *testing.T) {
		sid, _ := ts.handshake()
		pr, pw := io.Pipe()
		go func() {
			_, _ = pw.Write([]byte("4"))
			time.Sleep(time.Second)
			pw.Close()
		}()
		req, _ := http.NewRequest(http.MethodPost, ts.url+"?"+sidQuery(sid), pr)
		start := time.Now()
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			res.Body.Close()
		}
		if d := time.Since(start); d > 900*time.Millisecond {
			t.Fatalf("the trickling body was held %v", d)
		}
		eventually(t, time.Second, "the session closed", func() (bool, string) {
			code, body := ts.get(sidQuery(sid))
			return code == 400, fmt.Sprint(code, body)
		})
	})
	t.Run("a cut poll request closes the session", func(t *testing.T) {
		sid, _ := ts.handshake()
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, ts.url+"?"+sidQuery(sid), nil)
		go func() { time.Sleep(50 * time.Millisecond); cancel() }()
		_, _ = http.DefaultClient.Do(req)
		eventually(t, time.Second, "the session closed", func() (bool, string) {
			code, body := ts.get(sidQuery(sid))
			return code == 400, fmt.Sprint(code, body)
		})
	})
	t.Run("packets of the wrong kind close the session", func(t *testing.T) {
		for _, body := range []string{"2", "5", "0"} {
			sid, _ := ts.handshake()
			if code, _ := ts.post(sidQuery(sid), body); code != 200 {
				t.Fatalf("%q: %d", body, code)
			}
			if code, _ := ts.get(sidQuery(sid)); code != 400 {
				t.Fatalf("%q: the session is still open", body)
			}
		}
	})
	eventually(t, 2*time.Second, "every session to end", func() (bool, string) {
		n := ts.e.Sessions()
		return n == 0, strconv.Itoa(n)
	})
}

// MaxSessionsPerAddr is exact under parallel handshakes: the slot is taken
// before the session exists.
func TestSessionLimitsUnderParallelHandshakes(t *testing.T) {
	ts := startEngine(t, quick(Options{Handler: &echo{}, MaxSessionsPerAddr: 20, MaxSessions: 30}))
	var ok, refused atomic.Int64
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%2 == 0 {
				w, res, err := ts.dialWS("EIO=4&transport=websocket")
				switch {
				case err == nil:
					ok.Add(1)
					_ = w
				case res != nil && res.StatusCode == http.StatusTooManyRequests:
					refused.Add(1)
				default:
					t.Errorf("dial: %v", err)
				}
				return
			}
			switch code, body := ts.get("EIO=4&transport=polling"); code {
			case 200:
				ok.Add(1)
			case http.StatusTooManyRequests:
				refused.Add(1)
			default:
				t.Errorf("handshake: %d %s", code, body)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 20 || refused.Load() != 80 {
		t.Fatalf("%d admitted, %d refused; want 20 and 80", ok.Load(), refused.Load())
	}
	if n := ts.metric("chat_connections_refused_total"); n != 80 {
		t.Fatalf("refusals counted: %v", n)
	}
}

func TestSlowClients(t *testing.T) {
	t.Run("polling", func(t *testing.T) {
		h := &echo{}
		ts := startEngine(t, Options{Handler: h, SendQueueLimit: 10})
		sid, _ := ts.handshake()
		ts.post(sidQuery(sid), "40")
		for i := range 120 {
			ts.post(sidQuery(sid), fmt.Sprintf(`42["m",%d]`, i))
		}
		eventually(t, 5*time.Second, "the slow client cut", func() (bool, string) {
			n := ts.metric("chat_slow_client_disconnects_total")
			return n == 1, fmt.Sprint(n, " ", h.reasons())
		})
		time.Sleep(100 * time.Millisecond)
		if n := ts.metric("chat_slow_client_disconnects_total"); n != 1 {
			t.Fatalf("one slow client counted %v times", n)
		}
	})
	t.Run("websocket", func(t *testing.T) {
		h := &echo{}
		ts := startEngine(t, Options{Handler: h, SendQueueLimit: 10})
		r := ts.raw("EIO=4&transport=websocket")
		r.text()
		r.write(maskedFrame(true, opText, []byte("40")))
		r.text()
		r.text()
		// Never read again: the socket buffers fill, then the queue (past ten
		// times the limit at once).
		big := strings.Repeat("y", 60_000)
		for range 200 {
			r.write(maskedFrame(true, opText, []byte(`42["m","`+big+`"]`)))
		}
		defer func() {
			// The server closed the connection: reading what is buffered ends.
			_ = r.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.Copy(io.Discard, r.nc); err != nil {
				t.Fatalf("the slow client's connection was not closed: %v", err)
			}
		}()
		eventually(t, 10*time.Second, "the slow client cut", func() (bool, string) {
			n := ts.metric("chat_slow_client_disconnects_total")
			return n == 1, fmt.Sprint(n, " ", h.reasons())
		})
		time.Sleep(100 * time.Millisecond)
		if n := ts.metric("chat_slow_client_disconnects_total"); n != 1 {
			t.Fatalf("one slow client counted %v times", n)
		}
	})
}

// A handler slower than its client: reading pauses, nothing is lost or
// reordered, and reading resumes.
func TestInboxBackPressure(t *testing.T) {
	var mu sync.Mutex
	var got []string
	release := make(chan struct{})
	ts := startEngine(t, quick(Options{Path: "/engine.io/", InboxLimit: 4, Messages: func(s *Session, data []byte, _ bool) {
		<-release
		mu.Lock()
		got = append(got, string(data))
		mu.Unlock()
	}}))
	w := ts.ws("EIO=4&transport=websocket")
	w.read()
	const n = 200
	for i := range n {
		w.send("4m" + strconv.Itoa(i))
	}
	time.Sleep(50 * time.Millisecond)
	if p := ts.metric("chat_ws_read_pauses_total"); p < 1 {
		t.Fatalf("reading never paused")
	}
	close(release)
	eventually(t, 5*time.Second, "every message handled", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == n, strconv.Itoa(len(got))
	})
	for i, m := range got {
		if m != "m"+strconv.Itoa(i) {
			t.Fatalf("message %d is %q", i, m)
		}
	}
}

// A session keeps no inbox array once it handled a burst: an idle
// connection that once sent thirty packets at once (a client joining its
// rooms) costs what one that never did costs.
func TestInboxNotKeptAfterABurst(t *testing.T) {
	release := make(chan struct{})
	var releaseOnce sync.Once
	let := func() { releaseOnce.Do(func() { close(release) }) }
	var handled atomic.Int64
	var sess atomic.Pointer[Session]
	// A heartbeat longer than the test: this client answers no ping.
	ts := startEngine(t, Options{Path: "/engine.io/", InboxLimit: 64, PingInterval: 20 * time.Second, PingTimeout: 20 * time.Second,
		Messages: func(s *Session, data []byte, _ bool) {
			sess.Store(s)
			<-release
			handled.Add(1)
		}})
	t.Cleanup(let) // before the engine's close, which waits for the handler
	inbox := func() (n, capacity int) {
		s := sess.Load()
		if s == nil {
			return 0, 0
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.inbox), cap(s.inbox)
	}
	w := ts.ws("EIO=4&transport=websocket")
	w.read()
	// The first message holds the worker; the burst queues behind it.
	w.send("4m0")
	eventually(t, 5*time.Second, "the first message handled", func() (bool, string) { return sess.Load() != nil, "not yet" })
	const n = 30
	for i := 1; i < n; i++ {
		w.send("4m" + strconv.Itoa(i))
	}
	eventually(t, 5*time.Second, "the burst queued", func() (bool, string) {
		queued, _ := inbox()
		return queued == n-1, strconv.Itoa(queued)
	})
	let()
	eventually(t, 5*time.Second, "the burst handled and its inbox let go", func() (bool, string) {
		_, capacity := inbox()
		return handled.Load() == n && capacity == 0, fmt.Sprintf("%d handled, inbox capacity %d", handled.Load(), capacity)
	})
}

// An upgrade keeps the order: what was queued for polling goes first.
func TestUpgradeKeepsOrder(t *testing.T) {
	ts := bareEcho(t)
	sid, _ := ts.handshake()
	ts.post(sidQuery(sid), "4a\x1e4b")
	w := ts.ws("EIO=4&transport=websocket&sid=" + sid)
	w.send("2probe")
	if m := w.read(); m != "3probe" {
		t.Fatalf("probe %q", m)
	}
	ts.post(sidQuery(sid), "4c")
	time.Sleep(20 * time.Millisecond)
	w.send("5")
	w.send("4d")
	var got []string
	for len(got) < 4 {
		if m := w.readSkipPings(); m != "6" {
			got = append(got, m)
		}
	}
	if strings.Join(got, " ") != "4a 4b 4c 4d" {
		t.Fatalf("order %v", got)
	}
	if n := ts.metric("chat_upgrades_total"); n != 1 {
		t.Fatalf("upgrades %v", n)
	}
}

// A probe that never finishes is closed; polling goes on.
func TestUpgradeTimeout(t *testing.T) {
	ts := startEngine(t, Options{Path: "/engine.io/", UpgradeTimeout: 100 * time.Millisecond, Messages: func(s *Session, d []byte, b bool) { s.SendMessage(d, b) }})
	sid, _ := ts.handshake()
	w := ts.ws("EIO=4&transport=websocket&sid=" + sid)
	w.send("2probe")
	w.read()
	w.closed()
	ts.post(sidQuery(sid), "4still")
	if code, body := ts.get(sidQuery(sid)); code != 200 || body != "4still" {
		t.Fatalf("polling after a failed upgrade: %d %q", code, body)
	}
}

func TestRecovery(t *testing.T) {
	h := &echo{recover: true}
	ts := startEngine(t, quick(Options{Handler: h, RecoveryWindow: time.Minute}))
	w := ts.ws("EIO=4&transport=websocket")
	w.read()
	w.send("40")
	var first map[string]string
	if m := w.read(); json.Unmarshal([]byte(m[2:]), &first) != nil || first["pid"] == "" {
		t.Fatalf("connect %q", m)
	}
	w.read()
	_ = w.c.Close() // transport close: recoverable
	eventually(t, 2*time.Second, "the disconnect", func() (bool, string) {
		r := h.reasons()
		return strings.Contains(r, "transport close"), r
	})
	w2 := ts.ws("EIO=4&transport=websocket")
	w2.read()
	w2.send(`40{"pid":"` + first["pid"] + `","offset":"x"}`)
	var again map[string]string
	if m := w2.readSkipPings(); json.Unmarshal([]byte(m[2:]), &again) != nil {
		t.Fatalf("connect %q", m)
	}
	if again["sid"] != first["sid"] || again["pid"] != first["pid"] {
		t.Fatalf("not recovered: %v then %v", first, again)
	}
	// A pid is recovered once.
	w3 := ts.ws("EIO=4&transport=websocket")
	w3.read()
	w3.send(`40{"pid":"` + first["pid"] + `"}`)
	var third map[string]string
	if m := w3.readSkipPings(); json.Unmarshal([]byte(m[2:]), &third) != nil || third["sid"] == first["sid"] {
		t.Fatalf("recovered twice: %q", m)
	}
	if n := ts.metric("chat_connections_recovered_total"); n != 1 {
		t.Fatalf("recovered %v", n)
	}
}

func TestHandlerFaults(t *testing.T) {
	h := &echo{}
	ts := startEngine(t, quick(Options{Handler: h}))
	w := ts.connectWS()
	w.send(`42["panic"]`)
	w.send(`42["message","still here"]`)
	if m := w.readSkipPings(); m != `42["message-back","still here"]` {
		t.Fatalf("after a panic: %q", m)
	}
	if n := ts.metric("chat_handler_panics_total"); n != 1 {
		t.Fatalf("panics %v", n)
	}
	w.send(`42["disconnect-me"]`)
	if m := w.readSkipPings(); m != "41" {
		t.Fatalf("server disconnect: %q", m)
	}
	eventually(t, time.Second, "the handler's Disconnect", func() (bool, string) {
		r := h.reasons()
		return strings.Contains(r, "server namespace disconnect"), r
	})
	// An event for the namespace it left: the connection closes, as Node.
	w.send(`42["message","gone"]`)
	w.closed()

	refusing := &echo{refuse: &ConnectError{Message: "unauthorized", Data: map[string]string{"code": "unauthorized"}}}
	ts2 := startEngine(t, quick(Options{Handler: refusing}))
	w2 := ts2.ws("EIO=4&transport=websocket")
	w2.read()
	w2.send("40")
	if m := w2.readSkipPings(); m != `44{"message":"unauthorized","data":{"code":"unauthorized"}}` {
		t.Fatalf("refusal %q", m)
	}
	plain := &echo{refuse: errors.New("plain error")}
	ts3 := startEngine(t, quick(Options{Handler: plain}))
	w3 := ts3.ws("EIO=4&transport=websocket")
	w3.read()
	w3.send("40")
	if m := w3.readSkipPings(); m != `44{"message":"plain error"}` {
		t.Fatalf("refusal %q", m)
	}
}

// Close disconnects everyone, and every Disconnect has run when it returns.
func TestEngineClose(t *testing.T) {
	h := &echo{}
	e, err := New(quick(Options{Handler: h}))
	if err != nil {
		t.Fatal(err)
	}
	ts := &tserver{t: t, e: e}
	srv := newHTTPServer(t, e)
	ts.srv = srv
	ts.url = srv.URL + e.o.Path
	var ws []*wsc
	for range 5 {
		ws = append(ws, ts.connectWS())
	}
	sid, _ := ts.handshake()
	ts.post(sidQuery(sid), "40")
	eventually(t, time.Second, "six connects", func() (bool, string) {
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.connects == 6, strconv.Itoa(h.connects)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if r := h.reasons(); strings.Count(r, "server shutting down") != 6 {
		t.Fatalf("disconnects: %s", r)
	}
	for _, w := range ws {
		if code := w.closed(); code != closeGoingAway {
			t.Fatalf("close code %d", code)
		}
	}
	if code, _ := ts.get("EIO=4&transport=polling"); code != http.StatusServiceUnavailable {
		t.Fatalf("a handshake after Close: %d", code)
	}
}

// An idle session is one small struct: no goroutine, no buffer.
func TestIdleSessionSize(t *testing.T) {
	n := unsafe.Sizeof(Session{}) + unsafe.Sizeof(wsConn{})
	t.Logf("Session %d B + wsConn %d B", unsafe.Sizeof(Session{}), unsafe.Sizeof(wsConn{}))
	if n > 640 {
		t.Fatalf("an idle WebSocket session takes %d bytes of structs", n)
	}
}

func TestEventFrame(t *testing.T) {
	f, err := EventFrame("message", map[string]any{"a": 1}, "x")
	if err != nil || string(f.poll) != `42["message",{"a":1},"x"]` {
		t.Fatalf("%q %v", f.poll, err)
	}
	if _, err := EventFrame("bad", make(chan int)); err == nil {
		t.Fatal("a channel encoded")
	}
	bin := MustEventFrame("b", []byte{1, 2})
	if string(bin.poll) != `451-["b",{"_placeholder":true,"num":0}]` || len(bin.next) != 1 || string(bin.next[0].poll) != "bAQI=" {
		t.Fatalf("binary: %q %d", bin.poll, len(bin.next))
	}
	for _, n := range []int{10, 200, 70_000} {
		ws, hdr := buildWSFrame(opText, '4', make([]byte, n))
		if len(ws) != hdr+n+1 {
			t.Fatalf("frame of %d: %d bytes, header %d", n, len(ws), hdr)
		}
	}
}

// A session closed while its client pauses polling for the upgrade is told
// so on the WebSocket once the client sends "5" (it no longer polls).
func TestCloseDuringUpgrade(t *testing.T) {
	ts := startEngine(t, quick(Options{Path: "/engine.io/", Messages: func(s *Session, d []byte, b bool) {
		if string(d) == "close-me" {
			s.Close()
			return
		}
		s.SendMessage(d, b)
	}}))
	sid, _ := ts.handshake()
	w := ts.ws("EIO=4&transport=websocket&sid=" + sid)
	w.send("2probe")
	if m := w.read(); m != "3probe" {
		t.Fatalf("probe %q", m)
	}
	if code, body := ts.get(sidQuery(sid)); code != 200 || body != "6" {
		t.Fatalf("poll during the upgrade: %d %q", code, body)
	}
	ts.post(sidQuery(sid), "4close-me")
	time.Sleep(50 * time.Millisecond)
	w.send("5")
	if m := w.read(); m != "1" {
		t.Fatalf("after the upgrade of a closed session: %q, want the close packet", m)
	}
	if code := w.closed(); code != closeNormal {
		t.Fatalf("close code %d", code)
	}
}
