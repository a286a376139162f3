package redis

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	sioadapter "github.com/zishang520/socket.io/adapters/adapter/v3"
	sioredis "github.com/zishang520/socket.io/adapters/redis/v3"
	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/scalable-chat-go/server/chat"
)

// Routing of the rooms other than the global one.
//
// In sharded mode a room's events travel as Node's io.to(room).emit sends
// them in its dynamic subscription mode: a BROADCAST of namespace "/" to
// the one room, on the room's own channel (prefix#/#room#). A node
// subscribes to that channel while its hub has a member of the room
// (Broker.Subscribe), so it receives only its rooms' traffic, and a Node
// server with a socket in the room receives it too. The hub's rooms are
// not rooms of the broker's library namespace (no client socket has a
// library object): the adapter hands their broadcasts to the broker
// directly (shardedAdapter.hubRoom), with the room's name, which the
// library's delivery to the sink would lose.
//
// In static subscription mode (REDIS_SUBSCRIPTION_MODE=static, as Node's
// subscriptionMode "static") the same broadcasts go on the namespace's
// channel, which every node reads: rooms are shared with Node servers in
// that mode, and a node drops (and counts) the rooms it has no member in.
//
// In streams mode every node reads the one stream, whatever the room: a
// room's events stay envelopes to relayRoom (wire.go), all handed on (the
// hub drops those of rooms it has no member in), and those of rooms not
// subscribed here are counted as dropped.

// roomBroadcast is a broadcast to one room of the hub, with the event's
// membership effects beside the packet: Node's adapter reads only the
// packet, opts and requestId of a broadcast, and ignores "chat".
type roomBroadcast struct {
	sioadapter.BroadcastMessage `msgpack:",inline"`
	Chat                        *effects `json:"chat,omitempty" msgpack:"chat,omitempty"`
}

// effects are an event's membership effects (chat.Event Join, Leave,
// Close), which a client packet cannot carry.
type effects struct {
	Join  string `json:"join,omitempty" msgpack:"join,omitempty"`
	Leave string `json:"leave,omitempty" msgpack:"leave,omitempty"`
	Close bool   `json:"close,omitempty" msgpack:"close,omitempty"`
}

// maxRoomName bounds a room name read from another node (as envelopes
// do).
const maxRoomName = 256

func effectsOf(e chat.Event) *effects {
	if e.Join == "" && e.Leave == "" && !e.Close {
		return nil
	}
	return &effects{Join: e.Join, Leave: e.Leave, Close: e.Close}
}

// roomMessage is e, published to room, as Node's io.to(room).emit sends
// it.
func roomMessage(room string, e chat.Event) *sioadapter.ClusterMessage {
	msg := broadcast("/", globalData(e), []socket.Room{socket.Room(room)})
	msg.Data = &roomBroadcast{BroadcastMessage: *msg.Data.(*sioadapter.BroadcastMessage), Chat: effectsOf(e)}
	return msg
}

// joinRelay closes the window of a join announced across nodes. In
// sharded mode with rooms on channels of their own, a node subscribes to
// a room's channel when the room's first member joins there, in the
// background: what other nodes publish to the room meanwhile, a round
// trip to Redis, does not reach it. An invitation (a user event with Join
// and Invite: users invited, a direct room opened) makes the users'
// sockets on every node join the room at once, and the inviter's first
// messages follow at once: they would miss the nodes that subscribe for
// it. For joinRelayGrace after such an event, this node also publishes
// its messages of the room as an
// envelope on the relay, which every Go node reads in order, behind the
// user event: a node that joined the user's sockets delivers it, and the
// hub drops by message id whichever copy comes second; a node with no
// member drops it (chat_cluster_room_events_dropped_total). Messages of
// other nodes in that window are not covered: a node knows only the joins
// it announced. A user's own join, for its other sockets, is not relayed:
// its messages come from a person who just joined, and the relay would
// bring every node a busy room's traffic after each one.
type joinRelay struct {
	mu    sync.Mutex
	until map[string]time.Time
}

// joinRelayGrace is how long a room's messages go on the relay too after
// a join was announced: far more than a subscription's round trip.
const joinRelayGrace = 2 * time.Second

// joined starts, or extends, the relay of room's messages.
func (j *joinRelay) joined(room string, now time.Time) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.until == nil {
		j.until = make(map[string]time.Time)
	}
	if len(j.until) >= 64 {
		for r, t := range j.until {
			if now.After(t) {
				delete(j.until, r)
			}
		}
	}
	j.until[room] = now.Add(joinRelayGrace)
}

// relaying reports whether room's messages go on the relay too now.
func (j *joinRelay) relaying(room string, now time.Time) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	t, ok := j.until[room]
	if ok && now.After(t) {
		delete(j.until, room)
		return false
	}
	return ok
}

