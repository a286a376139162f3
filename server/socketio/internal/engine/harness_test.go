package engine

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// tserver is an Engine behind a real HTTP server on loopback.
type tserver struct {
	t   testing.TB
	e   *Engine
	srv *httptest.Server
	url string
	reg *prometheus.Registry
}

// quick is a fast heartbeat for tests.
func quick(o Options) Options {
	if o.PingInterval == 0 {
		o.PingInterval = 300 * time.Millisecond
	}
	if o.PingTimeout == 0 {
		o.PingTimeout = 200 * time.Millisecond
	}
	return o
}

func startEngine(t testing.TB, o Options) *tserver {
	t.Helper()
	reg := prometheus.NewRegistry()
	o.Registerer = reg
	e, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(e)
	ts := &tserver{t: t, e: e, srv: srv, url: srv.URL + e.o.Path, reg: reg}
	t.Cleanup(func() {
		srv.CloseClientConnections()
		// Close waits for every session's handlers to finish what was
		// received (TestSlowClients leaves up to InboxLimit 60 KB
		// messages): a bound for a hang, generous for -race on a loaded
		// machine (5 s was passed once in 15 runs there).
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := e.Close(ctx); err != nil {
			t.Errorf("engine close: %v", err)
		}
		srv.Close()
	})
	return ts
}

// metric reads a counter or gauge of the engine.
func (ts *tserver) metric(name string) float64 {
	ts.t.Helper()
	mfs, err := ts.reg.Gather()
	if err != nil {
		ts.t.Fatal(err)
	}
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			total += value(m)
		}
	}
	return total
}

func value(m *dto.Metric) float64 {
	if c := m.GetCounter(); c != nil {
		return c.GetValue()
	}
	return m.GetGauge().GetValue()
}

func (ts *tserver) do(method, query, body string, header ...string) (int, string, http.Header) {
	ts.t.Helper()
	req, err := http.NewRequest(method, ts.url+"?"+query, strings.NewReader(body))
	if err != nil {
		ts.t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error(), nil
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b), res.Header
}

func (ts *tserver) get(query string) (int, string) {
	code, body, _ := ts.do(http.MethodGet, query, "")
	return code, body
}

func (ts *tserver) post(query, body string) (int, string) {
	code, b, _ := ts.do(http.MethodPost, query, body)
	return code, b
}

// handshake opens a long-polling session and returns its id and the open
// packet.
func (ts *tserver) handshake() (string, map[string]any) {
	ts.t.Helper()
	code, body := ts.get("EIO=4&transport=polling")
	if code != 200 || !strings.HasPrefix(body, "0") {
		ts.t.Fatalf("handshake: %d %q", code, body)
	}
	var open map[string]any
	if err := json.Unmarshal([]byte(body[1:]), &open); err != nil {
		ts.t.Fatalf("open packet %q: %v", body, err)
	}
	return open["sid"].(string), open
}

func sidQuery(sid string) string { return "EIO=4&transport=polling&sid=" + sid }

// eventually waits for cond, reporting what it last saw.
func eventually(t *testing.T, within time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, seen := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s; last seen: %s", within, what, seen)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// wsc is a WebSocket client (gorilla) for whole-message tests.
type wsc struct {
	t testing.TB
	c *websocket.Conn
}

func (ts *tserver) dialWS(query string) (*wsc, *http.Response, error) {
	u := "ws" + strings.TrimPrefix(ts.url, "http") + "?" + query
	c, res, err := websocket.DefaultDialer.Dial(u, nil)
	if err != nil {
		return nil, res, err
	}
	ts.t.Cleanup(func() { _ = c.Close() })
	return &wsc{t: ts.t, c: c}, res, nil
}

func (ts *tserver) ws(query string) *wsc {
	ts.t.Helper()
	w, res, err := ts.dialWS(query)
	if err != nil {
		status := 0
		if res != nil {
			status = res.StatusCode
		}
		ts.t.Fatalf("dial %s: %v (HTTP %d)", query, err, status)
	}
	return w
}

func (w *wsc) send(s string) {
	w.t.Helper()
	if err := w.c.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
		w.t.Fatalf("send %q: %v", s, err)
	}
}

func (w *wsc) sendBinary(b []byte) {
	w.t.Helper()
	if err := w.c.WriteMessage(websocket.BinaryMessage, b); err != nil {
		w.t.Fatalf("send binary: %v", err)
	}
}

// read returns the next message (text, or binary as "bin:" + base64).
func (w *wsc) read() string {
	w.t.Helper()
	_ = w.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	mt, b, err := w.c.ReadMessage()
	if err != nil {
		w.t.Fatalf("read: %v", err)
	}
	if mt == websocket.BinaryMessage {
		return "bin:" + base64.StdEncoding.EncodeToString(b)
	}
	return string(b)
}

// readSkipPings returns the next message that is not a ping, answering
// pings.
func (w *wsc) readSkipPings() string {
	w.t.Helper()
	for {
		m := w.read()
		if m == "2" {
			w.send("3")
			continue
		}
		return m
	}
}

// closed waits until the server closes the connection and returns the
// close code (-1 when it ended without a close frame).
func (w *wsc) closed() int {
	w.t.Helper()
	_ = w.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, _, err := w.c.ReadMessage()
		if err == nil {
			continue
		}
		if ce, ok := err.(*websocket.CloseError); ok {
			return ce.Code
		}
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			w.t.Fatal("the server did not close the connection within 5 s")
		}
		return -1
	}
}

// rawWS is a WebSocket over a plain TCP connection, for frames gorilla
// would not send.
type rawWS struct {
	t  testing.TB
	nc net.Conn
	br *bufio.Reader
}

