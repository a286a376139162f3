package chat

import (
	"context"
	"errors"
	"time"
)

// Fanout delivers events to the members of a room on every node of the
// cluster (the hub of each node, linked by a Broker).
//
// Broadcast delivers e once to every member of room connected to any node,
// after every event this node broadcast to the room before it (so each
// sender's order is kept). It does not block on slow clients or slow peer
// nodes, and it never fails the caller: an engine counts and logs its own
// delivery faults.
type Fanout interface {
	Broadcast(room string, e Event)
}

// Log makes accepted messages durable, each exactly once.
//
// Append is admission: it is synchronous and returns ErrUnavailable, having
// admitted nothing, when the log cannot take m now (its buffer is full, or
// it is closing). Once m is admitted, done is called exactly once, from
// another goroutine, with nil when m is durable (committed to the store, or
// acknowledged by the broker), or with the error that made m fail for good;
// the engine counts and logs such a loss. done must not block.
//
// Delete admits a tombstone the same way: synchronous admission (or
// ErrUnavailable), then done once it is durable. A tombstone hides its
// message from every history page whether it is stored before or after
// the message, so engines need not order it with the message.
//
// Close stops admission and waits, until ctx ends, for every admitted
// message to become durable; what it could not deliver it fails, counts and
// logs, and reports in its error.
type Log interface {
	Append(m Message, done func(error)) error
	Delete(d Deletion, done func(error)) error
	Close(ctx context.Context) error
}

// Cursor is a position in history order: messages sort by CreatedAt, then ID.
type Cursor struct {
	CreatedAt time.Time
	ID        string
}

// CursorOf returns the position of m.
func CursorOf(m Message) Cursor { return Cursor{CreatedAt: m.CreatedAt, ID: m.ID} }

// Rejected is a message the store refused for its data (not for an outage):
// retrying it cannot succeed.
type Rejected struct {
	Message Message
	Reason  string
}

// Store keeps messages.
//
// SaveBatch stores the batch in one transaction, idempotently by ID: a
// message stored before is left as it is. A message the database refuses
// for its data never blocks the rest of its batch: it is returned in
// rejected, and the others are stored. A non-nil error means nothing was
// stored and the whole batch may be retried.
//
// SaveDeletions stores tombstones in one transaction, idempotently by
// message id (the first tombstone of a message stays); a tombstone may
// come before its message is stored, and hides it all the same.
//
// Recent returns up to limit messages of room (GlobalRoom, or a room's
// id), newest first, strictly before the cursor when one is given, leaving
// out every message with a tombstone. Find returns the stored message with
// the id, of any room, deleted or not (a deleted message's position is
// still a valid cursor), or ErrNotFound.
type Store interface {
	SaveBatch(ctx context.Context, batch []Message) (rejected []Rejected, err error)
	SaveDeletions(ctx context.Context, batch []Deletion) error
	Recent(ctx context.Context, room string, limit int, before *Cursor) ([]Message, error)
	Find(ctx context.Context, id string) (Message, error)
	Ping(ctx context.Context) error
	Close() error
}

// ErrNotFound is returned by Store.Find for an unknown id.
var ErrNotFound = errors.New("message not found")

// Presence tells who is online in each room of the cluster.
//
// Sync records local, this node's view of room (its members there and the
// distinct users among them), and returns the cluster's view of the room:
// the connections summed, the users merged (one entry per user, with the
// earliest Since). Rooms are independent: a view of one never counts in
// another. A node that stops syncing a room drops out of the room's view
// within the engine's expiry (seconds). A single node returns local.
//
// SyncRooms is Sync of several rooms other than the global one at once:
// views[i] is the cluster's view of rooms[i].Room. An engine that talks to
// a server does it in one round trip, as a node syncs every room it holds
// every PRESENCE_INTERVAL. An error leaves every room's view unknown.
type Presence interface {
	Sync(ctx context.Context, room string, local PresenceView) (PresenceView, error)
	SyncRooms(ctx context.Context, rooms []RoomView) (views []PresenceView, err error)
}

// RoomView is a node's view of one room.
type RoomView struct {
	Room string
	View PresenceView
}

// LocalPresence is the Presence of a node that runs alone.
type LocalPresence struct{}

// Sync returns local.
func (LocalPresence) Sync(_ context.Context, _ string, local PresenceView) (PresenceView, error) {
	return local, nil
}

// SyncRooms returns the local views.
func (LocalPresence) SyncRooms(_ context.Context, rooms []RoomView) ([]PresenceView, error) {
	out := make([]PresenceView, len(rooms))
	for i, r := range rooms {
		out[i] = r.View
	}
	return out, nil
}