// ownChannel reports whether room's events travel on a channel of its
// own (sharded mode, dynamic subscriptions), which a node reads only once
// it subscribed.
func (b *Broker) ownChannel(room string) bool {
	return b.c.subs != nil && room != chat.GlobalRoom &&
		sioredis.ShouldUseDynamicChannel(sioredis.SubscriptionMode(b.c.o.Subscription), socket.Room(room))
}

// routes are the rooms this node subscribes to, each with how many
// subscriptions it has.
type routes struct {
	mu   sync.Mutex
	held map[string]int
	// router subscribes to the rooms' channels (nil in streams mode, and
	// before Run).
	router *shardedAdapter
}

// Subscribe makes this node receive room's events (chat.Broker): in
// sharded mode it subscribes to the room's channel, in the background.
func (b *Broker) Subscribe(room string) {
	if room == chat.GlobalRoom {
		return
	}
	b.routes.mu.Lock()
	defer b.routes.mu.Unlock()
	b.routes.held[room]++
	if b.routes.held[room] == 1 && b.routes.router != nil {
		b.routes.router.follow(room)
		b.m.roomSubscribes.Inc()
	}
	b.roomGaugeLocked()
}

// Subscribed waits until this node's subscription to room's channel is
// confirmed (chat.Broker): at once in streams mode, in static mode and for
// the global room, whose events come on channels a node always reads.
func (b *Broker) Subscribed(ctx context.Context, room string) error {
	if !b.ownChannel(room) {
		return nil
	}
	if !b.linked.Load() {
		// Redis fails: a confirmation would not come, and the node serves
		// its own clients meanwhile without waiting for it.
		return fmt.Errorf("the subscription to room %s: %w", room, errUnlinked)
	}
	b.routes.mu.Lock()
	router := b.routes.router
	b.routes.mu.Unlock()
	if router == nil {
		return nil // not running yet: Run subscribes first
	}
	confirmed := b.c.subs.whenConfirmed(router.roomChannel(socket.Room(room)))
	if confirmed == nil {
		return fmt.Errorf("the subscription to room %s: %w", room, errNotSubscribed)
	}
	select {
	case <-confirmed:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("the subscription to room %s: %w", room, ctx.Err())
	}
}

// errNotSubscribed: Subscribed of a room this node does not subscribe to.
var errNotSubscribed = errors.New("this node does not subscribe to the room")

// errUnlinked: the link to Redis failed lately.
var errUnlinked = errors.New("the link to Redis is down")

// Unsubscribe undoes one Subscribe; the room's channel is left with the
// last one.
func (b *Broker) Unsubscribe(room string) {
	if room == chat.GlobalRoom {
		return
	}
	b.routes.mu.Lock()
	defer b.routes.mu.Unlock()
	n, ok := b.routes.held[room]
	if !ok {
		return
	}
	if n > 1 {
		b.routes.held[room] = n - 1
		return
	}
	delete(b.routes.held, room)
	if b.routes.router != nil {
		b.routes.router.unfollow(room)
		b.m.roomUnsubscribes.Inc()
	}
	b.roomGaugeLocked()
}

func (b *Broker) roomGaugeLocked() {
	if b.routes.router != nil {
		b.m.roomChannels.Set(float64(len(b.routes.held)))
	}
}

// startRouting subscribes, in sharded mode, to the channels of the rooms
// subscribed before Run, and takes the room broadcasts of adapter a.
func (b *Broker) startRouting(a socket.Adapter) {
	w, ok := a.(*answeringAdapter)
	if !ok {
		return
	}
	sa, ok := w.ClusterAdapter.(*shardedAdapter)
	if !ok {
		return
	}
	sa.setRoomHandler(b.onRoom)
	if sa.c.o.Subscription == SubscriptionStatic {
		// Every room comes on the namespace's channel: nothing to follow.
		return
	}
	b.routes.mu.Lock()
	defer b.routes.mu.Unlock()
	b.routes.router = sa
	for room := range b.routes.held {
		sa.follow(room)
		b.m.roomSubscribes.Inc()
	}
	b.roomGaugeLocked()
}

// stopRouting leaves every room's channel (the broker closes).
func (b *Broker) stopRouting() {
	b.routes.mu.Lock()
	defer b.routes.mu.Unlock()
	if b.routes.router == nil {
		return
	}
	for room := range b.routes.held {
		b.routes.router.unfollow(room)
	}
	b.routes.router = nil
	b.m.roomChannels.Set(0)
}

// holds tells whether this node subscribes to room.
func (b *Broker) holds(room string) bool {
	b.routes.mu.Lock()
	defer b.routes.mu.Unlock()
	return b.routes.held[room] > 0
}

