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
// Without one, the sender gets the `error` event at most once a second,
// with the other refusals of a flood: an error event per unknown event made
// a flood of them cost the server more than the client (issue 16).
func (s *Server) refuseUnknown(c *conn, ack engine.Ack, now time.Time) {
	e := &errorEvent{Code: chat.CodeUnknownEvent, Reason: unknownReason}
	if ok, wait := c.bucket.Take(now); !ok {
		e = rateLimited(wait, "you are sending too fast")
	}
	if ack != nil {
		s.m.rejected.WithLabelValues(e.Code).Inc()
		ack(ackEvent{Error: e})
		return
	}
	// unknown_event and rate_limited share the throttle of a flood's
	// refusals (refusals.go).
	s.refuseEvent(c, nil, e)
}
