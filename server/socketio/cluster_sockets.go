package socketio

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	sioadapter "github.com/zishang520/socket.io/adapters/adapter/v3"
	"github.com/zishang520/socket.io/parsers/socket/v3/parser"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// The cluster's socket requests.
//
// Node's adapters let any server of a cluster ask the others for their
// sockets (FETCH_SOCKETS: `io.fetchSockets()`, the Admin UI's socket list)
// and tell them to disconnect some (DISCONNECT_SOCKETS). The link's library
// namespaces hold the sink alone, so the library would answer for this node
// with the sink. Here:
//
//   - Another server's fetch: every adapter of the link is an
//     answeringAdapter, which lists this node's real sockets in its answer to
//     a fetch that matches every socket (no room filter); a Node server of the
//     cluster, or its Admin UI, gets them as remote sockets. A fetch filtered
//     by room gets none of this node's sockets (their rooms are not the
//     library's).
//   - This node's fetch (its Admin UI's socket list): the library's request
//     does not work from Go (see fetchRemote), so the Go nodes ask each
//     other with broadcasts to a room only their sinks are in (nodesRoom),
//     and Node servers of the cluster are not asked (their sockets are not
//     listed).
//   - Disconnect: a Go node cannot see the DISCONNECT_SOCKETS requests
//     (the library applies them to its own namespace before anyone can look),
//     so a Go node sends both: disconnectSocketsEvent to the Go nodes, and,
//     for a request that names a socket or a room, DISCONNECT_SOCKETS for the
//     Node servers. A request for every socket of a namespace goes to the Go
//     nodes only: the library would disconnect their sinks.

// answeringBuilder wraps the cluster adapter constructor of the link.
type answeringBuilder struct {
	inner  socket.AdapterConstructor
	answer func(nsp string) []*sioadapter.SocketResponse
}

// New builds the namespace's cluster adapter, wrapped.
func (b *answeringBuilder) New(nsp socket.Namespace) socket.Adapter {
	a := b.inner.New(nsp)
	ca, ok := a.(sioadapter.ClusterAdapter)
	if !ok {
		return a
	}
	name := nsp.Name()
	w := &answeringAdapter{ClusterAdapter: ca, answer: func() []*sioadapter.SocketResponse { return b.answer(name) }}
	// The library's cluster adapter sends its responses through its
	// prototype (PublishResponse calls Proto().DoPublishResponse): the
	// wrapper becomes the prototype, and delegates everything else.
	ca.Prototype(w)
	return w
}

// answeringAdapter is a library cluster adapter whose answers to
// fetch-sockets requests list this node's sockets instead of the sink.
type answeringAdapter struct {
	sioadapter.ClusterAdapter
	answer func() []*sioadapter.SocketResponse
	sink   atomic.Value // socket.SocketId of the namespace's sink
}

func (a *answeringAdapter) setSink(id socket.SocketId) { a.sink.Store(id) }

// DoPublishResponse sends a response to the requesting server, with this
// node's sockets in a fetch-sockets response that matched the sink.
func (a *answeringAdapter) DoPublishResponse(to sioadapter.ServerId, r *sioadapter.ClusterResponse) error {
	if r.Type == sioadapter.FETCH_SOCKETS_RESPONSE {
		if d, ok := r.Data.(*sioadapter.FetchSocketsResponse); ok {
			out := &fetchSocketsResponse{RequestID: d.RequestId, Sockets: []*sioadapter.SocketResponse{}}
			if a.listsSink(d.Sockets) {
				out.Sockets = a.answer()
			}
			r.Data = out
		}
	}
	return a.ClusterAdapter.DoPublishResponse(to, r)
}

// fetchSocketsResponse is the library's FetchSocketsResponse with its
// sockets always on the wire: the library leaves an empty list out
// (omitempty), and Node's adapter then fails on the response with an
// uncaught TypeError, which stops a Node server of the cluster.
type fetchSocketsResponse struct {
	RequestID string                       `json:"requestId" msgpack:"requestId"`
	Sockets   []*sioadapter.SocketResponse `json:"sockets" msgpack:"sockets"`
}

