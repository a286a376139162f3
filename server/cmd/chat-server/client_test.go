package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scalable-chat-go/server/sioclient"
)

// sio is the tests' Socket.IO client: sioclient's connection (WebSocket or
// long-polling only, every frame under the test's control) with what the
// tests read from it: the packets in order, acknowledgements by id, the end
// of the connection.
type sio struct {
	t      *testing.T
	conn   *sioclient.Conn
	frames chan string   // Socket.IO packets received (without the Engine.IO type), pings answered
	closed chan struct{} // the transport closed

	early []string // packets that came before the CONNECT answer
	last  string   // the last packet next returned, for a wait that gives up

	ackID atomic.Int64
	mu    sync.Mutex
	acks  map[int64]chan map[string]any
}

// dialSIO connects over "websocket" or "polling" and joins namespace "/".
func dialSIO(t *testing.T, url, transport string) *sio {
	t.Helper()
	return dialSIOAuth(t, url, transport, nil)
}

// dialSIOAuth is dialSIO with the namespace CONNECT's auth (JSON; over
// WebSocket only), as socket.io-client sends {pid, offset} when it comes
// back.
func dialSIOAuth(t *testing.T, url, transport string, auth []byte) *sio {
	t.Helper()
	c := &sio{t: t, frames: make(chan string, 100_000), closed: make(chan struct{}), acks: map[int64]chan map[string]any{}}
	var d sioclient.Dialer
	var early [][]byte
	var err error
	switch transport {
	case "websocket":
		c.conn, early, err = d.DialAuth(context.Background(), url, nil, auth)
	case "polling":
		c.conn, early, err = d.DialPolling(context.Background(), url)
	default:
		t.Fatalf("unknown transport %q", transport)
	}
	if err != nil {
		t.Fatalf("connect over %s to %s: %v", transport, url, err)
	}
	// Like socket.io-client, keep events that arrive before the CONNECT
	// answer (the library can write a broadcast first) for later.
	for _, f := range early {
		c.early = append(c.early, string(f[1:]))
	}
	go func() {
		defer close(c.closed)
		_ = c.conn.Serve(func(f []byte) { c.receive(string(f)) })
	}()
	t.Cleanup(c.close)
	return c
}

// send writes one Socket.IO packet (the Engine.IO message type is added).
func (c *sio) send(frame string) error { return c.conn.Write([]byte("4" + frame)) }

// receive handles one Engine.IO packet from the server (pings are answered
// by Serve).
func (c *sio) receive(p string) {
	if !strings.HasPrefix(p, "4") {
		return
	}
	p = p[1:]
	if strings.HasPrefix(p, "3") {
		answerAck(&c.mu, c.acks, p)
		return
	}
	c.frames <- p
}

// answerAck hands an acknowledgement packet ("3<id>[args]") to the
// channel waiting for it in acks (guarded by mu).
func answerAck(mu *sync.Mutex, acks map[int64]chan map[string]any, p string) {
	i := strings.IndexByte(p, '[')
	if i < 1 {
		return
	}
	var id int64
	fmt.Sscan(p[1:i], &id)
	var args []map[string]any
	_ = json.Unmarshal([]byte(p[i:]), &args)
	mu.Lock()
	ch := acks[id]
	delete(acks, id)
	mu.Unlock()
	if ch != nil && len(args) > 0 {
		ch <- args[0]
	}
}

// close leaves cleanly: a Socket.IO DISCONNECT, then the transport closes
// (polling sends Engine.IO's close packet).
func (c *sio) close() {
	_ = c.send("1")
	_ = c.conn.Close()
}

// next returns the next Socket.IO packet (without the Engine.IO type).
func (c *sio) next() string {
	c.t.Helper()
	if len(c.early) > 0 {
		f := c.early[0]
		c.early = c.early[1:]
		return f
	}
	select {
	case f := <-c.frames:
		c.last = f
		return f
	case <-c.closed:
		// Every packet that came is in frames by now.
		select {
		case f := <-c.frames:
			c.last = f
			return f
		default:
		}
		c.t.Fatalf("the connection closed; the last packet was %q", c.last)
	case <-time.After(10 * time.Second):
		c.t.Fatalf("no packet within 10 s; the last one was %q", c.last)
	}
	return ""
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
