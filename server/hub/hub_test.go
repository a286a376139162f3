package hub

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scalable-chat-go/server/chat"
	"github.com/scalable-chat-go/server/inmem"
)

func TestNewRefusesWhatItCannotRunWithout(t *testing.T) {
	b := inmem.NewBus().Broker(inmem.BrokerOptions{})
	history := func(string) *chat.History { return chat.NewHistory(&memStore{}, 1) }
	ok := Options{Broker: b, History: history, Encoder: testEncoder{}, PresenceInterval: time.Second, TypingTimeout: time.Second}
	for name, o := range map[string]Options{
		"no broker":         {History: history, Encoder: testEncoder{}, PresenceInterval: time.Second, TypingTimeout: time.Second},
		"no history":        {Broker: b, Encoder: testEncoder{}, PresenceInterval: time.Second, TypingTimeout: time.Second},
		"no encoder":        {Broker: b, History: history, PresenceInterval: time.Second, TypingTimeout: time.Second},
		"no interval":       {Broker: b, History: history, Encoder: testEncoder{}, TypingTimeout: time.Second},
		"no global history": {Broker: b, History: func(string) *chat.History { return nil }, Encoder: testEncoder{}, PresenceInterval: time.Second, TypingTimeout: time.Second},
	} {
		if h, err := New(o); err == nil {
			h.Close()
			t.Errorf("%s: New succeeded", name)
		}
	}
	h, err := New(ok)
	if err != nil {
		t.Fatal(err)
	}
	h.Close()
}

// A newcomer gets the last HistoryLimit messages, oldest first, then the
// live ones, then who is online.
func TestJoinSendsHistoryThenLive(t *testing.T) {
	n := newNode(t, nodeOptions{historyLimit: 3})
	n.store.add(msg(1), msg(2), msg(3))
	n.Broadcast(chat.GlobalRoom, chat.MessageEvent(msg(4))) // in the ring, not yet stored
	c := newConn("c1", "ann")
	if err := n.Join(c, chat.GlobalRoom, JoinOptions{Mark: n.Mark(chat.GlobalRoom)}); err != nil {
		t.Fatal(err)
	}
	got := c.take()
	var names []string
	for _, f := range got {
		names = append(names, f.name+":"+f.msg.ID)
	}
	if want := "message:m-002 message:m-003 message:m-004 presence:"; strings.Join(names, " ") != want {
		t.Fatalf("sent %v, want %s", names, want)
	}
	n.Broadcast(chat.GlobalRoom, chat.MessageEvent(msg(5)))
	if got := c.messages(); !slices.Equal(got, []string{"m-005"}) {
		t.Fatalf("live: %v", got)
	}
	// Joining again sends nothing again.
	if err := n.Join(c, chat.GlobalRoom, JoinOptions{}); err != nil || len(c.take()) != 0 {
		t.Fatalf("a second join: %v, sent something", err)
	}
}

// A newcomer whose history read stalls holds up no one, and still gets,
// after its history, every message delivered while it was read: no gap,
// no duplicate.
func TestASlowNewcomerHoldsUpNoOneAndMissesNothing(t *testing.T) {
	n := newNode(t, nodeOptions{historyLimit: 5})
	n.store.add(msg(1), msg(2))
	old := newConn("old", "ann")
	if err := n.Join(old, chat.GlobalRoom, JoinOptions{Mark: n.Mark(chat.GlobalRoom)}); err != nil {
		t.Fatal(err)
	}
	old.take()

	n.store.mu.Lock()
	n.store.block, n.store.reading = make(chan struct{}), make(chan struct{}, 1)
	release := n.store.block
	n.store.mu.Unlock()
	slow := newConn("slow", "bob")
	mark := n.Mark(chat.GlobalRoom) // taken before it is told it is connected
	joined := make(chan error, 1)
	go func() { joined <- n.Join(slow, chat.GlobalRoom, JoinOptions{Mark: mark}) }()
	<-n.store.reading

	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 3; i <= 10; i++ {
			n.Broadcast(chat.GlobalRoom, chat.MessageEvent(msg(i)))
			// The store catches up meanwhile: the newest page it holds
			// would push the older ones out.
			n.store.add(msg(i))
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("broadcasts waited for a newcomer's history")
	}
	if got := old.messages(); !slices.Equal(got, ids(3, 10)) {
		t.Fatalf("the member already there got %v while the newcomer's history was read", got)
	}
	if got := slow.messages(); len(got) != 0 {
		t.Fatalf("the newcomer got %v before its history", got)
	}
	close(release)
	if err := <-joined; err != nil {
		t.Fatal(err)
	}
	// Its history (the stored ones, before the mark), then all that came
	// since the mark.
	if got := slow.messages(); !slices.Equal(got, ids(1, 10)) {
		t.Fatalf("the newcomer got %v, want m-001..m-010 once each, in order", got)
	}
}

