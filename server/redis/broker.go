package redis

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	sioadapter "github.com/zishang520/socket.io/adapters/adapter/v3"
	"github.com/zishang520/socket.io/parsers/engine/v3/packet"
	"github.com/zishang520/socket.io/parsers/socket/v3/parser"
	engineio "github.com/zishang520/socket.io/servers/engine/v3"
	"github.com/zishang520/socket.io/servers/engine/v3/transports"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"

	"github.com/scalable-chat-go/server/chat"
)

// Broker is the chat.Broker (and chat.Directory) of a cluster of nodes on
// Redis, in the wire format of Node's @socket.io/redis-adapter, so that a
// Node server can join the cluster.
//
// The nodes speak through a cluster adapter of the library's kind (the
// Socket.IO Redis adapter: our sharded one, or the library's streams one).
// The adapter needs a namespace to live in: the broker keeps a private socket.Server of the library, never
// served to clients, whose namespace "/" has the cluster adapter and one
// socket: the sink, an in-process connection that discards what it is
// sent. A broadcast that arrives from another node is delivered by the
// adapter to the sink, whose outgoing listener hands it to the handlers.
// That is constant cost: no client socket has a library object.
//
// On the wire (unchanged from the nodes before the hub, so old and new
// nodes mix during a rolling upgrade):
//   - the global room's events are broadcasts to every socket of "/":
//     `message` {message, username, id, createdAt, ...}, `message:deleted`
//     {id}, `typing` and any other event as [name, data], which is what a
//     Node server emits with io.emit and receives;
//   - control events (bans) are broadcasts to internalRoom, which only Go
//     nodes' sinks join;
//   - the Go nodes' requests (fetch and disconnect sockets) are broadcasts
//     to nodesRoom (see broker_sockets.go);
//   - in sharded mode, the events of other rooms are broadcasts to the
//     room on its own channel, as Node's io.to(room).emit in its dynamic
//     mode: only the servers with a member of the room subscribe to it
//     (routing.go);
//   - the events addressed to a user, and in streams mode those of other
//     rooms, travel between Go nodes only, in an envelope (wire.go)
//     broadcast to relayRoom, which only Go nodes' sinks join (nodes
//     before the hub join no such room, and so never hand an envelope to
//     a client).
//
// Guarantees (see chat.Broker): the node publishes from a bounded queue in
// one goroutine, in order, retrying with back-off while Redis is
// unreachable; when the queue is full the oldest event is dropped, counted
// (chat_cluster_dropped_total) and logged; an event's Sent callback is
// called once it is published, or with the reason it was dropped. In
// sharded mode an event published while a node cannot read Redis does not
// reach that node; in streams mode it reaches it when it reads again,
// within the stream's retention, and the broker is a chat.OrderedBroker:
// it reads the stream itself, hands every entry over with its position,
// hands the node's own messages back, and starts from the stream's latest
// entries (BrokerOptions.Seed; see stream.go).
type Broker struct {
	c   *Cluster
	o   BrokerOptions
	m   *brokerMetrics
	log *slog.Logger

	// Handlers, registered before Run.
	events  []chat.BrokerEventHandler
	control []chat.ControlEventHandler
	dir     chat.DirectoryHandler

	io      *socket.Server
	pub     publisher
	sink    *socket.Socket
	running bool

	mu     sync.Mutex
	cond   *sync.Cond
	queue  []queued
	closed bool
	// linked is false after a failed publication, until one succeeds.
	linked atomic.Bool

	// routes are the rooms the hub has members in (routing.go).
	routes routes
	// joins are the rooms whose messages also go on the relay for a while
	// (joinRelay, routing.go).
	joins joinRelay

	stopped chan struct{}
	servers atomic.Int64
	quit    chan struct{}

	// reader reads the stream in streams mode (nil in sharded mode), until
	// stopReading.
	reader      *streamReader
	stopReading context.CancelFunc
	readerDone  chan struct{}

	// admin links the Admin UI's namespace across the nodes (nil when the
	// Admin UI is off); see adminLink.
	admin *adminLink
	// requests are this node's FetchSockets calls waiting for answers.
	reqMu    sync.Mutex
	requests map[string]*fetchRequest
}

