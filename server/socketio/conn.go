package socketio

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zishang520/socket.io/parsers/engine/v3/packet"
	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/scalable-chat-go/server/chat"
)

// conn is what the edge keeps of one connected socket.
type conn struct {
	s    *Server
	sock *socket.Socket
	// bucket and lastLimited are used from the socket's own serial event
	// queue only.
	bucket      *chat.TokenBucket
	lastLimited time.Time
}

// errorEvent is the payload of an `error` event, and of a negative ack.
type errorEvent struct {
	Code         string `json:"code"`
	Reason       string `json:"reason"`
	RetryAfterMs int64  `json:"retryAfterMs,omitempty"`
}

type ackEvent struct {
	OK    bool        `json:"ok"`
	ID    string      `json:"id,omitempty"`
	Error *errorEvent `json:"error,omitempty"`
}

type presenceEvent struct {
	Online int `json:"online"`
}

func (s *Server) onConnection(args ...any) {
	sock, ok := args[0].(*socket.Socket)
	if !ok {
		return
	}
	c := &conn{s: s, sock: sock, bucket: chat.NewTokenBucket(s.o.RatePerSecond, s.o.RateBurst, time.Now())}
	s.connMu.Lock()
	_, again := s.conns[sock.Id()]
	s.conns[sock.Id()] = c
	n := len(s.conns)
	s.presenceDirty = true
	s.connMu.Unlock()
	if !again {
		s.m.connections.Set(float64(n))
		s.m.connects.Inc()
	}

	s.watchQueue(c)
	_ = sock.On("event:message", s.recover("event:message", c.onMessage))
	_ = sock.On("disconnect", s.recover("disconnect", c.onDisconnect))
	sock.OnAny(s.recover("any", c.onAny))

	// Listeners are in place: the client's next packets may go through.
	s.openGate(sock.Conn().Id())
	// The socket is reachable now: room snapshots must include it.
	if s.main != nil {
		s.main.invalidate()
	}

	if sock.Recovered() {
		// Rooms (the live one included) and missed messages were restored
		// by connection-state recovery: no history replay. Send what was
		// broadcast while the library made the socket reachable.
		s.m.recovered.Inc()
		s.deliverMu.Lock()
		s.recovered(sock)
		s.deliverMu.Unlock()
	} else {
		s.welcome(c)
	}
	s.sendPresence(sock)
}

// slowGrace is how long a client's send queue may stay above
// SendQueueLimit (a burst it is draining) before it counts as slow.
const slowGrace = time.Second

// watchQueue disconnects a client whose send queue stays above
// SendQueueLimit packets for slowGrace, or passes ten times the limit: a
// slow reader must not grow the server's memory without bound. It
// reconnects and catches up through recovery or history.
func (s *Server) watchQueue(c *conn) {
	es := c.sock.Conn()
	var pending atomic.Int64
	var cut, armed atomic.Bool
	limit := int64(s.o.SendQueueLimit)
	disconnect := func(why string) {
		if !cut.CompareAndSwap(false, true) {
			return
		}
		s.m.slowClients.Inc()
		s.log.Info("disconnecting a slow client: its send queue passed SEND_QUEUE_LIMIT",
			"sid", string(c.sock.Id()), "limit", limit, "queued", pending.Load(), "why", why)
		go s.recover("slow client", func(...any) { c.sock.Disconnect(true) })()
	}
	_ = es.On("packetCreate", func(...any) {
		n := pending.Add(1)
		switch {
		case n > 10*limit:
			disconnect("ten times the limit")
		case n > limit && armed.CompareAndSwap(false, true):
			time.AfterFunc(slowGrace, func() {
				armed.Store(false)
				if pending.Load() > limit {
					disconnect("above the limit for " + slowGrace.String())
				}
			})
		}
	})
	_ = es.On("flush", func(args ...any) {
		if len(args) > 0 {
			if wbuf, ok := args[0].([]*packet.Packet); ok {
				pending.Add(-int64(len(wbuf)))
			}
		}
	})
}

