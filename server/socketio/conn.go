package socketio

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scalable-chat-go/server/chat"
	"github.com/scalable-chat-go/server/socketio/internal/engine"
)

// conn is what the edge keeps of one connected socket. Its fields are used
// from the socket's own serial handler calls only, but for live (under
// deliverMu).
type conn struct {
	sock   *engine.Socket
	bucket chat.TokenBucket
	// lastRefusal is when (Unix ns) the last `error` event of a refused
	// event was sent (refusals.go).
	lastRefusal atomic.Int64
	// recoverFrom is the id of the last message a recovered client
	// received; resume is the recovery offset of a client whose earlier
	// socket could not be recovered here (see welcome).
	recoverFrom, resume string
	// live is the index in Server.live, -1 when not there.
	live int
	// user is the verified identity of the socket (auth.go), nil for an
	// anonymous client; set in Connect, never changed.
	user *chat.User
	// since is when the socket connected.
	since time.Time
	// mark is the history's mark (chat.History.Mark) taken before the
	// client was told it is connected: a newcomer is sent every message
	// after it, with its history.
	mark uint64

	// mu guards the fields below, which the presence tick reads too.
	mu sync.Mutex
	// name is who the client says it is: its CONNECT auth's username, or
	// its last message's; "" until it says.
	name string
	typingState
}

// errorEvent is the payload of an `error` event, and of a negative ack.
type errorEvent struct {
	Code         string `json:"code"`
	Reason       string `json:"reason"`
	RetryAfterMs int64  `json:"retryAfterMs,omitempty"`
	Until        string `json:"until,omitempty"`
}

type ackEvent struct {
	OK    bool        `json:"ok"`
	ID    string      `json:"id,omitempty"`
	Error *errorEvent `json:"error,omitempty"`
}

// Connect accepts a CONNECT to the main namespace (engine.Handler). A
// client that asks to recover its socket is recovered when this node's
// history ring still holds the last message it received. A CONNECT whose
// answer may wait (a token to verify) is decided off the engine's workers.
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
	c := &conn{sock: sock, live: -1, since: now, bucket: *chat.NewTokenBucket(s.o.RatePerSecond, s.o.RateBurst, now)}
	c.typingBucket = *chat.NewTokenBucket(s.o.TypingRatePerSecond, max(1, int(2*s.o.TypingRatePerSecond)), now)
	if name, ok := h.Auth["username"].(string); ok {
		c.name, _ = chat.CleanName(name, s.limits())
	}
	if err := s.authenticate(c, sock, h); err != nil {
		return err
	}
	sock.Data = c
	c.mark = s.o.History.Mark()
	if h.Resumable {
		last, _ := parseOffset(h.Offset)
		if _, found := s.o.History.Since(last); found {
			h.Recover()
			c.recoverFrom = last
		}
	}
	if !h.Recovered() {
		c.resume = resumeOffset(h.Auth)
	}
	return nil
}

// Ready sends a newcomer its history, or a recovered client what it
// missed, then lets the live events through (engine.Handler).
func (s *Server) Ready(sock *engine.Socket) {
	c, _ := sock.Data.(*conn)
	if c == nil {
		return
	}
	s.connMu.Lock()
	s.conns[c] = struct{}{}
	n := len(s.conns)
	s.presenceDirty = true
	s.connMu.Unlock()
	s.m.connections.Set(float64(n))
	s.m.connects.Inc()

	if c.recoverFrom == "" || !s.recovered(c) {
		if c.recoverFrom != "" {
			c.resume = c.recoverFrom // the ring lost its place meanwhile
		}
		s.welcome(c)
	}
	s.sendPresence(c)
}

// recovered sends a recovered socket the messages it missed since
// c.recoverFrom (from the history ring) and joins it to the live set,
// under deliverMu; false when the ring lost its place meanwhile.
func (s *Server) recovered(c *conn) bool {
	s.deliverMu.Lock()
	defer s.deliverMu.Unlock()
	missed, found := s.o.History.Since(c.recoverFrom)
	if !found {
		return false
	}
	for _, d := range missed {
		s.sendMessage(c, d.Message, d.High)
	}
	s.joinLocked(c)
	return true
}

// sendMessage sends c one message of its history or recovery, with the
// high-water id high ("" when it is sent in order).
func (s *Server) sendMessage(c *conn, m chat.Message, high string) {
	if f, err := engine.EventFrame(chat.EventMessage, s.messageArgs(m, high)...); err == nil {
		c.sock.Send(f)
	}
}

// joinLocked adds c to the live set; deliverMu is held.
func (s *Server) joinLocked(c *conn) {
	if c.live < 0 {
		c.live = len(s.live)
		s.live = append(s.live, c)
	}
}

// leaveLocked removes c from the live set; deliverMu is held.
func (s *Server) leaveLocked(c *conn) {
	if i := c.live; i >= 0 && i < len(s.live) && s.live[i] == c {
		last := len(s.live) - 1
		s.live[i] = s.live[last]
		s.live[i].live = i
		s.live[last] = nil
		s.live = s.live[:last]
	}
	c.live = -1
}