var (
	_ chat.OrderedBroker = (*Broker)(nil)
	_ chat.Directory     = (*Broker)(nil)
)

// BrokerOptions configure a Broker. Zero fields take their defaults.
type BrokerOptions struct {
	// Buffer bounds the events waiting to be published during an outage
	// (REDIS_PUBLISH_BUFFER, default 10,000); past it the oldest is
	// dropped, counted and logged.
	Buffer int
	// FetchTimeout bounds the other nodes' answers to FetchSockets
	// (default: the Cluster's RequestTimeout).
	FetchTimeout time.Duration
	// SocketsLimit is the most sockets of one namespace this node lists
	// to the others (default 10,000).
	SocketsLimit int
	// Admin carries the Socket.IO Admin UI's namespace across the nodes.
	Admin bool
	// Seed is how many of the stream's last entries a node reads when it
	// starts, in streams mode (RESUME_LOG_SIZE; default 10,000): the
	// messages among them are what it can resume clients from.
	Seed int
}

// publisher is the part of the library's cluster adapters the broker
// uses.
type publisher interface {
	PublishAndReturnOffset(*sioadapter.ClusterMessage) (sioadapter.Offset, error)
	ServerCount() int64
	Close()
}

// Broker returns the cluster's broker. It receives nothing before Run.
func (c *Cluster) Broker(o BrokerOptions) *Broker {
	if o.Buffer <= 0 {
		o.Buffer = 10_000
	}
	if o.FetchTimeout <= 0 {
		o.FetchTimeout = c.o.RequestTimeout
	}
	if o.SocketsLimit <= 0 {
		o.SocketsLimit = 10_000
	}
	if o.Seed <= 0 {
		o.Seed = 10_000
	}
	b := &Broker{c: c, o: o, m: newBrokerMetrics(c.o.Registerer), log: c.o.Logger,
		routes:  routes{held: map[string]int{}},
		stopped: make(chan struct{}), quit: make(chan struct{})}
	b.servers.Store(-1)
	b.linked.Store(true)
	b.cond = sync.NewCond(&b.mu)
	return b
}

// RegisterEventHandler adds a receiver of the other nodes' events (before
// Run).
func (b *Broker) RegisterEventHandler(h chat.BrokerEventHandler) { b.events = append(b.events, h) }

// RegisterControlHandler adds a receiver of the other nodes' control
// events (before Run).
func (b *Broker) RegisterControlHandler(h chat.ControlEventHandler) {
	b.control = append(b.control, h)
}

// RegisterDirectoryHandler sets what answers the other nodes' socket
// requests (before Run).
func (b *Broker) RegisterDirectoryHandler(h chat.DirectoryHandler) { b.dir = h }

// Run subscribes and starts publishing.
func (b *Broker) Run() error {
	if b.running {
		return errors.New("redis: the broker runs already")
	}
	opts := socket.DefaultServerOptions()
	opts.SetServeClient(false)
	// The adapters answer the cluster's fetch-sockets requests with this
	// node's sockets, not the sink (see answeringAdapter).
	opts.SetAdapter(&answeringBuilder{inner: b.c.adapter, answer: b.answerFetch})
	b.io = socket.NewServer(nil, opts)
	nsp := b.io.Sockets()
	pub, ok := nsp.Adapter().(publisher)
	if !ok {
		return fmt.Errorf("redis: the cluster adapter %T cannot publish", nsp.Adapter())
	}
	if b.c.streams != nil && b.c.cluster != nil {
		pub = streamsCount{publisher: pub, c: b.c, channel: b.c.o.KeyPrefix + "#/#"}
	}
	b.pub = pub
	var err error
	if b.sink, err = joinSink(nsp, newSinkConn("cluster-sink")); err != nil {
		return err
	}
	// Control events, the Go nodes' requests, other rooms' and users'
	// events go to rooms that only Go nodes' sinks join: a Node server of
	// the cluster delivers them to no client.
	b.sink.Join(internalRoom, nodesRoom, relayRoom)
	b.sink.OnAnyOutgoing(func(args ...any) { b.guard("cluster message", func() { b.onRemote(args...) }) })
	b.startRouting(nsp.Adapter())
	if b.o.Admin {
		if b.admin, err = b.startAdminLink(); err != nil {
			return err
		}
	}
	b.running = true
	go b.publishLoop()
	go b.countLoop()
	if b.c.streams != nil {
		b.startReading()
	}
	return nil
}

