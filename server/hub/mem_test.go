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

// TestMemoryPerMembership measures what a connection's rooms beyond its
// first cost the hub: 5,000 connections, each in the global room and one
// of 100 rooms, join 9 more each. A live member is its place in the
// room's list and in the connection's.
func TestMemoryPerMembership(t *testing.T) {
	rooms := make([]string, 100)
	for i := range rooms {
		rooms[i] = fmt.Sprintf("room-%03d", i)
	}
	n := newNode(t, nodeOptions{rooms: rooms})
	const count, more = 5000, 9
	conns := make([]*memConn, count)
	for i := range conns {
		conns[i] = &memConn{id: fmt.Sprintf("c-%06d", i)}
		for _, room := range []string{chat.GlobalRoom, rooms[i%len(rooms)]} {
			if err := n.Join(conns[i], room, JoinOptions{Live: true}); err != nil {
				t.Fatal(err)
			}
		}
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i, c := range conns {
		for a := 1; a <= more; a++ {
			if err := n.Join(c, rooms[(i+a)%len(rooms)], JoinOptions{Live: true}); err != nil {
				t.Fatal(err)
			}
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.HeapAlloc-before.HeapAlloc) / count / more
	t.Logf("hub heap per membership beyond the first two: %.0f B (%.0f B for %d more rooms)", per, per*more, more)
	// 8 in the room's list and 8 in the connection's, with the slack of
	// their growth (43 B with a 24-byte member object besides, 64 B with
	// two lists a room and a 32-byte member).
	if per > 24 {
		t.Errorf("a membership costs the hub %.0f B of heap, want at most 24", per)
	}
	runtime.KeepAlive(conns)
}

// BenchmarkDeliver is one message's delivery to 10,000 members of a room
// here, with a Send that keeps nothing: what the hub's own walk of the
// room's members costs, per recipient.
func BenchmarkDeliver(b *testing.B) {
	n := newNode(b, nodeOptions{ring: 1 << 10})
	const count = 10_000
	conns := make([]*memConn, count)
	for i := range conns {
		conns[i] = &memConn{id: fmt.Sprintf("c-%06d", i)}
		// Other allocations between the members, as connections that
		// come over time have.
		_ = make([]byte, 200)
		if err := n.Join(conns[i], chat.GlobalRoom, JoinOptions{Live: true}); err != nil {
			b.Fatal(err)
		}
	}
	r := n.lookup(chat.GlobalRoom)
	e := chat.MessageEvent(msg(1))
	b.ResetTimer()
	for range b.N {
		r.mu.Lock()
		n.deliverLocked(r, chat.Event{Name: e.Name, Data: e.Data})
		r.mu.Unlock()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/count, "ns/recipient")
}
