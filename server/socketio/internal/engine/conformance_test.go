package engine

// Conformance with the Engine.IO v4 and Socket.IO v5 protocols: every case
// of the protocol repositories' test suites (socketio/engine.io-protocol
// and socketio/socket.io-protocol, test-suite/test-suite.js), written anew
// against this engine over real HTTP and WebSocket connections. The
// Engine.IO cases run the engine bare (an echo of messages, as the suite's
// server), the Socket.IO cases with the echo handler the suite assumes.

import (
	"encoding/json"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// bareEcho is an Engine.IO server that sends every message back.
func bareEcho(t *testing.T) *tserver {
	return startEngine(t, quick(Options{Path: "/engine.io/", Messages: func(s *Session, data []byte, binary bool) {
		s.SendMessage(data, binary)
	}}))
}

func keysOf(m map[string]any) []string {
	var k []string
	for key := range m {
		k = append(k, key)
	}
	sort.Strings(k)
	return k
}

func checkOpen(t *testing.T, open map[string]any, upgrades []any) {
	t.Helper()
	if got := keysOf(open); !reflect.DeepEqual(got, []string{"maxPayload", "pingInterval", "pingTimeout", "sid", "upgrades"}) {
		t.Fatalf("open packet keys %v", got)
	}
	if _, ok := open["sid"].(string); !ok {
		t.Fatalf("sid %v", open["sid"])
	}
	if !reflect.DeepEqual(open["upgrades"], upgrades) || open["pingInterval"] != 300.0 || open["pingTimeout"] != 200.0 || open["maxPayload"] != 1e6 {
		t.Fatalf("open packet %v", open)
	}
}

func TestEngineIOHandshake(t *testing.T) {
	ts := bareEcho(t)
	t.Run("polling opens a session", func(t *testing.T) {
		_, open := ts.handshake()
		checkOpen(t, open, []any{"websocket"})
	})
	t.Run("polling fails with an invalid EIO", func(t *testing.T) {
		for _, q := range []string{"transport=polling", "EIO=abc&transport=polling", "EIO=3&transport=polling"} {
			if code, _ := ts.get(q); code != 400 {
				t.Errorf("%s: %d", q, code)
			}
		}
	})
	t.Run("polling fails with an invalid transport", func(t *testing.T) {
		for _, q := range []string{"EIO=4", "EIO=4&transport=abc"} {
			if code, _ := ts.get(q); code != 400 {
				t.Errorf("%s: %d", q, code)
			}
		}
	})
	t.Run("polling fails with an invalid request method", func(t *testing.T) {
		for _, m := range []string{http.MethodPost, http.MethodPut} {
			if code, _, _ := ts.do(m, "EIO=4&transport=polling", ""); code != 400 {
				t.Errorf("%s: %d", m, code)
			}
		}
	})
	t.Run("websocket opens a session", func(t *testing.T) {
		w := ts.ws("EIO=4&transport=websocket")
		m := w.read()
		var open map[string]any
		if !strings.HasPrefix(m, "0") || json.Unmarshal([]byte(m[1:]), &open) != nil {
			t.Fatalf("open packet %q", m)
		}
		checkOpen(t, open, []any{})
	})
	t.Run("websocket fails with an invalid EIO or transport", func(t *testing.T) {
		for _, q := range []string{"transport=websocket", "EIO=abc&transport=websocket", "EIO=4", "EIO=4&transport=abc"} {
			_, res, err := ts.dialWS(q)
			if err == nil || res == nil || res.StatusCode != 400 {
				t.Errorf("%s: %v %v", q, err, res)
			}
		}
	})
}

func TestEngineIOMessages(t *testing.T) {
	ts := bareEcho(t)
	for _, tt := range []struct{ name, body string }{
		{"polling: one plain text packet", "4hello"},
		{"polling: several plain text packets", "4test1\x1e4test2\x1e4test3"},
		{"polling: plain text and binary packets", "4hello\x1ebAQIDBA=="},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sid, _ := ts.handshake()
			if code, body := ts.post(sidQuery(sid), tt.body); code != 200 || body != "ok" {
				t.Fatalf("post: %d %q", code, body)
			}
			if code, body := ts.get(sidQuery(sid)); code != 200 || body != tt.body {
				t.Fatalf("poll: %d %q, want %q", code, body, tt.body)
			}
		})
	}
	t.Run("polling: closes the session upon an invalid packet", func(t *testing.T) {
		sid, _ := ts.handshake()
		if code, _ := ts.post(sidQuery(sid), "abc"); code != 400 {
			t.Fatalf("post abc: %d", code)
		}
		if code, _ := ts.get(sidQuery(sid)); code != 400 {
			t.Fatalf("poll after: %d", code)
		}
	})
	t.Run("polling: closes the session upon duplicate poll requests", func(t *testing.T) {
		sid, _ := ts.handshake()
		type res struct {
			code int
			body string
		}
		first := make(chan res, 1)
		go func() {
			c, b := ts.get(sidQuery(sid))
			first <- res{c, b}
		}()
		time.Sleep(50 * time.Millisecond)
		if code, _ := ts.get(sidQuery(sid) + "&t=burst"); code != 400 {
			t.Fatalf("second poll: %d", code)
		}
		if r := <-first; r.code != 200 || r.body != "1" {
			t.Fatalf("first poll: %d %q", r.code, r.body)
		}
		if code, _ := ts.get(sidQuery(sid)); code != 400 {
			t.Fatalf("poll after: %d", code)
		}
	})
	t.Run("websocket: plain text packet", func(t *testing.T) {
		w := ts.ws("EIO=4&transport=websocket")
		w.read()
		w.send("4hello")
		if m := w.read(); m != "4hello" {
			t.Fatalf("got %q", m)
		}
	})
	t.Run("websocket: binary packet", func(t *testing.T) {
		w := ts.ws("EIO=4&transport=websocket")
		w.read()
		w.sendBinary([]byte{1, 2, 3, 4})
		if m := w.read(); m != "bin:AQIDBA==" {
			t.Fatalf("got %q", m)
		}
	})
	t.Run("websocket: closes the session upon an invalid packet", func(t *testing.T) {
		w := ts.ws("EIO=4&transport=websocket")
		w.read()
		w.send("abc")
		w.closed()
	})
}