// startReading starts the stream's reader, and waits (a request timeout
// at most) until the seed is read, so that the node takes no client
// before it knows the latest messages.
func (b *Broker) startReading() {
	b.reader = &streamReader{b: b, s: b.c.streams, client: b.c.client, stream: b.c.o.KeyPrefix,
		seed: int64(b.o.Seed), count: 500, block: time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	b.stopReading = cancel
	b.readerDone = make(chan struct{})
	seeded := make(chan struct{})
	go func() {
		defer close(b.readerDone)
		b.reader.run(ctx, seeded)
	}()
	select {
	case <-seeded:
	case <-time.After(2 * b.c.o.RequestTimeout):
		b.log.Warn("the stream's latest entries could not be read in time; this node resumes no client exactly until it reads them")
	}
}

// Ordered reports whether the broker keeps the cluster's ordered log: in
// streams mode (chat.OrderedBroker).
func (b *Broker) Ordered() bool { return b.c.streams != nil }

// Floor is the position after which this node has read the whole stream
// (chat.OrderedBroker).
func (b *Broker) Floor() (chat.Position, bool) {
	if b.reader == nil {
		return chat.Position{}, false
	}
	return b.reader.floorNow()
}

// guard runs fn, recovering (and logging) a panic: another node's event
// must not stop this one.
func (b *Broker) guard(what string, fn func()) {
	defer func() {
		if v := recover(); v != nil {
			b.m.panics.Inc()
			b.log.Error("recovered from a panic", "in", what, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
		}
	}()
	fn()
}

// joinSink connects an in-process sink socket to nsp of the broker's
// library server, and tells the namespace's answeringAdapter which socket
// it is.
func joinSink(nsp socket.Namespace, conn *sinkConn) (*socket.Socket, error) {
	client := socket.NewClient(nsp.Server(), conn)
	joined := make(chan *socket.Socket, 1)
	nsp.Add(client, nil, func(sock *socket.Socket) { joined <- sock })
	select {
	case sink := <-joined:
		if a, ok := nsp.Adapter().(*answeringAdapter); ok {
			a.setSink(sink.Id())
		}
		return sink, nil
	case <-time.After(5 * time.Second):
		return nil, fmt.Errorf("redis: the cluster sink of namespace %s did not join", nsp.Name())
	}
}

// onRemote handles a broadcast from another node: [event, args...].
func (b *Broker) onRemote(args ...any) {
	if len(args) == 0 {
		return
	}
	name, ok := args[0].(string)
	if !ok {
		return
	}
	payload := args[1:]
	var at entryInfo
	if b.reader != nil {
		if cur := b.reader.cur.Load(); cur != nil {
			at = *cur
		}
	}
	if at.own {
		// This node's own entry, back from the stream: only its messages
		// matter (its hub delivers them now).
		b.onOwn(name, payload, at.pos)
		return
	}
	if b.onNodeRequest(name, payload) {
		return // another Go node's request, for no client
	}
	b.m.received.Inc()
	var data any
	if len(payload) > 0 {
		data = payload[0]
	}
	switch {
	case chat.IsInternal(name):
		e := chat.Event{Name: name, Data: data}
		for _, h := range b.control {
			h.HandleControl(e)
		}
		return
	case name == roomEnvelope:
		// In streams mode every room's event is handed on, held here or
		// not: the one stream is every node's log, whose order the
		// handlers may keep whole.
		if room, e, ok := openEnvelope(data, "room"); ok && (b.roomEvent(room) || b.c.subs == nil) {
			e.Pos = at.pos
			b.publication(room, e)
		}
		return
	case name == userEnvelope:
		if user, e, ok := openEnvelope(data, "userId"); ok {
			for _, h := range b.events {
				h.HandleUserEvent(user, e)
			}
		}
		return
	}
	e := globalEvent(name, payload)
	e.Pos = at.pos
	b.publication(chat.GlobalRoom, e)
}

// onOwn hands back a message this node published, now that the stream has
// it at pos.
func (b *Broker) onOwn(name string, payload []any, pos chat.Position) {
	room, e := chat.GlobalRoom, globalEvent(name, payload)
	if name == roomEnvelope && len(payload) > 0 {
		var ok bool
		if room, e, ok = openEnvelope(payload[0], "room"); !ok {
			return
		}
	}
	if !e.IsMessage() {
		return
	}
	e.Pos, e.Own = pos, true
	b.publication(room, e)
}

func (b *Broker) publication(room string, e chat.Event) {
	for _, h := range b.events {
		h.HandlePublication(room, e)
	}
}

// Publish queues e for the members of room on the other nodes: in
// sharded mode on the room's channel (routing.go), in streams mode as an
// envelope in the one stream.
func (b *Broker) Publish(room string, e chat.Event) {
	switch {
	case room == chat.GlobalRoom:
		b.enqueue(broadcast("/", globalData(e), nil), e.Sent)
	case b.c.subs != nil:
		b.enqueue(roomMessage(room, e), e.Sent)
		if e.IsMessage() && b.joins.relaying(room, time.Now()) {
			// See joinRelay (routing.go).
			b.enqueue(broadcast("/", []any{roomEnvelope, seal(e, "room", room)}, []socket.Room{relayRoom}), nil)
			b.m.roomRelayed.Inc()
		}
	default:
		b.enqueue(broadcast("/", []any{roomEnvelope, seal(e, "room", room)}, []socket.Room{relayRoom}), e.Sent)
	}
}

// PublishUser queues e for the connections of userID on the other nodes.
func (b *Broker) PublishUser(userID string, e chat.Event) {
	b.enqueue(broadcast("/", []any{userEnvelope, seal(e, "userId", userID)}, []socket.Room{relayRoom}), nil)
	if e.Join != "" && e.Invite && b.ownChannel(e.Join) {
		b.joins.joined(e.Join, time.Now())
	}
}

// PublishControl queues a control event for the other nodes.
func (b *Broker) PublishControl(e chat.Event) {
	b.enqueue(broadcast("/", []any{e.Name, e.Data}, []socket.Room{internalRoom}), nil)
}

// broadcast is a cluster message that broadcasts data to rooms of nsp
// (none: every socket).
func broadcast(nsp string, data []any, rooms []socket.Room) *sioadapter.ClusterMessage {
	if rooms == nil {
		rooms = []socket.Room{}
	}
	return &sioadapter.ClusterMessage{
		Type: sioadapter.BROADCAST,
		Data: &sioadapter.BroadcastMessage{
			Packet: &parser.Packet{Type: parser.EVENT, Nsp: nsp, Data: data},
			Opts:   &sioadapter.PacketOptions{Rooms: rooms, Except: []socket.Room{}, Flags: &socket.BroadcastFlags{}},
		},
	}
}

// queued is a cluster message waiting to be published, and whom to tell
// when it was (chat.Event.Sent).
type queued struct {
	msg  *sioadapter.ClusterMessage
	sent func(error)
}

// errDropped is what Event.Sent hears of an event the broker gave up.
var errDropped = errors.New("redis: the event was not published to the other nodes")

// enqueue queues msg for the publisher; sent, when not nil, is called
// once it is published or given up.
func (b *Broker) enqueue(msg *sioadapter.ClusterMessage, sent func(error)) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		if sent != nil {
			sent(fmt.Errorf("%w: the broker is closed", errDropped))
		}
		return
	}
	var gone queued
	if len(b.queue) >= b.o.Buffer {
		gone = b.queue[0]
		b.queue[0] = queued{}
		b.queue = b.queue[1:]
		b.m.dropped.Inc()
		b.log.Warn("cluster publish queue full: the oldest event will not reach the other nodes",
			"limit", b.o.Buffer, "setting", "REDIS_PUBLISH_BUFFER")
	}
	b.queue = append(b.queue, queued{msg: msg, sent: sent})
	b.m.queue.Set(float64(len(b.queue)))
	b.mu.Unlock()
	b.cond.Signal()
	if gone.sent != nil {
		gone.sent(fmt.Errorf("%w: the queue is full (REDIS_PUBLISH_BUFFER)", errDropped))
	}
}

