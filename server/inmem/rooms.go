package inmem

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/scalable-chat-go/server/chat"
)

// RoomStore keeps users, rooms and memberships in memory (chat.RoomStore),
// for tests of what is built on rooms; messages (for read positions and
// unread counts) come from Messages, the chat.Store they are stored in.
type RoomStore struct {
	// Messages finds a room's messages for MarkRead and Unread.
	Messages interface {
		Find(ctx context.Context, id string) (chat.Message, error)
		Recent(ctx context.Context, room string, limit int, before *chat.Cursor) ([]chat.Message, error)
	}

	mu      sync.Mutex
	users   map[string]chat.UserRecord
	rooms   map[string]chat.Room
	members map[string][]chat.Member // room id -> members, oldest first
	direct  map[[2]string]string     // pair (sorted) -> room id
}

var _ chat.RoomStore = (*RoomStore)(nil)

// NewRoomStore returns an empty store over messages.
func NewRoomStore(messages chat.Store) *RoomStore {
	return &RoomStore{Messages: messages, users: map[string]chat.UserRecord{}, rooms: map[string]chat.Room{},
		members: map[string][]chat.Member{}, direct: map[[2]string]string{}}
}

// SaveUser records u.
func (s *RoomStore) SaveUser(_ context.Context, u chat.UserRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[u.ID] = u
	return nil
}

// FindUser returns the user with id.
func (s *RoomStore) FindUser(_ context.Context, id string) (chat.UserRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[id]
	if !ok {
		return chat.UserRecord{}, chat.ErrNotFound
	}
	return u, nil
}

// CreateRoom stores r with its members.
func (s *RoomStore) CreateRoom(_ context.Context, r chat.Room, members []chat.Member) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rooms[r.ID] = r
	s.members[r.ID] = slices.Clone(members)
	return nil
}

// OpenDirect returns the pair's direct room, storing r the first time.
func (s *RoomStore) OpenDirect(_ context.Context, r chat.Room, a, b string) (chat.Room, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	pair := [2]string{min(a, b), max(a, b)}
	if id, ok := s.direct[pair]; ok {
		return s.rooms[id], false, nil
	}
	s.direct[pair] = r.ID
	s.rooms[r.ID] = r
	s.members[r.ID] = []chat.Member{{RoomID: r.ID, UserID: a, Role: chat.RoomMember, JoinedAt: r.CreatedAt},
		{RoomID: r.ID, UserID: b, Role: chat.RoomMember, JoinedAt: r.CreatedAt}}
	return r, true, nil
}

// FindRoom returns the room with id.
func (s *RoomStore) FindRoom(_ context.Context, id string) (chat.Room, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.rooms[id]
	if !ok {
		return chat.Room{}, chat.ErrNotFound
	}
	return r, nil
}

// DeleteRoom marks the room deleted.
func (s *RoomStore) DeleteRoom(_ context.Context, id string, at time.Time) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.rooms[id]
	if !ok {
		return false, chat.ErrNotFound
	}
	if r.Deleted() {
		return false, nil
	}
	r.DeletedAt = at
	s.rooms[id] = r
	return true, nil
}

// AddMember adds m.
func (s *RoomStore) AddMember(_ context.Context, m chat.Member) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.rooms[m.RoomID]; !ok {
		return false, chat.ErrNotFound
	}
	for _, x := range s.members[m.RoomID] {
		if x.UserID == m.UserID {
			return false, nil
		}
	}
	s.members[m.RoomID] = append(s.members[m.RoomID], m)
	return true, nil
}

