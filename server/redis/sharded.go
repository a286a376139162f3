package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/vmihailenco/msgpack/v5"
	sioadapter "github.com/zishang520/socket.io/adapters/adapter/v3"
	sioredis "github.com/zishang520/socket.io/adapters/redis/v3"
	"github.com/zishang520/socket.io/parsers/socket/v3/parser"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"
	"github.com/zishang520/socket.io/v3/pkg/utils"
)

// The sharded mode's adapter: Node's createShardedAdapter on the wire
// (@socket.io/redis-adapter 8), on this package's subscriber.
//
// Channels, as Node names them: prefix#nsp# for the namespace's
// broadcasts and requests, prefix#nsp#uid# for the responses to this
// server, and (the dynamic subscription mode, Node's default) prefix#nsp#
// room# for a broadcast to one room that is not a socket's own; a server
// subscribes to a room's channel while one of its sockets is in the room.
// Messages are JSON, or MessagePack when their data holds binary; the
// publisher's SPUBLISH reply says how many servers got each.
//
// The library's cluster adapter (zishang520's ClusterAdapter) does
// everything else: the broadcasts to local sockets, the requests and their
// responses. Only the Redis side is ours, because the library's sharded
// adapter loses its subscriptions for good when a Redis Cluster fails over
// or migrates a slot (see subscriber).

// shardedBuilder builds the sharded adapter of each namespace of the
// broker's library server.
type shardedBuilder struct{ c *Cluster }

// New builds nsp's adapter.
func (b *shardedBuilder) New(nsp socket.Namespace) socket.Adapter {
	a := &shardedAdapter{ClusterAdapter: sioadapter.MakeClusterAdapter(), c: b.c}
	a.Prototype(a)
	a.Construct(nsp)
	return a
}

type shardedAdapter struct {
	sioadapter.ClusterAdapter
	c               *Cluster
	channel         string
	responseChannel string
	// roomHandler receives the broadcasts to the hub's rooms (routing.go;
	// nil but in the broker's namespace).
	roomHandler atomic.Pointer[func(room string, data []any, fx *effects)]
}

// Construct subscribes to the namespace's channels, and to each room's
// while it exists.
func (a *shardedAdapter) Construct(nsp socket.Namespace) {
	a.ClusterAdapter.Construct(nsp)
	a.channel = a.c.o.KeyPrefix + "#" + nsp.Name() + "#"
	a.responseChannel = a.channel + string(a.Uid()) + "#"
	subs := a.c.subs
	subs.add(a.channel, a.onRaw)
	subs.add(a.responseChannel, a.onRaw)
	_ = a.On("create-room", func(args ...any) {
		if room, ok := roomOf(args); ok && a.ownChannel(room) {
			subs.add(a.roomChannel(room), a.onRaw)
		}
	})
	_ = a.On("delete-room", func(args ...any) {
		if room, ok := roomOf(args); ok && a.ownChannel(room) {
			subs.remove(a.roomChannel(room))
		}
	})
}

func roomOf(args []any) (socket.Room, bool) {
	if len(args) == 0 {
		return "", false
	}
	r, ok := args[0].(socket.Room)
	return r, ok
}

// ownChannel tells whether room gets a channel of its own: every room but
// a socket's own (Node's dynamic mode).
func (a *shardedAdapter) ownChannel(room socket.Room) bool {
	if a.c.o.Subscription == SubscriptionStatic {
		return false
	}
	_, private := a.Sids().Load(socket.SocketId(room))
	return !private
}

func (a *shardedAdapter) roomChannel(room socket.Room) string { return a.channel + string(room) + "#" }