// publishLoop publishes queued events in order, retrying with back-off
// while the cluster is unreachable.
func (b *Broker) publishLoop() {
	defer close(b.stopped)
	backoff := 50 * time.Millisecond
	for {
		b.mu.Lock()
		for len(b.queue) == 0 && !b.closed {
			b.cond.Wait()
		}
		if len(b.queue) == 0 {
			b.mu.Unlock()
			return
		}
		q := b.queue[0]
		closed := b.closed
		b.mu.Unlock()
		if _, err := b.pub.PublishAndReturnOffset(q.msg); err != nil {
			b.m.publishErrors.Inc()
			b.linked.Store(false)
			b.c.routingStale()
			if closed {
				b.drop("shutdown")
				continue
			}
			// Up to BackoffMax: 2 s on one server, 150 ms on a cluster,
			// whose dead master's successor takes over within seconds.
			time.Sleep(backoff)
			backoff = min(2*backoff, b.c.o.BackoffMax)
			continue
		}
		b.linked.Store(true)
		backoff = 50 * time.Millisecond
		b.mu.Lock()
		mine := len(b.queue) > 0 && b.queue[0].msg == q.msg
		if mine {
			b.queue[0] = queued{}
			b.queue = b.queue[1:]
		}
		b.m.queue.Set(float64(len(b.queue)))
		b.mu.Unlock()
		b.m.published.Inc()
		if mine && q.sent != nil {
			q.sent(nil)
		}
	}
}

