package hub

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/scalable-chat-go/server/chat"
)

// logBus is an ordered log in memory, shared by the nodes of a test: the
// logic of an ordered broker (chat.OrderedBroker) without Redis, handing
// entries over synchronously so that each step of a test is exact. The
// Redis broker's own test covers the real stream.
type logBus struct {
	mu      sync.Mutex
	entries []logBusEntry
	nodes   []*logBroker
	ms      uint64
}

type logBusEntry struct {
	pos  chat.Position
	room string
	e    chat.Event
	from *logBroker
}

// logBroker is one node on a logBus.
type logBroker struct {
	bus    *logBus
	events []chat.BrokerEventHandler

	mu      sync.Mutex
	down    bool          // the link: while down, nothing is read, publications wait
	slow    bool          // publications wait, the link still up
	waiting []logBusEntry // publications waiting for the link
	next    int           // the next entry of the bus to hand over
	floor   chat.Position // where this node's reading starts
	dead    bool          // crashed: hands nothing over any more
	pumping sync.Mutex    // one hand-over at a time, in order
}

var _ chat.OrderedBroker = (*logBroker)(nil)

// node starts a broker that reads the bus from its last seed entries.
func (b *logBus) node(seed int) *logBroker {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := &logBroker{bus: b, next: max(0, len(b.entries)-seed)}
	if n.next > 0 {
		n.floor = b.entries[n.next-1].pos
	}
	b.nodes = append(b.nodes, n)
	return n
}

func (n *logBroker) Ordered() bool { return true }
func (n *logBroker) Linked() bool  { n.mu.Lock(); defer n.mu.Unlock(); return !n.down }
func (n *logBroker) Floor() (chat.Position, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.floor, true
}
func (n *logBroker) Nodes() int64                                    { return int64(len(n.bus.nodes)) }
func (n *logBroker) RegisterEventHandler(h chat.BrokerEventHandler)  { n.events = append(n.events, h) }
func (n *logBroker) RegisterControlHandler(chat.ControlEventHandler) {}
func (n *logBroker) Run() error                                      { n.pump(); return nil }
func (n *logBroker) Close(context.Context) error                     { return nil }
func (n *logBroker) PublishUser(string, chat.Event)                  {}
func (n *logBroker) PublishControl(chat.Event)                       {}

// Subscribe and Unsubscribe do nothing: the log brings every node every
// room's events, as Redis streams do.
func (n *logBroker) Subscribe(string)                         {}
func (n *logBroker) Unsubscribe(string)                       {}
func (n *logBroker) Subscribed(context.Context, string) error { return nil }

// Publish appends e to the log (or keeps it while the link is down), then
// every node reads what is new.
func (n *logBroker) Publish(room string, e chat.Event) {
	n.mu.Lock()
	if n.down || n.slow {
		n.waiting = append(n.waiting, logBusEntry{room: room, e: e, from: n})
		n.mu.Unlock()
		return
	}
	n.mu.Unlock()
	n.bus.append(logBusEntry{room: room, e: e, from: n})
	n.bus.pumpAll()
}

func (b *logBus) append(x logBusEntry) {
	b.mu.Lock()
	b.ms++
	x.pos = chat.Position{Ms: 1_000 + b.ms}
	sent := x.e.Sent
	x.e.Sent = nil
	b.entries = append(b.entries, x)
	b.mu.Unlock()
	if sent != nil {
		sent(nil)
	}
}

func (b *logBus) pumpAll() {
	b.mu.Lock()
	nodes := slices.Clone(b.nodes)
	b.mu.Unlock()
	for _, n := range nodes {
		n.pump()
	}
}

// setDown cuts the link (or restores it: what waited goes to the log).
func (n *logBroker) setDown(down bool) {
	n.mu.Lock()
	n.down = down
	waiting := n.waiting
	if !down {
		n.waiting = nil
	}
	n.mu.Unlock()
	if down {
		return
	}
	for _, x := range waiting {
		n.bus.append(x)
	}
	n.bus.pumpAll()
}