func (a *answeringAdapter) listsSink(sockets []*sioadapter.SocketResponse) bool {
	sink, _ := a.sink.Load().(socket.SocketId)
	for _, s := range sockets {
		if s != nil && s.Id == sink {
			return true
		}
	}
	return false
}

// answerFetch lists this node's sockets of nsp for another server's
// fetch-sockets request.
func (s *Server) answerFetch(nsp string) []*sioadapter.SocketResponse {
	if s.admin != nil {
		s.admin.noteWatched()
	}
	infos := s.localSockets(nsp, s.socketsLimit())
	out := make([]*sioadapter.SocketResponse, len(infos))
	for i, info := range infos {
		out[i] = info.response()
	}
	return out
}

// fetchRemote asks the other Go nodes for their sockets of nsp and
// collects their answers, until every other server of the cluster answered
// or timeout passed (a Node server does not answer: a cluster with one
// waits the whole timeout).
//
// The library's own requests cannot be used from here: its cluster adapter
// counts the servers to wait for with the base adapter's ServerCount
// (always 1), so its fetch-sockets request and server-side events with an
// acknowledgement never ask anyone, and the streams adapter drops every
// server-side event it receives (it decodes their data into a map where the
// cluster adapter expects its own type). So the Go nodes talk among
// themselves with broadcasts to nodesRoom (see sendToNodes).
func (l *clusterLink) fetchRemote(ctx context.Context, nsp string, timeout time.Duration) ([]adminSocket, error) {
	expected := int(l.pub.ServerCount()) - 1
	if expected <= 0 {
		return nil, nil
	}
	req := &fetchRequest{replies: make(chan []adminSocket, expected)}
	id := newRequestID()
	l.reqMu.Lock()
	if l.requests == nil {
		l.requests = make(map[string]*fetchRequest)
	}
	l.requests[id] = req
	l.reqMu.Unlock()
	defer func() {
		l.reqMu.Lock()
		delete(l.requests, id)
		l.reqMu.Unlock()
	}()
	if err := l.sendToNodes(fetchSocketsEvent, map[string]any{"id": id, "nsp": nsp}); err != nil {
		return nil, fmt.Errorf("ask for the sockets of %s: %w", nsp, err)
	}
	var out []adminSocket
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for got := 0; got < expected; got++ {
		select {
		case sockets := <-req.replies:
			out = append(out, sockets...)
		case <-ctx.Done():
			return out, ctx.Err()
		case <-deadline.C:
			return out, fmt.Errorf("%d of %d other servers answered within %v (Node servers do not)", got, expected, timeout)
		}
	}
	return out, nil
}

// fetchRequest collects the answers to one fetchRemote.
type fetchRequest struct{ replies chan []adminSocket }

// The Go nodes' own requests, broadcast to nodesRoom:
// fetchSocketsEvent {id, nsp} asks for sockets, fetchSocketsReplyEvent
// {id, sockets} answers (every Go node receives it; the asking one knows the
// id), disconnectSocketsEvent {nsp, close, filter} disconnects (filter: a
// socket id, a room, or "" for every socket of the namespace).
const (
	fetchSocketsEvent      = "scalable-chat-go:fetch-sockets"
	fetchSocketsReplyEvent = "scalable-chat-go:fetch-sockets:reply"
	disconnectSocketsEvent = "scalable-chat-go:disconnect-sockets"
)

// nodesRoom is the room of the link's library namespace "/" that every Go
// node's sink joins: a broadcast to it reaches the Go nodes only (no socket
// of a Node server is in it). In the sharded adapter's dynamic mode it has
// a channel of its own, which only the Go nodes subscribe to; in the
// streams mode it goes through the stream, as every broadcast does.
const nodesRoom = "scalable-chat-go:nodes"