// drop gives up the queued events (on shutdown, when the cluster is
// unreachable), counting them.
func (b *Broker) drop(why string) {
	b.mu.Lock()
	gone := b.queue
	b.queue = nil
	b.mu.Unlock()
	if n := len(gone); n > 0 {
		b.m.dropped.Add(float64(n))
		b.log.Warn("events not published to the other nodes", "count", n, "why", why)
	}
	for _, q := range gone {
		if q.sent != nil {
			q.sent(fmt.Errorf("%w: %s", errDropped, why))
		}
	}
}

// Linked reports whether the last attempt to publish succeeded
// (chat.OrderedBroker).
func (b *Broker) Linked() bool { return b.linked.Load() }

// Nodes is how many servers share the cluster channel, as Redis counted
// them lately (Node's adapters count the same way); -1 before the first
// count.
func (b *Broker) Nodes() int64 { return b.servers.Load() }

// countLoop refreshes the server count every two seconds.
func (b *Broker) countLoop() {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		if n := b.pub.ServerCount(); n > 0 {
			b.servers.Store(n)
		}
		select {
		case <-b.quit:
			return
		case <-t.C:
		}
	}
}

// Close publishes what is queued until ctx ends, then stops.
func (b *Broker) Close(ctx context.Context) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.mu.Unlock()
	b.cond.Broadcast()
	if !b.running {
		return nil
	}
	close(b.quit)
	select {
	case <-b.stopped:
	case <-ctx.Done():
		b.drop("shutdown timeout")
		<-b.stopped
	}
	if b.stopReading != nil {
		b.stopReading()
		select {
		case <-b.readerDone:
		case <-ctx.Done():
		}
	}
	if b.admin != nil {
		b.admin.close()
	}
	b.stopRouting()
	b.pub.Close()
	return nil
}

