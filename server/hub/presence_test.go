package hub

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/scalable-chat-go/server/chat"
	"github.com/scalable-chat-go/server/inmem"
)

func counter(t *testing.T, c prometheus.Collector) float64 {
	t.Helper()
	return testutil.ToFloat64(c)
}

// datas returns the data of the frames of event name c was sent.
func datas(c *testConn, name string) []string {
	var out []string
	for _, f := range c.named(name) {
		out = append(out, f.data)
	}
	return out
}

// Presence is the cluster's, per room: counts summed over the nodes, each
// user once; joins and leaves are told once a tick, to the room's members.
func TestPresenceAcrossNodesPerRoom(t *testing.T) {
	bus := inmem.NewBus()
	a := newNode(t, nodeOptions{bus: bus, presence: bus.Presence(time.Minute), rooms: []string{"room-a"}})
	b := newNode(t, nodeOptions{bus: bus, presence: bus.Presence(time.Minute), rooms: []string{"room-a"}})
	ann, anon, bob := newConn("ann", "ann"), newConn("anon", ""), newConn("bob", "bob")
	for _, j := range []struct {
		n    *node
		c    *testConn
		room string
	}{{a, ann, chat.GlobalRoom}, {a, anon, chat.GlobalRoom}, {b, bob, chat.GlobalRoom}, {b, bob, "room-a"}} {
		if err := j.n.Join(j.c, j.room, JoinOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// Before the first tick a newcomer is told this node's count.
	if got := datas(anon, chat.EventPresence); len(got) != 1 || got[0] != `{"online":2,"users":[]}` {
		t.Fatalf("a newcomer's first presence: %v", got)
	}
	if v := a.PresenceView(chat.GlobalRoom); v.Online != 2 {
		t.Fatalf("PresenceView before a tick: %+v", v)
	}
	ann.take()
	bob.take()
	a.presenceTick()
	b.presenceTick()
	a.presenceTick()
	// The global room: 3 connections, 2 named users; room-a: bob alone,
	// and its events say their room.
	if got := datas(ann, chat.EventPresence); len(got) == 0 ||
		got[len(got)-1] != `{"online":3,"users":[{"name":"ann","since":"2023-11-14T22:13:20.000Z"},{"name":"bob","since":"2023-11-14T22:13:20.000Z"}]}` {
		t.Fatalf("ann's presence: %v", got)
	}
	var roomA []string
	for _, d := range datas(bob, chat.EventPresence) {
		if strings.Contains(d, `"room":"room-a"`) {
			roomA = append(roomA, d)
		}
	}
	if len(roomA) == 0 || roomA[len(roomA)-1] != `{"room":"room-a","online":1,"users":[{"name":"bob","since":"2023-11-14T22:13:20.000Z"}]}` {
		t.Fatalf("bob's presence of room-a: %v", roomA)
	}
	if v := a.PresenceView(chat.GlobalRoom); v.Online != 3 || len(v.Users) != 2 {
		t.Fatalf("PresenceView: %+v", v)
	}
	// Nothing changed: nothing is sent.
	a.presenceTick()
	if got := ann.take(); len(got) != 0 {
		t.Fatalf("an unchanged view was sent again: %v", got)
	}
	// Bob leaves: ann is told, once.
	b.Disconnect(bob)
	b.presenceTick()
	a.presenceTick()
	if got := datas(ann, chat.EventPresenceLeave); len(got) != 1 || got[0] != `{"name":"bob"}` {
		t.Fatalf("presence:leave: %v", got)
	}
	cid := newConn("cid", "cid")
	if err := b.Join(cid, chat.GlobalRoom, JoinOptions{}); err != nil {
		t.Fatal(err)
	}
	b.presenceTick()
	a.presenceTick()
	if got := datas(ann, chat.EventPresenceJoin); len(got) != 1 || got[0] != `{"name":"cid"}` {
		t.Fatalf("presence:join: %v", got)
	}
}

// Above PresenceListLimit only the count is sent.
func TestPresenceAboveTheListLimitIsACount(t *testing.T) {
	n := newNode(t, nodeOptions{})
	n.o.PresenceListLimit = 1
	x, y := newConn("x", "x"), newConn("y", "y")
	for _, c := range []*testConn{x, y} {
		if err := n.Join(c, chat.GlobalRoom, JoinOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	x.take()
	n.presenceTick()
	if got := datas(x, chat.EventPresence); len(got) != 1 || got[0] != `{"online":2}` {
		t.Fatalf("presence above the limit: %v", got)
	}
}

// When the cluster's presence fails, the node's own view is used.
func TestPresenceFallsBackToThisNode(t *testing.T) {
	n := newNode(t, nodeOptions{presence: failingPresence{}, rooms: []string{"room-a"}})
	c := newConn("c", "ann")
	for _, r := range []string{chat.GlobalRoom, "room-a"} {
		if err := n.Join(c, r, JoinOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	c.take()
	n.presenceTick()
	got := datas(c, chat.EventPresence)
	slices.Sort(got)
	if len(got) != 2 || !strings.HasPrefix(got[0], `{"online":1,`) || !strings.HasPrefix(got[1], `{"room":"room-a","online":1,`) {
		t.Fatalf("presence: %v", got)
	}
}

type failingPresence struct{}

func (failingPresence) Sync(context.Context, string, chat.PresenceView) (chat.PresenceView, error) {
	return chat.PresenceView{}, errors.New("down")
}

func (failingPresence) SyncRooms(context.Context, []chat.RoomView) ([]chat.PresenceView, error) {
	return nil, errors.New("down")
}

// Typing reaches the room's other members, not the typist; it is renewed
// after half the timeout, and ends when stopped, not renewed, or when the
// typist leaves.
func TestTyping(t *testing.T) {
	n := newNode(t, nodeOptions{rooms: []string{"room-a"}})
	ann, bob := newConn("ann", "ann"), newConn("bob", "bob")
	for _, c := range []*testConn{ann, bob} {
		for _, room := range []string{chat.GlobalRoom, "room-a"} {
			if err := n.Join(c, room, JoinOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		c.take()
	}
	now := time.Unix(1000, 0)
	typing := func(room string, on bool, at time.Time) {
		t.Helper()
		if err := n.Typing(ann, room, on, at); err != nil {
			t.Fatal(err)
		}
	}
	typing(chat.GlobalRoom, true, now)
	typing(chat.GlobalRoom, true, now.Add(100*time.Millisecond)) // too soon to renew
	typing(chat.GlobalRoom, true, now.Add(600*time.Millisecond)) // past half the timeout
	if got := datas(bob, chat.EventTyping); strings.Join(got, " ") != `{"name":"ann","typing":true} {"name":"ann","typing":true}` {
		t.Fatalf("bob saw %v", got)
	}
	if got := ann.named(chat.EventTyping); len(got) != 0 {
		t.Fatalf("the typist was told of its own typing: %v", got)
	}
	// Not renewed within the timeout: it ends.
	n.expireTyping(now.Add(1500 * time.Millisecond)) // renewed at 600 ms: still on
	n.expireTyping(now.Add(1700 * time.Millisecond))
	if got := datas(bob, chat.EventTyping); strings.Join(got, " ") != `{"name":"ann","typing":false}` {
		t.Fatalf("after the timeout bob saw %v", got)
	}
	// Stopped, and stopped again (nothing more is sent).
	typing("room-a", true, now)
	typing("room-a", false, now)
	typing("room-a", false, now)
	if got := datas(bob, chat.EventTyping); strings.Join(got, " ") != `{"room":"room-a","name":"ann","typing":true} {"room":"room-a","name":"ann","typing":false}` {
		t.Fatalf("in room-a bob saw %v", got)
	}
	// A message ends it (StopTyping), and leaving ends it.
	typing(chat.GlobalRoom, true, now)
	n.StopTyping(ann, chat.GlobalRoom)
	typing("room-a", true, now)
	if err := n.Leave(ann, "room-a"); err != nil {
		t.Fatal(err)
	}
	typing(chat.GlobalRoom, true, now)
	n.Disconnect(ann)
	want := `{"name":"ann","typing":true} {"name":"ann","typing":false} {"room":"room-a","name":"ann","typing":true} ` +
		`{"room":"room-a","name":"ann","typing":false} {"name":"ann","typing":true} {"name":"ann","typing":false}`
	if got := datas(bob, chat.EventTyping); strings.Join(got, " ") != want {
		t.Fatalf("bob saw %v\nwant %s", got, want)
	}
	if err := n.Typing(ann, chat.GlobalRoom, true, now); !errors.Is(err, ErrNotMember) {
		t.Fatalf("typing after leaving: %v", err)
	}
	// Nothing of a typist stays in its rooms once it left them.
	for _, room := range []string{chat.GlobalRoom, "room-a"} {
		if r := n.lookup(room); r != nil {
			r.pmu.Lock()
			left := len(r.typists)
			r.pmu.Unlock()
			if left != 0 {
				t.Fatalf("%s still holds %d typists", room, left)
			}
		}
	}
}

// slowPresence answers after a delay, as a remote Redis does, and records
// how many syncs ran at once.
type slowPresence struct {
	mu                    sync.Mutex
	now, most, n, batches int
	largest               int
}

func (p *slowPresence) Sync(_ context.Context, _ string, v chat.PresenceView) (chat.PresenceView, error) {
	p.mu.Lock()
	p.n++
	p.mu.Unlock()
	return v, nil
}

func (p *slowPresence) SyncRooms(_ context.Context, rooms []chat.RoomView) ([]chat.PresenceView, error) {
	p.mu.Lock()
	p.now++
	p.n += len(rooms)
	p.batches++
	p.most = max(p.most, p.now)
	p.largest = max(p.largest, len(rooms))
	p.mu.Unlock()
	time.Sleep(5 * time.Millisecond)
	p.mu.Lock()
	p.now--
	p.mu.Unlock()
	return chat.LocalPresence{}.SyncRooms(context.Background(), rooms)
}

// A tick syncs its rooms in batches (one round trip each), several
// batches at a time, at most presenceSyncs: one room a round trip, a node
// holding thousands of rooms would tell presence late and cost Redis a
// round trip a room.
func TestPresenceSyncsRoomsInBatches(t *testing.T) {
	const rooms = 3*presenceBatch + 5
	names := make([]string, rooms)
	for i := range names {
		names[i] = fmt.Sprint("room-", i)
	}
	p := &slowPresence{}
	n := newNode(t, nodeOptions{presence: p, rooms: names})
	c := newConn("c", "ann")
	for _, r := range append([]string{chat.GlobalRoom}, names...) {
		if err := n.Join(c, r, JoinOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	c.take()
	n.presenceTick()
	if p.n != rooms+1 {
		t.Fatalf("%d rooms synced, want every room (%d)", p.n, rooms+1)
	}
	if p.batches != 4 || p.largest != presenceBatch {
		t.Fatalf("%d batches, the largest of %d rooms; want 4, at most %d", p.batches, p.largest, presenceBatch)
	}
	if p.most < 2 || p.most > presenceSyncs {
		t.Fatalf("at most %d batches at once, want 2 to %d", p.most, presenceSyncs)
	}
	if got := datas(c, chat.EventPresence); len(got) != rooms+1 {
		t.Fatalf("%d presence events, want one per room", len(got))
	}
}

// The view of a room of anonymous sockets, taken every presence tick,
// allocates nothing: sized by the members, its list of names cost 56
// bytes a member a second, for members that have no name.
func TestAnonymousMembersViewAllocatesNothing(t *testing.T) {
	n := newNode(t, nodeOptions{rooms: []string{"r-0"}})
	for i := range 100 {
		if err := n.Join(&memConn{id: fmt.Sprintf("c-%03d", i)}, "r-0", JoinOptions{Live: true}); err != nil {
			t.Fatal(err)
		}
	}
	r := n.lookup("r-0")
	allocs := testing.AllocsPerRun(100, func() {
		r.pmu.Lock()
		v := n.localViewLocked(r)
		r.pmu.Unlock()
		if v.Online != 100 || len(v.Users) != 0 {
			t.Fatalf("view %+v, want 100 online and no users", v)
		}
	})
	if allocs > 0 {
		t.Errorf("the view of 100 anonymous members allocates %.0f times, want none", allocs)
	}
}