// sendToNodes broadcasts a request to the other Go nodes.
func (l *clusterLink) sendToNodes(event string, payload map[string]any) error {
	_, err := l.pub.PublishAndReturnOffset(&sioadapter.ClusterMessage{
		Type: sioadapter.BROADCAST,
		Data: &sioadapter.BroadcastMessage{
			Packet: &parser.Packet{Type: parser.EVENT, Nsp: "/", Data: []any{event, payload}},
			Opts:   &sioadapter.PacketOptions{Rooms: []socket.Room{nodesRoom}, Except: []socket.Room{}, Flags: &socket.BroadcastFlags{}},
		},
	})
	return err
}

// onNodeRequest handles another Go node's request; false when event is
// not one.
func (l *clusterLink) onNodeRequest(event string, payload []any) bool {
	var m map[string]any
	if len(payload) > 0 {
		m, _ = payload[0].(map[string]any)
	}
	switch event {
	case fetchSocketsEvent:
		go l.edge.eng.Guard("cluster fetch", func() { l.answerNode(m) })
	case fetchSocketsReplyEvent:
		l.onFetchReply(m)
	case disconnectSocketsEvent:
		l.edge.onClusterDisconnect(m)
	default:
		return false
	}
	return true
}

// answerNode answers another Go node's fetchSocketsEvent.
func (l *clusterLink) answerNode(m map[string]any) {
	s := l.edge
	id, _ := m["id"].(string)
	nsp, _ := m["nsp"].(string)
	if id == "" || len(id) > 64 {
		return
	}
	if s.admin != nil {
		s.admin.noteWatched()
	}
	infos := s.localSockets(nsp, s.socketsLimit())
	sockets := make([]adminSocket, len(infos))
	for i, info := range infos {
		sockets[i] = info.admin()
	}
	if err := l.sendToNodes(fetchSocketsReplyEvent, map[string]any{"id": id, "sockets": sockets}); err != nil {
		s.log.Warn("could not answer another node's request for sockets", "err", err)
	}
}

// onFetchReply hands an answer to its fetchRemote, if it is this node's.
func (l *clusterLink) onFetchReply(m map[string]any) {
	id, _ := m["id"].(string)
	l.reqMu.Lock()
	req := l.requests[id]
	l.reqMu.Unlock()
	if req == nil {
		return // another node's, or too late
	}
	list, _ := m["sockets"].([]any)
	sockets := make([]adminSocket, 0, len(list))
	for _, x := range list {
		if a, ok := decodeAdminSocket(x); ok {
			sockets = append(sockets, a)
		}
	}
	select {
	case req.replies <- sockets:
	default:
	}
}

// decodeAdminSocket reads an adminSocket from its decoded JSON.
func decodeAdminSocket(x any) (adminSocket, bool) {
	b, err := json.Marshal(x)
	if err != nil {
		return adminSocket{}, false
	}
	var a adminSocket
	if err := json.Unmarshal(b, &a); err != nil || a.ID == "" {
		return adminSocket{}, false
	}
	if a.Data == nil {
		a.Data = map[string]any{}
	}
	return a, true
}

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// namespace is the link's library namespace nsp, or nil.
func (l *clusterLink) namespace(nsp string) socket.Namespace {
	switch {
	case nsp == "/":
		return l.io.Sockets()
	case nsp == adminNamespace && l.admin != nil:
		return l.admin.nsp
	}
	return nil
}