// sinkConn is the in-process Engine.IO connection of the cluster sink. It
// discards what it is sent.
type sinkConn struct {
	types.EventEmitter
	req       *types.HttpContext
	transport transports.Transport
	id        string
}

func newSinkConn(id string) *sinkConn {
	r, _ := http.NewRequest(http.MethodGet, "http://cluster.internal/socket.io/?EIO=4&transport=internal", nil)
	// Its transport is never writable: volatile broadcasts skip the sink.
	return &sinkConn{EventEmitter: types.NewEventEmitter(), req: types.NewHttpContext(discardWriter{}, r), transport: transports.MakeTransport(), id: id}
}

func (c *sinkConn) SetReadyState(string)              {}
func (c *sinkConn) Protocol() int                     { return 4 }
func (c *sinkConn) Request() *types.HttpContext       { return c.req }
func (c *sinkConn) RemoteAddress() string             { return "cluster.internal" }
func (c *sinkConn) Transport() transports.Transport   { return c.transport }
func (c *sinkConn) Id() string                        { return c.id }
func (c *sinkConn) ReadyState() string                { return "open" }
func (c *sinkConn) Upgraded() bool                    { return false }
func (c *sinkConn) Upgrading() bool                   { return false }
func (c *sinkConn) MaybeUpgrade(transports.Transport) {}
func (c *sinkConn) Close(bool)                        {}
func (c *sinkConn) Construct(string, engineio.BaseServer, transports.Transport, *types.HttpContext, int) {
}
func (c *sinkConn) Send(io.Reader, *packet.Options, engineio.SendCallback) engineio.Socket  { return c }
func (c *sinkConn) Write(io.Reader, *packet.Options, engineio.SendCallback) engineio.Socket { return c }

type discardWriter struct{}

func (discardWriter) Header() http.Header         { return http.Header{} }
func (discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (discardWriter) WriteHeader(int)             {}

type brokerMetrics struct {
	routeMetrics
	received      prometheus.Counter
	published     prometheus.Counter
	publishErrors prometheus.Counter
	dropped       prometheus.Counter
	queue         prometheus.Gauge
	adminDropped  prometheus.Counter
	panics        prometheus.Counter
}

func newBrokerMetrics(r prometheus.Registerer) *brokerMetrics {
	m := &brokerMetrics{
		routeMetrics: newRouteMetrics(),
		received: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_cluster_received_total", Help: "Broadcasts received from other nodes.",
		}),
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_cluster_published_total", Help: "Messages published to the other nodes.",
		}),
		publishErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_cluster_publish_errors_total", Help: "Failed publications to the cluster (each is retried).",
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_cluster_dropped_total", Help: "Messages that could not be published to the other nodes.",
		}),
		queue: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "chat_cluster_publish_queue", Help: "Messages waiting to be published to the other nodes.",
		}),
		adminDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_admin_events_dropped_total", Help: "Admin UI events not published to the other nodes (queue full or Redis down).",
		}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_cluster_panics_total", Help: "Panics recovered while handling another node's event (each is a bug).",
		}),
	}
	if r != nil {
		r.MustRegister(m.received, m.published, m.publishErrors, m.dropped, m.queue, m.adminDropped, m.panics)
		r.MustRegister(m.collectors()...)
	}
	return m
}