// publishChannel is where msg goes: a broadcast to one room that does not
// look like a socket's own goes to the room's channel (as Node decides),
// anything else to the namespace's.
func (a *shardedAdapter) publishChannel(msg *sioadapter.ClusterMessage) string {
	if msg.Type != sioadapter.BROADCAST {
		return a.channel
	}
	if rb, ok := msg.Data.(*roomBroadcast); ok {
		d := &rb.BroadcastMessage
		if room := d.Opts.Rooms[0]; a.dynamic(room) {
			return a.roomChannel(room)
		}
		return a.channel
	}
	d, ok := msg.Data.(*sioadapter.BroadcastMessage)
	if !ok || d.RequestId != nil || d.Opts == nil || len(d.Opts.Rooms) != 1 {
		return a.channel
	}
	if room := d.Opts.Rooms[0]; a.dynamic(room) {
		return a.roomChannel(room)
	}
	return a.channel
}

// dynamic tells whether room has a channel of its own in this
// subscription mode (as Node decides: not in static mode, nor for a room
// named like a socket).
func (a *shardedAdapter) dynamic(room socket.Room) bool {
	return sioredis.ShouldUseDynamicChannel(sioredis.SubscriptionMode(a.c.o.Subscription), room)
}

// DoPublish publishes msg, and counts the other servers it did not reach
// that subscribed to its channel lately (reach). After a failed
// publication (a master died), it first waits, up to a second, until
// those servers subscribe again to the channel, wherever it is served now:
// the backlog of the failover then reaches them instead of going out
// before they are back.
func (a *shardedAdapter) DoPublish(msg *sioadapter.ClusterMessage) (sioadapter.Offset, error) {
	channel := a.publishChannel(msg)
	if _, ok := msg.Data.(*roomBroadcast); ok {
		// A hub room's subscribers change as its members come and go: a
		// shortfall there is no loss, and counting each room's would keep
		// a peak per room.
		payload, err := encodeCluster(msg)
		if err != nil {
			return "", fmt.Errorf("encode a cluster message: %w", err)
		}
		_, err = a.publishRaw(channel, payload)
		return "", err
	}
	if a.c.reach.recovering(channel) {
		a.awaitOthers(channel)
	}
	payload, err := encodeCluster(msg)
	if err != nil {
		return "", fmt.Errorf("encode a cluster message: %w", err)
	}
	n, err := a.publishRaw(channel, payload)
	if err != nil {
		a.c.reach.failed(channel)
		return "", err
	}
	a.c.reach.published(channel, payload, n, a.c.subs.wants(channel))
	return "", nil
}

// recoverWait bounds the wait for the other servers to subscribe again
// once the channel is served again after a failover, before a
// publication goes out anyway; and the wait ends sooner once the count
// of subscribers has not changed for recoverSettle (after recoverSettle
// twice at least). Our nodes are back within 150 ms of their new master's
// election, all at about the same time; a server that takes longer (or
// never comes back: node-redis 4.7's cluster client may keep dialling the
// dead master) must not hold the others' deliveries much longer.
const (
	recoverWait   = time.Second
	recoverSettle = 150 * time.Millisecond
)

// unservedWait bounds the wait while no node serves the channel (a
// failover takes 3 to 4 s with cluster-node-timeout 2 s).
const unservedWait = 10 * time.Second

