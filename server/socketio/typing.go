package socketio

import (
	"time"

	"github.com/scalable-chat-go/server/chat"
)

// Typing at the edge: a client emits `typing` {typing: true|false} (with
// `username` when it has not said who it is). The edge checks it against
// its own rate limit (TYPING_RATE_PER_SEC, bursts of twice it) and its
// payload, and hands it to the hub, which tells the room's other members
// (hub/typing.go). Refusals are `error` events (refusals.go).

// typingState is a connection's typing limits; guarded by conn.mu.
type typingState struct {
	typingBucket chat.TokenBucket
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
	room, roomOK := roomOf(args)
	var reason string
	code := chat.CodeInvalidPayload
	switch {
	case !ok:
		reason = "typing must be {typing: true or false, room?}"
	case !roomOK:
		reason = "room must be a room id"
	case c.name == "":
		reason = "typing needs a username (in the CONNECT auth, or with typing)"
	case room != chat.GlobalRoom && !s.hub.IsMember(c, room):
		reason, code = "you are not in the room; join it first", chat.CodeForbidden
	}
	if reason != "" {
		c.mu.Unlock()
		s.refuseEvent(c, nil, &errorEvent{Code: code, Reason: reason})
		return
	}
	c.mu.Unlock()
	_ = s.hub.Typing(c, room, typing, now)
}