// welcome sends a newcomer its history, then every message delivered
// since its CONNECT was accepted (which its client, once told it is
// connected, expects to see, however long the history took to read), then
// lets live messages through. A client that comes back (its auth carries
// the recovery offset: the id of the last message it saw and of the newest
// one it had seen, see parseOffset) but whose session could not be
// recovered, on another node or after a restart, gets only the messages
// after the newest one it saw, so it never shows one twice.
func (s *Server) welcome(c *conn) {
	limit := max(s.o.HistoryLimit, 0)
	var stored []chat.Message
	var after *chat.Cursor
	if limit > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var err error
		// The messages delivered since the mark are sent apart: the page
		// is the history before them.
		stored, err = s.o.History.Recent(ctx, limit+s.o.History.Pending(c.mark), "")
		if err != nil {
			s.log.Warn("history unavailable for a newcomer; sending what this node remembers", "err", err)
		}
		if c.resume != "" {
			last, high := parseOffset(c.resume)
			for _, id := range []string{high, last} {
				if cur, err := s.o.History.Cursor(ctx, id); err == nil {
					after = &cur
					break
				}
			}
		}
	}
	seen := func(m chat.Message) bool {
		return after != nil && !(chat.Message{CreatedAt: after.CreatedAt, ID: after.ID}).Before(m)
	}
	s.deliverMu.Lock()
	defer s.deliverMu.Unlock()
	since, found := s.o.History.SinceMark(c.mark)
	if !found {
		s.m.joinGaps.Inc()
		s.log.Warn("a newcomer's history took longer than the history ring covers; it gets the latest page, and may miss messages delivered while it was read",
			"sid", c.sock.ID(), "ring", "HISTORY_RING_SIZE")
	}
	if limit > 0 {
		fresh := make(map[string]struct{}, len(since))
		for _, d := range since {
			fresh[d.Message.ID] = struct{}{}
		}
		page := s.o.History.Merge(stored, limit+len(since), nil)
		older := page[:0:0]
		for _, m := range page {
			if _, ok := fresh[m.ID]; !ok && len(older) < limit {
				older = append(older, m)
			}
		}
		for i := len(older) - 1; i >= 0; i-- {
			if m := older[i]; !seen(m) {
				s.sendMessage(c, m, "")
			}
		}
	}
	for _, d := range since {
		if !seen(d.Message) {
			s.sendMessage(c, d.Message, d.High)
		}
	}
	s.joinLocked(c)
}

// resumeOffset reads the recovery offset a reconnecting socket.io-client
// sends in its auth ({pid, offset}): the offset of the last message the
// client received (makeOffset), at most two ids of 64 bytes.
func resumeOffset(auth map[string]any) string {
	if auth == nil {
		return ""
	}
	if _, ok := auth["pid"].(string); !ok {
		return ""
	}
	offset, _ := auth["offset"].(string)
	if len(offset) > 2*64+len(offsetSep) {
		return ""
	}
	return offset
}

// Event handles an event of a client (engine.Handler): `event:message` goes
// to the accept flow, `typing` to the others; any other is refused with
// unknown_event. Messages and unknown events count against the
// connection's rate limit, typing against a limit of its own.
func (s *Server) Event(sock *engine.Socket, name string, args []any, ack engine.Ack) {
	c, _ := sock.Data.(*conn)
	if c == nil {
		return
	}
	now := time.Now()
	switch name {
	case chat.EventTyping, "event:message", EventDelete:
		if s.refuseBanned(c, "", args, ack) || s.refuseHeldName(c, args, ack) {
			return
		}
	}
	if name == EventDelete {
		if ok, wait := c.bucket.Take(now); !ok {
			s.refuseEvent(c, ack, rateLimited(wait, "you are sending too fast"))
			return
		}
		s.onDelete(c, args, ack)
		return
	}
	if name == chat.EventTyping {
		s.onTyping(c, args, now)
		return
	}
	if name != "event:message" {
		if ok, wait := c.bucket.Take(now); !ok {
			s.refuseEvent(c, nil, rateLimited(wait, "you are sending too fast"))
			return
		}
		s.refuseEvent(c, nil, &errorEvent{Code: chat.CodeUnknownEvent, Reason: "the server only handles event:message"})
		return
	}
	s.m.received.Inc()
	var payload any
	if len(args) > 0 {
		payload = args[0]
	}
	if ok, wait := c.bucket.Take(now); !ok {
		s.refuseEvent(c, ack, rateLimited(wait, "you are sending messages too fast"))
		return
	}
	if s.accept == nil {
		s.reject(c, ack, &chat.Error{Code: chat.CodeUnavailable, Reason: "the server is starting"})
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
	s.stopTyping(c) // a message ends the typing that led to it
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

// Disconnect forgets a socket (engine.Handler).
func (s *Server) Disconnect(sock *engine.Socket, _ string) {
	c, _ := sock.Data.(*conn)
	if c == nil {
		return
	}
	s.stopTyping(c)
	s.deliverMu.Lock()
	s.leaveLocked(c)
	s.deliverMu.Unlock()
	s.connMu.Lock()
	_, known := s.conns[c]
	delete(s.conns, c)
	n := len(s.conns)
	if known {
		s.presenceDirty = true
	}
	s.connMu.Unlock()
	if known {
		s.m.connections.Set(float64(n))
	}
}
