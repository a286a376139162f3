package socketio

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/scalable-chat-go/server/chat"
	"github.com/scalable-chat-go/server/hub"
	"github.com/scalable-chat-go/server/socketio/internal/engine"
)

// conn is what the edge keeps of one connected socket; it is the socket's
// hub.Conn. Its fields are used from the socket's own serial handler calls
// only, but for those under mu.
type conn struct {
	sock   *engine.Socket
	bucket chat.TokenBucket
	// lastRefusal is when (Unix ns) the last `error` event of a refused
	// event was sent (refusals.go).
	lastRefusal atomic.Int64
	// join is how the socket joins the global room in Ready (history or
	// recovery), decided in Connect; rooms are the other rooms of a
	// verified user, joined live in Ready. Both are dropped then: every
	// connection carries the pointers only.
	join  *hub.JoinOptions
	rooms []roomJoin
	// user is the verified identity of the socket (auth.go), nil for an
	// anonymous client; set in Connect, never changed.
	user *chat.User
	// since is when the socket connected.
	since time.Time
	// edge is the edge the socket is of.
	edge *Server

	// mu guards the fields below, which the hub reads too.
	mu sync.Mutex
	// name is who the client says it is: its CONNECT auth's username, or
	// its last message's; "" until it says.
	name string
	typingState
}

var _ hub.Conn = (*conn)(nil)

// ID is the socket's id (hub.Conn).
func (c *conn) ID() string { return c.sock.ID() }

// Send queues a frame the hub's Encoder made (hub.Conn). A membership
// event's tells the Admin UI that the socket joined or left its room.
func (c *conn) Send(f hub.Frame) {
	switch fr := f.(type) {
	case *engine.Frame:
		c.sock.Send(fr)
	case *movingFrame:
		c.sock.Send(fr.Frame)
		c.edge.roomsMoved(c, fr.room, fr.in)
	}
}

// Identity is who the socket is now (hub.Conn).
func (c *conn) Identity() hub.Identity {
	c.mu.Lock()
	defer c.mu.Unlock()
	return hub.Identity{Name: c.name, UserID: c.userID(), Since: c.since}
}

// nameNow is the name the socket gave, "" until it gave one.
func (c *conn) nameNow() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.name
}

// errorEvent is the payload of an `error` event, and of a negative ack.
type errorEvent struct {
	Code         string `json:"code"`
	Reason       string `json:"reason"`
	RetryAfterMs int64  `json:"retryAfterMs,omitempty"`
	Until        string `json:"until,omitempty"`
	// Limit names the setting of a `limit` refusal.
	Limit string `json:"limit,omitempty"`
}

type ackEvent struct {
	OK    bool        `json:"ok"`
	ID    string      `json:"id,omitempty"`
	Error *errorEvent `json:"error,omitempty"`
}

// Connect accepts a CONNECT to the main namespace (engine.Handler). A
// client that asks to recover its socket is recovered when this node's
// history ring still holds the last message it received. A CONNECT whose
// answer may wait (a token to verify, then the user's rooms to read) is
// decided off the engine's workers.
func (s *Server) Connect(sock *engine.Socket, h *engine.Hello) error {
	if sock.Namespace() != "/" {
		return engine.ErrInvalidNamespace
	}
	if s.decidesLater(sock, h) {
		return h.Async(func() error { return s.connect(sock, h) })
	}
	return s.connect(sock, h)
}