func TestEngineIOHeartbeat(t *testing.T) {
	ts := bareEcho(t)
	t.Run("polling: ping and pong", func(t *testing.T) {
		sid, _ := ts.handshake()
		for i := range 3 {
			if code, body := ts.get(sidQuery(sid)); code != 200 || body != "2" {
				t.Fatalf("poll %d: %d %q", i, code, body)
			}
			if code, _ := ts.post(sidQuery(sid), "3"); code != 200 {
				t.Fatalf("pong %d: %d", i, code)
			}
		}
	})
	t.Run("polling: closes the session upon ping timeout", func(t *testing.T) {
		sid, _ := ts.handshake()
		time.Sleep(300*time.Millisecond + 200*time.Millisecond + 50*time.Millisecond)
		if code, _ := ts.get(sidQuery(sid)); code != 400 {
			t.Fatalf("poll after the timeout: %d", code)
		}
	})
	t.Run("websocket: ping and pong", func(t *testing.T) {
		w := ts.ws("EIO=4&transport=websocket")
		w.read()
		for i := range 3 {
			if m := w.read(); m != "2" {
				t.Fatalf("message %d: %q", i, m)
			}
			w.send("3")
		}
	})
	t.Run("websocket: closes the session upon ping timeout", func(t *testing.T) {
		w := ts.ws("EIO=4&transport=websocket")
		start := time.Now()
		w.closed()
		if d := time.Since(start); d < 400*time.Millisecond {
			t.Fatalf("closed after %v, before the ping timeout", d)
		}
	})
}

func TestEngineIOClose(t *testing.T) {
	ts := bareEcho(t)
	t.Run("polling: the client closes the session", func(t *testing.T) {
		sid, _ := ts.handshake()
		var wg sync.WaitGroup
		var code int
		var body string
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, body = ts.get(sidQuery(sid))
		}()
		time.Sleep(50 * time.Millisecond)
		if c, _ := ts.post(sidQuery(sid), "1"); c != 200 {
			t.Fatalf("post close: %d", c)
		}
		wg.Wait()
		if code != 200 || body != "6" {
			t.Fatalf("pending poll: %d %q", code, body)
		}
		if c, _ := ts.get(sidQuery(sid)); c != 400 {
			t.Fatalf("poll after: %d", c)
		}
	})
	t.Run("websocket: the client closes the session", func(t *testing.T) {
		w := ts.ws("EIO=4&transport=websocket")
		w.read()
		w.send("1")
		w.closed()
	})
}

