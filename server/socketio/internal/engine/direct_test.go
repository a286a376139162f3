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
	u := "ws" + strings.TrimPrefix(ts.url, "http") + "?EIO=4&transport=websocket"
	clients := make([]*websocket.Conn, conns)
	for i := range clients {
		c, _, err := websocket.DefaultDialer.Dial(u, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, _, err := c.ReadMessage(); err != nil { // the Engine.IO open
			t.Fatal(err)
		}
		if err := c.WriteMessage(websocket.TextMessage, []byte("40")); err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.ReadMessage(); err != nil { // the CONNECT
			t.Fatal(err)
		}
		clients[i] = c
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