// More messages while a history is read than the ring holds: the gap is
// counted.
func TestAJoinGapIsCounted(t *testing.T) {
	n := newNode(t, nodeOptions{historyLimit: 2, ring: 3})
	c := newConn("c", "ann")
	mark := n.Mark(chat.GlobalRoom)
	for i := 1; i <= 5; i++ {
		n.Broadcast(chat.GlobalRoom, chat.MessageEvent(msg(i)))
	}
	if err := n.Join(c, chat.GlobalRoom, JoinOptions{Mark: mark}); err != nil {
		t.Fatal(err)
	}
	if got := counter(t, n.m.joinGaps); got != 1 {
		t.Fatalf("chat_join_gaps_total = %v, want 1", got)
	}
	if got := c.messages(); !slices.Equal(got, ids(4, 5)) {
		t.Fatalf("it gets the latest page: %v", got)
	}
}

// A recovered member gets what it missed since its last message, and no
// history; when the ring lost its place, it resumes after that message.
func TestRecoveryResumesAfterTheLastMessage(t *testing.T) {
	n := newNode(t, nodeOptions{historyLimit: 50, ring: 5})
	a := newConn("a", "ann")
	if err := n.Join(a, chat.GlobalRoom, JoinOptions{}); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		n.Broadcast(chat.GlobalRoom, chat.MessageEvent(msg(i)))
	}
	n.Disconnect(a)
	for i := 4; i <= 5; i++ {
		n.Broadcast(chat.GlobalRoom, chat.MessageEvent(msg(i)))
	}
	if !n.Recoverable(chat.GlobalRoom, "m-003") || n.Recoverable(chat.GlobalRoom, "m-999") {
		t.Fatal("Recoverable is wrong about the ring")
	}
	back := newConn("a", "ann")
	if err := n.Join(back, chat.GlobalRoom, JoinOptions{RecoverFrom: "m-003"}); err != nil {
		t.Fatal(err)
	}
	if got := back.messages(); !slices.Equal(got, ids(4, 5)) {
		t.Fatalf("recovered: %v, want m-004 m-005", got)
	}

	// The ring moved past m-003 meanwhile: it resumes after it, from the
	// store and the ring, with no message twice.
	for i := 1; i <= 5; i++ {
		n.store.add(msg(i))
	}
	for i := 6; i <= 12; i++ {
		n.Broadcast(chat.GlobalRoom, chat.MessageEvent(msg(i)))
		n.store.add(msg(i))
	}
	late := newConn("late", "bob")
	if err := n.Join(late, chat.GlobalRoom, JoinOptions{Mark: n.Mark(chat.GlobalRoom), RecoverFrom: "m-003"}); err != nil {
		t.Fatal(err)
	}
	if got := late.messages(); !slices.Equal(got, ids(4, 12)) {
		t.Fatalf("resumed after a lost place: %v, want m-004..m-012", got)
	}
}

// A client that comes back to another node resumes after the newest
// message it saw (the first of ResumeAfter known here).
func TestResumeAfterTheNewestMessageSeen(t *testing.T) {
	n := newNode(t, nodeOptions{historyLimit: 50})
	for i := 1; i <= 6; i++ {
		n.store.add(msg(i))
	}
	c := newConn("c", "ann")
	if err := n.Join(c, chat.GlobalRoom, JoinOptions{ResumeAfter: []string{"unknown-here", "m-004", "m-002"}}); err != nil {
		t.Fatal(err)
	}
	if got := c.messages(); !slices.Equal(got, ids(5, 6)) {
		t.Fatalf("resumed: %v, want m-005 m-006", got)
	}
}