// connect decides on a CONNECT to the main namespace (Connect).
func (s *Server) connect(sock *engine.Socket, h *engine.Hello) error {
	now := time.Now()
	c := &conn{sock: sock, since: now, edge: s, bucket: *chat.NewTokenBucket(s.o.RatePerSecond, s.o.RateBurst, now)}
	c.typingBucket = *chat.NewTokenBucket(s.o.TypingRatePerSecond, max(1, int(2*s.o.TypingRatePerSecond)), now)
	if name, ok := h.Auth["username"].(string); ok {
		c.name, _ = chat.CleanName(name, s.limits())
	}
	if err := s.authenticate(c, sock, h); err != nil {
		return err
	}
	sock.Data = c
	if place, ordered := s.hub.Place(); ordered {
		s.connectOrdered(c, h, place)
		return nil
	}
	// The marks are taken before the client is told it is connected: every
	// message after them reaches the client, however long its history
	// takes.
	c.join = &hub.JoinOptions{Mark: s.hub.Mark(chat.GlobalRoom)}
	s.memberRooms(c)
	if h.Resumable {
		// The offset is one cursor across the socket's rooms: its last
		// message may be of any of them.
		last, _ := parseOffset(h.Offset)
		recoverable := s.hub.Recoverable(chat.GlobalRoom, last)
		for _, r := range c.rooms {
			recoverable = recoverable || s.hub.Recoverable(r.id, last)
		}
		if recoverable {
			h.Recover()
			c.join.RecoverFrom = last
		}
	}
	if !h.Recovered() {
		if offset := resumeOffset(h.Auth); offset != "" {
			last, high := parseOffset(offset)
			c.join.ResumeAfter = []string{high, last}
		}
	}
	return nil
}

// connectOrdered decides how a socket joins an ordered hub (its broker
// keeps the cluster's log: streams mode). A newcomer stands at the hub's
// place now, taken before it is told it is connected; a client that comes
// back (a recovery offset, in its session or its auth) stands where its
// offset says, on any node, and is recovered (no history, socket.recovered
// true) when its session is here and the node's log covers its place. Its
// rooms join with it, their missed messages in the log's order.
func (s *Server) connectOrdered(c *conn, h *engine.Hello, now hub.Place) {
	c.join = &hub.JoinOptions{Since: &now}
	s.memberRooms(c)
	offset := h.Offset
	if !h.Resumable {
		offset = resumeOffset(h.Auth)
	}
	if p, ok := hub.ParsePlace(offset); ok {
		if h.Resumable && s.hub.CanResume(p) {
			h.Recover()
		}
		c.join = &hub.JoinOptions{Since: &p, Back: true}
	}
	for _, r := range c.rooms {
		c.join.Also = append(c.join.Also, r.id)
	}
	c.rooms = nil
}

// Ready joins the socket to the global room: the hub sends a newcomer its
// history, or a recovered client what it missed, then the live events
// (engine.Handler).
func (s *Server) Ready(sock *engine.Socket) {
	c, _ := sock.Data.(*conn)
	if c == nil {
		return
	}
	s.connMu.Lock()
	s.conns[c] = struct{}{}
	n := len(s.conns)
	s.connMu.Unlock()
	s.m.connections.Set(float64(n))
	s.m.connects.Inc()
	if err := s.hub.Join(c, chat.GlobalRoom, *c.join); err != nil {
		s.log.Error("a socket could not join the global room", "err", err)
	}
	s.joinMemberRooms(c)
	c.join = nil
	s.seeUser(c.user)
}

// resumeOffset reads the recovery offset a reconnecting socket.io-client
// sends in its auth ({pid, offset}): the offset of the last message the
// client received (makeOffset's two ids of at most 64 bytes, or an ordered
// hub's Place).
func resumeOffset(auth map[string]any) string {
	if auth == nil {
		return ""
	}
	if _, ok := auth["pid"].(string); !ok {
		return ""
	}
	offset, _ := auth["offset"].(string)
	if len(offset) > maxOffsetLength {
		return ""
	}
	return offset
}

// Event handles an event of a client (engine.Handler): `event:message` goes
// to the accept flow, `typing` to the hub, `event:delete` to moderation;
// any other is refused with unknown_event. Messages, deletions and unknown
// events count against the connection's rate limit, typing against a
// limit of its own.
func (s *Server) Event(sock *engine.Socket, name string, args []any, ack engine.Ack) {
	c, _ := sock.Data.(*conn)
	if c == nil {
		return
	}
	now := time.Now()
	if name == chat.EventTyping || name == "event:message" || name == EventDelete || isRoomEvent(name) {
		if s.refuseBanned(c, "", args, ack) {
			return
		}
	}
	if name == chat.EventTyping || name == "event:message" || name == EventDelete {
		if s.refuseHeldName(c, args, ack) {
			return
		}
	}
	if isRoomEvent(name) {
		s.onRoomEvent(c, name, args, ack, now)
		return
	}
	switch name {
	case "event:message":
		s.onMessage(c, args, ack, now)
	case chat.EventTyping:
		s.onTyping(c, args, now)
	case EventDelete:
		if ok, wait := c.bucket.Take(now); !ok {
			s.refuseEvent(c, ack, rateLimited(wait, "you are sending too fast"))
			return
		}
		s.onDelete(c, args, ack)
	default:
		s.refuseUnknown(c, ack, now)
	}
}

