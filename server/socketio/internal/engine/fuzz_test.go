package engine

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Fuzz targets of the session layer: what a client can send, through the
// engine's real paths (no seam): WebSocket bytes through the event loop's
// frame parser (wsConn.consume, wsConn.frame), polling bodies through
// Session.servePost and the Engine.IO payload decoder, and Socket.IO
// packets through Session.onSocketIO. Each input must end with the session
// gone and every socket's Disconnect called (no leak), the process alive
// (a panic outside the handler's recover kills it) and, for polling, an
// answer with a documented status.

// fuzzHandler accepts every CONNECT (but one whose auth says refuse),
// answers acknowledgements with the arguments and emits each event back;
// it counts the sockets that became connected and their disconnects.
type fuzzHandler struct {
	connects, disconnects atomic.Int64
}

func (h *fuzzHandler) Connect(s *Socket, hello *Hello) error {
	if _, bad := hello.Auth["refuse"]; bad {
		return &ConnectError{Message: "refused", Data: hello.Auth}
	}
	return nil
}

// Ready counts a connected socket: from then on its Disconnect is due. (A
// CONNECT accepted by Connect whose session closed before the socket was
// connected gets neither Ready nor Disconnect: the fuzzer found that
// counting at Connect was wrong; the chat edge registers a socket in Ready.)
func (h *fuzzHandler) Ready(s *Socket) { h.connects.Add(1) }
func (h *fuzzHandler) Event(s *Socket, name string, args []any, ack Ack) {
	if ack != nil {
		ack(args...)
	}
	_ = s.Emit(name, args...)
}
func (h *fuzzHandler) Disconnect(s *Socket, reason string) { h.disconnects.Add(1) }

// settled waits until every socket that connected was disconnected and no
// session is left.
func (h *fuzzHandler) settled(t *testing.T, e *Engine) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for h.connects.Load() != h.disconnects.Load() || e.Sessions() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("leak: %d sockets connected, %d disconnected, %d sessions open", h.connects.Load(), h.disconnects.Load(), e.Sessions())
		}
		time.Sleep(time.Millisecond)
	}
}

func fuzzEngine(f *testing.F, o Options) (*Engine, *fuzzHandler) {
	h := &fuzzHandler{}
	o.Handler = h
	o.Logger = slog.New(slog.DiscardHandler)
	o.Registerer = prometheus.NewRegistry()
	if o.MaxPayload == 0 {
		o.MaxPayload = 64 << 10
	}
	// No fuzz input pongs: a heartbeat shorter than a stalled run would
	// close a session between its handshake and its first poll (a 10-minute
	// FuzzSocketIOPacket run on a loaded machine got "1", the close packet,
	// for its CONNECT answer). The heartbeat has its own tests.
	o.PingInterval, o.PingTimeout = 5*time.Minute, 5*time.Minute
	e, err := New(o)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = e.Close(ctx)
	})
	return e, h
}

// frames builds client frames from a fuzz input: each frame is a first
// byte (FIN, RSV and opcode as given), a length byte, and that many bytes
// of payload, masked with a key from the input. Lengths of 126 and 127
// write the extended lengths, so the parser's length paths are reached.
func frames(in []byte) []byte {
	var out []byte
	for len(in) >= 2 {
		b0, n := in[0], int(in[1])
		in = in[2:]
		n = min(n, len(in))
		payload := in[:n]
		in = in[n:]
		out = append(out, b0)
		switch {
		case n < 126:
			out = append(out, 0x80|byte(n))
		case n%2 == 0:
			out = append(out, 0x80|126, byte(n>>8), byte(n))
		default:
			out = append(out, 0x80|127)
			out = binary.BigEndian.AppendUint64(out, uint64(n))
		}
		key := []byte{0x5a, byte(n), 0xc3, 0x0f}
		out = append(out, key...)
		for i, c := range payload {
			out = append(out, c^key[i&3])
		}
	}
	return out
}