func TestEngineIOUpgrade(t *testing.T) {
	ts := bareEcho(t)
	t.Run("from polling to websocket", func(t *testing.T) {
		sid, _ := ts.handshake()
		w := ts.ws("EIO=4&transport=websocket&sid=" + sid)
		w.send("2probe")
		if m := w.read(); m != "3probe" {
			t.Fatalf("probe answer %q", m)
		}
		if code, body := ts.get(sidQuery(sid)); code != 200 || body != "6" {
			t.Fatalf("poll during the upgrade: %d %q", code, body)
		}
		w.send("5")
		w.send("4hello")
		if m := w.read(); m != "4hello" {
			t.Fatalf("after the upgrade: %q", m)
		}
	})
	t.Run("ignores polling requests after the upgrade", func(t *testing.T) {
		sid, _ := ts.handshake()
		w := ts.ws("EIO=4&transport=websocket&sid=" + sid)
		w.send("2probe")
		w.send("5")
		if m := w.read(); m != "3probe" {
			t.Fatalf("probe answer %q", m)
		}
		eventually(t, 2*time.Second, "polling refused", func() (bool, string) {
			code, body := ts.get(sidQuery(sid))
			return code == 400, body
		})
		w.send("4hello")
		if m := w.read(); m != "4hello" {
			t.Fatalf("after the upgrade: %q", m)
		}
	})
	// Node's engine.io accepts a WebSocket for a session that has upgraded,
	// or is upgrading over another one, and closes it at once without a
	// status code; the session goes on over the first WebSocket.
	t.Run("ignores a second websocket after the upgrade", func(t *testing.T) {
		sid, _ := ts.handshake()
		w := ts.ws("EIO=4&transport=websocket&sid=" + sid)
		w.send("2probe")
		w.send("5")
		w.read()
		secondIsClosed(t, ts, sid)
		w.send("4hello")
		if m := w.read(); m != "4hello" {
			t.Fatalf("after the upgrade: %q", m)
		}
	})
	t.Run("ignores a second websocket during the upgrade", func(t *testing.T) {
		sid, _ := ts.handshake()
		w := ts.ws("EIO=4&transport=websocket&sid=" + sid)
		w.send("2probe")
		if m := w.read(); m != "3probe" {
			t.Fatalf("probe answer %q", m)
		}
		secondIsClosed(t, ts, sid)
		w.send("5")
		w.send("4hello")
		if m := w.read(); m != "4hello" {
			t.Fatalf("after the upgrade: %q", m)
		}
	})
}

// secondIsClosed opens another WebSocket on the session sid: its handshake
// must succeed, and a close without a status code must be all it gets.
func secondIsClosed(t *testing.T, ts *tserver, sid string) {
	t.Helper()
	second, res, err := ts.dialWS("EIO=4&transport=websocket&sid=" + sid)
	if err != nil {
		status := 0
		if res != nil {
			status = res.StatusCode
		}
		t.Fatalf("the second WebSocket's handshake failed (HTTP %d): %v", status, err)
	}
	_ = second.c.SetReadDeadline(time.Now().Add(2 * time.Second))
	typ, msg, err := second.c.ReadMessage()
	if !websocket.IsCloseError(err, websocket.CloseNoStatusReceived) {
		t.Fatalf("the second WebSocket got %d %q, %v; want a close without a code (1005)", typ, msg, err)
	}
}

func socketIOEcho(t *testing.T) (*tserver, *echo) {
	h := &echo{}
	return startEngine(t, quick(Options{Handler: h, ConnectTimeout: 500 * time.Millisecond})), h
}

// readPackets reads n messages, skipping (and answering) pings.
func readPackets(w *wsc, n int) []string {
	var out []string
	for len(out) < n {
		out = append(out, w.readSkipPings())
	}
	return out
}

