package redis

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
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"

	"github.com/scalable-chat-go/server/chat"
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
//     does not work from Go (see FetchSockets), so the Go nodes ask each
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
func (b *Broker) answerFetch(nsp string) []*sioadapter.SocketResponse {
	if b.dir == nil {
		return []*sioadapter.SocketResponse{}
	}
	infos := b.dir.LocalSockets(nsp, b.o.SocketsLimit)
	out := make([]*sioadapter.SocketResponse, len(infos))
	for i, info := range infos {
		out[i] = socketResponse(info)
	}
	return out
}

// socketResponse is a socket as a fetch-sockets response lists it: its
// data carries `_admin` {clientId, transport}, which an Admin UI
// instrumented Node server of the cluster reads as it reads its own
// sockets'.
func socketResponse(i chat.SocketInfo) *sioadapter.SocketResponse {
	data := make(map[string]any, len(i.Data)+1)
	for k, v := range i.Data {
		data[k] = v
	}
	data["_admin"] = map[string]any{"clientId": i.ClientID(), "transport": i.Transport}
	rooms := make([]socket.Room, len(i.Rooms))
	for j, r := range i.Rooms {
		rooms[j] = socket.Room(r)
	}
	hs := i.Handshake()
	return &sioadapter.SocketResponse{Id: socket.SocketId(i.ID), Rooms: rooms, Data: data, Handshake: &socket.Handshake{
		Headers: types.IncomingHttpHeaders{}, Time: hs.Time, Address: hs.Address, Issued: hs.Issued, Url: hs.URL,
		Query: types.ParsedUrlQuery{},
	}}
}

// FetchSockets asks the other Go nodes for their sockets of nsp and
// collects their answers, until every other server of the cluster answered
// or FetchTimeout passed (a Node server does not answer: a cluster with
// one waits the whole timeout).
//
// The library's own requests cannot be used from here: its cluster adapter
// counts the servers to wait for with the base adapter's ServerCount
// (always 1), so its fetch-sockets request and server-side events with an
// acknowledgement never ask anyone, and the streams adapter drops every
// server-side event it receives (it decodes their data into a map where the
// cluster adapter expects its own type). So the Go nodes talk among
// themselves with broadcasts to nodesRoom (see sendToNodes).
func (b *Broker) FetchSockets(ctx context.Context, nsp string) ([]chat.SocketInfo, error) {
	if !b.running {
		return nil, nil
	}
	expected := int(b.pub.ServerCount()) - 1
	if expected <= 0 {
		return nil, nil
	}
	req := &fetchRequest{replies: make(chan []chat.SocketInfo, expected)}
	id := newRequestID()
	b.reqMu.Lock()
	if b.requests == nil {
		b.requests = make(map[string]*fetchRequest)
	}
	b.requests[id] = req
	b.reqMu.Unlock()
	defer func() {
		b.reqMu.Lock()
		delete(b.requests, id)
		b.reqMu.Unlock()
	}()
	if err := b.sendToNodes(fetchSocketsEvent, map[string]any{"id": id, "nsp": nsp}); err != nil {
		return nil, fmt.Errorf("ask for the sockets of %s: %w", nsp, err)
	}
	var out []chat.SocketInfo
	deadline := time.NewTimer(b.o.FetchTimeout)
	defer deadline.Stop()
	for got := 0; got < expected; got++ {
		select {
		case sockets := <-req.replies:
			out = append(out, sockets...)
		case <-ctx.Done():
			return out, ctx.Err()
		case <-deadline.C:
			return out, fmt.Errorf("%d of %d other servers answered within %v (Node servers do not)", got, expected, b.o.FetchTimeout)
		}
	}
	return out, nil
}

// fetchRequest collects the answers to one fetchRemote.
type fetchRequest struct{ replies chan []chat.SocketInfo }

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

// sendToNodes broadcasts a request to the other Go nodes.
func (b *Broker) sendToNodes(event string, payload map[string]any) error {
	_, err := b.pub.PublishAndReturnOffset(broadcast("/", []any{event, payload}, []socket.Room{nodesRoom}))
	return err
}

// onNodeRequest handles another Go node's request; false when event is
// not one.
func (b *Broker) onNodeRequest(event string, payload []any) bool {
	var m map[string]any
	if len(payload) > 0 {
		m, _ = payload[0].(map[string]any)
	}
	switch event {
	case fetchSocketsEvent:
		go b.guard("cluster fetch", func() { b.answerNode(m) })
	case fetchSocketsReplyEvent:
		b.onFetchReply(m)
	case disconnectSocketsEvent:
		b.onClusterDisconnect(m)
	default:
		return false
	}
	return true
}

// answerNode answers another Go node's fetchSocketsEvent.
func (b *Broker) answerNode(m map[string]any) {
	id, _ := m["id"].(string)
	nsp, _ := m["nsp"].(string)
	if id == "" || len(id) > 64 || b.dir == nil {
		return
	}
	sockets := b.dir.LocalSockets(nsp, b.o.SocketsLimit)
	if sockets == nil {
		sockets = []chat.SocketInfo{}
	}
	if err := b.sendToNodes(fetchSocketsReplyEvent, map[string]any{"id": id, "sockets": sockets}); err != nil {
		b.log.Warn("could not answer another node's request for sockets", "err", err)
	}
}

