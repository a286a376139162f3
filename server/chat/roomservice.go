package chat

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Events of rooms that clients receive. Each carries the room's id under
// "room" (room:invited the whole room).
const (
	// EventRoomInvited: {room: {id, name, kind, createdBy, createdAt}}, to
	// a user made a member by someone else (an invitation, a direct room
	// opened, a room created with them in it); the user's sockets are in
	// the room from then on.
	EventRoomInvited = "room:invited"
	// EventRoomJoined and EventRoomLeft: {room}, to the user's other
	// sockets when one of them joined or left a room.
	EventRoomJoined = "room:joined"
	EventRoomLeft   = "room:left"
	// EventRoomRemoved: {room}, to a user removed from a room by its owner
	// or a moderator; the user's sockets leave it.
	EventRoomRemoved = "room:removed"
	// EventRoomDeleted: {room}, to every member of a deleted room; every
	// socket leaves it.
	EventRoomDeleted = "room:deleted"
	// EventRoomRead: {room, upTo}, to the user's other sockets when one
	// of them moved its read position.
	EventRoomRead = "room:read"
)

// RoomLimits bound what users do with rooms; each is a named setting.
// Zero fields take the defaults of DefaultRoomLimits.
type RoomLimits struct {
	// RoomsPerUser is the most rooms a verified user may be a member of
	// (ROOMS_PER_USER_MAX).
	RoomsPerUser int
	// MembersPerRoom is the most members of a private room
	// (ROOM_MEMBERS_MAX).
	MembersPerRoom int
	// AnonymousRooms is the most rooms an anonymous socket may join
	// besides the global one (ROOMS_ANONYMOUS_MAX; the edge counts them);
	// below 0: none.
	AnonymousRooms int
	// NameLength is the most Unicode code points of a room's name
	// (ROOM_NAME_MAX_LENGTH).
	NameLength int
	// CreatesPerMinute and DMsPerMinute are how many rooms a user may
	// create, and how many direct rooms it may open, a minute, on a node
	// (ROOM_CREATE_RATE_PER_MIN, DM_OPEN_RATE_PER_MIN).
	CreatesPerMinute int
	DMsPerMinute     int
}

// DefaultRoomLimits returns the documented defaults.
func DefaultRoomLimits() RoomLimits {
	return RoomLimits{RoomsPerUser: 200, MembersPerRoom: 1000, AnonymousRooms: 20, NameLength: 64,
		CreatesPerMinute: 10, DMsPerMinute: 30}
}

func (l RoomLimits) withDefaults() RoomLimits {
	d := DefaultRoomLimits()
	if l.AnonymousRooms == 0 {
		l.AnonymousRooms = d.AnonymousRooms
	}
	l.AnonymousRooms = max(l.AnonymousRooms, 0)
	for _, f := range []struct{ v, d *int }{{&l.RoomsPerUser, &d.RoomsPerUser}, {&l.MembersPerRoom, &d.MembersPerRoom},
		{&l.NameLength, &d.NameLength},
		{&l.CreatesPerMinute, &d.CreatesPerMinute}, {&l.DMsPerMinute, &d.DMsPerMinute}} {
		if *f.v <= 0 {
			*f.v = *f.d
		}
	}
	return l
}

// UserFanout delivers an event to one user's connections on every node
// (the hub), applying its membership effects (Event.Join, Event.Leave).
type UserFanout interface {
	SendUser(userID string, e Event)
}