func TestSocketIOConnect(t *testing.T) {
	ts, _ := socketIOEcho(t)
	for _, tt := range []struct{ name, connect, prefix, auth string }{
		{"main namespace", "40", "40", `42["auth",{}]`},
		{"main namespace with a payload", `40{"token":"123"}`, "40", `42["auth",{"token":"123"}]`},
		{"custom namespace", "40/custom,", "40/custom,", `42/custom,["auth",{}]`},
		{"custom namespace with a payload", `40/custom,{"token":"abc"}`, "40/custom,", `42/custom,["auth",{"token":"abc"}]`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := ts.ws("EIO=4&transport=websocket")
			w.read()
			w.send(tt.connect)
			m := w.readSkipPings()
			var hs map[string]any
			if !strings.HasPrefix(m, tt.prefix) || json.Unmarshal([]byte(m[len(tt.prefix):]), &hs) != nil {
				t.Fatalf("connect answer %q", m)
			}
			if _, ok := hs["sid"].(string); !ok || len(hs) != 1 {
				t.Fatalf("handshake %v, want only sid (no recovery)", hs)
			}
			if m := w.readSkipPings(); m != tt.auth {
				t.Fatalf("auth packet %q, want %q", m, tt.auth)
			}
		})
	}
	t.Run("refuses an unknown namespace", func(t *testing.T) {
		w := ts.ws("EIO=4&transport=websocket")
		w.read()
		w.send("40/random")
		if m := w.readSkipPings(); m != `44/random,{"message":"Invalid namespace"}` {
			t.Fatalf("got %q", m)
		}
	})
	t.Run("closes upon an invalid handshake", func(t *testing.T) {
		w := ts.ws("EIO=4&transport=websocket")
		w.read()
		w.send("4abc")
		w.closed()
	})
	t.Run("closes when no handshake comes", func(t *testing.T) {
		w := ts.ws("EIO=4&transport=websocket")
		w.read()
		start := time.Now()
		w.closed()
		if d := time.Since(start); d < 400*time.Millisecond {
			t.Fatalf("closed after %v, before the connect timeout", d)
		}
	})
}

func TestSocketIODisconnect(t *testing.T) {
	ts, h := socketIOEcho(t)
	t.Run("from the main namespace", func(t *testing.T) {
		w := ts.connectWS()
		w.send("41")
		if m := w.read(); m != "2" {
			t.Fatalf("after the disconnect: %q, want a ping (the session stays)", m)
		}
		eventually(t, time.Second, "the handler's Disconnect", func() (bool, string) {
			r := h.reasons()
			return strings.Contains(r, "/ client namespace disconnect"), r
		})
	})
	t.Run("connect then disconnect a custom namespace", func(t *testing.T) {
		w := ts.connectWS()
		w.send("40/custom")
		readPackets(w, 2)
		w.send("41/custom")
		w.send(`42["message","message to main namespace"]`)
		if m := w.readSkipPings(); m != `42["message-back","message to main namespace"]` {
			t.Fatalf("got %q", m)
		}
	})
}

func TestSocketIOMessages(t *testing.T) {
	ts, _ := socketIOEcho(t)
	t.Run("plain-text packet", func(t *testing.T) {
		w := ts.connectWS()
		w.send(`42["message",1,"2",{"3":[true]}]`)
		if m := w.readSkipPings(); m != `42["message-back",1,"2",{"3":[true]}]` {
			t.Fatalf("got %q", m)
		}
	})
	t.Run("packet with binary attachments", func(t *testing.T) {
		w := ts.connectWS()
		w.send(`452-["message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`)
		w.sendBinary([]byte{1, 2, 3})
		w.sendBinary([]byte{4, 5, 6})
		got := readPackets(w, 3)
		want := []string{`452-["message-back",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`, "bin:AQID", "bin:BAUG"}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("got %q, want %q", got, want)
		}
	})
	t.Run("plain-text packet with an ack", func(t *testing.T) {
		w := ts.connectWS()
		w.send(`42456["message-with-ack",1,"2",{"3":[false]}]`)
		if m := w.readSkipPings(); m != `43456[1,"2",{"3":[false]}]` {
			t.Fatalf("got %q", m)
		}
	})
	t.Run("packet with binary attachments and an ack", func(t *testing.T) {
		w := ts.connectWS()
		w.send(`452-789["message-with-ack",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`)
		w.sendBinary([]byte{1, 2, 3})
		w.sendBinary([]byte{4, 5, 6})
		got := readPackets(w, 3)
		want := []string{`462-789[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`, "bin:AQID", "bin:BAUG"}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("got %q, want %q", got, want)
		}
	})
	for _, tt := range []struct{ name, packet string }{
		{"unknown packet type", "4abc"},
		{"invalid payload format", "42{}"},
		{"invalid ack id", `42abc["message-with-ack",1,"2",{"3":[false]}]`},
	} {
		t.Run("closes upon an invalid format: "+tt.name, func(t *testing.T) {
			w := ts.connectWS()
			w.send(tt.packet)
			w.closed()
		})
	}
}
