// Package hub holds the connections of this node, indexed by room, and
// delivers the chat's events to them. It knows rooms, members, history and
// presence, and nothing of Socket.IO: the edge turns a client's packets
// into hub calls, and the hub hands each connection frames an Encoder made
// (once per event, whatever the number of recipients).
//
// Per room it keeps:
//   - the members of this node, and which of them receive live events;
//   - the room's history (chat.History: the store's pages merged with a
//     ring of what this node delivered lately), and the seam between a
//     newcomer's history and the live events (Join);
//   - presence (who is online in the room, synced with the other nodes
//     through chat.Presence) and typing.
//
// How an event travels:
//
//	Broadcast(room, e) ─▶ room lock ─▶ ring (a message) ─▶ Encoder, once ─▶ Conn.Send to every live member
//	                                └─▶ Broker.Publish(room, e) ─▶ other nodes' HandlePublication(room, e)
//	                                                                  ─▶ the same local delivery there
//
// Guarantees:
//   - Order: the events of a room reach each member in the order the hub
//     delivered them; a node's own events in the order they were broadcast.
//   - Seam: a member that joins gets the room's history (or, recovering,
//     what it missed), then every live event after it, with no gap and no
//     duplicate: joins and deliveries of a room take the same lock, and
//     whatever was delivered while the history was read is sent from the
//     ring (chat.History.Mark).
//   - Once: a message another node published twice is delivered once.
//   - Routing: the broker hears of a room (Broker.Subscribe) when its
//     first member joins this node and (Unsubscribe) when its last one
//     leaves, under the room's member lock, so that a node that routes
//     receives the rooms it has members in, and only those.
//   - No blocking: Conn.Send only queues; a store read for a newcomer's
//     history happens outside the room's lock, so a slow store or a slow
//     member never holds up the others.
//
// On an ordered broker (chat.OrderedBroker: Redis in streams mode) the hub
// delivers messages in the order of the cluster's log, its own too, and
// the recovery offset of every message is the client's Place in that log:
// a client that comes back, to any node and after any crash, gets exactly
// what it missed (order.go).
package hub