// inlineFanout is the most connections of this node an event may reach to
// be handled on the read loop that read it: as many as the engine writes
// from the sender, so that a small room's message goes from read to write
// with no goroutine switch (four a message before, in rooms of 10).
const inlineFanout = engine.DirectFanout

// inline reports whether an event of the chat never waits and reaches
// few connections (engine.Options.Inline): `event:message` and `typing`
// to a room of at most inlineFanout here; not a message with a clientId
// while client ids are claimed cluster-wide. Everything else (the room
// events read stores, the Admin UI's are another namespace's) is the
// workers'.
func (s *Server) inline(nsp, name string, args []any) bool {
	if nsp != "/" {
		return false
	}
	switch name {
	case "event:message":
		if s.o.ClientIDsWait && len(args) > 0 {
			if obj, _ := args[0].(map[string]any); obj["clientId"] != nil {
				return false
			}
		}
	case chat.EventTyping:
	default:
		return false
	}
	room, ok := roomOf(args)
	return ok && s.hub.Live(room) <= inlineFanout
}

// onMessage hands an `event:message` to the accept flow, which broadcasts
// it through the hub; the acknowledgement waits until it is durable.
func (s *Server) onMessage(c *conn, args []any, ack engine.Ack, now time.Time) {
	s.m.received.Inc()
	var payload any
	if len(args) > 0 {
		payload = args[0]
	}
	if ok, wait := c.bucket.Take(now); !ok {
		s.refuseEvent(c, ack, rateLimited(wait, "you are sending messages too fast"))
		return
	}
	room, ok := roomOf(args)
	switch {
	case !ok:
		s.reject(c, ack, chat.Errorf(chat.CodeInvalidPayload, "room must be a room id"))
		return
	case room != chat.GlobalRoom && !s.hub.IsMember(c, room):
		s.reject(c, ack, chat.Errorf(chat.CodeForbidden, "you are not in the room; join it first"))
		return
	}
	var durable func(chat.Message, error)
	if ack != nil {
		var once sync.Once
		durable = func(m chat.Message, err error) {
			once.Do(func() {
				if err != nil {
					e := chat.CodeOf(err)
					ack(ackEvent{Error: &errorEvent{Code: e.Code, Reason: e.Reason}})
					return
				}
				ack(ackEvent{OK: true, ID: m.ID})
			})
		}
	}
	m, err := s.accept.Accept(c.user.Sender(c.sock.ID()), payload, durable)
	if err != nil {
		s.reject(c, ack, chat.CodeOf(err))
		return
	}
	c.mu.Lock()
	if m.Username != "" {
		c.name = m.Username
	}
	c.mu.Unlock()
	s.hub.StopTyping(c, room) // a message ends the typing that led to it
}

// reject tells the sender why its message was not taken (refuseEvent).
func (s *Server) reject(c *conn, ack engine.Ack, e *chat.Error) {
	s.refuseEvent(c, ack, refusalOf(e))
}

func (s *Server) emitError(c *conn, e *errorEvent) {
	if err := c.sock.Emit("error", e); err != nil {
		s.log.Error("an error event could not be encoded", "err", err)
	}
}

// Disconnect forgets a socket (engine.Handler): it leaves its rooms.
func (s *Server) Disconnect(sock *engine.Socket, _ string) {
	c, _ := sock.Data.(*conn)
	if c == nil {
		return
	}
	s.hub.Disconnect(c)
	s.connMu.Lock()
	_, known := s.conns[c]
	delete(s.conns, c)
	n := len(s.conns)
	s.connMu.Unlock()
	if known {
		s.m.connections.Set(float64(n))
	}
}