// awaitOthers waits until as many other servers subscribe to channel as
// did lately (PUBSUB SHARDNUMSUB on the node serving it), once a node
// answers: at most recoverWait, less when the count settles. While none
// does (the master is dead, its successor not elected yet) it waits too,
// up to unservedWait: a publication then would fail, or, once the
// successor serves the slot, go out before the others are back.
func (a *shardedAdapter) awaitOthers(channel string) {
	want := a.c.reach.expected(channel)
	if want <= 0 {
		return
	}
	start := time.Now()
	var served, changed time.Time
	last := int64(-1)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), a.c.o.RequestTimeout)
		node, err := a.c.nodeFor(ctx, channel)
		var n int64
		if err == nil {
			var res map[string]int64
			if res, err = node.PubSubShardNumSub(ctx, channel).Result(); err == nil {
				n = res[channel]
			}
		}
		cancel()
		switch {
		case err != nil:
			if time.Since(start) > unservedWait || strings.HasPrefix(err.Error(), "NOPERM") {
				return
			}
		default:
			// Once this server's own subscription is confirmed, the count
			// holds it for sure (before, it may or may not).
			self := a.c.subs.confirmed(channel)
			if self {
				n--
			}
			if n >= want && (self || !a.c.subs.wants(channel)) {
				return
			}
			now := time.Now()
			if served.IsZero() {
				served = now
			}
			if n != last {
				last, changed = n, now
			}
			settled := now.Sub(served) >= 2*recoverSettle && now.Sub(changed) >= recoverSettle
			if settled || now.Sub(served) > recoverWait {
				a.c.o.Logger.Warn("publishing after a failover before every server subscribed again",
					"channel", channel, "subscribed", n, "expected", want, "waited", now.Sub(served).Round(time.Millisecond))
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// DoPublishResponse sends a response to the server that asked.
func (a *shardedAdapter) DoPublishResponse(to sioadapter.ServerId, r *sioadapter.ClusterResponse) error {
	_, err := a.publish(a.channel+string(to)+"#", r)
	return err
}

func (a *shardedAdapter) publish(channel string, msg *sioadapter.ClusterMessage) (int64, error) {
	payload, err := encodeCluster(msg)
	if err != nil {
		return 0, fmt.Errorf("encode a cluster message: %w", err)
	}
	return a.publishRaw(channel, payload)
}

func (a *shardedAdapter) publishRaw(channel string, payload []byte) (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), a.c.o.RequestTimeout)
	defer cancel()
	n, err := a.c.client.SPublish(ctx, channel, payload).Result()
	if err != nil {
		a.c.routingStale()
		return 0, err
	}
	return n, nil
}

// ServerCount is how many servers subscribe to the namespace's channel
// (PUBSUB SHARDNUMSUB on the node that serves it), as Node counts; 0 when
// Redis does not answer.
func (a *shardedAdapter) ServerCount() int64 { return a.c.subscribers(a.channel, true) }

// Close tells the other Go nodes that this server leaves (so that they do
// not count what they publish next as undelivered to it), and leaves the
// namespace's channels.
func (a *shardedAdapter) Close() {
	_, _ = a.publish(a.channel, &sioadapter.ClusterMessage{Uid: a.Uid(), Nsp: a.Nsp().Name(), Type: sioadapter.ADAPTER_CLOSE})
	a.c.subs.remove(a.channel)
	a.c.subs.remove(a.responseChannel)
	a.Rooms().Range(func(room socket.Room, _ *types.Set[socket.SocketId]) bool {
		if a.ownChannel(room) {
			a.c.subs.remove(a.roomChannel(room))
		}
		return true
	})
	a.ClusterAdapter.Close()
}

// onRaw handles what arrives on one of the namespace's channels.
func (a *shardedAdapter) onRaw(channel string, payload []byte) {
	msg, fx, err := decodeClusterEffects(payload)
	if err != nil {
		a.c.m.badMessages.Inc()
		a.c.o.Logger.Debug("undecodable cluster message", "channel", channel, "err", err)
		return
	}
	if room, d, ok := a.hubRoom(channel, msg); ok {
		// Not the library's to deliver: its sink would get the packet
		// without the room. This server's own comes back too, ignored.
		if msg.Uid != a.Uid() {
			if h := a.roomHandler.Load(); h != nil {
				data, _ := d.Packet.Data.([]any)
				(*h)(room, data, fx)
			}
		}
		return
	}
	switch {
	case msg.Uid == a.Uid():
		// This server's own publication, back: SPUBLISH counted it.
		a.c.reach.echo(channel, payload)
	case msg.Type == sioadapter.ADAPTER_CLOSE:
		a.c.reach.forget()
	case channel == a.responseChannel:
		a.OnResponse(msg)
	default:
		a.OnMessage(msg, "")
	}
}