// RemoveMember removes userID from roomID.
func (s *RoomStore) RemoveMember(_ context.Context, roomID, userID string, at time.Time) (bool, string, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ms := s.members[roomID]
	i := slices.IndexFunc(ms, func(m chat.Member) bool { return m.UserID == userID })
	if i < 0 {
		return false, "", false, nil
	}
	gone := ms[i]
	ms = slices.Delete(ms, i, i+1)
	s.members[roomID] = ms
	var owner string
	if gone.Role == chat.RoomOwner && len(ms) > 0 {
		ms[0].Role = chat.RoomOwner
		owner = ms[0].UserID
	}
	deleted := false
	if r := s.rooms[roomID]; len(ms) == 0 && r.Kind == chat.RoomPrivate && !r.Deleted() {
		r.DeletedAt = at
		s.rooms[roomID] = r
		deleted = true
	}
	return true, owner, deleted, nil
}

// Member returns userID's membership of roomID.
func (s *RoomStore) Member(_ context.Context, roomID, userID string) (chat.Member, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.members[roomID] {
		if m.UserID == userID {
			return m, nil
		}
	}
	return chat.Member{}, chat.ErrNotFound
}

// Members returns the members of roomID, oldest first.
func (s *RoomStore) Members(_ context.Context, roomID string) ([]chat.Member, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.members[roomID]), nil
}

// RoomsOf returns the rooms of userID, oldest membership first.
func (s *RoomStore) RoomsOf(_ context.Context, userID string) ([]chat.Room, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	type joined struct {
		r  chat.Room
		at time.Time
	}
	var all []joined
	for id, ms := range s.members {
		for _, m := range ms {
			if r := s.rooms[id]; m.UserID == userID && !r.Deleted() {
				all = append(all, joined{r, m.JoinedAt})
			}
		}
	}
	slices.SortFunc(all, func(a, b joined) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return strings.Compare(a.r.ID, b.r.ID)
	})
	out := make([]chat.Room, len(all))
	for i, j := range all {
		out[i] = j.r
	}
	return out, nil
}

// PublicRooms lists public rooms by name.
func (s *RoomStore) PublicRooms(_ context.Context, prefix, after string, limit int) ([]chat.Room, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []chat.Room
	for _, r := range s.rooms {
		if r.Kind == chat.RoomPublic && !r.Deleted() && strings.HasPrefix(strings.ToLower(r.Name), strings.ToLower(prefix)) {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b chat.Room) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	if after != "" {
		if i := slices.IndexFunc(out, func(r chat.Room) bool { return r.ID == after }); i >= 0 {
			out = out[i+1:]
		}
	}
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// MarkRead moves userID's read position to upTo, never backwards.
func (s *RoomStore) MarkRead(ctx context.Context, roomID, userID, upTo string) (bool, error) {
	m, err := s.Messages.Find(ctx, upTo)
	if err != nil {
		return false, err
	}
	if chat.RoomOf(m) != roomID {
		return false, chat.ErrNotFound
	}
	var prev chat.Message
	s.mu.Lock()
	ms := s.members[roomID]
	i := slices.IndexFunc(ms, func(x chat.Member) bool { return x.UserID == userID })
	if i < 0 {
		s.mu.Unlock()
		return false, chat.ErrNotFound
	}
	read := ms[i].ReadUpTo
	s.mu.Unlock()
	if read != "" {
		if prev, err = s.Messages.Find(ctx, read); err == nil && !prev.Before(m) {
			return false, nil
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ms = s.members[roomID]
	if i = slices.IndexFunc(ms, func(x chat.Member) bool { return x.UserID == userID }); i < 0 {
		return false, chat.ErrNotFound
	}
	ms[i].ReadUpTo = upTo
	return true, nil
}

// Unread counts the room's messages after the read position.
func (s *RoomStore) Unread(ctx context.Context, roomID, userID string, maxCount int) (int, error) {
	mem, err := s.Member(ctx, roomID, userID)
	if err != nil {
		return 0, err
	}
	var after *chat.Message
	if mem.ReadUpTo != "" {
		if m, err := s.Messages.Find(ctx, mem.ReadUpTo); err == nil {
			after = &m
		}
	}
	page, err := s.Messages.Recent(ctx, roomID, maxCount+1000, nil)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, m := range page {
		if (after == nil || after.Before(m)) && m.UserID != userID {
			n++
		}
	}
	return min(n, maxCount), nil
}