// disconnectRemote asks the other servers to disconnect the sockets of nsp
// that filter names, in the background: the Go nodes with
// disconnectSocketsEvent, the Node servers with DISCONNECT_SOCKETS when
// filter names a socket or a room (for every socket of a namespace the
// library would disconnect the Go nodes' sinks too).
func (l *clusterLink) disconnectRemote(nsp string, closeConn bool, filter string) {
	s := l.edge
	go s.eng.Guard("cluster disconnect request", func() {
		if err := l.sendToNodes(disconnectSocketsEvent, map[string]any{"nsp": nsp, "close": closeConn, "filter": filter}); err != nil {
			s.log.Warn("could not ask the other nodes to disconnect sockets", "err", err)
		}
		if n := l.namespace(nsp); n != nil && filter != "" {
			n.Adapter().DisconnectSockets(&socket.BroadcastOptions{
				Rooms: types.NewSet(socket.Room(filter)), Except: types.NewSet[socket.Room](),
			}, closeConn)
		}
	})
}

// onClusterDisconnect handles another Go node's disconnectSocketsEvent.
func (s *Server) onClusterDisconnect(m map[string]any) {
	nsp, _ := m["nsp"].(string)
	closeConn, _ := m["close"].(bool)
	filter, _ := m["filter"].(string)
	if n := s.disconnectLocal(nsp, closeConn, filter); n > 0 {
		s.log.Info("disconnected sockets at another node's request", "namespace", nsp, "filter", filter, "sockets", n, "close", closeConn)
	}
}

// adminLink carries the Admin UI's namespace across the cluster: a library
// namespace /admin on the link's server with its own cluster adapter (so
// the channels are Node's, socket.io#/admin#, and an Admin UI instrumented
// Node server of the cluster shares the events) and a sink of its own,
// whose received broadcasts go to this node's Admin UI sockets. Events go
// out through a bounded queue and one goroutine: an admin event that finds
// the queue full is dropped (counted).
type adminLink struct {
	l    *clusterLink
	nsp  socket.Namespace
	pub  publisher
	sink *socket.Socket

	queue chan *sioadapter.ClusterMessage
	quit  chan struct{}
	done  chan struct{}
	once  sync.Once
}

// adminQueueLimit bounds the admin events waiting for Redis.
const adminQueueLimit = 10_000

func startAdminLink(l *clusterLink) (*adminLink, error) {
	s := l.edge
	nsp := l.io.Of(adminNamespace, nil)
	pub, ok := nsp.Adapter().(publisher)
	if !ok {
		return nil, fmt.Errorf("socketio: the cluster adapter %T cannot publish", nsp.Adapter())
	}
	a := &adminLink{l: l, nsp: nsp, pub: pub, queue: make(chan *sioadapter.ClusterMessage, adminQueueLimit),
		quit: make(chan struct{}), done: make(chan struct{})}
	var err error
	if a.sink, err = joinSink(nsp, newSinkConn("cluster-admin-sink")); err != nil {
		return nil, err
	}
	a.sink.OnAnyOutgoing(func(args ...any) {
		s.eng.Guard("cluster admin event", func() { s.admin.onRemote(args) })
	})
	go a.publishLoop()
	return a, nil
}

// publish queues an event for the Admin UI sockets of the other nodes.
func (a *adminLink) publish(name string, args []any) {
	msg := &sioadapter.ClusterMessage{
		Type: sioadapter.BROADCAST,
		Data: &sioadapter.BroadcastMessage{
			Packet: &parser.Packet{Type: parser.EVENT, Nsp: adminNamespace, Data: append([]any{name}, args...)},
			Opts:   &sioadapter.PacketOptions{Rooms: []socket.Room{}, Except: []socket.Room{}, Flags: &socket.BroadcastFlags{}},
		},
	}
	select {
	case a.queue <- msg:
	default:
		a.l.edge.m.adminDropped.Inc()
	}
}

func (a *adminLink) publishLoop() {
	defer close(a.done)
	for {
		select {
		case <-a.quit:
			return
		case msg := <-a.queue:
			if _, err := a.pub.PublishAndReturnOffset(msg); err != nil {
				a.l.edge.m.adminDropped.Inc()
			}
		}
	}
}

func (a *adminLink) close() {
	a.once.Do(func() { close(a.quit) })
	<-a.done
	a.pub.Close()
}