// encodeCluster is msg as Node's adapter sends it: MessagePack when its
// data holds binary, JSON otherwise.
func encodeCluster(msg *sioadapter.ClusterMessage) ([]byte, error) {
	if holdsBinary(msg.Data) {
		return utils.MsgPack().Encode(msg)
	}
	return json.Marshal(msg)
}

// holdsBinary looks for binary where Node's adapter does, in the packets
// and socket data of the types that may carry some (the library's
// HasBinary does not look inside these structs).
func holdsBinary(data any) bool {
	switch d := data.(type) {
	case *sioadapter.BroadcastMessage:
		return d.Packet != nil && parser.HasBinary(d.Packet.Data)
	case *roomBroadcast:
		return d.Packet != nil && parser.HasBinary(d.Packet.Data)
	case *sioadapter.BroadcastAck:
		return parser.HasBinary(d.Packet)
	case *sioadapter.ServerSideEmitMessage:
		return parser.HasBinary(d.Packet)
	case *sioadapter.ServerSideEmitResponse:
		return parser.HasBinary(d.Packet)
	case *sioadapter.FetchSocketsResponse:
		for _, s := range d.Sockets {
			if s != nil && parser.HasBinary(s.Data) {
				return true
			}
		}
	}
	return false
}

// clusterData makes the value a message's data decodes into, by type.
var clusterData = map[sioadapter.MessageType]func() any{
	sioadapter.BROADCAST:                 func() any { return &sioadapter.BroadcastMessage{} },
	sioadapter.SOCKETS_JOIN:              func() any { return &sioadapter.SocketsJoinLeaveMessage{} },
	sioadapter.SOCKETS_LEAVE:             func() any { return &sioadapter.SocketsJoinLeaveMessage{} },
	sioadapter.DISCONNECT_SOCKETS:        func() any { return &sioadapter.DisconnectSocketsMessage{} },
	sioadapter.FETCH_SOCKETS:             func() any { return &sioadapter.FetchSocketsMessage{} },
	sioadapter.FETCH_SOCKETS_RESPONSE:    func() any { return &sioadapter.FetchSocketsResponse{} },
	sioadapter.SERVER_SIDE_EMIT:          func() any { return &sioadapter.ServerSideEmitMessage{} },
	sioadapter.SERVER_SIDE_EMIT_RESPONSE: func() any { return &sioadapter.ServerSideEmitResponse{} },
	sioadapter.BROADCAST_CLIENT_COUNT:    func() any { return &sioadapter.BroadcastClientCount{} },
	sioadapter.BROADCAST_ACK:             func() any { return &sioadapter.BroadcastAck{} },
}

// decodeCluster reads a message of Node's adapter: JSON when it starts
// with '{', MessagePack otherwise.
func decodeCluster(b []byte) (*sioadapter.ClusterMessage, error) {
	msg, _, err := decodeClusterEffects(b)
	return msg, err
}