// FuzzWebSocket sends bytes over a real WebSocket connection of a session:
// raw (any bytes after the handshake), or built into masked frames by
// frames (so the opcodes, fragmentation, control frames and the Engine.IO
// and Socket.IO packets inside are reached), optionally after a Socket.IO
// CONNECT, in two writes split at split (a frame cut across reads). Then
// the client half-closes; the server must close the connection, and the
// session must be gone with every socket disconnected.
func FuzzWebSocket(f *testing.F) {
	e, h := fuzzEngine(f, Options{MaxPayload: 4096})
	srv := httptest.NewServer(e)
	f.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "http://")
	text := func(s string) []byte { return append([]byte{0x81, byte(len(s))}, s...) }
	f.Add(text(`42["event:message",{"message":"hi"}]`), true, true, uint16(3))
	f.Add(append(text(`421["ack",1]`), 0x89, 2, 'h', 'i'), true, true, uint16(0))
	f.Add(append([]byte{0x01, 3, '4', '2', '['}, 0x80, 11, '"', 'x', '"', ',', '{', '}', ']', ' ', ' ', ' ', ' '), true, true, uint16(7))
	f.Add(append(text("451-"), append([]byte{0x82, 3, 1, 2, 3}, text(`["bin",{"_placeholder":true,"num":0}]`)...)...), true, true, uint16(1))
	f.Add([]byte{0x88, 2, 0x03, 0xe8}, true, true, uint16(0))
	f.Add(text("2probe"), true, false, uint16(0))
	f.Add(text(`40{"refuse":1}`), true, false, uint16(0))
	f.Add(text("\xff\xfe"), true, true, uint16(0))
	f.Add([]byte{0x81, 0x05, 'h', 'e', 'l', 'l', 'o'}, false, true, uint16(4)) // unmasked: a protocol error
	f.Add([]byte{0x82, 0xff, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}, false, false, uint16(5))
	f.Fuzz(func(t *testing.T, data []byte, structured, connect bool, split uint16) {
		if len(data) > 16<<10 {
			return
		}
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		key := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))
		fmt.Fprintf(nc, "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", key)
		_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
		br := newReader(nc)
		res, err := http.ReadResponse(br, nil)
		if err != nil || res.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("handshake: %v %v", err, res)
		}
		var out []byte
		if connect {
			out = frames([]byte{0x81, 2, '4', '0'})
		}
		if structured {
			out = append(out, frames(data)...)
		} else {
			out = append(out, data...)
		}
		cut := 0
		if len(out) > 0 {
			cut = int(split) % (len(out) + 1)
		}
		// A write may fail once the server closed: that is an answer too.
		if _, err := nc.Write(out[:cut]); err == nil {
			time.Sleep(time.Millisecond)
			_, _ = nc.Write(out[cut:])
		}
		_ = nc.(*net.TCPConn).CloseWrite()
		// The server answers, then closes: read to the end.
		if _, err := io.Copy(io.Discard, br); err != nil && !isReset(err) {
			t.Fatalf("the server did not close the connection after the client's EOF: %v", err)
		}
		h.settled(t, e)
	})
}

func isReset(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "broken pipe"))
}

// pollStatuses are the answers a polling POST may get.
var pollStatuses = map[int]bool{http.StatusOK: true, http.StatusBadRequest: true, http.StatusRequestEntityTooLarge: true}

// poll serves one request straight through the engine.
func poll(e *Engine, method, query string, body []byte, header ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, "/socket.io/?"+query, bytes.NewReader(body))
	r.RemoteAddr = "127.0.0.1:40000"
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	e.ServeHTTP(w, r)
	return w
}

// openPolling opens a polling session and returns its id.
func openPolling(t *testing.T, e *Engine) string {
	t.Helper()
	w := poll(e, http.MethodGet, "EIO=4&transport=polling", nil)
	body := w.Body.String()
	i := strings.Index(body, `"sid":"`)
	if w.Code != http.StatusOK || i < 0 {
		t.Fatalf("handshake %d %q", w.Code, body)
	}
	sid := body[i+7:]
	return sid[:strings.IndexByte(sid, '"')]
}

// closePolling ends the session (a close packet; a 400 when it is gone
// already) and waits until it is gone and its sockets disconnected.
func closePolling(t *testing.T, e *Engine, h *fuzzHandler, sid string) {
	t.Helper()
	if w := poll(e, http.MethodPost, "EIO=4&transport=polling&sid="+sid, []byte("1")); !pollStatuses[w.Code] {
		t.Fatalf("close: %d %q", w.Code, w.Body)
	}
	h.settled(t, e)
}

