package chat

// EventMessage is the name of the event that carries a chat message to
// clients: {message, username, id, createdAt}.
const EventMessage = "message"

// Event is what the Fanout carries to every connected client: a chat
// message, or any other event clients receive (a deletion, typing, the
// presence list). Each new kind of event is a name and a payload; the
// history ring and connection-state recovery keep only messages.
type Event struct {
	// Name is the Socket.IO event name clients receive.
	Name string
	// Message is the message of an EventMessage.
	Message Message
	// Data is the payload of any other event, JSON-encodable: clients
	// receive it as the event's only argument.
	Data any
	// Except is the connection the event comes from, when it must not
	// receive it itself (typing); "" sends it to everyone.
	Except string
	// Deletion is the tombstone an EventMessageDeleted announces: every
	// node forgets the message from its history when it delivers it.
	Deletion *Deletion

	// Membership effects, applied by every node's hub as it delivers the
	// event: Join, on an event to a user, makes the user's connections
	// members of that room (live from then on; an invitation, a direct
	// room opened); Leave, on an event to a user, takes them out of that
	// room once they have it (removed, left from another tab); Close, on
	// an event to a room, takes every member out of the room once they
	// have it (the room was deleted).
	Join, Leave string
	Close       bool
	// Invite, on an event with Join, says that the users it joins to the
	// room were added by someone else (an invitation, a direct room
	// opened): they are not watching the room, and the first messages
	// follow at once. An engine that routes rooms makes the next messages
	// this node publishes there reach the nodes that join them, however
	// long their subscription takes (Broker).
	Invite bool

	// Pos is the event's place in the cluster's ordered log, set by an
	// OrderedBroker on the events it hands to the handlers; zero
	// otherwise. Own marks a message the broker hands back to the node that
	// published it.
	Pos Position
	Own bool
	// Sent, when set on an event given to Fanout.Broadcast, is called once
	// the event left this node: nil when the other nodes' link took it (at
	// once for a node alone), or the error that made the broker give it up
	// (counted and logged by the broker). It must not block.
	Sent func(error)
}

// Events other than messages that clients receive.
const (
	// EventTyping: {name, userId?, typing}, to everyone but the typist.
	EventTyping = "typing"
	// EventPresence: {online, users?}; EventPresenceJoin and
	// EventPresenceLeave: {name, userId?}.
	EventPresence      = "presence"
	EventPresenceJoin  = "presence:join"
	EventPresenceLeave = "presence:leave"
)

// MessageEvent returns the event that delivers m.
func MessageEvent(m Message) Event { return Event{Name: EventMessage, Message: m} }

// IsMessage reports whether e delivers an accepted chat message (a
// message event relayed from elsewhere without an id is an ordinary event).
func (e Event) IsMessage() bool { return e.Name == EventMessage && e.Message.ID != "" }
