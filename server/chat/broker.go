package chat

import "context"

// GlobalRoom is the room every connection is in: the original chat, where
// an unmodified client talks. Its events are those of the original
// protocol, byte for byte: they carry no room.
const GlobalRoom = "global"

// Broker carries events between the nodes of a cluster. A node's hub
// delivers an event to its own members first, then publishes it; the
// broker hands it to the handlers of every other node that subscribed to
// its room, never back to the publishing node (but an OrderedBroker's
// messages, see OrderedBroker). Every method that carries an event names
// its room (or its user), so that a node receives only the rooms it has
// members in.
//
// Guarantees, for every engine:
//   - Publish, PublishUser and PublishControl never block on the network
//     and never fail the caller: an event the engine cannot publish is
//     counted and logged by it, never dropped silently.
//   - Order: the events one node publishes to one room reach each other
//     node in the order they were published. Rooms are not ordered with
//     each other, nor with user and control events: on a sharded Redis
//     Cluster each room has a channel of its own (as Node's sharded
//     adapter does), and ordering them would put every room back on one
//     channel.
//   - Once: each event reaches each other node once while the link is up;
//     a publication repeated after an error may arrive twice, and so may a
//     message an engine that routes relays after an invitation (below), so
//     handlers drop what they already delivered (the hub does, by message
//     id).
//   - Sent: an event given to Publish with Event.Sent set has it called
//     once, from any goroutine: nil once the link took the event (at once
//     for a node alone), or the error that made the engine give it up.
//   - Control events reach the other nodes' control handlers only, never a
//     client.
//   - Rooms: a node receives the events of the global room always, and
//     those of another room while it subscribes to it (Subscribe). An
//     engine may hand over other rooms' events too (handlers drop them);
//     one that routes subscribes in the background, so what other nodes
//     publish to a room before the subscription is in place (a round trip
//     to the engine) does not reach the node; but for the messages a node
//     publishes to a room right after a user event of its invited users
//     to the room (Event.Join with Event.Invite): those reach the nodes
//     that joined the users' connections on that event.
//   - Handlers are called one event at a time, in the order they were
//     registered; a handler must not block for long (it holds up the
//     node's other events).
//
// Register the handlers, then Run; nothing is received before Run. Close
// publishes what is queued until ctx ends, then stops.
type Broker interface {
	// Publish sends e to the members of room on the other nodes.
	Publish(room string, e Event)
	// PublishUser sends e to the connections of the verified user userID
	// on the other nodes, whatever rooms they are in.
	PublishUser(userID string, e Event)
	// PublishControl sends an internal event (IsInternal: a ban) to the
	// other nodes themselves.
	PublishControl(e Event)
	// Subscribe says that this node has members of room now (the hub
	// calls it when the room's first member joins here); Unsubscribe, once
	// per Subscribe, that it has none any more. Neither blocks; the
	// global room needs neither.
	Subscribe(room string)
	Unsubscribe(room string)
	// Subscribed waits until room, which this node subscribes to, reaches
	// it: what other nodes publish to it from then on does. At once for an
	// engine that does not route; ctx's error when ctx ends first.
	Subscribed(ctx context.Context, room string) error
	// Nodes is how many nodes share the broker, this one included, as it
	// counted them lately (1 alone; -1 before the first count).
	Nodes() int64

	RegisterEventHandler(h BrokerEventHandler)
	RegisterControlHandler(h ControlEventHandler)
	Run() error
	Close(ctx context.Context) error
}

// BrokerEventHandler receives the events other nodes published.
type BrokerEventHandler interface {
	// HandlePublication is an event another node published to room.
	HandlePublication(room string, e Event)
	// HandleUserEvent is an event another node published to userID.
	HandleUserEvent(userID string, e Event)
}

// ControlEventHandler receives the internal events of other nodes.
type ControlEventHandler interface {
	HandleControl(e Event)
}

// Directory is the cross-node side of the Socket.IO Admin UI: it lists and
// disconnects the sockets of the other nodes, and carries the UI's events
// between them. A Broker of several nodes implements it too.
//
// FetchSockets returns the sockets of namespace nsp of the other nodes
// that answered within the engine's timeout (an error says how many did
// not). DisconnectSockets asks them, in the background, to disconnect the
// sockets of nsp that filter names (a socket id, a room, or "" for all):
// with their whole connection when closeConn. PublishAdmin sends an event
// to the Admin UI sockets of the other nodes.
type Directory interface {
	FetchSockets(ctx context.Context, nsp string) ([]SocketInfo, error)
	DisconnectSockets(nsp string, closeConn bool, filter string)
	PublishAdmin(name string, args []any)
	RegisterDirectoryHandler(h DirectoryHandler)
}

// DirectoryHandler answers the other nodes' Directory requests with this
// node's sockets.
type DirectoryHandler interface {
	// LocalSockets describes up to limit sockets of nsp of this node.
	LocalSockets(nsp string, limit int) []SocketInfo
	// DisconnectLocal disconnects this node's sockets of nsp that filter
	// names, and returns how many.
	DisconnectLocal(nsp string, closeConn bool, filter string) int
	// HandleAdmin is an Admin UI event of another node.
	HandleAdmin(name string, args []any)
}