// welcome sends a newcomer its history, then lets live messages through.
// A client that comes back (its auth carries the recovery offset: the id of
// the last message it saw and of the newest one it had seen, see
// parseOffset) but whose session could not be recovered, on another node or
// after a restart, gets only the messages after the newest one it saw, so
// it never shows one twice.
func (s *Server) welcome(c *conn) {
	limit := s.o.HistoryLimit
	if limit <= 0 {
		s.deliverMu.Lock()
		c.sock.Join(liveRoom)
		s.deliverMu.Unlock()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stored, err := s.o.History.Recent(ctx, limit, "")
	if err != nil {
		s.log.Warn("history unavailable for a newcomer; sending what this node remembers", "err", err)
	}
	var after *chat.Cursor
	if offset := resumeOffset(c.sock.Handshake().Auth); offset != "" {
		last, high := parseOffset(offset)
		for _, id := range []string{high, last} {
			if cur, err := s.o.History.Cursor(ctx, id); err == nil {
				after = &cur
				break
			}
		}
	}
	s.deliverMu.Lock()
	defer s.deliverMu.Unlock()
	page := s.o.History.Merge(stored, limit, nil)
	for i := len(page) - 1; i >= 0; i-- {
		m := page[i]
		if after != nil && !(chat.Message{CreatedAt: after.CreatedAt, ID: after.ID}).Before(m) {
			continue
		}
		args := s.messageArgs(m, "")
		_ = c.sock.Emit(args[0].(string), args[1:]...)
	}
	c.sock.Join(liveRoom)
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

func (c *conn) onMessage(args ...any) {
	s := c.s
	var ack socket.Ack
	if n := len(args); n > 0 {
		if a, ok := args[n-1].(socket.Ack); ok {
			ack, args = a, args[:n-1]
		}
	}
	var payload any
	if len(args) > 0 {
		payload = args[0]
	}
	s.m.received.Inc()
	now := time.Now()
	if ok, wait := c.bucket.Take(now); !ok {
		s.m.rejected.WithLabelValues(chat.CodeRateLimited).Inc()
		e := &errorEvent{Code: chat.CodeRateLimited, Reason: "you are sending messages too fast", RetryAfterMs: max(wait.Milliseconds(), 1)}
		if now.Sub(c.lastLimited) >= time.Second {
			c.lastLimited = now
			_ = c.sock.Emit("error", e)
		}
		if ack != nil {
			ack([]any{ackEvent{Error: e}}, nil)
		}
		return
	}
	if s.accept == nil {
		c.reject(ack, &chat.Error{Code: chat.CodeUnavailable, Reason: "the server is starting"})
		return
	}
	var durable func(chat.Message, error)
	if ack != nil {
		var once sync.Once
		durable = func(m chat.Message, err error) {
			once.Do(func() {
				if err != nil {
					e := chat.CodeOf(err)
					ack([]any{ackEvent{Error: &errorEvent{Code: e.Code, Reason: e.Reason}}}, nil)
					return
				}
				ack([]any{ackEvent{OK: true, ID: m.ID}}, nil)
			})
		}
	}
	if _, err := s.accept.Accept(payload, durable); err != nil {
		c.reject(ack, chat.CodeOf(err))
	}
}

// reject tells the sender why its message was not taken: an `error` event,
// and the negative acknowledgement when it asked for one.
func (c *conn) reject(ack socket.Ack, e *chat.Error) {
	c.s.m.rejected.WithLabelValues(e.Code).Inc()
	ev := &errorEvent{Code: e.Code, Reason: e.Reason, RetryAfterMs: e.RetryAfter.Milliseconds()}
	_ = c.sock.Emit("error", ev)
	if ack != nil {
		ack([]any{ackEvent{Error: ev}}, nil)
	}
}

// onAny answers events the server does not know, so a client learns of its
// mistake instead of waiting.
func (c *conn) onAny(args ...any) {
	if len(args) == 0 {
		return
	}
	if name, _ := args[0].(string); name == "event:message" {
		return
	}
	c.s.m.rejected.WithLabelValues(chat.CodeUnknownEvent).Inc()
	_ = c.sock.Emit("error", &errorEvent{Code: chat.CodeUnknownEvent, Reason: "the server only handles event:message"})
}

func (c *conn) onDisconnect(...any) {
	s := c.s
	s.connMu.Lock()
	cur, ok := s.conns[c.sock.Id()]
	if ok && cur == c {
		delete(s.conns, c.sock.Id())
		s.presenceDirty = true
	}
	n := len(s.conns)
	s.connMu.Unlock()
	if ok && cur == c {
		s.m.connections.Set(float64(n))
	}
}

// sendPresence tells one socket how many are online: the cluster's count
// at the last tick, corrected by this node's change since.
func (s *Server) sendPresence(sock *socket.Socket) {
	s.connMu.Lock()
	n := len(s.conns)
	if s.lastOnline >= 0 {
		n = max(s.lastOnline+n-s.lastLocal, n)
	}
	s.connMu.Unlock()
	_ = sock.Emit("presence", presenceEvent{Online: n})
}

// loop sends `presence` to everyone at most once an interval, when the
// count changed, and forgets recovery sessions past their window.
func (s *Server) loop() {
	defer close(s.stopped)
	t := time.NewTicker(s.o.PresenceInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case now := <-t.C:
			s.sweepSessions(now)
		}
		func() {
			defer func() {
				if r := recover(); r != nil {
					s.m.panics.Inc()
					s.log.Error("presence loop panicked", "panic", r)
				}
			}()
			local := s.Connections()
			ctx, cancel := context.WithTimeout(context.Background(), s.o.PresenceInterval)
			online, err := s.o.Presence.Online(ctx, local)
			cancel()
			if err != nil {
				s.log.Debug("cluster presence unavailable; using this node's count", "err", err)
				online = local
			}
			s.connMu.Lock()
			// A client that joined since the last tick was told an estimate:
			// send everyone the count when it or this node's clients changed.
			changed := online != s.lastOnline || s.presenceDirty
			s.presenceDirty = false
			s.lastOnline = online
			s.lastLocal = local
			s.connMu.Unlock()
			if changed {
				_ = s.io.Local().Emit("presence", presenceEvent{Online: online})
			}
		}()
	}
}
