package socketio

import (
	"time"

	sioadapter "github.com/zishang520/socket.io/adapters/adapter/v3"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// Sockets as the cluster and the Admin UI see them.
//
// This node's sockets are described from what the edge keeps of them: the
// socket id, the namespace, the transport now, the client address and the
// time it connected, its rooms, and its data (the name it gave). The
// session layer keeps no request headers, query or URL per connection, so
// a socket's handshake lists its address and time only (headers and query
// are empty objects). A socket's rooms are its own id and, for chat
// sockets, liveRoom: every chat socket receives the live stream, and there
// are no other rooms.

// liveRoom is the one room of the chat: a socket joins it once its history
// has been sent, and leaves it when it disconnects.
const liveRoom = "chat:live"

// socketInfo describes one socket of this node.
type socketInfo struct {
	id, nsp, transport, addr string
	since                    time.Time
	rooms                    []string
	// data is the socket's application data: {name} once it gave one.
	data map[string]any
}

// chatSocketInfo describes a chat socket.
func chatSocketInfo(c *conn) socketInfo {
	c.mu.Lock()
	name := c.name
	c.mu.Unlock()
	data := map[string]any{}
	if name != "" {
		data["name"] = name
	}
	id := c.sock.ID()
	return socketInfo{id: id, nsp: "/", transport: c.sock.Transport(), addr: c.sock.Addr(), since: c.since,
		rooms: []string{id, liveRoom}, data: data}
}

// clientID is what the Admin UI groups sockets by. Node's instrument()
// shows the first 12 characters of the Engine.IO session id; the edge does
// not hand that id out (it would let a reader take over a polling
// session), so each socket is a client of its own, named by its id.
func (i socketInfo) clientID() string { return i.id[:min(12, len(i.id))] }

// localSockets describes up to limit sockets of namespace nsp of this
// node ("/" or the Admin UI's).
func (s *Server) localSockets(nsp string, limit int) []socketInfo {
	if nsp == adminNamespace {
		if s.admin == nil {
			return nil
		}
		return s.admin.localAdmins(limit)
	}
	if nsp != "/" {
		return nil
	}
	s.connMu.Lock()
	conns := make([]*conn, 0, min(len(s.conns), limit))
	for c := range s.conns {
		if len(conns) >= limit {
			break
		}
		conns = append(conns, c)
	}
	s.connMu.Unlock()
	out := make([]socketInfo, 0, len(conns))
	for _, c := range conns {
		out = append(out, chatSocketInfo(c))
	}
	return out
}

// socketsLimit is the most sockets of one namespace this node lists to the
// cluster or the Admin UI.
func (s *Server) socketsLimit() int {
	if s.o.Admin != nil && s.o.Admin.SocketsLimit > 0 {
		return s.o.Admin.SocketsLimit
	}
	return defaultSocketsLimit
}

const defaultSocketsLimit = 10_000

// handshake is the socket's handshake as Socket.IO serializes it (issued
// in milliseconds, as Node's).
func (i socketInfo) handshake() *socket.Handshake {
	return &socket.Handshake{
		Headers: types.IncomingHttpHeaders{},
		Time:    i.since.UTC().Format(time.RFC1123),
		Address: i.addr,
		Issued:  i.since.UnixMilli(),
		Url:     "/socket.io/",
		Query:   types.ParsedUrlQuery{},
	}
}

// response is the socket as a fetch-sockets response lists it: its data
// carries `_admin` {clientId, transport}, which an Admin UI instrumented
// Node server of the cluster reads as it reads its own sockets'.
func (i socketInfo) response() *sioadapter.SocketResponse {
	data := make(map[string]any, len(i.data)+1)
	for k, v := range i.data {
		data[k] = v
	}
	data["_admin"] = map[string]any{"clientId": i.clientID(), "transport": i.transport}
	rooms := make([]socket.Room, len(i.rooms))
	for j, r := range i.rooms {
		rooms[j] = socket.Room(r)
	}
	return &sioadapter.SocketResponse{Id: socket.SocketId(i.id), Handshake: i.handshake(), Rooms: rooms, Data: data}
}

// adminSocket is a socket as the Admin UI reads it (its SerializedSocket).
type adminSocket struct {
	ID        string            `json:"id"`
	ClientID  string            `json:"clientId,omitempty"`
	Transport string            `json:"transport,omitempty"`
	Nsp       string            `json:"nsp"`
	Data      map[string]any    `json:"data"`
	Handshake *socket.Handshake `json:"handshake"`
	Rooms     []string          `json:"rooms"`
}

func (i socketInfo) admin() adminSocket {
	return adminSocket{ID: i.id, ClientID: i.clientID(), Transport: i.transport, Nsp: i.nsp, Data: i.data,
		Handshake: i.handshake(), Rooms: i.rooms}
}
