package socketio

import (
	"time"

	"github.com/scalable-chat-go/server/chat"
	"github.com/scalable-chat-go/server/socketio/internal/engine"
)

// unknownReason is the reason of an unknown_event refusal.
const unknownReason = "the server only handles event:message"

// refuseUnknown answers an event the edge does not handle. It counts
// against the connection's rate limit, as a message does.
//
// An event with an acknowledgement gets it, negative, in place of the
// `error` event: {ok: false, error: {code: "unknown_event"}}, or, past the
// rate limit, rate_limited with retryAfterMs, as a message would. So a
// client that awaits it without a timeout is answered (Node's socket.io,
// with no handler for the event, never answers it). Each acknowledgement
// answers one packet of the client's, as for messages.
//
// Without one, the sender gets the `error` event at most once a second: an
// error event per unknown event made a flood of them cost the server more
// than the client (issue 16).
func (s *Server) refuseUnknown(c *conn, ack engine.Ack, now time.Time) {
	s.m.rejected.WithLabelValues(chat.CodeUnknownEvent).Inc()
	ok, wait := c.bucket.Take(now)
	if !ok {
		s.m.rejected.WithLabelValues(chat.CodeRateLimited).Inc()
	}
	if ack != nil {
		e := &errorEvent{Code: chat.CodeUnknownEvent, Reason: unknownReason}
		if !ok {
			e = &errorEvent{Code: chat.CodeRateLimited, Reason: "you are sending too fast", RetryAfterMs: max(wait.Milliseconds(), 1)}
		}
		ack(ackEvent{Error: e})
		return
	}
	if now.Sub(c.lastUnknown) >= time.Second {
		c.lastUnknown = now
		s.emitError(c, &errorEvent{Code: chat.CodeUnknownEvent, Reason: unknownReason})
	}
}
