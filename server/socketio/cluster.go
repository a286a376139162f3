package socketio

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	sioadapter "github.com/zishang520/socket.io/adapters/adapter/v3"
	"github.com/zishang520/socket.io/parsers/engine/v3/packet"
	"github.com/zishang520/socket.io/parsers/socket/v3/parser"
	engineio "github.com/zishang520/socket.io/servers/engine/v3"
	"github.com/zishang520/socket.io/servers/engine/v3/transports"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"

	"github.com/scalable-chat-go/server/chat"
)

// The cluster link.
//
// The nodes speak through the library's cluster adapter (the Socket.IO
// Redis adapter), so that they use exactly the channels and the wire
// format of Node's adapters and a Node server can join the cluster. The
// adapter needs a namespace to live in: the link keeps a private
// socket.Server of the library, never served to clients, whose namespace
// "/" has the cluster adapter and one socket: the sink, an in-process
// connection that discards what it is sent. A broadcast that arrives from
// another node is delivered by the cluster adapter to the sink, whose
// outgoing listener hands it to the edge; the edge then observes it
// (history ring, replica store) and delivers it to its own clients under
// the same lock as local events, so newcomers meet remote messages without
// a gap or a duplicate too. That is constant cost: no client socket has a
// library object.
//
// Outgoing, the edge delivers locally first and queues the publication for
// a background publisher, so a Redis outage never slows local delivery;
// the publisher retries in order and, when its bounded queue is full,
// drops the oldest (counted and logged).
type clusterLink struct {
	edge    *Server
	io      *socket.Server
	pub     publisher
	sink    *socket.Socket
	sinkCon *sinkConn

	mu      sync.Mutex
	cond    *sync.Cond
	queue   []*sioadapter.ClusterMessage
	closed  bool
	stopped chan struct{}

	servers atomic.Int64
	quit    chan struct{}

	// admin links the Admin UI's namespace across the nodes (nil when
	// ADMIN_UI is off); see adminLink.
	admin *adminLink
	// requests are this node's fetchRemote calls waiting for answers.
	reqMu    sync.Mutex
	requests map[string]*fetchRequest
}

// publisher is the part of the library's cluster adapters the link uses.
type publisher interface {
	PublishAndReturnOffset(*sioadapter.ClusterMessage) (sioadapter.Offset, error)
	ServerCount() int64
	Close()
}

func (s *Server) startCluster() error {
	opts := socket.DefaultServerOptions()
	opts.SetServeClient(false)
	// The adapters answer the cluster's fetch-sockets requests with this
	// node's sockets, not the sink (see answeringAdapter).
	opts.SetAdapter(&answeringBuilder{inner: s.o.Cluster, answer: s.answerFetch})
	io := socket.NewServer(nil, opts)
	nsp := io.Sockets()
	pub, ok := nsp.Adapter().(publisher)
	if !ok {
		return fmt.Errorf("socketio: the cluster adapter %T cannot publish", nsp.Adapter())
	}
	l := &clusterLink{edge: s, io: io, pub: pub, stopped: make(chan struct{}), quit: make(chan struct{})}
	l.servers.Store(-1)
	l.cond = sync.NewCond(&l.mu)
	l.sinkCon = newSinkConn("cluster-sink")
	var err error
	if l.sink, err = joinSink(nsp, l.sinkCon); err != nil {
		return err
	}
	// Internal events (bans) are published to a room only the sinks of Go
	// nodes join: a Node server of the cluster delivers them to no client.
	l.sink.Join(internalRoom)
	l.sink.OnAnyOutgoing(func(args ...any) { s.eng.Guard("cluster message", func() { l.onRemote(args...) }) })
	l.sink.Join(nodesRoom)
	if s.admin != nil {
		if l.admin, err = startAdminLink(l); err != nil {
			return err
		}
	}
	s.cluster = l
	go l.publishLoop()
	go l.countLoop()
	return nil
}

// joinSink connects an in-process sink socket to nsp of the link's
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
		return nil, fmt.Errorf("socketio: the cluster sink of namespace %s did not join", nsp.Name())
	}
}

// onRemote handles a broadcast from another node: [event, args...], with
// the cluster adapter's recovery offset last when it adds one.
func (l *clusterLink) onRemote(args ...any) {
	s := l.edge
	if len(args) == 0 {
		return
	}
	name, ok := args[0].(string)
	if !ok {
		return
	}
	payload := args[1:]
	if s.o.RecoveryWindow > 0 && len(payload) > 1 {
		// The cluster adapter appends its own recovery offset; ours is
		// the message id.
		if _, isOffset := payload[len(payload)-1].(string); isOffset {
			payload = payload[:len(payload)-1]
		}
	}
	if l.onNodeRequest(name, payload) {
		return // another Go node's request, for no client
	}
	s.m.clusterReceived.Inc()
	if chat.IsInternal(name) {
		var data any
		if len(payload) > 0 {
			data = payload[0]
		}
		s.onInternal(chat.Event{Name: name, Data: data}, true)
		return
	}
	if name == chat.EventMessageDeleted {
		if d, ok := wireDeletion(payload); ok {
			s.deliverMu.Lock()
			s.deliverLocked(chat.DeletionEvent(d))
			s.deliverMu.Unlock()
			if s.o.OnRemoteDeletion != nil {
				s.o.OnRemoteDeletion(d)
			}
			return
		}
	}
	if m, ok := wireMessage(name, payload); ok {
		s.deliverMu.Lock()
		defer s.deliverMu.Unlock()
		if s.o.History.Has(m.ID) {
			return // delivered here already (a repeated publication)
		}
		s.deliverLocked(chat.MessageEvent(m))
		if s.o.OnRemote != nil {
			s.o.OnRemote(m)
		}
		return
	}
	// Another node's own event (a Node server of the same cluster sends
	// {message, username} only; a Go node its other events): relay it as
	// it is.
	var data any
	if len(payload) > 0 {
		data = payload[0]
	}
	s.deliverMu.Lock()
	defer s.deliverMu.Unlock()
	s.deliverLocked(chat.Event{Name: name, Data: data})
}

