package hub

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scalable-chat-go/server/chat"
)

// Frame is an event encoded for the wire: the Encoder makes it once, and
// every recipient's Conn.Send gets it as it is.
type Frame any

// fanouter is a Frame told how many connections it is about to be sent
// to: the edge writes a frame of a few recipients from the sender's
// goroutine, and leaves a large fanout to its writers on every core.
type fanouter interface{ Fanout(n int) }

// fanout tells f, when it listens, that it goes to n connections.
func fanout(f Frame, n int) {
	if fo, ok := f.(fanouter); ok {
		fo.Fanout(n)
	}
}

// Encoder encodes the events the hub delivers (the edge's protocol).
type Encoder interface {
	// Message encodes a `message` event of m, with its recovery offset.
	Message(m chat.Message, at Offset) (Frame, error)
	// Event encodes any other event, with data as its only argument.
	Event(name string, data any) (Frame, error)
}

// Conn is a connection of this node as the hub sees it.
type Conn interface {
	// ID identifies the connection on this node (the Socket.IO socket id):
	// an event's Except names it.
	ID() string
	// Send queues f for the connection. It must not block: a connection
	// that cannot keep up is the transport's to close.
	Send(f Frame)
	// Identity is who the connection is now (its name may change).
	Identity() Identity
}

// Identity is who a connection is: the name it gave ("" until it gives
// one), its verified user id ("" when anonymous, fixed for the
// connection's life) and when it connected.
type Identity struct {
	Name, UserID string
	Since        time.Time
}

