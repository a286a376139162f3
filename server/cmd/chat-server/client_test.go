package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// sio is a minimal Socket.IO v4 client over Engine.IO v4, written for the
// tests so that every frame is under their control: WebSocket only, or
// long-polling only.
type sio struct {
	t       *testing.T
	send    func(frame string) error
	frames  chan string   // Socket.IO packets received, pings answered
	closed  chan struct{} // the transport closed
	closeFn func()

	early []string // packets that came before the CONNECT answer

	ackID atomic.Int64
	mu    sync.Mutex
	acks  map[int64]chan map[string]any
}

// dialSIO connects over "websocket" or "polling" and joins namespace "/".
func dialSIO(t *testing.T, url, transport string) *sio {
	t.Helper()
	c := &sio{t: t, frames: make(chan string, 100_000), closed: make(chan struct{}), acks: map[int64]chan map[string]any{}}
	var open string
	switch transport {
	case "websocket":
		open = c.dialWebSocket(url, nil)
	case "polling":
		open = c.dialPolling(url)
	default:
		t.Fatalf("unknown transport %q", transport)
	}
	if !strings.HasPrefix(open, "0{") {
		t.Fatalf("open packet %q", open)
	}
	t.Cleanup(c.close)
	if err := c.send("0"); err != nil { // Socket.IO CONNECT to "/"
		t.Fatal(err)
	}
	// Like socket.io-client, keep events that arrive before the CONNECT
	// answer (the library can write a broadcast first) for later.
	for {
		f := c.recv()
		if strings.HasPrefix(f, "0{") {
			break
		}
		if !strings.HasPrefix(f, "2[") {
			t.Fatalf("namespace connect answered %q", f)
		}
		c.early = append(c.early, f)
	}
	return c
}

// receive handles one Engine.IO packet from the server.
func (c *sio) receive(p string) {
	switch {
	case p == "2":
		_ = c.send("3")
	case strings.HasPrefix(p, "4"):
		p = p[1:]
		if strings.HasPrefix(p, "3") { // ack
			i := strings.IndexByte(p, '[')
			var id int64
			fmt.Sscan(p[1:i], &id)
			var args []map[string]any
			_ = json.Unmarshal([]byte(p[i:]), &args)
			c.mu.Lock()
			ch := c.acks[id]
			delete(c.acks, id)
			c.mu.Unlock()
			if ch != nil && len(args) > 0 {
				ch <- args[0]
			}
			return
		}
		c.frames <- p
	}
}