// decodeClusterEffects is decodeCluster, with the membership effects a
// Go node's broadcast to a hub room carries (nil when none).
func decodeClusterEffects(b []byte) (*sioadapter.ClusterMessage, *effects, error) {
	if len(b) == 0 {
		return nil, nil, errors.New("empty message")
	}
	var msg sioadapter.ClusterMessage
	var decodeData func(into any) error
	if b[0] == '{' {
		var m struct {
			Uid  sioadapter.ServerId    `json:"uid"`
			Nsp  string                 `json:"nsp"`
			Type sioadapter.MessageType `json:"type"`
			Data json.RawMessage        `json:"data"`
		}
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, nil, fmt.Errorf("JSON: %w", err)
		}
		msg.Uid, msg.Nsp, msg.Type = m.Uid, m.Nsp, m.Type
		decodeData = func(into any) error { return json.Unmarshal(m.Data, into) }
	} else {
		var m struct {
			Uid  sioadapter.ServerId    `msgpack:"uid"`
			Nsp  string                 `msgpack:"nsp"`
			Type sioadapter.MessageType `msgpack:"type"`
			Data msgpack.RawMessage     `msgpack:"data"`
		}
		if err := utils.MsgPack().Decode(b, &m); err != nil {
			return nil, nil, fmt.Errorf("MessagePack: %w", err)
		}
		msg.Uid, msg.Nsp, msg.Type = m.Uid, m.Nsp, m.Type
		decodeData = func(into any) error { return utils.MsgPack().Decode(m.Data, into) }
	}
	switch msg.Type {
	case sioadapter.INITIAL_HEARTBEAT, sioadapter.HEARTBEAT, sioadapter.ADAPTER_CLOSE:
		return &msg, nil, nil
	case sioadapter.BROADCAST:
		// Read as a hub room's broadcast, whose "chat" holds the effects;
		// the library gets the broadcast itself.
		var rb roomBroadcast
		if err := decodeData(&rb); err != nil {
			return nil, nil, fmt.Errorf("data of a message of type %d: %w", msg.Type, err)
		}
		msg.Data = &rb.BroadcastMessage
		return &msg, rb.Chat, nil
	}
	newData, ok := clusterData[msg.Type]
	if !ok {
		return nil, nil, fmt.Errorf("unknown message type %d", msg.Type)
	}
	data := newData()
	if err := decodeData(data); err != nil {
		return nil, nil, fmt.Errorf("data of a message of type %d: %w", msg.Type, err)
	}
	msg.Data = data
	return &msg, nil, nil
}

// reach counts, on the publishing side, the other servers a sharded
// publication did not reach although they subscribe to its channel.
// SPUBLISH answers how many subscribers got it, this server among them
// when it was subscribed at that moment, which only the publication's own
// echo on the subscription tells for sure: so each publication is settled
// when its echo comes back (this server counted), or after echoWait
// without one (not counted). A channel's expected count is the most other
// servers seen on it within reachWindow: a server that lost its
// subscription (a failover, a slot migration) shows as a shortfall until
// it subscribes again; so does one that crashed, for reachWindow (one
// that shuts down says so: ADAPTER_CLOSE), after which the expectation is
// dropped, and logged.
type reach struct {
	log         *slog.Logger
	undelivered prometheus.Counter

	mu         sync.Mutex
	peaks      map[string]peak
	waiting    map[string][]sent // publications waiting for their echo, in order
	early      map[string][]sent // echoes that came before their SPUBLISH's reply
	failing    map[string]bool   // channels whose last publication failed
	lastLog    time.Time
	suppressed int64
}

type peak struct {
	n  int64
	at time.Time
}

// sent is a publication whose echo has not come back yet.
type sent struct {
	sum uint64 // of its payload
	n   int64  // subscribers SPUBLISH counted
	at  time.Time
}

const (
	// reachWindow is how long a channel's highest count of receivers
	// stays expected without being seen again.
	reachWindow = 30 * time.Second
	// echoWait is how long a publication's echo may take.
	echoWait = time.Second
)

func newReach(log *slog.Logger, r prometheus.Registerer) *reach {
	c := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "chat_cluster_undelivered_total",
		Help: "Other servers that a sharded publication did not reach although they subscribed to its channel lately (lost subscriptions during a failover or slot migration, or a crashed server).",
	})
	if r != nil {
		r.MustRegister(c)
	}
	return &reach{log: log, undelivered: c, peaks: map[string]peak{}, waiting: map[string][]sent{},
		early: map[string][]sent{}, failing: map[string]bool{}}
}

// run settles the publications whose echo is late, until ctx ends.
func (r *reach) run(ctx context.Context) {
	t := time.NewTicker(echoWait / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.mu.Lock()
			r.expireLocked()
			r.mu.Unlock()
		}
	}
}