// Members of a room receive its events; members of another room, and
// those who left, do not.
func TestRoomsAreApart(t *testing.T) {
	n := newNode(t, nodeOptions{rooms: []string{"room-a"}})
	g, a := newConn("g", "ann"), newConn("a", "bob")
	for _, j := range []struct {
		c    *testConn
		room string
	}{{g, chat.GlobalRoom}, {a, chat.GlobalRoom}, {a, "room-a"}} {
		if err := n.Join(j.c, j.room, JoinOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	g.take()
	a.take()
	n.Broadcast("room-a", chat.MessageEvent(msg(1)))
	n.Broadcast(chat.GlobalRoom, chat.MessageEvent(msg(2)))
	if got := g.messages(); !slices.Equal(got, []string{"m-002"}) {
		t.Fatalf("a member of global only got %v", got)
	}
	if got := a.messages(); !slices.Equal(got, []string{"m-001", "m-002"}) {
		t.Fatalf("a member of both got %v", got)
	}
	if rooms := n.Rooms(a); len(rooms) != 2 {
		t.Fatalf("Rooms = %v", rooms)
	}
	if err := n.Leave(a, "room-a"); err != nil {
		t.Fatal(err)
	}
	if err := n.Leave(a, "room-a"); !errors.Is(err, ErrNotMember) {
		t.Fatalf("leaving twice: %v", err)
	}
	n.Broadcast("room-a", chat.MessageEvent(msg(3)))
	if got := a.messages(); len(got) != 0 {
		t.Fatalf("after leaving, got %v", got)
	}
	// A room that does not exist here: no join, its events dropped.
	if err := n.Join(g, "nowhere", JoinOptions{}); !errors.Is(err, ErrUnknownRoom) {
		t.Fatalf("joining an unknown room: %v", err)
	}
	n.Broadcast("nowhere", chat.MessageEvent(msg(4)))
	n.HandlePublication("nowhere", chat.MessageEvent(msg(4)))
	if got := g.take(); len(got) != 0 || n.Mark("nowhere") != 0 || n.Recoverable("nowhere", "m-001") {
		t.Fatalf("an unknown room's event reached %v", got)
	}
	if n.Connections() != 2 {
		t.Fatalf("Connections = %d", n.Connections())
	}
	n.Disconnect(a)
	n.Disconnect(a) // twice is fine
	if n.Connections() != 1 || n.Rooms(a) != nil {
		t.Fatal("a disconnected member is still counted")
	}
}

// Events from several senders at once reach every member in one order,
// which keeps each sender's.
func TestOrderUnderConcurrentDelivery(t *testing.T) {
	n := newNode(t, nodeOptions{})
	members := []*testConn{newConn("x", "x"), newConn("y", "y"), newConn("z", "z")}
	for _, c := range members {
		if err := n.Join(c, chat.GlobalRoom, JoinOptions{}); err != nil {
			t.Fatal(err)
		}
		c.take()
	}
	const senders, each = 4, 200
	var wg sync.WaitGroup
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				m := msg(s*1000 + i)
				m.ID = fmt.Sprintf("s%d-%03d", s, i)
				n.Broadcast(chat.GlobalRoom, chat.MessageEvent(m))
			}
		}()
	}
	wg.Wait()
	first := members[0].messages()
	if len(first) != senders*each {
		t.Fatalf("%d messages, want %d", len(first), senders*each)
	}
	last := map[string]string{}
	for _, id := range first {
		s := id[:2]
		if id <= last[s] {
			t.Fatalf("%s after %s: a sender's order was not kept", id, last[s])
		}
		last[s] = id
	}
	for _, c := range members[1:] {
		if got := c.messages(); !slices.Equal(got, first) {
			t.Fatalf("%s got another order than %s", c.id, members[0].id)
		}
	}
}

// An event of another node reaches this node's members once, even when it
// is published twice; a deleted message is dropped, and leaves the ring.
func TestEventsOfOtherNodes(t *testing.T) {
	bus := inmem.NewBus()
	a, b := newNode(t, nodeOptions{bus: bus, historyLimit: 10}), newNode(t, nodeOptions{bus: bus, historyLimit: 10})
	cb := newConn("cb", "bob")
	if err := b.Join(cb, chat.GlobalRoom, JoinOptions{}); err != nil {
		t.Fatal(err)
	}
	cb.take()
	a.Broadcast(chat.GlobalRoom, chat.MessageEvent(msg(1)))
	if got := cb.waitMessages(t, 1); !slices.Equal(got, []string{"m-001"}) {
		t.Fatalf("from the other node: %v", got)
	}
	b.HandlePublication(chat.GlobalRoom, chat.MessageEvent(msg(1))) // published again
	b.HandlePublication(chat.GlobalRoom, chat.DeletionEvent(chat.Deletion{ID: "m-002"}))
	b.HandlePublication(chat.GlobalRoom, chat.MessageEvent(msg(2))) // deleted before it came
	b.HandlePublication(chat.GlobalRoom, chat.MessageEvent(msg(3)))
	got := cb.take()
	var seen []string
	for _, f := range got {
		seen = append(seen, f.name+":"+f.msg.ID+f.data)
	}
	if want := `message:deleted:{"id":"m-002"} message:m-003`; strings.Join(seen, " ") != want {
		t.Fatalf("delivered %v, want %s", seen, want)
	}
	// The deletion reaches a newcomer's history too.
	b.HandlePublication(chat.GlobalRoom, chat.DeletionEvent(chat.Deletion{ID: "m-001"}))
	late := newConn("late", "cid")
	if err := b.Join(late, chat.GlobalRoom, JoinOptions{Mark: b.Mark(chat.GlobalRoom)}); err != nil {
		t.Fatal(err)
	}
	if got := late.messages(); !slices.Equal(got, []string{"m-003"}) {
		t.Fatalf("a newcomer's history: %v, want m-003 alone", got)
	}
}

