package socketio

import (
	"time"

	"github.com/scalable-chat-go/server/chat"
)

// Typing: a client emits `typing` {typing: true|false} (with `username`
// when it has not said who it is); everyone else in the cluster receives
// `typing` {name, userId?, typing}. It is never stored nor logged, has a
// rate limit of its own (TYPING_RATE_PER_SEC, bursts of twice it), and
// ends by itself TYPING_TIMEOUT after the last renewal, when its sender
// leaves, or when it sends its message. While a client keeps typing, the
// others are told again every half TYPING_TIMEOUT, so that clients (and
// nodes whose sender's node died) can expire an indicator that is not
// renewed.

// typingState is a connection's typing; guarded by conn.mu.
type typingState struct {
	typingBucket chat.TokenBucket
	typing       bool
	typingUntil  time.Time
	typingSent   time.Time
}

type typingEvent struct {
	Name   string `json:"name"`
	UserID string `json:"userId,omitempty"`
	Typing bool   `json:"typing"`
}

func (s *Server) onTyping(c *conn, args []any, now time.Time) {
	c.mu.Lock()
	if ok, wait := c.typingBucket.Take(now); !ok {
		c.mu.Unlock()
		s.refuseEvent(c, nil, rateLimited(wait, "you are sending typing events too fast"))
		return
	}
	var obj map[string]any
	if len(args) > 0 {
		obj, _ = args[0].(map[string]any)
	}
	typing, ok := obj["typing"].(bool)
	if ok && c.name == "" {
		if u, isString := obj["username"].(string); isString {
			c.name, _ = chat.CleanName(u, s.limits())
		}
	}
	var reason string
	switch {
	case !ok:
		reason = "typing must be {typing: true or false}"
	case c.name == "":
		reason = "typing needs a username (in the CONNECT auth, or with typing)"
	}
	if reason != "" {
		c.mu.Unlock()
		s.refuseEvent(c, nil, &errorEvent{Code: chat.CodeInvalidPayload, Reason: reason})
		return
	}
	send := false
	switch {
	case typing:
		c.typingUntil = now.Add(s.o.TypingTimeout)
		if !c.typing || now.Sub(c.typingSent) >= s.o.TypingTimeout/2 {
			c.typing, c.typingSent, send = true, now, true
		}
	case c.typing:
		c.typing, send = false, true
	}
	name := c.name
	c.mu.Unlock()
	if send {
		s.broadcastTyping(c, name, typing)
	}
}

// stopTyping ends c's typing, if it is typing.
func (s *Server) stopTyping(c *conn) {
	c.mu.Lock()
	was, name := c.typing, c.name
	c.typing = false
	c.mu.Unlock()
	if was {
		s.broadcastTyping(c, name, false)
	}
}

func (s *Server) broadcastTyping(c *conn, name string, typing bool) {
	s.Broadcast(chat.Event{Name: chat.EventTyping, Data: typingEvent{Name: name, UserID: c.userID(), Typing: typing}, Except: c.sock.ID()})
}

// expireTyping ends the typing not renewed within TYPING_TIMEOUT.
func (s *Server) expireTyping() {
	now := time.Now()
	s.connMu.Lock()
	var expired []*conn
	for c := range s.conns {
		c.mu.Lock()
		if c.typing && now.After(c.typingUntil) {
			expired = append(expired, c)
		}
		c.mu.Unlock()
	}
	s.connMu.Unlock()
	for _, c := range expired {
		s.stopTyping(c)
	}
}