func (c *sio) dialWebSocket(url string, dialer *websocket.Dialer) string {
	if dialer == nil {
		dialer = websocket.DefaultDialer
	}
	u := "ws" + strings.TrimPrefix(url, "http") + "/socket.io/?EIO=4&transport=websocket"
	conn, _, err := dialer.Dial(u, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	var wmu sync.Mutex
	c.send = func(f string) error {
		wmu.Lock()
		defer wmu.Unlock()
		return conn.WriteMessage(websocket.TextMessage, []byte("4"+f))
	}
	// The raw send above prefixes the Engine.IO message type; pongs and
	// the open packet bypass it.
	pong := func() { wmu.Lock(); _ = conn.WriteMessage(websocket.TextMessage, []byte("3")); wmu.Unlock() }
	c.closeFn = func() { conn.Close() }
	_, first, err := conn.ReadMessage()
	if err != nil {
		c.t.Fatal(err)
	}
	go func() {
		defer close(c.closed)
		for {
			_, data, err := conn.ReadMessage()
			if err != nil {
				return
			}
			if string(data) == "2" {
				pong()
				continue
			}
			c.receive(string(data))
		}
	}()
	return string(first)
}

func (c *sio) dialPolling(url string) string {
	base := url + "/socket.io/?EIO=4&transport=polling"
	res, err := http.Get(base)
	if err != nil {
		c.t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	var hs struct{ Sid string }
	if err := json.Unmarshal(body[1:], &hs); err != nil {
		c.t.Fatalf("handshake %q: %v", body, err)
	}
	poll := base + "&sid=" + hs.Sid
	stop := make(chan struct{})
	var once sync.Once
	c.closeFn = func() {
		once.Do(func() {
			close(stop)
			if res, err := http.Post(poll, "text/plain;charset=UTF-8", strings.NewReader("1")); err == nil {
				res.Body.Close()
			}
		})
	}
	post := func(payload string) error {
		res, err := http.Post(poll, "text/plain;charset=UTF-8", strings.NewReader(payload))
		if err != nil {
			return err
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != 200 {
			return fmt.Errorf("POST: %s", res.Status)
		}
		return nil
	}
	var pmu sync.Mutex
	c.send = func(f string) error { pmu.Lock(); defer pmu.Unlock(); return post("4" + f) }
	go func() {
		defer close(c.closed)
		for {
			select {
			case <-stop:
				return
			default:
			}
			res, err := http.Get(poll)
			if err != nil {
				return
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != 200 {
				return
			}
			for _, p := range strings.Split(string(body), "\x1e") {
				switch p {
				case "2":
					pmu.Lock()
					_ = post("3")
					pmu.Unlock()
				case "1", "6":
					if p == "1" {
						return
					}
				default:
					c.receive(p)
				}
			}
		}
	}()
	return string(body)
}

// close leaves cleanly: a Socket.IO DISCONNECT, then the transport closes
// (polling sends Engine.IO's close packet).
func (c *sio) close() {
	if c.send != nil {
		_ = c.send("1")
	}
	if c.closeFn != nil {
		c.closeFn()
	}
}

// next returns the next Socket.IO packet (without the Engine.IO type).
func (c *sio) next() string {
	c.t.Helper()
	if len(c.early) > 0 {
		f := c.early[0]
		c.early = c.early[1:]
		return f
	}
	return c.recv()
}

// recv returns the next packet from the transport.
func (c *sio) recv() string {
	c.t.Helper()
	select {
	case f := <-c.frames:
		return f
	case <-time.After(10 * time.Second):
		c.t.Fatal("no packet within 10 s")
		return ""
	}
}

// emit sends event:message with payload (raw JSON) and no acknowledgement.
func (c *sio) emit(payload string) {
	c.t.Helper()
	if err := c.send(`2["event:message",` + payload + `]`); err != nil {
		c.t.Fatal(err)
	}
}

// emitAck sends event:message with an acknowledgement and returns a
// channel for the server's answer.
func (c *sio) emitAck(payload string) <-chan map[string]any {
	c.t.Helper()
	id := c.ackID.Add(1)
	ch := make(chan map[string]any, 1)
	c.mu.Lock()
	c.acks[id] = ch
	c.mu.Unlock()
	if err := c.send(fmt.Sprintf(`2%d["event:message",%s]`, id, payload)); err != nil {
		c.t.Fatal(err)
	}
	return ch
}

// ack sends with an acknowledgement and waits for it.
func (c *sio) ack(payload string) map[string]any {
	c.t.Helper()
	select {
	case m := <-c.emitAck(payload):
		return m
	case <-c.closed:
		c.t.Fatal("the server closed the connection instead of acknowledging")
		return nil
	case <-time.After(10 * time.Second):
		c.t.Fatal("no acknowledgement within 10 s")
		return nil
	}
}

// event returns the next event named name, skipping others.
func (c *sio) event(name string) any {
	c.t.Helper()
	prefix := `2["` + name + `",`
	for {
		f := c.next()
		if !strings.HasPrefix(f, prefix) {
			continue
		}
		var ev []any
		if err := json.Unmarshal([]byte(f[1:]), &ev); err != nil {
			c.t.Fatalf("bad packet %q: %v", f, err)
		}
		return ev[1]
	}
}

// message returns the next `message` event.
func (c *sio) message() wire { c.t.Helper(); return toWire(c.event("message")) }

func jsonString(s string) string { b, _ := json.Marshal(s); return string(b) }

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }
