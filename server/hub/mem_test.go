package hub

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/scalable-chat-go/server/chat"
)

// memConn is a connection that keeps nothing of what it is sent.
type memConn struct{ id string }

func (c *memConn) ID() string         { return c.id }
func (c *memConn) Send(Frame)         {}
func (c *memConn) Identity() Identity { return Identity{} }

// TestMemoryPerConnection prints what one connection in the global room
// costs the hub (run with -v to see it).
func TestMemoryPerConnection(t *testing.T) {
	n := newNode(t, nodeOptions{})
	const count = 20_000
	conns := make([]*memConn, count)
	for i := range conns {
		conns[i] = &memConn{id: fmt.Sprintf("c-%06d", i)}
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for _, c := range conns {
		if err := n.Join(c, chat.GlobalRoom, JoinOptions{Live: true}); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	t.Logf("hub heap per connection in the global room: %d B", (after.HeapAlloc-before.HeapAlloc)/count)
	runtime.KeepAlive(conns)
	_ = time.Now
}
