package engine

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// ordered records the events it handles, and takes its time over the
// slow ones, so that a session's inbox fills while a worker has it.
type ordered struct {
	mu  sync.Mutex
	got []int
}

func (h *ordered) Connect(*Socket, *Hello) error { return nil }
func (h *ordered) Ready(*Socket)                 {}
func (h *ordered) Disconnect(*Socket, string)    {}
func (h *ordered) Event(_ *Socket, name string, args []any, _ Ack) {
	i := int(args[0].(float64))
	if name == "slow" && i%7 == 0 {
		time.Sleep(2 * time.Millisecond)
	}
	h.mu.Lock()
	h.got = append(h.got, i)
	h.mu.Unlock()
}

// Events that Options.Inline lets the loop handle, mixed with events it
// does not and a CONNECT, each handled once and in the client's order,
// whichever goroutine handled it; and the CONNECT, which the loop leaves
// to a worker, is answered.
func TestInlineKeepsOrder(t *testing.T) {
	const n = 400
	h := &ordered{}
	var inlined sync.Map
	ts := startEngine(t, Options{Handler: h, Inline: func(nsp, name string, args []any) bool {
		ok := nsp == "/" && name == "fast"
		if ok {
			inlined.Store(int(args[0].(float64)), true)
		}
		return ok
	}})
	u := "ws" + strings.TrimPrefix(ts.url, "http") + "?EIO=4&transport=websocket"
	c, _, err := websocket.DefaultDialer.Dial(u, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, _, err := c.ReadMessage(); err != nil { // the Engine.IO open
		t.Fatal(err)
	}
	send := func(s string) {
		if err := c.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	send("40")
	if _, data, err := c.ReadMessage(); err != nil || !strings.HasPrefix(string(data), "40") {
		t.Fatalf("the CONNECT's answer: %q, %v", data, err)
	}
	handled := func(want int) {
		eventually(t, 10*time.Second, "the events handled", func() (bool, string) {
			h.mu.Lock()
			defer h.mu.Unlock()
			return len(h.got) == want, fmt.Sprint(len(h.got), " of ", want)
		})
	}
	// One at a time, the session idle in between: the loop handles them.
	for i := range 10 {
		send(fmt.Sprintf(`42["fast",%d]`, i))
		handled(i + 1)
	}
	// Then a burst: the slow ones keep a worker busy while more come.
	for i := 10; i < n; i++ {
		name := "fast"
		if i%3 == 0 {
			name = "slow"
		}
		send(fmt.Sprintf(`42[%q,%d]`, name, i))
	}
	handled(n)
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, got := range h.got {
		if got != i {
			t.Fatalf("event %d handled as the %dth: %v", got, i, h.got[max(0, i-3):min(len(h.got), i+3)])
		}
	}
	for i := range 10 {
		if _, ok := inlined.Load(i); !ok {
			t.Fatalf("event %d, sent to an idle session, was not offered to Options.Inline", i)
		}
	}
}