// FuzzPollingPayload posts any body to a polling session: Session.servePost
// and the Engine.IO payload decoder (packets joined by \x1e, "b" and base64
// for binary), as text or as an octet stream. The answer is 200 "ok", or a
// 400 or 413 that closed the session.
func FuzzPollingPayload(f *testing.F) {
	e, h := fuzzEngine(f, Options{MaxPayload: 2048})
	for _, s := range []string{
		"40\x1e42[\"event:message\",{\"message\":\"hi\"}]",
		"40\x1e451-[\"x\",{\"_placeholder\":true,\"num\":0}]\x1ebAQID",
		"3\x1e6\x1e2",
		"bAAAA\x1e4",
		"40{\"refuse\":true}\x1e42[\"a\"]",
		"5",
		"4\xff\xfe",
		"",
		"\x1e\x1e",
		strings.Repeat("x", 2049),
	} {
		f.Add([]byte(s), false)
	}
	f.Add([]byte{0x00, 0x01, 0xff, '4', '0'}, true)
	f.Fuzz(func(t *testing.T, body []byte, octets bool) {
		sid := openPolling(t, e)
		var hdr []string
		if octets {
			hdr = []string{"Content-Type", "application/octet-stream"}
		}
		w := poll(e, http.MethodPost, "EIO=4&transport=polling&sid="+sid, body, hdr...)
		if !pollStatuses[w.Code] {
			t.Fatalf("POST %q: status %d %q", body, w.Code, w.Body)
		}
		if w.Code == http.StatusOK && w.Body.String() != "ok" {
			t.Fatalf("POST %q: 200 with %q", body, w.Body)
		}
		closePolling(t, e, h, sid)
	})
}

// FuzzSocketIOPacket hands Session.onSocketIO any Socket.IO packet (a text
// message, or a binary one: an attachment) of a session whose main
// namespace is connected, through the polling path; what the handler sends
// back is read, so the packet was handled before the session closes.
func FuzzSocketIOPacket(f *testing.F) {
	e, h := fuzzEngine(f, Options{MaxPayload: 8192})
	for _, s := range []string{
		`2["event:message",{"message":"hi","username":"a"}]`,
		`21["event:message",{"message":"hi"}]`,
		`2/admin,["x"]`,
		`0/admin,{"token":"t"}`,
		`0{"refuse":1}`,
		`1`,
		`3["late"]`,
		`51-["bin",{"_placeholder":true,"num":0}]`,
		`52-[{"_placeholder":true,"num":1},{"_placeholder":true,"num":0}]`,
		`61-2[{"_placeholder":true,"num":0}]`,
		`2[]`,
		`2[1e999]`,
		`2["x",{"__proto__":{"a":1}}]`,
		`9`,
		``,
	} {
		f.Add([]byte(s), false, []byte{1, 2, 3})
	}
	f.Fuzz(func(t *testing.T, pkt []byte, binaryPkt bool, attachment []byte) {
		if len(pkt) > 4096 || len(attachment) > 1024 {
			return
		}
		start := time.Now()
		sid := openPolling(t, e)
		q := "EIO=4&transport=polling&sid=" + sid
		if w := poll(e, http.MethodPost, q, []byte("40")); w.Code != http.StatusOK {
			t.Fatalf("CONNECT: %d %q after %v", w.Code, w.Body, time.Since(start))
		}
		if w := poll(e, http.MethodGet, q, nil); w.Code != http.StatusOK || !strings.HasPrefix(w.Body.String(), "40") {
			t.Fatalf("CONNECT answer: %d %q after %v", w.Code, w.Body, time.Since(start))
		}
		var payload []byte
		if binaryPkt {
			payload = append([]byte("b"), base64.StdEncoding.EncodeToString(pkt)...)
		} else {
			payload = append([]byte("4"), pkt...)
		}
		payload = append(payload, "\x1eb"+base64.StdEncoding.EncodeToString(attachment)...)
		if w := poll(e, http.MethodPost, q, payload); !pollStatuses[w.Code] {
			t.Fatalf("POST %q: status %d %q", payload, w.Code, w.Body)
		}
		closePolling(t, e, h, sid)
	})
}

// A client that sends its last frames and its FIN together (a half-close,
// or a close whose FIN rides on the data) is closed at once: on Linux the
// edge-triggered loop used to stop at the short read of that data and
// never saw the EOF, which came with the same edge, so the session lived
// on until its ping timeout. FuzzWebSocket found it.
func TestDataThenFINClosesAtOnce(t *testing.T) {
	ts := startEngine(t, quick(Options{Handler: &echo{}, PingInterval: 10 * time.Second, PingTimeout: 10 * time.Second}))
	for i := range 30 {
		r := ts.raw("EIO=4&transport=websocket")
		out := append(maskedFrame(true, opText, []byte("40")), maskedFrame(true, opText, []byte(`421["ack",1]`))...)
		out = append(out, maskedFrame(true, opPing, []byte("hi"))...)
		r.write(out)
		_ = r.nc.(*net.TCPConn).CloseWrite()
		_ = r.nc.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := io.Copy(io.Discard, r.br); err != nil && !isReset(err) {
			t.Fatalf("connection %d: not closed after the client's FIN: %v", i, err)
		}
	}
	eventually(t, 2*time.Second, "no session left", func() (bool, string) {
		return ts.e.Sessions() == 0, fmt.Sprint(ts.e.Sessions(), " sessions")
	})
}