// onFetchReply hands an answer to its FetchSockets, if it is this node's.
func (b *Broker) onFetchReply(m map[string]any) {
	id, _ := m["id"].(string)
	b.reqMu.Lock()
	req := b.requests[id]
	b.reqMu.Unlock()
	if req == nil {
		return // another node's, or too late
	}
	list, _ := m["sockets"].([]any)
	sockets := make([]chat.SocketInfo, 0, len(list))
	for _, x := range list {
		if a, ok := decodeSocket(x); ok {
			sockets = append(sockets, a)
		}
	}
	select {
	case req.replies <- sockets:
	default:
	}
}

// decodeSocket reads a serialized socket from its decoded JSON.
func decodeSocket(x any) (chat.SocketInfo, bool) {
	b, err := json.Marshal(x)
	if err != nil {
		return chat.SocketInfo{}, false
	}
	var a chat.SocketInfo
	if err := json.Unmarshal(b, &a); err != nil || a.ID == "" {
		return chat.SocketInfo{}, false
	}
	return a, true
}

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// namespace is the broker's library namespace nsp, or nil.
func (b *Broker) namespace(nsp string) socket.Namespace {
	switch {
	case nsp == "/":
		return b.io.Sockets()
	case nsp == adminNamespace && b.admin != nil:
		return b.admin.nsp
	}
	return nil
}

// adminNamespace is the namespace of the Socket.IO Admin UI.
const adminNamespace = "/admin"

// DisconnectSockets asks the other servers to disconnect the sockets of
// nsp that filter names, in the background: the Go nodes with
// disconnectSocketsEvent, the Node servers with DISCONNECT_SOCKETS when
// filter names a socket or a room (for every socket of a namespace the
// library would disconnect the Go nodes' sinks too).
func (b *Broker) DisconnectSockets(nsp string, closeConn bool, filter string) {
	if !b.running {
		return
	}
	go b.guard("cluster disconnect request", func() {
		if err := b.sendToNodes(disconnectSocketsEvent, map[string]any{"nsp": nsp, "close": closeConn, "filter": filter}); err != nil {
			b.log.Warn("could not ask the other nodes to disconnect sockets", "err", err)
		}
		if n := b.namespace(nsp); n != nil && filter != "" {
			n.Adapter().DisconnectSockets(&socket.BroadcastOptions{
				Rooms: types.NewSet(socket.Room(filter)), Except: types.NewSet[socket.Room](),
			}, closeConn)
		}
	})
}

// onClusterDisconnect handles another Go node's disconnectSocketsEvent.
func (b *Broker) onClusterDisconnect(m map[string]any) {
	nsp, _ := m["nsp"].(string)
	closeConn, _ := m["close"].(bool)
	filter, _ := m["filter"].(string)
	if b.dir == nil {
		return
	}
	if n := b.dir.DisconnectLocal(nsp, closeConn, filter); n > 0 {
		b.log.Info("disconnected sockets at another node's request", "namespace", nsp, "filter", filter, "sockets", n, "close", closeConn)
	}
}

// adminLink carries the Admin UI's namespace across the cluster: a library
// namespace /admin on the broker's server with its own cluster adapter (so
// the channels are Node's, socket.io#/admin#, and an Admin UI instrumented
// Node server of the cluster shares the events) and a sink of its own,
// whose received broadcasts go to this node's Admin UI sockets. Events go
// out through a bounded queue and one goroutine: an admin event that finds
// the queue full is dropped (counted).
type adminLink struct {
	b    *Broker
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

func (b *Broker) startAdminLink() (*adminLink, error) {
	nsp := b.io.Of(adminNamespace, nil)
	pub, ok := nsp.Adapter().(publisher)
	if !ok {
		return nil, fmt.Errorf("redis: the cluster adapter %T cannot publish", nsp.Adapter())
	}
	a := &adminLink{b: b, nsp: nsp, pub: pub, queue: make(chan *sioadapter.ClusterMessage, adminQueueLimit),
		quit: make(chan struct{}), done: make(chan struct{})}
	var err error
	if a.sink, err = joinSink(nsp, newSinkConn("cluster-admin-sink")); err != nil {
		return nil, err
	}
	a.sink.OnAnyOutgoing(func(args ...any) {
		b.guard("cluster admin event", func() { b.onAdmin(args) })
	})
	go a.publishLoop()
	return a, nil
}

// onAdmin hands another server's Admin UI event to this node: [name,
// args...].
func (b *Broker) onAdmin(args []any) {
	if len(args) == 0 || b.dir == nil {
		return
	}
	if name, ok := args[0].(string); ok {
		b.dir.HandleAdmin(name, args[1:])
	}
}

// PublishAdmin queues an event for the Admin UI sockets of the other
// nodes (dropped, and counted, when the Admin UI's link is off or its
// queue is full).
func (b *Broker) PublishAdmin(name string, args []any) {
	a := b.admin
	if a == nil {
		return
	}
	select {
	case a.queue <- broadcast(adminNamespace, append([]any{name}, args...), nil):
	default:
		b.m.adminDropped.Inc()
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
				a.b.m.adminDropped.Inc()
			}
		}
	}
}

func (a *adminLink) close() {
	a.once.Do(func() { close(a.quit) })
	<-a.done
	a.pub.Close()
}