func (ts *tserver) raw(query string) *rawWS {
	ts.t.Helper()
	nc, err := net.Dial("tcp", strings.TrimPrefix(ts.srv.URL, "http://"))
	if err != nil {
		ts.t.Fatal(err)
	}
	ts.t.Cleanup(func() { _ = nc.Close() })
	key := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))
	fmt.Fprintf(nc, "GET %s?%s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", ts.e.o.Path, query, key)
	br := bufio.NewReader(nc)
	res, err := http.ReadResponse(br, nil)
	if err != nil || res.StatusCode != http.StatusSwitchingProtocols {
		ts.t.Fatalf("raw handshake: %v %v", err, res)
	}
	if res.Header.Get("Sec-WebSocket-Accept") != acceptKey(key) {
		ts.t.Fatalf("Sec-WebSocket-Accept %q", res.Header.Get("Sec-WebSocket-Accept"))
	}
	return &rawWS{t: ts.t, nc: nc, br: br}
}

// maskedFrame builds a client frame.
func maskedFrame(fin bool, op byte, payload []byte) []byte {
	var b []byte
	b0 := op
	if fin {
		b0 |= 0x80
	}
	b = append(b, b0)
	switch n := len(payload); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n < 65536:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	key := []byte{0x11, 0x22, 0x33, 0x44}
	b = append(b, key...)
	for i, c := range payload {
		b = append(b, c^key[i&3])
	}
	return b
}

func (r *rawWS) write(b []byte) {
	r.t.Helper()
	if _, err := r.nc.Write(b); err != nil {
		r.t.Fatal(err)
	}
}

// frame reads one server frame: its opcode and payload.
func (r *rawWS) frame() (byte, []byte) {
	r.t.Helper()
	_ = r.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	var h [2]byte
	if _, err := io.ReadFull(r.br, h[:]); err != nil {
		r.t.Fatalf("read frame: %v", err)
	}
	if h[1]&0x80 != 0 {
		r.t.Fatal("a server frame is masked")
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var x [2]byte
		_, _ = io.ReadFull(r.br, x[:])
		n = uint64(binary.BigEndian.Uint16(x[:]))
	case 127:
		var x [8]byte
		_, _ = io.ReadFull(r.br, x[:])
		n = binary.BigEndian.Uint64(x[:])
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r.br, p); err != nil {
		r.t.Fatalf("read payload: %v", err)
	}
	return h[0] & 0x0f, p
}

// text reads frames until a text frame and returns it.
func (r *rawWS) text() string {
	r.t.Helper()
	for {
		op, p := r.frame()
		if op == opText {
			return string(p)
		}
	}
}

// closeCode reads until a close frame and returns its code.
func (r *rawWS) closeCode() int {
	r.t.Helper()
	for {
		op, p := r.frame()
		if op == opClose {
			if len(p) < 2 {
				return 0
			}
			return int(binary.BigEndian.Uint16(p))
		}
	}
}

// echo is the handler the protocol's test suites assume: namespaces "/"
// and "/custom", the CONNECT payload sent back as "auth", "message"
// echoed as "message-back", "message-with-ack" answered through its
// acknowledgement.
type echo struct {
	mu          sync.Mutex
	disconnects []string
	connects    int
	// block, when set, holds every event until it is closed.
	block chan struct{}
	// refuse refuses every CONNECT with it.
	refuse error
	// recover accepts every resumable CONNECT.
	recover bool
	events  []string
}

func (h *echo) Connect(s *Socket, hello *Hello) error {
	if h.refuse != nil {
		return h.refuse
	}
	if s.Namespace() != "/" && s.Namespace() != "/custom" {
		return ErrInvalidNamespace
	}
	auth := hello.Auth
	if auth == nil {
		auth = map[string]any{}
	}
	if h.recover {
		hello.Recover()
	}
	s.Data = auth
	h.mu.Lock()
	h.connects++
	h.mu.Unlock()
	return nil
}

func (h *echo) Ready(s *Socket) { _ = s.Emit("auth", s.Data) }

func (h *echo) Event(s *Socket, name string, args []any, ack Ack) {
	if h.block != nil {
		<-h.block
	}
	h.mu.Lock()
	h.events = append(h.events, name)
	h.mu.Unlock()
	switch {
	case name == "panic":
		panic("a handler bug")
	case name == "disconnect-me":
		s.Disconnect()
	case ack != nil:
		ack(args...)
	default:
		_ = s.Emit("message-back", args...)
	}
}

func (h *echo) Disconnect(s *Socket, reason string) {
	h.mu.Lock()
	h.disconnects = append(h.disconnects, s.Namespace()+" "+reason)
	h.mu.Unlock()
}

func (h *echo) reasons() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return strings.Join(h.disconnects, ", ")
}

// connectWS opens a WebSocket session and connects namespace "/".
func (ts *tserver) connectWS() *wsc {
	ts.t.Helper()
	w := ts.ws("EIO=4&transport=websocket")
	if m := w.read(); !strings.HasPrefix(m, "0{") {
		ts.t.Fatalf("open packet %q", m)
	}
	w.send("40")
	if m := w.read(); !strings.HasPrefix(m, "40{") {
		ts.t.Fatalf("connect answer %q", m)
	}
	if m := w.read(); m != `42["auth",{}]` {
		ts.t.Fatalf("auth packet %q", m)
	}
	return w
}

func newReader(nc net.Conn) *bufio.Reader { return bufio.NewReader(nc) }

// newHTTPServer serves e without closing it at the end (the test does).
func newHTTPServer(t *testing.T, e *Engine) *httptest.Server {
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return srv
}