// onRoom handles another server's broadcast to one room of the hub (a Go
// node's or a Node server's): packet data [name, args...].
func (b *Broker) onRoom(room string, data []any, fx *effects) {
	b.guard("room event", func() {
		b.m.received.Inc()
		if !b.roomEvent(room) || len(data) == 0 {
			return
		}
		name, ok := data[0].(string)
		if !ok || len(room) > maxRoomName {
			return
		}
		e := globalEvent(name, data[1:])
		if fx != nil {
			if len(fx.Join) > maxRoomName || len(fx.Leave) > maxRoomName {
				return
			}
			e.Join, e.Leave, e.Close = fx.Join, fx.Leave, fx.Close
		}
		b.publication(room, e)
	})
}

// roomEvent counts a room's event from another node, and tells whether
// this node has members of the room (an event of a room this node left
// may still be on its way, and in streams mode every room's comes): if
// not, it counts it as dropped, as no client of this node gets it.
func (b *Broker) roomEvent(room string) bool {
	b.m.roomReceived.Inc()
	if b.holds(room) {
		return true
	}
	b.m.roomDropped.Inc()
	return false
}

// setRoomHandler sets what receives the broadcasts to the hub's rooms.
func (a *shardedAdapter) setRoomHandler(h func(room string, data []any, fx *effects)) {
	a.roomHandler.Store(&h)
}

// follow subscribes to room's channel; a room whose name looks like a
// socket's own has none (Node then publishes to the namespace's channel,
// which this node reads anyway).
func (a *shardedAdapter) follow(room string) {
	if r := socket.Room(room); a.dynamic(r) {
		a.c.subs.addRoom(a.roomChannel(r), a.onRaw)
	}
}

// unfollow leaves room's channel.
func (a *shardedAdapter) unfollow(room string) {
	if r := socket.Room(room); a.dynamic(r) {
		a.c.subs.remove(a.roomChannel(r))
	}
}

// hubRoom tells whether msg, arriving on channel, is a broadcast to one
// room of the hub: to one room that is not one of the library
// namespace's (the sink's), without acknowledgement, on the room's
// channel or the namespace's.
func (a *shardedAdapter) hubRoom(channel string, msg *sioadapter.ClusterMessage) (string, *sioadapter.BroadcastMessage, bool) {
	if a.roomHandler.Load() == nil || msg.Type != sioadapter.BROADCAST || channel == a.responseChannel {
		return "", nil, false
	}
	d, ok := msg.Data.(*sioadapter.BroadcastMessage)
	if !ok || d.RequestId != nil || d.Opts == nil || len(d.Opts.Rooms) != 1 || len(d.Opts.Except) > 0 || d.Packet == nil {
		return "", nil, false
	}
	room := d.Opts.Rooms[0]
	if channel != a.channel && channel != a.roomChannel(room) {
		return "", nil, false
	}
	if _, library := a.Rooms().Load(room); library {
		return "", nil, false
	}
	return string(room), d, true
}

// routeMetrics count the routing of rooms, with no label per room (a
// hundred thousand rooms must not make as many series).
type routeMetrics struct {
	roomChannels     prometheus.Gauge
	roomSubscribes   prometheus.Counter
	roomUnsubscribes prometheus.Counter
	roomReceived     prometheus.Counter
	roomDropped      prometheus.Counter
	roomRelayed      prometheus.Counter
}

func newRouteMetrics() routeMetrics {
	return routeMetrics{
		roomChannels: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "chat_cluster_room_channels", Help: "Room channels this node subscribes to (sharded mode): the rooms it has members in, the global one aside.",
		}),
		roomSubscribes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_cluster_room_subscribes_total", Help: "Room channels subscribed to (a room's first member joined here).",
		}),
		roomUnsubscribes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_cluster_room_unsubscribes_total", Help: "Room channels left (a room's last member left here).",
		}),
		roomReceived: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_cluster_room_events_received_total", Help: "Events of rooms other than the global one received from other nodes.",
		}),
		roomDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_cluster_room_events_dropped_total", Help: "Events of rooms other than the global one received from other nodes for a room with no member here, which no client of this node gets: in sharded mode those in flight as the last member left and the copies relayed after an invitation, in streams mode every room's not held here.",
		}),
		roomRelayed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_cluster_room_messages_relayed_total", Help: "Messages of a room also published on the relay, in the 2 s after this node invited users to it (sharded mode): the nodes subscribing to the room for them get them.",
		}),
	}
}

func (m routeMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.roomChannels, m.roomSubscribes, m.roomUnsubscribes, m.roomReceived, m.roomDropped, m.roomRelayed}
}