// wireMessage reads a `message` event of a Go node: {message, username, id,
// createdAt}.
func wireMessage(ev string, payload []any) (chat.Message, bool) {
	if ev != chat.EventMessage || len(payload) == 0 {
		return chat.Message{}, false
	}
	obj, ok := payload[0].(map[string]any)
	if !ok {
		return chat.Message{}, false
	}
	text, _ := obj["message"].(string)
	user, _ := obj["username"].(string)
	id, _ := obj["id"].(string)
	at, _ := obj["createdAt"].(string)
	userID, _ := obj["userId"].(string)
	created, err := time.Parse(time.RFC3339Nano, at)
	if id == "" || len(id) > 64 || err != nil || len(userID) > 256 {
		return chat.Message{}, false
	}
	return chat.Message{ID: id, Text: text, Username: user, CreatedAt: created.UTC(), UserID: userID}, true
}

// wireDeletion reads a `message:deleted` {id} of another node. Who deleted
// it and when do not travel (clients need neither): a replica's tombstone
// says "remote" and the time it arrived.
func wireDeletion(payload []any) (chat.Deletion, bool) {
	if len(payload) == 0 {
		return chat.Deletion{}, false
	}
	obj, _ := payload[0].(map[string]any)
	id, _ := obj["id"].(string)
	if id == "" || len(id) > 128 {
		return chat.Deletion{}, false
	}
	return chat.Deletion{ID: id, By: "remote", At: time.Now().UTC().Truncate(time.Millisecond)}, true
}

// internalRoom is the cluster room of internal events.
const internalRoom socket.Room = "scalable-chat-go:internal"

// publish queues an event for the other nodes.
func (l *clusterLink) publish(e chat.Event) {
	var data []any
	if e.IsMessage() {
		data = []any{chat.EventMessage, e.Message.Wire()}
	} else {
		data = []any{e.Name, e.Data}
	}
	rooms := []socket.Room{}
	if chat.IsInternal(e.Name) {
		rooms = []socket.Room{internalRoom}
	}
	msg := &sioadapter.ClusterMessage{
		Type: sioadapter.BROADCAST,
		Data: &sioadapter.BroadcastMessage{
			Packet: &parser.Packet{Type: parser.EVENT, Nsp: "/", Data: data},
			Opts:   &sioadapter.PacketOptions{Rooms: rooms, Except: []socket.Room{}, Flags: &socket.BroadcastFlags{}},
		},
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	if len(l.queue) >= l.edge.o.ClusterBuffer {
		l.queue[0] = nil
		l.queue = l.queue[1:]
		l.edge.m.clusterDropped.Inc()
		l.edge.log.Warn("cluster publish queue full: the oldest event will not reach the other nodes",
			"limit", l.edge.o.ClusterBuffer)
	}
	l.queue = append(l.queue, msg)
	l.edge.m.clusterQueue.Set(float64(len(l.queue)))
	l.mu.Unlock()
	l.cond.Signal()
}

// publishLoop publishes queued events in order, retrying with back-off
// while the cluster is unreachable.
func (l *clusterLink) publishLoop() {
	defer close(l.stopped)
	backoff := 50 * time.Millisecond
	for {
		l.mu.Lock()
		for len(l.queue) == 0 && !l.closed {
			l.cond.Wait()
		}
		if len(l.queue) == 0 {
			l.mu.Unlock()
			return
		}
		msg := l.queue[0]
		closed := l.closed
		l.mu.Unlock()
		if _, err := l.pub.PublishAndReturnOffset(msg); err != nil {
			l.edge.m.clusterPublishErrors.Inc()
			if closed {
				l.drop("shutdown")
				continue
			}
			time.Sleep(backoff)
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		l.mu.Lock()
		if len(l.queue) > 0 && l.queue[0] == msg {
			l.queue[0] = nil
			l.queue = l.queue[1:]
		}
		l.edge.m.clusterQueue.Set(float64(len(l.queue)))
		l.mu.Unlock()
		l.edge.m.clusterPublished.Inc()
	}
}

// drop gives up the queued events (on shutdown, when the cluster is
// unreachable), counting them.
func (l *clusterLink) drop(why string) {
	l.mu.Lock()
	n := len(l.queue)
	l.queue = nil
	l.mu.Unlock()
	if n > 0 {
		l.edge.m.clusterDropped.Add(float64(n))
		l.edge.log.Warn("events not published to the other nodes", "count", n, "why", why)
	}
}

// nodes is how many servers share the cluster channel, as Redis counted
// them lately (Node's adapters count the same way); -1 before the first
// count.
func (l *clusterLink) nodes() int64 { return l.servers.Load() }

// countLoop refreshes the server count every two seconds.
func (l *clusterLink) countLoop() {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		if n := l.pub.ServerCount(); n > 0 {
			l.servers.Store(n)
		}
		select {
		case <-l.quit:
			return
		case <-t.C:
		}
	}
}

// close publishes what is queued until ctx ends, then stops.
func (l *clusterLink) close(ctx context.Context) {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	l.cond.Broadcast()
	close(l.quit)
	select {
	case <-l.stopped:
	case <-ctx.Done():
		l.drop("shutdown timeout")
		<-l.stopped
	}
	if l.admin != nil {
		l.admin.close()
	}
	l.pub.Close()
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