// An event addressed to a user reaches that user's connections on every
// node, and no one else.
func TestUserEvents(t *testing.T) {
	bus := inmem.NewBus()
	a, b := newNode(t, nodeOptions{bus: bus}), newNode(t, nodeOptions{bus: bus})
	mine, other, remote := newConn("m", "zoë"), newConn("o", "ann"), newConn("r", "zoë (phone)")
	mine.userID, remote.userID, other.userID = "u-1", "u-1", "u-2"
	for _, j := range []struct {
		n *node
		c *testConn
	}{{a, mine}, {a, other}, {b, remote}} {
		if err := j.n.Join(j.c, chat.GlobalRoom, JoinOptions{}); err != nil {
			t.Fatal(err)
		}
		j.c.take()
	}
	a.SendUser("u-1", chat.Event{Name: "room:invited", Data: map[string]string{"room": "r-1"}})
	if got := mine.named("room:invited"); len(got) != 1 || got[0].data != `{"room":"r-1"}` {
		t.Fatalf("this node's connection of the user got %+v", got)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		remote.mu.Lock()
		k := len(remote.frames)
		remote.mu.Unlock()
		if k > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the user's connection on the other node got nothing")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := remote.named("room:invited"); len(got) != 1 {
		t.Fatalf("the other node's connection of the user got %+v", got)
	}
	if got := other.take(); len(got) != 0 {
		t.Fatalf("another user got %+v", got)
	}
	a.Disconnect(mine)
	a.SendUser("u-1", chat.Event{Name: "x", Data: 1})
	if got := mine.take(); len(got) != 0 {
		t.Fatalf("a gone connection got %+v", got)
	}
}

func TestDeliveryLabel(t *testing.T) {
	for in, want := range map[string]string{"message": "message", "typing": "typing", "presence": "presence",
		"message:deleted": "message:deleted", "anything": "other"} {
		if got := deliveryLabel(in); got != want {
			t.Errorf("deliveryLabel(%q) = %q", in, got)
		}
	}
}

// An event that cannot be encoded is counted, and delivered to no one.
func TestAnEventThatCannotBeEncodedIsCounted(t *testing.T) {
	n := newNode(t, nodeOptions{})
	c := newConn("c", "ann")
	if err := n.Join(c, chat.GlobalRoom, JoinOptions{}); err != nil {
		t.Fatal(err)
	}
	c.take()
	n.Broadcast(chat.GlobalRoom, chat.Event{Name: "bad", Data: func() {}})
	n.SendUser("u", chat.Event{Name: "bad", Data: make(chan int)})
	if got := c.take(); len(got) != 0 || counter(t, n.m.broadcastErrors) != 1 {
		t.Fatalf("sent %v; errors %v", got, counter(t, n.m.broadcastErrors))
	}
}

// A panic in the loop's work is recovered and counted.
func TestGuardRecovers(t *testing.T) {
	n := newNode(t, nodeOptions{})
	n.guard("test", func() { panic("boom") })
	if counter(t, n.m.panics) != 1 {
		t.Fatal("the panic was not counted")
	}
}