// Options configure a Hub. Values are taken as given: the configuration
// owns the defaults.
type Options struct {
	// Broker links the hubs of the cluster; required (a memory broker for
	// a node alone).
	Broker chat.Broker
	// Presence syncs each room's presence with the other nodes
	// (chat.LocalPresence when nil).
	Presence chat.Presence
	// History returns the history of a room, once per room; required. The
	// hub records what it delivers there, and answers newcomers from it.
	// nil means the room does not exist here: its events are dropped
	// (counted in chat_unknown_room_events_total) and nobody joins it.
	History func(room string) *chat.History
	// Encoder encodes events for the connections; required.
	Encoder Encoder
	// HistoryLimit is how many messages a newcomer receives (0: none).
	HistoryLimit int
	// PresenceInterval is the most often presence is sent, and how often
	// typing expires; PresenceListLimit is the most users `presence` lists
	// (above it only the count is sent).
	PresenceInterval  time.Duration
	PresenceListLimit int
	// TypingTimeout ends a typing not renewed within it.
	TypingTimeout time.Duration
	// On an ordered broker (chat.OrderedBroker, see order.go): LogSize is
	// how many of the log's latest messages the node keeps for clients
	// that come back (at least 1), and EarlyAfter how long its own message
	// may take to come back from the log, while the link works, before it
	// is delivered at once (0: at once, always; while the link fails, at
	// once too).
	LogSize    int
	EarlyAfter time.Duration

	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Hub is the connections of this node by room. It is the chat.Fanout of
// its node and the handler of the broker's events.
type Hub struct {
	o   Options
	m   *metrics
	log *slog.Logger

	mu    sync.RWMutex
	rooms map[string]*room
	conns map[Conn]*client
	users map[string]map[Conn]struct{} // verified user id -> connections

	// ord is the hub's state on an ordered broker, nil otherwise.
	ord *order

	// afterEnroll, for tests, runs after a connection is enrolled in a
	// room, before it is sent anything of it.
	afterEnroll func()

	stop      chan struct{}
	stopped   chan struct{}
	closeOnce sync.Once
}

var (
	_ chat.Fanout             = (*Hub)(nil)
	_ chat.BrokerEventHandler = (*Hub)(nil)
)

// client is the hub's state of one connection: the rooms it is in (a
// few, as a rule: a slice costs less than a map per connection), guarded
// by Hub.mu.
type client struct {
	c      Conn
	userID string
	rooms  []*room
}

// in returns the client's room named name, or nil.
func (cl *client) in(name string) *room {
	for _, r := range cl.rooms {
		if r.name == name {
			return r
		}
	}
	return nil
}

// inOrNil is in, for a client that may be nil.
func (cl *client) inOrNil(name string) *room {
	if cl == nil {
		return nil
	}
	return cl.in(name)
}

// append adds the room r. The list grows by a quarter, to an even length
// (a size class of the allocator up to 32 rooms), not by double: a socket
// in 10 rooms keeps 10 slots, not 16.
func (cl *client) append(r *room) {
	if n := len(cl.rooms); n == cap(cl.rooms) && n >= 2 && n < 32 {
		grown := make([]*room, n, (n+max(1, n/4)+1)&^1)
		copy(grown, cl.rooms)
		cl.rooms = grown
	}
	cl.rooms = append(cl.rooms, r)
}

// drop forgets the room r.
func (cl *client) drop(r *room) {
	for i, x := range cl.rooms {
		if x == r {
			last := len(cl.rooms) - 1
			cl.rooms[i] = cl.rooms[last]
			cl.rooms[last] = nil
			cl.rooms = cl.rooms[:last]
			return
		}
	}
}

// member is a connection on its way into a room: enrolled, its history
// being sent, not live yet (room.pending). It lives only that long: a
// live member is its client in the room's list, and nothing more, so a
// membership costs 8 bytes in the room's list and 8 in the client's. The
// 24-byte member every membership kept before was half of what a
// socket's nine more rooms cost the heap.
type member struct {
	cl *client
	// idx is the index in room.pending; -1 once it went live or left
	// (room.pmu).
	idx int32
}

// ErrNotMember refuses an action in a room the connection is not in.
var ErrNotMember = errors.New("hub: the connection is not in the room")

// ErrUnknownRoom refuses to join a room that does not exist here.
var ErrUnknownRoom = errors.New("hub: no such room")

// New returns a Hub and starts its presence and typing loop; Close stops
// it.
func New(o Options) (*Hub, error) {
	switch {
	case o.Broker == nil:
		return nil, errors.New("hub: Options.Broker is required")
	case o.History == nil:
		return nil, errors.New("hub: Options.History is required")
	case o.Encoder == nil:
		return nil, errors.New("hub: Options.Encoder is required")
	case o.PresenceInterval <= 0 || o.TypingTimeout <= 0:
		return nil, errors.New("hub: Options.PresenceInterval and TypingTimeout must be positive")
	}
	if o.Presence == nil {
		o.Presence = chat.LocalPresence{}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	h := &Hub{
		o:       o,
		m:       newMetrics(o.Registerer),
		log:     o.Logger,
		rooms:   make(map[string]*room),
		conns:   make(map[Conn]*client),
		users:   make(map[string]map[Conn]struct{}),
		stop:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	if ob, ok := o.Broker.(chat.OrderedBroker); ok && ob.Ordered() {
		h.ord = newOrder(ob, o.LogSize, o.EarlyAfter)
	}
	if h.room(chat.GlobalRoom) == nil {
		return nil, errors.New("hub: Options.History gives the global room no history")
	}
	go h.loop()
	return h, nil
}

// Close stops the presence and typing loop. Connections are the edge's
// to close.
func (h *Hub) Close() {
	h.closeOnce.Do(func() { close(h.stop) })
	<-h.stopped
}

// room returns the room named name, made on first use; nil when it does
// not exist here (Options.History).
func (h *Hub) room(name string) *room {
	if r := h.lookup(name); r != nil {
		return r
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.roomLocked(name)
}

// roomLocked is room with h.mu held.
func (h *Hub) roomLocked(name string) *room {
	r := h.rooms[name]
	if r == nil {
		history := h.o.History(name)
		if history == nil {
			h.m.unknownRoom.Inc()
			return nil
		}
		r = newRoom(name, history)
		h.rooms[name] = r
	}
	return r
}

// lookup returns the room named name when this node has it: while it has
// members here (and the global room always).
func (h *Hub) lookup(name string) *room {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.rooms[name]
}

// Broadcast delivers e to the members of room on this node, then
// publishes it to the other nodes (chat.Fanout).
func (h *Hub) Broadcast(room string, e chat.Event) {
	if h.ord != nil {
		if e.IsMessage() {
			h.broadcastOrdered(room, e)
			return
		}
		if e.Deletion != nil {
			h.ord.mu.Lock()
			h.ord.deleted.Add(e.Deletion.ID)
			h.ord.mu.Unlock()
		}
	}
	if r := h.lookup(room); r != nil {
		r.mu.Lock()
		h.deliverLocked(r, e)
		// Published under the room's lock: the broker gets a room's events
		// in the order they were delivered here.
		h.o.Broker.Publish(room, e)
		r.mu.Unlock()
		if e.Close {
			h.closeRoom(r)
		}
		return
	}
	// No member here: the other nodes' members still get it.
	h.o.Broker.Publish(room, e)
}

// Offset is what a message frame tells its client of where it stands (its
// recovery offset): High on a hub that is not ordered, Place on one that
// is (see order.go).
type Offset struct {
	// High is the id of the delivery's high-water mark (chat.Delivery), ""
	// when the message is sent in order.
	High string
	// Place is where the client stands once it has the frame (a Place's
	// String).
	Place string
}

// HandlePublication delivers an event another node published to room
// (chat.BrokerEventHandler). A message delivered here already (a
// publication repeated after an error) is dropped, and so is an event of a
// room this node has no member in.
func (h *Hub) HandlePublication(room string, e chat.Event) {
	if h.ord != nil {
		if e.Deletion != nil {
			h.ord.mu.Lock()
			h.ord.deleted.Add(e.Deletion.ID)
			h.ord.mu.Unlock()
		}
		if e.IsMessage() && !e.Pos.IsZero() {
			h.handleOrdered(room, e)
			return
		}
	}
	r := h.lookup(room)
	if r == nil {
		return
	}
	r.mu.Lock()
	if e.IsMessage() && r.history.Has(e.Message.ID) {
		r.mu.Unlock()
		return
	}
	h.deliverLocked(r, e)
	r.mu.Unlock()
	if e.Close {
		h.closeRoom(r)
	}
}

// closeRoom takes every member of r out of it (an event closed it).
func (h *Hub) closeRoom(r *room) {
	r.pmu.Lock()
	members := r.connsLocked()
	r.pmu.Unlock()
	for _, c := range members {
		_ = h.Leave(c, r.name)
	}
}

// SendUser delivers e to every connection of the verified user userID, on
// this node and, through the broker, on the others.
func (h *Hub) SendUser(userID string, e chat.Event) {
	h.deliverUser(userID, e)
	h.o.Broker.PublishUser(userID, e)
}

// HandleUserEvent delivers an event another node published to userID
// (chat.BrokerEventHandler).
func (h *Hub) HandleUserEvent(userID string, e chat.Event) { h.deliverUser(userID, e) }

// deliverUser delivers e to the connections of userID on this node (but
// e.Except), applying its membership effects: with e.Join, each connection
// gets e and joins the room at once (nothing of the room is missed after
// the event); with e.Leave, each gets e, then leaves the room.
func (h *Hub) deliverUser(userID string, e chat.Event) {
	h.mu.RLock()
	conns := make([]Conn, 0, len(h.users[userID]))
	for c := range h.users[userID] {
		conns = append(conns, c)
	}
	h.mu.RUnlock()
	if len(conns) == 0 {
		return
	}
	f, err := h.o.Encoder.Event(e.Name, e.Data)
	if err != nil {
		h.encodeFailed(e, err)
		return
	}
	n := 0
	for _, c := range conns {
		if e.Except != "" && c.ID() == e.Except {
			continue
		}
		n++
		if e.Join != "" {
			if err := h.Join(c, e.Join, JoinOptions{Live: true, first: f}); err == nil {
				continue
			}
		}
		c.Send(f)
		if e.Leave != "" {
			_ = h.Leave(c, e.Leave)
		}
	}
	h.m.deliveries.WithLabelValues(deliveryLabel(e.Name)).Add(float64(n))
}

// History returns the history of room on this node (the store's pages
// merged with what the node delivered lately), nil while the room has no
// member here.
func (h *Hub) History(room string) *chat.History {
	if r := h.lookup(room); r != nil {
		return r.history
	}
	return nil
}

// IsMember reports whether c is in room.
func (h *Hub) IsMember(c Conn, room string) bool {
	cl, _ := h.member(c, room)
	return cl != nil
}

// deliverLocked delivers e to r's live members; r.mu is held.
func (h *Hub) deliverLocked(r *room, e chat.Event) {
	if e.Deletion != nil {
		r.history.Forget(e.Deletion.ID)
	}
	var f Frame
	var err error
	if e.IsMessage() {
		if r.history.Deleted(e.Message.ID) {
			return // deleted while it was on its way here
		}
		f, err = h.o.Encoder.Message(e.Message, Offset{High: r.history.Observe(e.Message)})
	} else {
		f, err = h.o.Encoder.Event(e.Name, e.Data)
	}
	if err != nil {
		h.encodeFailed(e, err)
		return
	}
	fanout(f, int(r.nlive.Load()))
	n := 0
	for _, cl := range r.members {
		if e.Except == "" || cl.c.ID() != e.Except {
			cl.c.Send(f)
			n++
		}
	}
	h.m.deliveries.WithLabelValues(deliveryLabel(e.Name)).Add(float64(n))
	if e.IsMessage() {
		h.m.broadcast.Inc()
	} else {
		h.m.events.WithLabelValues(deliveryLabel(e.Name)).Inc()
	}
}

func (h *Hub) encodeFailed(e chat.Event, err error) {
	h.m.broadcastErrors.Inc()
	h.log.Error("an event could not be encoded; it is not delivered", "event", e.Name, "err", err)
}

// Connections is how many connections of this node are in a room.
func (h *Hub) Connections() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.conns)
}

// Rooms returns the rooms c is in.
func (h *Hub) Rooms(c Conn) []string {
	h.mu.RLock()
	defer h.mu.RUnlock()
	cl := h.conns[c]
	if cl == nil {
		return nil
	}
	out := make([]string, 0, len(cl.rooms))
	for _, r := range cl.rooms {
		out = append(out, r.name)
	}
	return out
}

// guard runs fn, recovering (and logging) a panic: a fault in one tick
// must not stop the loop.
func (h *Hub) guard(what string, fn func()) {
	defer func() {
		if v := recover(); v != nil {
			h.m.panics.Inc()
			h.log.Error("recovered from a panic", "in", what, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
		}
	}()
	fn()
}

// loop syncs presence and expires typing once an interval.
func (h *Hub) loop() {
	defer close(h.stopped)
	t := time.NewTicker(h.o.PresenceInterval)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
		}
		h.guard("presence", h.presenceTick)
		h.guard("typing", func() { h.expireTyping(time.Now()) })
	}
}

// snapshotRooms returns every room.
func (h *Hub) snapshotRooms() []*room {
	h.mu.RLock()
	defer h.mu.RUnlock()
	out := make([]*room, 0, len(h.rooms))
	for _, r := range h.rooms {
		out = append(out, r)
	}
	return out
}
