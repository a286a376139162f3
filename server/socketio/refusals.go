package socketio

import (
	"time"

	"github.com/scalable-chat-go/server/chat"
	"github.com/scalable-chat-go/server/socketio/internal/engine"
)

// Refusals of client events.
//
// Every refusal of a client's event goes through refuseEvent: it is
// counted in chat_messages_rejected_total{reason}, and the negative
// acknowledgement says why when the client asked for one. The `error`
// event that tells the client too is sent at most once a second per
// connection for the refusals a flood brings, whatever the event kind:
// rate_limited (always with retryAfterMs), unknown_event and banned share
// one throttle. Other refusals (a bad payload, forbidden, not_found) are
// told each time: each took a token of the connection's rate limit first,
// so they are as many as the limit lets through. (event:delete answered
// each of 5,000 events over the limit with an `error` event of its own,
// none with retryAfterMs: issue 29.)

// refusalInterval is the least time between two `error` events telling
// one connection of refused events of a flood.
const refusalInterval = time.Second

// throttled reports whether the refusals of code share the throttle.
func throttled(code string) bool {
	return code == chat.CodeRateLimited || code == chat.CodeUnknownEvent || code == chat.CodeBanned
}

// rateLimited is the refusal of an event over a limit whose next token
// comes after wait.
func rateLimited(wait time.Duration, reason string) *errorEvent {
	return &errorEvent{Code: chat.CodeRateLimited, Reason: reason, RetryAfterMs: max(wait.Milliseconds(), 1)}
}

// refusalOf is the refusal of an event the chat refused with e.
func refusalOf(e *chat.Error) *errorEvent {
	if e.Code == chat.CodeRateLimited {
		return rateLimited(e.RetryAfter, e.Reason)
	}
	return &errorEvent{Code: e.Code, Reason: e.Reason, RetryAfterMs: e.RetryAfter.Milliseconds(), Limit: e.Limit}
}

// refuseEvent answers a refused event of c: counted, the negative
// acknowledgement when ack is set, and an `error` event (throttled, for
// the refusals of a flood).
func (s *Server) refuseEvent(c *conn, ack engine.Ack, e *errorEvent) {
	s.m.rejected.WithLabelValues(e.Code).Inc()
	// The error event goes first, then the acknowledgement, as before.
	if throttled(e.Code) {
		s.tellRefusal(c, e)
	} else {
		s.emitError(c, e)
	}
	if ack != nil {
		ack(ackEvent{Error: e})
	}
}

// tellRefusal sends c the `error` event e unless it was sent one within
// refusalInterval. It may be called from any goroutine (a deletion is
// answered off the socket's serial calls).
func (s *Server) tellRefusal(c *conn, e *errorEvent) {
	now := time.Now().UnixNano()
	last := c.lastRefusal.Load()
	if now-last < int64(refusalInterval) || !c.lastRefusal.CompareAndSwap(last, now) {
		return
	}
	s.emitError(c, e)
}