// published notes that a publication of payload on channel reached n
// subscribers; subscribed tells whether this server wants the channel (if
// not, n are all others).
func (r *reach) published(channel string, payload []byte, n int64, subscribed bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.failing, channel)
	r.expireLocked()
	if !subscribed {
		r.settleLocked(channel, n)
		return
	}
	sum := checksum(payload)
	if e, i := r.early[channel], indexSum(r.early[channel], sum); i >= 0 {
		r.early[channel] = append(e[:i:i], e[i+1:]...)
		r.settleLocked(channel, n-1)
		return
	}
	r.waiting[channel] = append(r.waiting[channel], sent{sum: sum, n: n, at: time.Now()})
}

func indexSum(list []sent, sum uint64) int {
	for i, p := range list {
		if p.sum == sum {
			return i
		}
	}
	return -1
}

// echo settles the oldest publication of payload on channel: it reached
// this server too.
func (r *reach) echo(channel string, payload []byte) {
	sum := checksum(payload)
	r.mu.Lock()
	defer r.mu.Unlock()
	w := r.waiting[channel]
	if i := indexSum(w, sum); i >= 0 {
		r.settleLocked(channel, w[i].n-1)
		r.waiting[channel] = append(w[:i:i], w[i+1:]...)
	} else {
		// Before its SPUBLISH's reply reached the publisher.
		r.early[channel] = append(r.early[channel], sent{sum: sum, at: time.Now()})
	}
	r.expireLocked()
}

// expireLocked settles the publications whose echo did not come within
// echoWait: this server was not subscribed; and forgets early echoes of
// publications never noted (they failed on the way back).
func (r *reach) expireLocked() {
	for ch, e := range r.early {
		e = slices.DeleteFunc(e, func(p sent) bool { return time.Since(p.at) > echoWait })
		if len(e) == 0 {
			delete(r.early, ch)
		} else {
			r.early[ch] = e
		}
	}
	for ch, w := range r.waiting {
		i := 0
		for i < len(w) && time.Since(w[i].at) > echoWait {
			r.settleLocked(ch, w[i].n)
			i++
		}
		if i == len(w) {
			delete(r.waiting, ch)
		} else if i > 0 {
			r.waiting[ch] = w[i:]
		}
	}
}

// settleLocked accounts for a publication on channel that reached n other
// servers.
func (r *reach) settleLocked(channel string, n int64) {
	now := time.Now()
	p, ok := r.peaks[channel]
	if !ok || n >= p.n || now.Sub(p.at) > reachWindow {
		if ok && n < p.n {
			r.log.Warn("servers that subscribed to a cluster channel have not received on it for a while: they left, or lost their subscription for good; no longer counted as undelivered",
				"channel", channel, "receiving", n, "expected", p.n, "for", reachWindow)
		}
		r.peaks[channel] = peak{n, now}
		return
	}
	short := p.n - n
	r.undelivered.Add(float64(short))
	if now.Sub(r.lastLog) < time.Second {
		r.suppressed += short
		return
	}
	r.log.Warn("a cluster publication did not reach every server subscribed to its channel: counted as undelivered",
		"channel", channel, "reached", n, "expected", p.n, "undelivered_since_last_log", r.suppressed+short)
	r.lastLog, r.suppressed = now, 0
}

// failed notes that a publication on channel failed.
func (r *reach) failed(channel string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failing[channel] = true
}

// recovering tells whether the last publication on channel failed.
func (r *reach) recovering(channel string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failing[channel]
}

// expected is how many other servers subscribed to channel lately.
func (r *reach) expected(channel string) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p, ok := r.peaks[channel]; ok && time.Since(p.at) <= reachWindow {
		return p.n
	}
	return 0
}

// forget drops the expected counts (a server left).
func (r *reach) forget() {
	r.mu.Lock()
	defer r.mu.Unlock()
	clear(r.peaks)
}

// checksum identifies a payload (FNV-1a, 64 bits).
func checksum(b []byte) uint64 {
	h := fnv.New64a()
	_, _ = h.Write(b)
	return h.Sum64()
}