// An event to a user moves its connections in and out of a room: a
// joining connection gets the event, then the room's events; a leaving
// one gets the event, then nothing of the room.
func TestUserEventsMoveConnections(t *testing.T) {
	bus := inmem.NewBus()
	a := newNode(t, nodeOptions{bus: bus, rooms: []string{"room-a"}})
	b := newNode(t, nodeOptions{bus: bus, rooms: []string{"room-a"}})
	here, there, owner := newConn("here", "zoë"), newConn("there", "zoë (phone)"), newConn("owner", "ann")
	here.userID, there.userID = "u-1", "u-1"
	for _, j := range []struct {
		n    *node
		c    *testConn
		room string
	}{{a, here, chat.GlobalRoom}, {b, there, chat.GlobalRoom}, {a, owner, "room-a"}} {
		if err := j.n.Join(j.c, j.room, JoinOptions{}); err != nil {
			t.Fatal(err)
		}
		j.c.take()
	}
	a.SendUser("u-1", chat.Event{Name: "room:invited", Data: map[string]string{"room": "room-a"}, Join: "room-a"})
	waitFrames(t, there, 2)
	for _, c := range []*testConn{here, there} {
		// The invitation first, then the room's presence, as for any join.
		if got := c.take(); len(got) != 2 || got[0].name != "room:invited" || got[1].name != chat.EventPresence {
			t.Fatalf("%s got %+v", c.id, got)
		}
	}
	if !a.IsMember(here, "room-a") || !b.IsMember(there, "room-a") {
		t.Fatal("the invited connections are not in the room")
	}
	a.Broadcast("room-a", chat.MessageEvent(msg(1)))
	if got := here.messages(); !slices.Equal(got, []string{"m-001"}) {
		t.Fatalf("after the invitation, here got %v", got)
	}
	if got := there.waitMessages(t, 1); !slices.Equal(got, []string{"m-001"}) {
		t.Fatalf("after the invitation, there got %v", got)
	}
	// Invited again: the event comes, nothing else changes.
	a.SendUser("u-1", chat.Event{Name: "room:invited", Data: map[string]string{"room": "room-a"}, Join: "room-a"})
	if got := here.take(); len(got) != 1 {
		t.Fatalf("invited twice: %+v", got)
	}
	waitFrames(t, there, 1)
	there.take()
	// Removed, except on the connection that asked.
	a.SendUser("u-1", chat.Event{Name: "room:removed", Data: map[string]string{"room": "room-a"}, Leave: "room-a", Except: "here"})
	waitFrames(t, there, 1)
	if got := there.take(); len(got) != 1 || got[0].name != "room:removed" || b.IsMember(there, "room-a") {
		t.Fatalf("removed: %+v, member %v", got, b.IsMember(there, "room-a"))
	}
	if got := here.take(); len(got) != 0 || !a.IsMember(here, "room-a") {
		t.Fatalf("the excepted connection got %+v", got)
	}
	// A room not known here: the connection just gets the event.
	a.SendUser("u-1", chat.Event{Name: "room:invited", Join: "nowhere"})
	if got := here.take(); len(got) != 1 {
		t.Fatalf("an invitation to an unknown room: %+v", got)
	}
}