// RoomServiceOptions configure a RoomService.
type RoomServiceOptions struct {
	Store RoomStore
	// Fanout carries room events (a deletion) to a room's members; Users
	// carries membership events to a user's connections.
	Fanout Fanout
	Users  UserFanout
	Limits RoomLimits
	// Unavailable, when set, refuses every room operation with
	// CodeUnavailable and this reason (a node without a shared database).
	Unavailable string
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// RoomService is what users do with rooms: the rules of who may do what,
// the limits, and the events that keep every node's sockets in step. The
// global room is not its: every socket is in it, and it cannot be left.
//
// Refusals are *Error: CodeUnauthorized (needs a verified identity),
// CodeNotFound (no such room or user, or a private room the caller may not
// see), CodeForbidden, CodeInvalidPayload, CodeLimit (with the setting's
// name), CodeRateLimited (with RetryAfter).
type RoomService struct {
	o RoomServiceOptions

	mu      sync.Mutex
	creates map[string]*TokenBucket // user id -> room creations
	dms     map[string]*TokenBucket // user id -> direct rooms opened
}

// NewRoomService returns the service over o.Store.
func NewRoomService(o RoomServiceOptions) *RoomService {
	o.Limits = o.Limits.withDefaults()
	if o.Now == nil {
		o.Now = time.Now
	}
	return &RoomService{o: o, creates: map[string]*TokenBucket{}, dms: map[string]*TokenBucket{}}
}

// Limits returns the room limits in force.
func (s *RoomService) Limits() RoomLimits { return s.o.Limits }

// Errors of the rules.
var (
	errNeedsIdentity = &Error{Code: CodeUnauthorized, Reason: "rooms of your own, private rooms, direct messages and read positions need a verified identity (a token or a guest session)"}
	errNoRoom        = &Error{Code: CodeNotFound, Reason: "no such room"}
	errGlobal        = &Error{Code: CodeForbidden, Reason: "the global room cannot be left, and has no members to manage"}
)

func (s *RoomService) available() error {
	if s.o.Unavailable != "" {
		return &Error{Code: CodeUnavailable, Reason: s.o.Unavailable}
	}
	return nil
}

// RoomWire is a room as clients receive it.
type RoomWire struct {
	ID        string   `json:"id"`
	Name      string   `json:"name"`
	Kind      RoomKind `json:"kind"`
	CreatedBy string   `json:"createdBy"`
	CreatedAt string   `json:"createdAt"`
}

// Wire returns r as clients receive it.
func (r Room) Wire() RoomWire {
	return RoomWire{ID: r.ID, Name: r.Name, Kind: r.Kind, CreatedBy: r.CreatedBy, CreatedAt: r.CreatedAt.UTC().Format(TimeLayout)}
}

// roomRef is the payload of the events that name a room by id.
type roomRef struct {
	Room string `json:"room"`
}

// cleanRoomName cleans a room's name like a username and checks its length.
func (s *RoomService) cleanRoomName(name string) (string, error) {
	name = clean(name, true)
	if name == "" {
		return "", Errorf(CodeInvalidPayload, "a room needs a name")
	}
	if n := utf8.RuneCountInString(name); n > s.o.Limits.NameLength {
		return "", LimitError("ROOM_NAME_MAX_LENGTH", "the name is %d characters long; the limit is %d", n, s.o.Limits.NameLength)
	}
	return name, nil
}

// take spends a token of the user's bucket in buckets (per minute).
func (s *RoomService) take(buckets map[string]*TokenBucket, userID string, perMinute int, what string) error {
	now := s.o.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	b := buckets[userID]
	if b == nil {
		if len(buckets) > 100_000 {
			clear(buckets) // a bound on memory; users only gain tokens back
		}
		b = NewTokenBucket(float64(perMinute)/60, perMinute, now)
		buckets[userID] = b
	}
	if ok, wait := b.Take(now); !ok {
		return &Error{Code: CodeRateLimited, Reason: fmt.Sprintf("you %s too often; wait a little", what), RetryAfter: wait}
	}
	return nil
}

// roomsLeft checks that userID may be a member of one more room.
func (s *RoomService) roomsLeft(ctx context.Context, userID string) error {
	rooms, err := s.o.Store.RoomsOf(ctx, userID)
	if err != nil {
		return fmt.Errorf("read the rooms of %s: %w", userID, err)
	}
	if len(rooms) >= s.o.Limits.RoomsPerUser {
		return LimitError("ROOMS_PER_USER_MAX", "a user may be in %d rooms", s.o.Limits.RoomsPerUser)
	}
	return nil
}

// Create makes a room of kind public or private named name, by the
// verified user by, with the verified users of members in it (they are
// told: room:invited).
func (s *RoomService) Create(ctx context.Context, by *User, name string, kind RoomKind, members []string) (Room, error) {
	if err := s.available(); err != nil {
		return Room{}, err
	}
	if by == nil {
		return Room{}, errNeedsIdentity
	}
	if kind != RoomPublic && kind != RoomPrivate {
		return Room{}, Errorf(CodeInvalidPayload, "kind must be public or private (a direct room is opened with dm:open)")
	}
	name, err := s.cleanRoomName(name)
	if err != nil {
		return Room{}, err
	}
	invited := make([]string, 0, len(members))
	seen := map[string]bool{by.ID: true}
	for _, id := range members {
		if id == "" || len(id) > 256 {
			return Room{}, Errorf(CodeInvalidPayload, "members must be user ids")
		}
		if !seen[id] {
			seen[id] = true
			invited = append(invited, id)
		}
	}
	if kind == RoomPrivate && 1+len(invited) > s.o.Limits.MembersPerRoom {
		return Room{}, LimitError("ROOM_MEMBERS_MAX", "a private room has at most %d members", s.o.Limits.MembersPerRoom)
	}
	if err := s.take(s.creates, by.ID, s.o.Limits.CreatesPerMinute, "create rooms"); err != nil {
		return Room{}, err
	}
	for _, id := range append([]string{by.ID}, invited...) {
		if id != by.ID {
			if _, err := s.o.Store.FindUser(ctx, id); err != nil {
				return Room{}, userErr(err, id)
			}
		}
		if err := s.roomsLeft(ctx, id); err != nil {
			return Room{}, err
		}
	}
	now := s.o.Now().UTC().Truncate(time.Millisecond)
	r := Room{ID: NewID(), Name: name, Kind: kind, CreatedBy: by.ID, CreatedAt: now}
	ms := []Member{{RoomID: r.ID, UserID: by.ID, Role: RoomOwner, JoinedAt: now}}
	for _, id := range invited {
		ms = append(ms, Member{RoomID: r.ID, UserID: id, Role: RoomMember, JoinedAt: now})
	}
	if err := s.o.Store.CreateRoom(ctx, r, ms); err != nil {
		return Room{}, fmt.Errorf("store room: %w", err)
	}
	s.o.Users.SendUser(by.ID, Event{Name: EventRoomJoined, Data: roomRef{r.ID}, Join: r.ID})
	for _, id := range invited {
		s.o.Users.SendUser(id, Event{Name: EventRoomInvited, Data: map[string]any{"room": r.Wire()}, Join: r.ID, Invite: true})
	}
	return r, nil
}

func userErr(err error, id string) error {
	if errors.Is(err, ErrNotFound) {
		return Errorf(CodeNotFound, "no user has the id %q", limitText(id, 64))
	}
	return fmt.Errorf("find user %s: %w", limitText(id, 64), err)
}

func limitText(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// OpenDirect returns the direct room of the verified user by and the user
// userID, opening it (and telling the other: room:invited) the first time.
// created reports whether it was opened now.
func (s *RoomService) OpenDirect(ctx context.Context, by *User, userID string) (r Room, created bool, err error) {
	if err := s.available(); err != nil {
		return Room{}, false, err
	}
	if by == nil {
		return Room{}, false, errNeedsIdentity
	}
	if userID == "" || len(userID) > 256 {
		return Room{}, false, Errorf(CodeInvalidPayload, "dm:open wants {userId}")
	}
	if userID == by.ID {
		return Room{}, false, Errorf(CodeInvalidPayload, "a direct room is between two users")
	}
	if _, err := s.o.Store.FindUser(ctx, userID); err != nil {
		return Room{}, false, userErr(err, userID)
	}
	// Opened before: it is returned, whatever the limits say now.
	mine, err := s.o.Store.RoomsOf(ctx, by.ID)
	if err != nil {
		return Room{}, false, fmt.Errorf("read the rooms of %s: %w", by.ID, err)
	}
	for _, r := range mine {
		if r.Kind != RoomDirect {
			continue
		}
		if _, err := s.o.Store.Member(ctx, r.ID, userID); err == nil {
			return r, false, nil
		}
	}
	if err := s.take(s.dms, by.ID, s.o.Limits.DMsPerMinute, "open direct rooms"); err != nil {
		return Room{}, false, err
	}
	for _, id := range []string{by.ID, userID} {
		if err := s.roomsLeft(ctx, id); err != nil {
			return Room{}, false, err
		}
	}
	now := s.o.Now().UTC().Truncate(time.Millisecond)
	room, created, err := s.o.Store.OpenDirect(ctx, Room{ID: NewID(), Kind: RoomDirect, CreatedBy: by.ID, CreatedAt: now}, by.ID, userID)
	if err != nil {
		return Room{}, false, fmt.Errorf("open direct room: %w", err)
	}
	if created {
		s.o.Users.SendUser(by.ID, Event{Name: EventRoomJoined, Data: roomRef{room.ID}, Join: room.ID})
		s.o.Users.SendUser(userID, Event{Name: EventRoomInvited, Data: map[string]any{"room": room.Wire()}, Join: room.ID, Invite: true})
	}
	return room, created, nil
}

// Visible returns the room with id when by (nil: anonymous) may see it
// and read its messages: a public room, or one by is a member of (a
// moderator sees every room); member reports whether by is one. Else
// not_found.
func (s *RoomService) Visible(ctx context.Context, by *User, id string) (r Room, member bool, err error) {
	if err := s.available(); err != nil {
		return Room{}, false, err
	}
	r, m, err := s.visible(ctx, by, id)
	return r, m != nil, err
}

// visible returns the room with id when by may see it: a public room, or
// one by is a member of (a moderator sees every room); not_found else.
func (s *RoomService) visible(ctx context.Context, by *User, id string) (Room, *Member, error) {
	if id == "" || len(id) > 64 {
		return Room{}, nil, errNoRoom
	}
	r, err := s.o.Store.FindRoom(ctx, id)
	switch {
	case errors.Is(err, ErrNotFound):
		return Room{}, nil, errNoRoom
	case err != nil:
		return Room{}, nil, fmt.Errorf("find room %s: %w", id, err)
	case r.Deleted():
		return Room{}, nil, errNoRoom
	}
	var m *Member
	if by != nil {
		switch mm, err := s.o.Store.Member(ctx, r.ID, by.ID); {
		case err == nil:
			m = &mm
		case !errors.Is(err, ErrNotFound):
			return Room{}, nil, fmt.Errorf("read membership: %w", err)
		}
	}
	if r.Kind != RoomPublic && m == nil && !by.IsModerator() {
		return Room{}, nil, errNoRoom
	}
	return r, m, nil
}

// Join lets by into the room with id: any public room (a verified user
// becomes a member, stored; an anonymous socket joins alone, for as long as
// it lives), or a room by is a member of (joining again sends the history
// again). member reports whether by is a stored member now, new reports
// whether it became one now (its other sockets are told: room:joined).
func (s *RoomService) Join(ctx context.Context, by *User, id, conn string) (r Room, member, joined bool, err error) {
	if err := s.available(); err != nil {
		return Room{}, false, false, err
	}
	r, m, err := s.visible(ctx, by, id)
	if err != nil {
		return Room{}, false, false, err
	}
	if m != nil || by == nil {
		return r, m != nil, false, nil
	}
	if r.Kind != RoomPublic {
		// A moderator sees every room, and joins none it was not invited to.
		return Room{}, false, false, ErrForbidden
	}
	if err := s.roomsLeft(ctx, by.ID); err != nil {
		return Room{}, false, false, err
	}
	added, err := s.o.Store.AddMember(ctx, Member{RoomID: r.ID, UserID: by.ID, Role: RoomMember,
		JoinedAt: s.o.Now().UTC().Truncate(time.Millisecond)})
	if err != nil {
		return Room{}, false, false, fmt.Errorf("add member: %w", err)
	}
	if added {
		s.o.Users.SendUser(by.ID, Event{Name: EventRoomJoined, Data: roomRef{r.ID}, Join: r.ID, Except: conn})
	}
	return r, true, added, nil
}

// Leave takes by out of the room with id: a verified member's membership
// ends (when it owned the room, the oldest member owns it now; a private
// room left empty is deleted), and all its sockets leave the room
// (room:left to the others). An anonymous socket's leaving is the edge's.
func (s *RoomService) Leave(ctx context.Context, by *User, id, conn string) error {
	if err := s.available(); err != nil {
		return err
	}
	if id == GlobalRoom {
		return errGlobal
	}
	if by == nil {
		return nil
	}
	_, m, err := s.visible(ctx, by, id)
	if err != nil {
		return err
	}
	if m == nil {
		return nil
	}
	removed, _, _, err := s.o.Store.RemoveMember(ctx, id, by.ID, s.o.Now().UTC().Truncate(time.Millisecond))
	if err != nil {
		return fmt.Errorf("remove member: %w", err)
	}
	if removed {
		s.o.Users.SendUser(by.ID, Event{Name: EventRoomLeft, Data: roomRef{id}, Leave: id, Except: conn})
	}
	return nil
}

// mayManage reports whether by may invite to, remove from, or delete r:
// its owner, or a moderator.
func mayManage(by *User, m *Member) bool {
	return by.IsModerator() || (m != nil && m.Role == RoomOwner)
}

// Invite makes the verified user userID a member of the room with id, for
// by: a member of a public room, or the owner (or a moderator) of a
// private one. The invitee's sockets join it (room:invited).
func (s *RoomService) Invite(ctx context.Context, by *User, id, userID string) error {
	if err := s.available(); err != nil {
		return err
	}
	if by == nil {
		return errNeedsIdentity
	}
	if id == GlobalRoom {
		return errGlobal
	}
	r, m, err := s.visible(ctx, by, id)
	if err != nil {
		return err
	}
	switch {
	case r.Kind == RoomDirect:
		return Errorf(CodeForbidden, "a direct room has two members")
	case r.Kind == RoomPrivate && !mayManage(by, m), r.Kind == RoomPublic && m == nil && !by.IsModerator():
		return Errorf(CodeForbidden, "only the owner of the room, or a moderator, may invite")
	}
	if userID == "" || len(userID) > 256 {
		return Errorf(CodeInvalidPayload, "room:invite wants {room, userId}")
	}
	if _, err := s.o.Store.FindUser(ctx, userID); err != nil {
		return userErr(err, userID)
	}
	if r.Kind == RoomPrivate {
		members, err := s.o.Store.Members(ctx, r.ID)
		if err != nil {
			return fmt.Errorf("read members: %w", err)
		}
		if len(members) >= s.o.Limits.MembersPerRoom {
			return LimitError("ROOM_MEMBERS_MAX", "a private room has at most %d members", s.o.Limits.MembersPerRoom)
		}
	}
	if err := s.roomsLeft(ctx, userID); err != nil {
		return err
	}
	added, err := s.o.Store.AddMember(ctx, Member{RoomID: r.ID, UserID: userID, Role: RoomMember,
		JoinedAt: s.o.Now().UTC().Truncate(time.Millisecond)})
	if err != nil {
		return fmt.Errorf("add member: %w", err)
	}
	if added {
		s.o.Users.SendUser(userID, Event{Name: EventRoomInvited, Data: map[string]any{"room": r.Wire()}, Join: r.ID, Invite: true})
	}
	return nil
}

// Remove takes userID out of the room with id, for its owner or a
// moderator; the removed user's sockets leave it (room:removed).
func (s *RoomService) Remove(ctx context.Context, by *User, id, userID string) error {
	if err := s.available(); err != nil {
		return err
	}
	if by == nil {
		return errNeedsIdentity
	}
	if id == GlobalRoom {
		return errGlobal
	}
	r, m, err := s.visible(ctx, by, id)
	if err != nil {
		return err
	}
	if r.Kind == RoomDirect || !mayManage(by, m) {
		return Errorf(CodeForbidden, "only the owner of the room, or a moderator, may remove a member")
	}
	removed, _, _, err := s.o.Store.RemoveMember(ctx, r.ID, userID, s.o.Now().UTC().Truncate(time.Millisecond))
	if err != nil {
		return fmt.Errorf("remove member: %w", err)
	}
	if !removed {
		return Errorf(CodeNotFound, "the user is not a member of the room")
	}
	s.o.Users.SendUser(userID, Event{Name: EventRoomRemoved, Data: roomRef{r.ID}, Leave: r.ID})
	return nil
}

// Delete deletes the room with id, for its owner or a moderator: its
// messages are hidden (kept, like tombstoned ones), and every member's
// sockets, on every node, get room:deleted and leave it.
func (s *RoomService) Delete(ctx context.Context, by *User, id string) error {
	if err := s.available(); err != nil {
		return err
	}
	if by == nil {
		return errNeedsIdentity
	}
	if id == GlobalRoom {
		return Errorf(CodeForbidden, "the global room cannot be deleted")
	}
	_, m, err := s.visible(ctx, by, id)
	if err != nil {
		return err
	}
	if !mayManage(by, m) {
		return Errorf(CodeForbidden, "only the owner of the room, or a moderator, may delete it")
	}
	if _, err := s.o.Store.DeleteRoom(ctx, id, s.o.Now().UTC().Truncate(time.Millisecond)); err != nil {
		return fmt.Errorf("delete room: %w", err)
	}
	s.o.Fanout.Broadcast(id, Event{Name: EventRoomDeleted, Data: roomRef{id}, Close: true})
	return nil
}

// MarkRead moves by's read position in the room with id to the message
// upTo (never backwards); its other sockets are told (room:read).
func (s *RoomService) MarkRead(ctx context.Context, by *User, id, upTo, conn string) error {
	if err := s.available(); err != nil {
		return err
	}
	if by == nil {
		return errNeedsIdentity
	}
	_, m, err := s.visible(ctx, by, id)
	if err != nil {
		return err
	}
	if m == nil {
		return Errorf(CodeNotFound, "you are not a member of the room")
	}
	if upTo == "" || len(upTo) > 64 {
		return Errorf(CodeInvalidPayload, "room:read wants {room, upTo: a message id}")
	}
	moved, err := s.o.Store.MarkRead(ctx, id, by.ID, upTo)
	switch {
	case errors.Is(err, ErrNotFound):
		return Errorf(CodeNotFound, "no message of the room has the id %q", limitText(upTo, 64))
	case err != nil:
		return fmt.Errorf("mark read: %w", err)
	}
	if moved {
		s.o.Users.SendUser(by.ID, Event{Name: EventRoomRead, Data: map[string]string{"room": id, "upTo": upTo}, Except: conn})
	}
	return nil
}

// RoomsOf returns the rooms the verified user is in (none for an anonymous
// caller, or a node without rooms).
func (s *RoomService) RoomsOf(ctx context.Context, by *User) ([]Room, error) {
	if by == nil || s.o.Unavailable != "" {
		return nil, nil
	}
	return s.o.Store.RoomsOf(ctx, by.ID)
}

// SeeUser records a verified user as seen now (at CONNECT and guest
// sign-in): dm:open and room:invite find users there.
func (s *RoomService) SeeUser(ctx context.Context, u *User) error {
	if u == nil || s.o.Unavailable != "" {
		return nil
	}
	return s.o.Store.SaveUser(ctx, UserRecord{ID: u.ID, Name: u.Name, LastSeen: s.o.Now().UTC().Truncate(time.Millisecond)})
}

// ParseRoomKind reads a kind a client gives.
func ParseRoomKind(s string) RoomKind { return RoomKind(strings.ToLower(strings.TrimSpace(s))) }
