package socketio

import (
	"slices"

	"github.com/scalable-chat-go/server/chat"
	"github.com/scalable-chat-go/server/socketio/adminui"
	"github.com/scalable-chat-go/server/socketio/internal/engine"
)

// Sockets as the cluster and the Admin UI see them (chat.SocketInfo).
//
// A chat socket's Socket.IO rooms are its own id and its hub rooms by
// their wire names: the global room is liveRoom, the name every version of
// this server (and the Admin UI, and Node's fetchSockets) has known it by.

// liveRoom is the wire name of the global room.
const liveRoom = "chat:live"

// wireRoom is the Socket.IO room name of a hub room.
func wireRoom(room string) string {
	if room == chat.GlobalRoom {
		return liveRoom
	}
	return room
}

// wireRooms are the Socket.IO rooms of c but its own id.
func (s *Server) wireRooms(c *conn) []string {
	rooms := s.hub.Rooms(c)
	for i, r := range rooms {
		rooms[i] = wireRoom(r)
	}
	return rooms
}

// roomsMoved tells the Admin UI the rooms c is in, when c joined or left
// room by an event of the hub's (an invitation, a removal, another tab's
// join or leave, a deletion): the hub takes c out of a room right after it
// sent the event, so that room is left out already.
func (s *Server) roomsMoved(c *conn, room string, in bool) {
	if s.admin == nil {
		return
	}
	s.admin.ChatRooms(c.sock.ID(), func() []string {
		rooms := s.wireRooms(c)
		if !in {
			rooms = slices.DeleteFunc(rooms, func(r string) bool { return r == wireRoom(room) })
		}
		return rooms
	})
}

// socketInfo describes a chat socket.
func (s *Server) socketInfo(c *conn) chat.SocketInfo {
	data := map[string]any{}
	if name := c.nameNow(); name != "" {
		data["name"] = name
	}
	id := c.sock.ID()
	rooms := append([]string{id}, s.wireRooms(c)...)
	return chat.SocketInfo{ID: id, Namespace: "/", Transport: c.sock.Transport(), Addr: c.sock.Addr(), Since: c.since,
		Rooms: rooms, Data: data}
}

// chatSockets describes up to limit chat sockets of this node.
func (s *Server) chatSockets(limit int) []chat.SocketInfo {
	conns := s.snapshot()
	out := make([]chat.SocketInfo, 0, min(len(conns), limit))
	for _, c := range conns {
		if len(out) >= limit {
			break
		}
		out = append(out, s.socketInfo(c))
	}
	return out
}

// socketsLimit is the most sockets of one namespace this node lists.
func (s *Server) socketsLimit() int {
	if s.admin != nil {
		return s.admin.SocketsLimit()
	}
	return defaultSocketsLimit
}

const defaultSocketsLimit = 10_000

// LocalSockets describes up to limit sockets of namespace nsp of this node
// ("/" or the Admin UI's), for another node (chat.DirectoryHandler). Being
// asked means an Admin UI is open somewhere: this node tells it what
// happens from now on.
func (s *Server) LocalSockets(nsp string, limit int) []chat.SocketInfo {
	if s.admin != nil {
		s.admin.NoteWatched()
	}
	limit = min(limit, s.socketsLimit())
	switch {
	case nsp == "/":
		return s.chatSockets(limit)
	case nsp == adminui.Namespace && s.admin != nil:
		return s.admin.LocalSockets(limit)
	}
	return nil
}

// DisconnectLocal disconnects this node's sockets of nsp that filter
// names (a socket id, a room; "" for every one), for another node
// (chat.DirectoryHandler).
func (s *Server) DisconnectLocal(nsp string, closeConn bool, filter string) int {
	switch {
	case nsp == "/":
		return s.disconnectChat(closeConn, filter)
	case nsp == adminui.Namespace && s.admin != nil:
		return s.admin.DisconnectLocal(closeConn, filter)
	}
	return 0
}

// HandleAdmin hands another node's Admin UI event to this node's Admin UI
// sockets (chat.DirectoryHandler).
func (s *Server) HandleAdmin(name string, args []any) {
	if s.admin != nil {
		s.admin.HandleRemote(name, args)
	}
}

// disconnectChat disconnects the chat sockets that filter names: from the
// namespace, or with their whole connection when closeConn.
func (s *Server) disconnectChat(closeConn bool, filter string) int {
	var socks []*engine.Socket
	for _, c := range s.snapshot() {
		if filter == "" || filter == c.sock.ID() || s.inRoom(c, filter) {
			socks = append(socks, c.sock)
		}
	}
	for _, sock := range socks {
		if closeConn {
			sock.Close()
		} else {
			sock.Disconnect()
		}
	}
	return len(socks)
}

// inRoom reports whether c is in the room of wire name room.
func (s *Server) inRoom(c *conn, room string) bool {
	for _, r := range s.hub.Rooms(c) {
		if wireRoom(r) == room {
			return true
		}
	}
	return false
}

// chatNamespace is the edge as the Admin UI sees the chat.
type chatNamespace struct{ s *Server }

func (n chatNamespace) Sockets(limit int) []chat.SocketInfo { return n.s.chatSockets(limit) }
func (n chatNamespace) Connections() int                    { return n.s.Connections() }
func (n chatNamespace) Sessions() int                       { return n.s.eng.Sessions() }
func (n chatNamespace) Disconnect(closeConn bool, filter string) int {
	return n.s.disconnectChat(closeConn, filter)
}

// router sends the Admin UI's namespace to the UI and every other socket
// to the chat, and tells the UI what became of the chat's sockets.
type router struct{ s *Server }

func (r router) Connect(sock *engine.Socket, h *engine.Hello) error {
	if sock.Namespace() == adminui.Namespace {
		return r.s.admin.Connect(sock, h)
	}
	return r.s.Connect(sock, h)
}

func (r router) Ready(sock *engine.Socket) {
	if sock.Namespace() == adminui.Namespace {
		r.s.admin.Ready(sock)
		return
	}
	r.s.Ready(sock)
	if c, _ := sock.Data.(*conn); c != nil {
		r.s.admin.ChatReady(sock, r.s.socketInfo(c))
	}
}

func (r router) Event(sock *engine.Socket, name string, args []any, ack engine.Ack) {
	if sock.Namespace() == adminui.Namespace {
		r.s.admin.Event(sock, name, args)
		return
	}
	c, _ := sock.Data.(*conn)
	var before string
	if c != nil {
		before = c.nameNow()
	}
	r.s.Event(sock, name, args, ack)
	if c == nil {
		return
	}
	if c.nameNow() != before {
		r.s.admin.ChatUpdated(c.sock.ID(), r.s.socketInfo(c).Data)
	}
	// A room event answered: the socket is in the rooms it is in now.
	if isRoomEvent(name) {
		r.s.admin.ChatRooms(c.sock.ID(), func() []string { return r.s.wireRooms(c) })
	}
}

func (r router) Disconnect(sock *engine.Socket, reason string) {
	if sock.Namespace() == adminui.Namespace {
		r.s.admin.Disconnect(sock, reason)
		return
	}
	c, _ := sock.Data.(*conn)
	var rooms []string
	if c != nil {
		rooms = r.s.socketInfo(c).Rooms
	}
	r.s.Disconnect(sock, reason)
	if c != nil {
		r.s.admin.ChatGone(sock, rooms, reason)
	}
}
