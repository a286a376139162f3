package chat

import (
	"context"
	"time"
)

// Rooms and direct messages.
//
// The global room (GlobalRoom) is the original chat: every connection is in
// it, it cannot be left, and its payloads are the original protocol's. Next
// to it, rooms have server-made ids (UUIDv7) and a kind:
//
//   - public: anyone may join (an anonymous socket too, for as long as it
//     lives); listed for everyone;
//   - private: members only; the owner, or a moderator, invites;
//   - direct: two distinct users, one room per pair.
//
// A verified user's membership is stored; all of the user's sockets, on
// every node, are in all of the user's rooms from their CONNECT on.

// RoomKind is what a room is.
type RoomKind string

// The kinds of rooms.
const (
	RoomPublic  RoomKind = "public"
	RoomPrivate RoomKind = "private"
	RoomDirect  RoomKind = "direct"
)

// Room is a room other than the global one.
type Room struct {
	ID   string
	Name string
	Kind RoomKind
	// CreatedBy is the verified id of the user who created it.
	CreatedBy string
	CreatedAt time.Time
	// DeletedAt is when the room was deleted, zero while it exists. A
	// deleted room's messages are kept and hidden, like tombstoned ones.
	DeletedAt time.Time
}

// Deleted reports whether the room was deleted.
func (r Room) Deleted() bool { return !r.DeletedAt.IsZero() }

// MemberRole is a member's role in a room.
type MemberRole string

// The roles of a room's members: the owner moderates the room.
const (
	RoomOwner  MemberRole = "owner"
	RoomMember MemberRole = "member"
)

// Member is a verified user's membership of a room.
type Member struct {
	RoomID, UserID string
	Role           MemberRole
	JoinedAt       time.Time
	// ReadUpTo is the id of the last message of the room the user has
	// read, "" when none.
	ReadUpTo string
}

// UserRecord is a verified user as the server last saw it: written at each
// verified CONNECT and guest sign-in.
type UserRecord struct {
	ID, Name string
	LastSeen time.Time
}

// RoomStore keeps users, rooms and memberships (SQLite or PostgreSQL).
// Every method is safe for concurrent use, from any number of nodes on one
// database. Unknown ids are ErrNotFound where a method returns one.
type RoomStore interface {
	// SaveUser records u: inserted, or its name and last seen updated.
	SaveUser(ctx context.Context, u UserRecord) error
	// FindUser returns the user with id.
	FindUser(ctx context.Context, id string) (UserRecord, error)

	// CreateRoom stores r and its members in one transaction (one of
	// them its owner, normally r.CreatedBy).
	CreateRoom(ctx context.Context, r Room, members []Member) error
	// OpenDirect returns the direct room of the users a and b (a != b):
	// the one stored already, or r, stored with both as members, when they
	// have none. However many calls race, on however many nodes, the pair
	// has one room (a unique constraint); created tells whether r was it.
	OpenDirect(ctx context.Context, r Room, a, b string) (room Room, created bool, err error)
	// FindRoom returns the room with id, deleted or not.
	FindRoom(ctx context.Context, id string) (Room, error)
	// DeleteRoom marks the room deleted at at; false when it was deleted
	// already. Its memberships stay (RoomsOf leaves it out).
	DeleteRoom(ctx context.Context, id string, at time.Time) (bool, error)

	// AddMember adds m; false when the user is a member already.
	AddMember(ctx context.Context, m Member) (bool, error)
	// RemoveMember removes userID from roomID, in one transaction: when it
	// was the owner, the oldest remaining member becomes the owner
	// (newOwner); a private room left empty is deleted at at (deleted).
	// removed is false when the user was not a member.
	RemoveMember(ctx context.Context, roomID, userID string, at time.Time) (removed bool, newOwner string, deleted bool, err error)
	// Member returns userID's membership of roomID.
	Member(ctx context.Context, roomID, userID string) (Member, error)
	// Members returns the members of roomID, oldest first.
	Members(ctx context.Context, roomID string) ([]Member, error)
	// RoomsOf returns the rooms userID is a member of, not deleted, oldest
	// membership first.
	RoomsOf(ctx context.Context, userID string) ([]Room, error)
	// PublicRooms returns up to limit public rooms, not deleted, whose
	// name starts with prefix (any case; "" all), ordered by name (in
	// lower case) then id, after the room with id after ("" from the
	// start; an id that is no room is ErrNotFound).
	PublicRooms(ctx context.Context, prefix, after string, limit int) ([]Room, error)

	// MarkRead moves userID's read position in roomID to the message
	// upTo, never backwards (in history order); false when it did not
	// move. A message that is not the room's is ErrNotFound.
	MarkRead(ctx context.Context, roomID, userID, upTo string) (bool, error)
	// Unread counts the messages of roomID after userID's read position,
	// neither the user's own nor deleted ones, stopping at max.
	Unread(ctx context.Context, roomID, userID string, max int) (int, error)
}

// RoomOf returns the room m was sent in: GlobalRoom for a message of the
// global room (whose Room is "").
func RoomOf(m Message) string {
	if m.Room == "" {
		return GlobalRoom
	}
	return m.Room
}
