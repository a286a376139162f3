package socketio

import (
	"time"

	"github.com/scalable-chat-go/server/chat"
	"github.com/scalable-chat-go/server/hub"
	"github.com/scalable-chat-go/server/socketio/internal/engine"
)

// Encoder encodes the hub's events as Socket.IO EVENT packets, once for
// all their recipients (hub.Encoder).
//
// A `message` event's arguments are the wire message (chat.Message.WireFor
// the server's AuthMode) then, with connection-state recovery on, its
// recovery offset (see offset.go): clients ignore the extra argument;
// socket.io-client keeps it as its offset and sends it back when it
// reconnects.
type Encoder struct {
	mode     chat.AuthMode
	recovery bool
}

var _ hub.Encoder = Encoder{}

// NewEncoder returns the encoder of an edge with authMode, whose
// connection-state recovery window is recovery (0: off).
func NewEncoder(authMode chat.AuthMode, recovery time.Duration) Encoder {
	return Encoder{mode: authMode, recovery: recovery > 0}
}

// Message encodes a `message` event of m with its recovery offset: the
// hub's Place on an ordered hub, else the message's id and high-water id.
func (e Encoder) Message(m chat.Message, at hub.Offset) (hub.Frame, error) {
	if !e.recovery {
		return engine.EventFrame(chat.EventMessage, m.WireFor(e.mode))
	}
	if at.Place != "" {
		return engine.EventFrame(chat.EventMessage, m.WireFor(e.mode), at.Place)
	}
	return engine.EventFrame(chat.EventMessage, m.WireFor(e.mode), makeOffset(m.ID, at.High))
}

// Event encodes any other event with its one argument.
func (e Encoder) Event(name string, data any) (hub.Frame, error) {
	return engine.EventFrame(name, data)
}
