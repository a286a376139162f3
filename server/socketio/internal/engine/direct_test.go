//go:build linux

package engine

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Frames to more recipients than a sender writes itself (DirectFanout),
// sent back to back from several goroutines at once: every recipient gets
// every frame, each sender's in its order, whether its sender or a
// flusher wrote it.
func TestFanoutBeyondTheDirectWrites(t *testing.T) {
	const conns, senders, frames = 3 * DirectFanout, 4, 50
	var mu sync.Mutex
	var socks []*Socket
	h := &collect{add: func(s *Socket) { mu.Lock(); socks = append(socks, s); mu.Unlock() }}
	ts := startEngine(t, Options{Handler: h})
	clients := make([]*websocket.Conn, conns)
	for i := range clients {
		clients[i] = connectWS(t, ts)
	}
	eventually(t, 5*time.Second, "every socket ready", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return len(socks) == conns, fmt.Sprint(len(socks))
	})
	var wg sync.WaitGroup
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range frames {
				f := MustEventFrame("m", s, i)
				for _, sock := range socks {
					sock.Send(f)
				}
			}
		}()
	}
	wg.Wait()
	for ci, c := range clients {
		next := make([]int, senders)
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		for range senders * frames {
			_, data, err := c.ReadMessage()
			if err != nil {
				t.Fatalf("client %d after %v: %v", ci, next, err)
			}
			var s, i int
			if _, err := fmt.Sscanf(string(data), `42["m",%d,%d]`, &s, &i); err != nil {
				t.Fatalf("client %d: %q: %v", ci, data, err)
			}
			if i != next[s] {
				t.Fatalf("client %d: sender %d's frame %d, want %d", ci, s, i, next[s])
			}
			next[s]++
		}
	}
}

// A direct write the socket buffer takes only in part leaves the rest to
// a flusher. Frames go to a client that reads nothing until one of them
// stays queued: with a short write (no EAGAIN) nothing else would write
// its tail, and the client would wait for it until the next frame came.
func TestAShortDirectWriteIsFlushed(t *testing.T) {
	var mu sync.Mutex
	var sock *Socket
	h := &collect{add: func(s *Socket) { mu.Lock(); sock = s; mu.Unlock() }}
	ts := startEngine(t, Options{Handler: h})
	c := connectWS(t, ts)
	eventually(t, 5*time.Second, "the socket ready", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return sock != nil, ""
	})
	ws := sock.sess.ws
	// Odd sizes, so that the buffer's end falls inside a frame, not at
	// its edge (a write that takes nothing is EAGAIN, which waits for
	// EPOLLOUT and was never the problem).
	pad := strings.Repeat("x", 7919)
	sent := 0
	for ; sent < 20000; sent++ {
		sock.Send(MustEventFrame("m", sent, pad))
		ws.wmu.Lock()
		queued, blocked := len(ws.q), ws.blocked
		ws.wmu.Unlock()
		if queued > 0 {
			t.Logf("frame %d stayed queued (EAGAIN: %v, else a short write)", sent, blocked)
			sent++
			break
		}
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for i := range sent {
		_, data, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("frame %d of %d: %v", i, sent, err)
		}
		var n int
		if _, err := fmt.Sscanf(string(data), `42["m",%d,`, &n); err != nil || n != i {
			t.Fatalf("frame %d: got %.20q (%v)", i, data, err)
		}
	}
}

// connectWS opens a WebSocket session to ts and connects its "/"
// namespace; it is closed when the test ends.
func connectWS(t *testing.T, ts *tserver) *websocket.Conn {
	t.Helper()
	u := "ws" + strings.TrimPrefix(ts.url, "http") + "?EIO=4&transport=websocket"
	c, _, err := websocket.DefaultDialer.Dial(u, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, _, err := c.ReadMessage(); err != nil { // the Engine.IO open
		t.Fatal(err)
	}
	if err := c.WriteMessage(websocket.TextMessage, []byte("40")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.ReadMessage(); err != nil { // the CONNECT
		t.Fatal(err)
	}
	return c
}