// pump hands the node the log's entries it has not read, in order.
func (n *logBroker) pump() {
	n.pumping.Lock()
	defer n.pumping.Unlock()
	for {
		n.mu.Lock()
		if n.dead || n.down {
			n.mu.Unlock()
			return
		}
		n.bus.mu.Lock()
		if n.next >= len(n.bus.entries) {
			n.bus.mu.Unlock()
			n.mu.Unlock()
			return
		}
		x := n.bus.entries[n.next]
		n.next++
		n.bus.mu.Unlock()
		n.mu.Unlock()
		e := x.e
		e.Pos = x.pos
		if x.from == n {
			if !e.IsMessage() {
				continue
			}
			e.Own = true
		}
		for _, h := range n.events {
			h.HandlePublication(x.room, e)
		}
	}
}

// orderedNode is a hub on a logBus.
type orderedNode struct {
	*Hub
	b     *logBroker
	store *memStore
	reg   *prometheus.Registry
}

func newOrderedNode(t *testing.T, bus *logBus, store *memStore, o nodeOptions) *orderedNode {
	t.Helper()
	if o.ring == 0 {
		o.ring = 100
	}
	b := bus.node(1_000)
	histories := map[string]*chat.History{chat.GlobalRoom: chat.NewHistory(store, o.ring)}
	for _, r := range o.rooms {
		histories[r] = chat.NewRoomHistory(store, r, o.ring)
	}
	reg := prometheus.NewRegistry()
	h, err := New(Options{
		Broker:            b,
		History:           func(room string) *chat.History { return histories[room] },
		Encoder:           testEncoder{},
		HistoryLimit:      o.historyLimit,
		PresenceInterval:  time.Hour,
		PresenceListLimit: 100,
		TypingTimeout:     time.Second,
		LogSize:           1_000,
		EarlyAfter:        time.Hour,
		Registerer:        reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !h.Ordered() {
		t.Fatal("a hub on an ordered broker is not ordered")
	}
	b.RegisterEventHandler(h)
	_ = b.Run()
	t.Cleanup(h.Close)
	return &orderedNode{Hub: h, b: b, store: store, reg: reg}
}

// crash stops the node: it reads nothing more, and its connections are
// gone with it.
func (n *orderedNode) crash() {
	n.b.mu.Lock()
	n.b.dead = true
	n.b.mu.Unlock()
}

func (n *orderedNode) say(room string, m chat.Message) {
	if room != chat.GlobalRoom {
		m.Room = room
	}
	n.Broadcast(room, chat.MessageEvent(m))
}

// received is what a client got: message ids in order, and its last place.
func received(c *testConn) (got []string, last string) {
	for _, f := range c.named(chat.EventMessage) {
		got = append(got, f.msg.ID)
		last = f.place
	}
	return got, last
}

// comeBack connects c again to n with the place it last had.
func comeBack(t *testing.T, n *orderedNode, c *testConn, place string, rooms ...string) {
	t.Helper()
	p, ok := ParsePlace(place)
	if !ok {
		t.Fatalf("the last offset %q is no place", place)
	}
	if err := n.Join(c, chat.GlobalRoom, JoinOptions{Since: &p, Back: true, Also: rooms}); err != nil {
		t.Fatal(err)
	}
}

func TestOrderedNodesDeliverInTheLogsOrder(t *testing.T) {
	bus := &logBus{}
	a, b := newOrderedNode(t, bus, &memStore{}, nodeOptions{}), newOrderedNode(t, bus, &memStore{}, nodeOptions{})
	ca, cb := newConn("ca", "a"), newConn("cb", "b")
	for n, c := range map[*orderedNode]*testConn{a: ca, b: cb} {
		p, _ := n.Place()
		if err := n.Join(c, chat.GlobalRoom, JoinOptions{Since: &p}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= 6; i++ {
		[]*orderedNode{a, b}[i%2].say(chat.GlobalRoom, msg(i))
	}
	gotA, lastA := received(ca)
	gotB, lastB := received(cb)
	if !slices.Equal(gotA, ids(1, 6)) || !slices.Equal(gotB, ids(1, 6)) {
		t.Fatalf("a got %v, b got %v; want %v on both", gotA, gotB, ids(1, 6))
	}
	if lastA != lastB || lastA != "1006-0" {
		t.Fatalf("last places %q and %q, want both at the log's sixth entry", lastA, lastB)
	}
}

func TestOrderedClientComesBackAfterACrashMissingNothing(t *testing.T) {
	for _, where := range []string{"the restarted node", "another node"} {
		t.Run(where, func(t *testing.T) {
			bus := &logBus{}
			a, b := newOrderedNode(t, bus, &memStore{}, nodeOptions{rooms: []string{"r1"}}), newOrderedNode(t, bus, &memStore{}, nodeOptions{rooms: []string{"r1"}})
			c := newConn("c", "carol")
			p, _ := a.Place()
			if err := a.Join(c, chat.GlobalRoom, JoinOptions{Since: &p, Also: []string{"r1"}}); err != nil {
				t.Fatal(err)
			}
			b.say(chat.GlobalRoom, msg(1))
			a.say("r1", msg(2))
			got, last := received(c)
			if !slices.Equal(got, ids(1, 2)) {
				t.Fatalf("before the crash: %v", got)
			}
			// a crashes with a message of b's on its way to it: the client
			// saw up to m-002, and the log goes on without a.
			a.crash()
			b.say("r1", msg(3))
			b.say(chat.GlobalRoom, msg(4))
			b.say("r2", msg(5)) // a room the client is not in
			b.say(chat.GlobalRoom, msg(6))

			to := b
			if where == "the restarted node" {
				to = newOrderedNode(t, bus, &memStore{}, nodeOptions{rooms: []string{"r1"}})
			}
			c2 := newConn("c2", "carol")
			comeBack(t, to, c2, last, "r1")
			b.say("r1", msg(7))
			got, _ = received(c2)
			if want := []string{"m-003", "m-004", "m-006", "m-007"}; !slices.Equal(got, want) {
				t.Fatalf("came back and got %v, want %v: nothing missed, nothing twice", got, want)
			}
			if n := testutil.ToFloat64(to.m.resumed); n != 1 {
				t.Fatalf("chat_resumed_total %v", n)
			}
		})
	}
}

func TestOrderedEarlyDeliveryWhileTheLinkIsDown(t *testing.T) {
	bus := &logBus{}
	a, b := newOrderedNode(t, bus, &memStore{}, nodeOptions{}), newOrderedNode(t, bus, &memStore{}, nodeOptions{})
	ca, cb := newConn("ca", "a"), newConn("cb", "b")
	for n, c := range map[*orderedNode]*testConn{a: ca, b: cb} {
		p, _ := n.Place()
		_ = n.Join(c, chat.GlobalRoom, JoinOptions{Since: &p})
	}
	a.say(chat.GlobalRoom, msg(1))
	a.b.setDown(true)
	a.say(chat.GlobalRoom, msg(2)) // delivered on a at once (early), b does not have it
	b.say(chat.GlobalRoom, msg(3)) // b's, a does not have it
	gotA, lastA := received(ca)
	if !slices.Equal(gotA, ids(1, 2)) || !strings.HasSuffix(lastA, ".m-002") {
		t.Fatalf("a's client got %v, last place %q: want m-002 early, listed", gotA, lastA)
	}
	if n := testutil.ToFloat64(a.m.early); n != 1 {
		t.Fatalf("chat_early_deliveries_total %v", n)
	}
	// The client leaves a for b while a's link is down (say a dies); b
	// sends it what it missed, but never the early m-002, even once the
	// link brings it to b.
	c2 := newConn("c2", "a")
	comeBack(t, b, c2, lastA)
	a.b.setDown(false)
	got, _ := received(c2)
	if !slices.Equal(got, []string{"m-003"}) {
		t.Fatalf("came back to b: %v, want m-003 only", got)
	}
	gotB, _ := received(cb)
	if !slices.Equal(gotB, []string{"m-001", "m-003", "m-002"}) {
		t.Fatalf("b's client got %v", gotB)
	}
	// Back on a's side, m-002 came back from the log: not delivered again.
	gotA, _ = received(ca)
	if !slices.Equal(gotA, []string{"m-003"}) {
		t.Fatalf("a's client got %v after the link came back", gotA)
	}
	a.say(chat.GlobalRoom, msg(4))
	if _, lastA = received(ca); strings.Contains(lastA, ".") {
		t.Fatalf("the place still lists early messages: %q", lastA)
	}
}

func TestOrderedSlowLinkIsWaitedForAFailedOneIsNot(t *testing.T) {
	bus := &logBus{}
	a := newOrderedNode(t, bus, &memStore{}, nodeOptions{})
	c := newConn("c", "c")
	p, _ := a.Place()
	_ = a.Join(c, chat.GlobalRoom, JoinOptions{Since: &p})
	a.b.mu.Lock()
	a.b.slow = true
	a.b.mu.Unlock()
	a.say(chat.GlobalRoom, msg(1))
	time.Sleep(4 * earlyCheck)
	if got, _ := received(c); len(got) != 0 {
		t.Fatalf("delivered early %v while the link works", got)
	}
	// The link fails now (a publication failed): the message goes at once.
	a.b.mu.Lock()
	a.b.down = true
	a.b.mu.Unlock()
	if got := c.waitMessages(t, 1); !slices.Equal(got, []string{"m-001"}) {
		t.Fatalf("got %v", got)
	}
}

func TestOrderedComingBackFromBeforeTheLogIsACountedGap(t *testing.T) {
	bus := &logBus{}
	a := newOrderedNode(t, bus, &memStore{}, nodeOptions{historyLimit: 2})
	for i := 1; i <= 5; i++ {
		a.say(chat.GlobalRoom, msg(i))
	}
	// A node that read only the last two entries cannot know what came
	// after the first.
	late := bus.node(2)
	h, err := New(Options{Broker: late, History: func(string) *chat.History { return chat.NewHistory(&memStore{}, 10) },
		Encoder: testEncoder{}, HistoryLimit: 2, PresenceInterval: time.Hour, TypingTimeout: time.Second, LogSize: 10, EarlyAfter: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	late.RegisterEventHandler(h)
	late.pump()
	c := newConn("c", "c")
	p, _ := ParsePlace("1001-0")
	if h.CanResume(p) {
		t.Fatal("CanResume from before the log")
	}
	if err := h.Join(c, chat.GlobalRoom, JoinOptions{Since: &p, Back: true}); err != nil {
		t.Fatal(err)
	}
	got, _ := received(c)
	if !slices.Equal(got, ids(4, 5)) {
		t.Fatalf("got %v, want the latest page", got)
	}
	if n := testutil.ToFloat64(h.m.resumeGaps.WithLabelValues("log")); n != 1 {
		t.Fatalf("chat_resume_gaps_total{reason=log} %v", n)
	}
	if ok, _ := ParsePlace("1004-0"); !h.CanResume(ok) {
		t.Fatal("cannot resume from inside the log")
	}
}

func TestOrderedClientAheadOfTheNodeIsNotSentWhatItHas(t *testing.T) {
	bus := &logBus{}
	a := newOrderedNode(t, bus, &memStore{}, nodeOptions{})
	b := newOrderedNode(t, bus, &memStore{}, nodeOptions{})
	// b lags: it reads nothing until told.
	b.b.mu.Lock()
	b.b.dead = true
	b.b.mu.Unlock()
	ca := newConn("ca", "a")
	p, _ := a.Place()
	_ = a.Join(ca, chat.GlobalRoom, JoinOptions{Since: &p})
	a.say(chat.GlobalRoom, msg(1))
	a.say(chat.GlobalRoom, msg(2))
	_, last := received(ca)
	c2 := newConn("c2", "a")
	comeBack(t, b, c2, last)
	a.say(chat.GlobalRoom, msg(3))
	b.b.mu.Lock()
	b.b.dead = false
	b.b.mu.Unlock()
	b.b.pump()
	if got, _ := received(c2); !slices.Equal(got, []string{"m-003"}) {
		t.Fatalf("got %v, want m-003 only: the client had the rest", got)
	}
}

func TestOrderedNewcomerGetsHistoryThenWhatCameMeanwhile(t *testing.T) {
	bus := &logBus{}
	store := &memStore{}
	a := newOrderedNode(t, bus, store, nodeOptions{historyLimit: 3, rooms: []string{"r1"}})
	for i := 1; i <= 4; i++ {
		a.say(chat.GlobalRoom, msg(i))
	}
	c := newConn("c", "c")
	mark, _ := a.Place() // told it is connected here
	a.say("r1", msg(5))
	a.say(chat.GlobalRoom, msg(6))
	if err := a.Join(c, chat.GlobalRoom, JoinOptions{Since: &mark, Also: []string{"r1"}}); err != nil {
		t.Fatal(err)
	}
	a.say(chat.GlobalRoom, msg(7))
	got, _ := received(c)
	if want := []string{"m-002", "m-003", "m-004", "m-005", "m-006", "m-007"}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestOrderedRetryIsKnownAsDelivered(t *testing.T) {
	bus := &logBus{}
	a := newOrderedNode(t, bus, &memStore{}, nodeOptions{})
	b := newOrderedNode(t, bus, &memStore{}, nodeOptions{})
	a.say(chat.GlobalRoom, msg(1))
	if !b.Delivered(chat.GlobalRoom, "m-001") || b.Delivered(chat.GlobalRoom, "m-002") {
		t.Fatal("Delivered")
	}
	// Broadcast again (a retry that raced its first): not delivered twice.
	c := newConn("c", "c")
	p, _ := b.Place()
	_ = b.Join(c, chat.GlobalRoom, JoinOptions{Since: &p})
	sent := make(chan error, 1)
	e := chat.MessageEvent(msg(1))
	e.Sent = func(err error) { sent <- err }
	b.Broadcast(chat.GlobalRoom, e)
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if got, _ := received(c); len(got) != 0 {
		t.Fatalf("got %v again", got)
	}
}

func TestPlaceString(t *testing.T) {
	for _, tt := range []struct {
		p    Place
		want string
	}{
		{Place{Pos: chat.Position{Ms: 1733550000000, Seq: 3}}, "1733550000000-3"},
		{Place{Pos: chat.Position{Ms: 5}, Early: []string{"a", "b"}}, "5-0.a.b"},
		{Place{Pos: chat.Position{Ms: 5}, Early: []string{"a"}, More: true}, "5-0.a+"},
	} {
		if got := tt.p.String(); got != tt.want {
			t.Errorf("%+v: %q, want %q", tt.p, got, tt.want)
		}
		back, ok := ParsePlace(tt.want)
		if !ok || back.String() != tt.want {
			t.Errorf("ParsePlace(%q) = %+v, %v", tt.want, back, ok)
		}
	}
	for _, bad := range []string{"", "x", "1-", "-1", "1-1.", "1-1..a", "0190f7b2-8c1e-7000-8000-000000000001", "1-1.a.b.c.d.e",
		"1-1~2", fmt.Sprint("1-1.", strings.Repeat("x", MaxPlaceLength))} {
		if _, ok := ParsePlace(bad); ok {
			t.Errorf("ParsePlace(%q) ok", bad)
		}
	}
}