// An event that closes a room takes every member out, on every node.
func TestCloseRoom(t *testing.T) {
	bus := inmem.NewBus()
	a := newNode(t, nodeOptions{bus: bus, rooms: []string{"room-a"}})
	b := newNode(t, nodeOptions{bus: bus, rooms: []string{"room-a"}})
	x, y := newConn("x", "x"), newConn("y", "y")
	if err := a.Join(x, "room-a", JoinOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := b.Join(y, "room-a", JoinOptions{}); err != nil {
		t.Fatal(err)
	}
	x.take()
	y.take()
	a.Broadcast("room-a", chat.Event{Name: "room:deleted", Data: map[string]string{"room": "room-a"}, Close: true})
	waitFrames(t, y, 1)
	for _, n := range []struct {
		n *node
		c *testConn
	}{{a, x}, {b, y}} {
		if got := n.c.take(); len(got) != 1 || got[0].name != "room:deleted" {
			t.Fatalf("%s got %+v", n.c.id, got)
		}
		deadline := time.Now().Add(5 * time.Second)
		for n.n.IsMember(n.c, "room-a") {
			if time.Now().After(deadline) {
				t.Fatalf("%s is still in the closed room", n.c.id)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	// A node with no member in the room publishes its events on.
	b.Disconnect(y)
	y2 := newConn("y2", "y")
	if err := b.Join(y2, "room-a", JoinOptions{}); err != nil {
		t.Fatal(err)
	}
	y2.take()
	a.presenceTick() // a's empty room-a is dropped
	if a.History("room-a") != nil || a.History(chat.GlobalRoom) == nil {
		t.Fatal("a room without members is still held")
	}
	a.Broadcast("room-a", chat.MessageEvent(msg(7)))
	if got := y2.waitMessages(t, 1); !slices.Equal(got, []string{"m-007"}) {
		t.Fatalf("through a node without members: %v", got)
	}
}

// Joining again sends the history again, with no gap and no duplicate.
func TestRejoinSendsTheHistoryAgain(t *testing.T) {
	n := newNode(t, nodeOptions{historyLimit: 3})
	c := newConn("c", "ann")
	if err := n.Rejoin(c, chat.GlobalRoom); !errors.Is(err, ErrNotMember) {
		t.Fatalf("Rejoin before joining: %v", err)
	}
	if err := n.Join(c, chat.GlobalRoom, JoinOptions{}); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 4; i++ {
		n.Broadcast(chat.GlobalRoom, chat.MessageEvent(msg(i)))
	}
	c.take()
	if err := n.Rejoin(c, chat.GlobalRoom); err != nil {
		t.Fatal(err)
	}
	n.Broadcast(chat.GlobalRoom, chat.MessageEvent(msg(5)))
	if got := c.messages(); !slices.Equal(got, ids(2, 5)) {
		t.Fatalf("after Rejoin: %v, want m-002..m-005", got)
	}
}

// A live join sends no history: only what comes after its mark.
func TestLiveJoin(t *testing.T) {
	n := newNode(t, nodeOptions{historyLimit: 10})
	n.store.add(msg(1), msg(2))
	mark := n.Mark(chat.GlobalRoom)
	n.Broadcast(chat.GlobalRoom, chat.MessageEvent(msg(3)))
	c := newConn("c", "ann")
	if err := n.Join(c, chat.GlobalRoom, JoinOptions{Mark: mark, Live: true}); err != nil {
		t.Fatal(err)
	}
	if got := c.messages(); !slices.Equal(got, []string{"m-003"}) {
		t.Fatalf("a live join got %v, want m-003 alone", got)
	}
	// Resuming, it gets what it missed after its offset.
	d := newConn("d", "bob")
	if err := n.Join(d, chat.GlobalRoom, JoinOptions{Mark: n.Mark(chat.GlobalRoom), Live: true, ResumeAfter: []string{"m-001"}}); err != nil {
		t.Fatal(err)
	}
	if got := d.messages(); !slices.Equal(got, ids(2, 3)) {
		t.Fatalf("a live join resuming after m-001 got %v", got)
	}
}

// waitFrames waits until c holds n frames.
func waitFrames(t *testing.T, c *testConn, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.mu.Lock()
		k := len(c.frames)
		c.mu.Unlock()
		if k >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: waited 5 s for %d frames, has %d", c.id, n, k)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The broker hears of a room when its first member joins this node and
// when its last one leaves (by leaving, disconnecting, or the room
// closing), and never of the global room: a node that routes receives
// exactly the rooms it has members in.
func TestRoomSubscriptionsFollowTheMembers(t *testing.T) {
	subs := &subscriptions{}
	n := newNode(t, nodeOptions{rooms: []string{"room-a", "room-b"}, subs: subs})
	a, b := newConn("a", "ann"), newConn("b", "bob")
	step := func(what string, want []string, do func() error) {
		t.Helper()
		if err := do(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if got := subs.take(); !slices.Equal(got, want) {
			t.Fatalf("%s: the broker heard %v, want %v", what, got, want)
		}
	}
	step("ann joins global", nil, func() error { return n.Join(a, chat.GlobalRoom, JoinOptions{}) })
	step("ann joins room-a", []string{"+room-a"}, func() error { return n.Join(a, "room-a", JoinOptions{}) })
	step("bob joins room-a", nil, func() error { return n.Join(b, "room-a", JoinOptions{}) })
	step("ann joins room-a again", nil, func() error { return n.Join(a, "room-a", JoinOptions{}) })
	step("ann leaves room-a", nil, func() error { return n.Leave(a, "room-a") })
	step("bob disconnects", []string{"-room-a"}, func() error { n.Disconnect(b); return nil })
	step("ann joins room-a and room-b", []string{"+room-a", "+room-b"}, func() error {
		if err := n.Join(a, "room-a", JoinOptions{}); err != nil {
			return err
		}
		return n.Join(a, "room-b", JoinOptions{})
	})
	step("room-b closes", []string{"-room-b"}, func() error {
		n.Broadcast("room-b", chat.Event{Name: "room:deleted", Data: "room-b", Close: true})
		return nil
	})
	step("ann disconnects", []string{"-room-a"}, func() error { n.Disconnect(a); return nil })
}
