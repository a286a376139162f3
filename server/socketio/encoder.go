package socketio

import (
	"encoding/json"
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

// Event encodes any other event with its one argument. An event that
// moves its recipient into a room or out of one (membershipEvents) is
// marked with the room: the connection that sends it tells the Admin UI
// (conn.Send).
func (e Encoder) Event(name string, data any) (hub.Frame, error) {
	f, err := engine.EventFrame(name, data)
	if err != nil {
		return nil, err
	}
	if in, ok := membershipEvents[name]; ok {
		if room := eventRoom(data); room != "" {
			return &movingFrame{Frame: f, room: room, in: in}, nil
		}
	}
	return f, nil
}

// membershipEvents are the events the hub delivers as it moves a
// connection into a room (true) or out of one (false), by name.
var membershipEvents = map[string]bool{
	chat.EventRoomInvited: true, chat.EventRoomJoined: true,
	chat.EventRoomLeft: false, chat.EventRoomRemoved: false, chat.EventRoomDeleted: false,
}

// movingFrame is the frame of a membership event, with its room: the
// connection is in it from this event on (in), or out of it.
type movingFrame struct {
	*engine.Frame
	room string
	in   bool
}

// eventRoom is the room a membership event names: its payload's "room",
// an id or a room ({id, ...}). The payload is the chat's, or another
// node's decoded; these events are rare, so it is read through its JSON.
func eventRoom(data any) string {
	b, err := json.Marshal(data)
	if err != nil {
		return ""
	}
	var p struct {
		Room json.RawMessage `json:"room"`
	}
	if json.Unmarshal(b, &p) != nil {
		return ""
	}
	var id string
	if json.Unmarshal(p.Room, &id) == nil {
		return id
	}
	var room struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(p.Room, &room)
	return room.ID
}
