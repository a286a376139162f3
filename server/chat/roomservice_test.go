package chat_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/scalable-chat-go/server/chat"
	"github.com/scalable-chat-go/server/inmem"
)

// sent records what the service sends to users and rooms.
type sent struct {
	mu    sync.Mutex
	users []string // "user event join=room leave=room except=conn[ invite]"
	rooms []string // "room event close"
}

func (s *sent) SendUser(user string, e chat.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	line := fmt.Sprintf("%s %s join=%s leave=%s except=%s", user, e.Name, e.Join, e.Leave, e.Except)
	if e.Invite {
		line += " invite"
	}
	s.users = append(s.users, line)
}

func (s *sent) Broadcast(room string, e chat.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rooms = append(s.rooms, fmt.Sprintf("%s %s close=%v", room, e.Name, e.Close))
}

func (s *sent) take() (users, rooms []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	users, rooms = s.users, s.rooms
	s.users, s.rooms = nil, nil
	return users, rooms
}

// roomMessages is a message store of rooms for read positions.
type roomMessages struct {
	mu   sync.Mutex
	msgs []chat.Message
}

func (s *roomMessages) Find(_ context.Context, id string) (chat.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.msgs {
		if m.ID == id {
			return m, nil
		}
	}
	return chat.Message{}, chat.ErrNotFound
}

func (s *roomMessages) Recent(_ context.Context, room string, limit int, _ *chat.Cursor) ([]chat.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []chat.Message
	for i := len(s.msgs) - 1; i >= 0 && len(out) < limit; i-- {
		if chat.RoomOf(s.msgs[i]) == room {
			out = append(out, s.msgs[i])
		}
	}
	return out, nil
}

type roomsFixture struct {
	svc   *chat.RoomService
	store *inmem.RoomStore
	out   *sent
	msgs  *roomMessages
	now   time.Time
}

var (
	ann = &chat.User{ID: "u-ann", Name: "Ann"}
	bob = &chat.User{ID: "u-bob", Name: "Bob"}
	cid = &chat.User{ID: "u-cid", Name: "Cid"}
	mod = &chat.User{ID: "u-mod", Name: "Mod", Roles: []string{chat.RoleModerator}}
)

func newRooms(t *testing.T, limits chat.RoomLimits) *roomsFixture {
	t.Helper()
	f := &roomsFixture{out: &sent{}, msgs: &roomMessages{}, now: time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)}
	f.store = inmem.NewRoomStore(nil)
	f.store.Messages = f.msgs
	f.svc = chat.NewRoomService(chat.RoomServiceOptions{Store: f.store, Fanout: f.out, Users: f.out, Limits: limits,
		Now: func() time.Time { return f.now }})
	for _, u := range []*chat.User{ann, bob, cid, mod} {
		if err := f.svc.SeeUser(context.Background(), u); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// code returns the refusal code of err ("" for nil).
func code(err error) string {
	if err == nil {
		return ""
	}
	var e *chat.Error
	if !errors.As(err, &e) {
		return "not a chat.Error: " + err.Error()
	}
	if e.Code == chat.CodeLimit {
		return e.Code + ":" + e.Limit
	}
	return e.Code
}

func TestCreateRoom(t *testing.T) {
	ctx := context.Background()
	f := newRooms(t, chat.RoomLimits{NameLength: 8, MembersPerRoom: 2, CreatesPerMinute: 3})
	for _, tt := range []struct {
		name    string
		by      *chat.User
		room    string
		kind    chat.RoomKind
		members []string
		want    string
	}{
		{"anonymous", nil, "x", chat.RoomPublic, nil, chat.CodeUnauthorized},
		{"a direct room", ann, "x", chat.RoomDirect, nil, chat.CodeInvalidPayload},
		{"no kind", ann, "x", "", nil, chat.CodeInvalidPayload},
		{"no name", ann, " \u200b ", chat.RoomPublic, nil, chat.CodeInvalidPayload},
		{"a long name", ann, "123456789", chat.RoomPublic, nil, "limit:ROOM_NAME_MAX_LENGTH"},
		{"too many members", ann, "x", chat.RoomPrivate, []string{bob.ID, cid.ID}, "limit:ROOM_MEMBERS_MAX"},
		{"an unknown member", ann, "x", chat.RoomPrivate, []string{"nobody"}, chat.CodeNotFound},
	} {
		if _, err := f.svc.Create(ctx, tt.by, tt.room, tt.kind, tt.members); code(err) != tt.want {
			t.Errorf("%s: %v, want %s", tt.name, err, tt.want)
		}
	}
	r, err := f.svc.Create(ctx, ann, "  Plans\u200b ", chat.RoomPrivate, []string{bob.ID, ann.ID, bob.ID})
	if err != nil {
		t.Fatal(err)
	}
	if r.Name != "Plans" || r.Kind != chat.RoomPrivate || r.CreatedBy != ann.ID || len(r.ID) != 36 {
		t.Fatalf("room %+v", r)
	}
	members, _ := f.store.Members(ctx, r.ID)
	if len(members) != 2 || members[0].UserID != ann.ID || members[0].Role != chat.RoomOwner || members[1].Role != chat.RoomMember {
		t.Fatalf("members %+v", members)
	}
	users, _ := f.out.take()
	want := []string{"u-ann room:joined join=" + r.ID + " leave= except=", "u-bob room:invited join=" + r.ID + " leave= except= invite"}
	if !slices.Equal(users, want) {
		t.Fatalf("user events %v, want %v", users, want)
	}
	// Creations a minute: the unknown member's attempt took one too.
	if _, err := f.svc.Create(ctx, ann, "y", chat.RoomPublic, nil); err != nil {
		t.Fatal(err)
	}
	_, err = f.svc.Create(ctx, ann, "z", chat.RoomPublic, nil)
	var ce *chat.Error
	if !errors.As(err, &ce) || ce.Code != chat.CodeRateLimited || ce.RetryAfter <= 0 {
		t.Fatalf("a fourth creation in a minute: %v", err)
	}
	f.now = f.now.Add(time.Minute)
	if _, err := f.svc.Create(ctx, ann, "z", chat.RoomPublic, nil); err != nil {
		t.Fatalf("a minute later: %v", err)
	}
}

func TestRoomsPerUser(t *testing.T) {
	ctx := context.Background()
	f := newRooms(t, chat.RoomLimits{RoomsPerUser: 1})
	r, err := f.svc.Create(ctx, ann, "one", chat.RoomPublic, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Create(ctx, ann, "two", chat.RoomPublic, nil); code(err) != "limit:ROOMS_PER_USER_MAX" {
		t.Fatalf("a second room: %v", err)
	}
	if _, _, err := f.svc.OpenDirect(ctx, bob, ann.ID); code(err) != "limit:ROOMS_PER_USER_MAX" {
		t.Fatalf("a direct room with a user at the limit: %v", err)
	}
	if _, err := f.svc.Create(ctx, bob, "b", chat.RoomPublic, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := f.svc.Join(ctx, bob, r.ID, "c"); code(err) != "limit:ROOMS_PER_USER_MAX" {
		t.Fatalf("joining past the limit: %v", err)
	}
}

func TestDirectRooms(t *testing.T) {
	ctx := context.Background()
	f := newRooms(t, chat.RoomLimits{DMsPerMinute: 2})
	for _, tt := range []struct {
		by   *chat.User
		to   string
		want string
	}{
		{nil, bob.ID, chat.CodeUnauthorized},
		{ann, ann.ID, chat.CodeInvalidPayload},
		{ann, "", chat.CodeInvalidPayload},
		{ann, "nobody", chat.CodeNotFound},
	} {
		if _, _, err := f.svc.OpenDirect(ctx, tt.by, tt.to); code(err) != tt.want {
			t.Errorf("OpenDirect(%v, %q): %v, want %s", tt.by, tt.to, err, tt.want)
		}
	}
	r, created, err := f.svc.OpenDirect(ctx, ann, bob.ID)
	if err != nil || !created || r.Kind != chat.RoomDirect {
		t.Fatalf("%+v %v %v", r, created, err)
	}
	again, created, err := f.svc.OpenDirect(ctx, bob, ann.ID)
	if err != nil || created || again.ID != r.ID {
		t.Fatalf("the other way: %+v %v %v", again, created, err)
	}
	users, _ := f.out.take()
	if len(users) != 2 || users[1] != "u-bob room:invited join="+r.ID+" leave= except= invite" {
		t.Fatalf("user events %v", users)
	}
	if _, _, err := f.svc.OpenDirect(ctx, ann, bob.ID); err != nil {
		t.Fatalf("opening it again takes nothing of the rate: %v", err)
	}
	if _, _, err := f.svc.OpenDirect(ctx, ann, cid.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.svc.OpenDirect(ctx, ann, mod.ID); code(err) != chat.CodeRateLimited {
		t.Fatalf("a third new one in a minute: %v", err)
	}
	if err := f.svc.Invite(ctx, ann, r.ID, cid.ID); code(err) != chat.CodeForbidden {
		t.Fatalf("an invitation to a direct room: %v", err)
	}
}

func TestJoinAndLeave(t *testing.T) {
	ctx := context.Background()
	f := newRooms(t, chat.RoomLimits{})
	pub, _ := f.svc.Create(ctx, ann, "pub", chat.RoomPublic, nil)
	priv, _ := f.svc.Create(ctx, ann, "priv", chat.RoomPrivate, []string{bob.ID})
	f.out.take()
	for _, tt := range []struct {
		name string
		by   *chat.User
		room string
		want string
	}{
		{"an unknown room", cid, "nope", chat.CodeNotFound},
		{"a private room to an outsider", cid, priv.ID, chat.CodeNotFound},
		{"a private room to an anonymous socket", nil, priv.ID, chat.CodeNotFound},
		{"a private room to a moderator not in it", mod, priv.ID, chat.CodeForbidden},
	} {
		if _, _, _, err := f.svc.Join(ctx, tt.by, tt.room, "c"); code(err) != tt.want {
			t.Errorf("%s: %v, want %s", tt.name, err, tt.want)
		}
	}
	if _, member, _, err := f.svc.Join(ctx, nil, pub.ID, "c"); err != nil || member {
		t.Fatalf("anonymous into a public room: member %v, %v", member, err)
	}
	if _, member, joined, err := f.svc.Join(ctx, cid, pub.ID, "c1"); err != nil || !member || !joined {
		t.Fatalf("cid into a public room: %v %v %v", member, joined, err)
	}
	if _, member, joined, err := f.svc.Join(ctx, cid, pub.ID, "c1"); err != nil || !member || joined {
		t.Fatalf("again: %v %v %v", member, joined, err)
	}
	if users, _ := f.out.take(); !slices.Equal(users, []string{"u-cid room:joined join=" + pub.ID + " leave= except=c1"}) {
		t.Fatalf("user events %v", users)
	}
	if err := f.svc.Leave(ctx, cid, chat.GlobalRoom, "c1"); code(err) != chat.CodeForbidden {
		t.Fatalf("leaving the global room: %v", err)
	}
	// The owner leaves: the oldest member owns the room; the last member
	// leaves a private room: it is deleted.
	if err := f.svc.Leave(ctx, ann, priv.ID, "a1"); err != nil {
		t.Fatal(err)
	}
	if m, err := f.store.Member(ctx, priv.ID, bob.ID); err != nil || m.Role != chat.RoomOwner {
		t.Fatalf("bob after ann left: %+v %v", m, err)
	}
	if err := f.svc.Leave(ctx, bob, priv.ID, "b1"); err != nil {
		t.Fatal(err)
	}
	if r, _ := f.store.FindRoom(ctx, priv.ID); !r.Deleted() {
		t.Fatal("an empty private room is not deleted")
	}
	if users, _ := f.out.take(); !slices.Equal(users, []string{"u-ann room:left join= leave=" + priv.ID + " except=a1",
		"u-bob room:left join= leave=" + priv.ID + " except=b1"}) {
		t.Fatalf("user events %v", users)
	}
}

func TestInviteRemoveDelete(t *testing.T) {
	ctx := context.Background()
	f := newRooms(t, chat.RoomLimits{MembersPerRoom: 2})
	priv, _ := f.svc.Create(ctx, ann, "priv", chat.RoomPrivate, []string{bob.ID})
	f.out.take()
	for _, tt := range []struct {
		name     string
		by       *chat.User
		room, to string
		want     string
	}{
		{"anonymous", nil, priv.ID, cid.ID, chat.CodeUnauthorized},
		{"a member who does not own it", bob, priv.ID, cid.ID, chat.CodeForbidden},
		{"an outsider", cid, priv.ID, cid.ID, chat.CodeNotFound},
		{"an unknown user", ann, priv.ID, "nobody", chat.CodeNotFound},
		{"past the members limit", ann, priv.ID, cid.ID, "limit:ROOM_MEMBERS_MAX"},
		{"the global room", ann, chat.GlobalRoom, cid.ID, chat.CodeForbidden},
	} {
		if err := f.svc.Invite(ctx, tt.by, tt.room, tt.to); code(err) != tt.want {
			t.Errorf("invite, %s: %v, want %s", tt.name, err, tt.want)
		}
	}
	if err := f.svc.Remove(ctx, bob, priv.ID, ann.ID); code(err) != chat.CodeForbidden {
		t.Fatalf("a member removing the owner: %v", err)
	}
	if err := f.svc.Remove(ctx, ann, priv.ID, cid.ID); code(err) != chat.CodeNotFound {
		t.Fatalf("removing a user who is not a member: %v", err)
	}
	if err := f.svc.Remove(ctx, ann, priv.ID, bob.ID); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.Invite(ctx, mod, priv.ID, cid.ID); err != nil {
		t.Fatalf("a moderator invites: %v", err)
	}
	users, _ := f.out.take()
	want := []string{"u-bob room:removed join= leave=" + priv.ID + " except=", "u-cid room:invited join=" + priv.ID + " leave= except= invite"}
	if !slices.Equal(users, want) {
		t.Fatalf("user events %v, want %v", users, want)
	}
	if err := f.svc.Delete(ctx, cid, priv.ID); code(err) != chat.CodeForbidden {
		t.Fatalf("a member deleting: %v", err)
	}
	if err := f.svc.Delete(ctx, ann, priv.ID); err != nil {
		t.Fatal(err)
	}
	if _, rooms := f.out.take(); !slices.Equal(rooms, []string{priv.ID + " room:deleted close=true"}) {
		t.Fatalf("room events %v", rooms)
	}
	if _, _, _, err := f.svc.Join(ctx, ann, priv.ID, "a"); code(err) != chat.CodeNotFound {
		t.Fatalf("a deleted room: %v", err)
	}
	if err := f.svc.Delete(ctx, ann, chat.GlobalRoom); code(err) != chat.CodeForbidden {
		t.Fatalf("deleting the global room: %v", err)
	}
}

func TestReadPositions(t *testing.T) {
	ctx := context.Background()
	f := newRooms(t, chat.RoomLimits{})
	r, _ := f.svc.Create(ctx, ann, "r", chat.RoomPublic, []string{bob.ID})
	other, _ := f.svc.Create(ctx, ann, "o", chat.RoomPublic, nil)
	f.out.take()
	at := func(i int) time.Time { return f.now.Add(time.Duration(i) * time.Millisecond) }
	f.msgs.msgs = []chat.Message{
		{ID: "m1", Room: r.ID, UserID: ann.ID, CreatedAt: at(1)},
		{ID: "m2", Room: r.ID, UserID: bob.ID, CreatedAt: at(2)},
		{ID: "m3", Room: r.ID, UserID: ann.ID, CreatedAt: at(3)},
		{ID: "x1", Room: other.ID, CreatedAt: at(4)},
	}
	if n, err := f.store.Unread(ctx, r.ID, bob.ID, 1000); err != nil || n != 2 {
		t.Fatalf("bob's unread before reading: %d %v, want 2 (his own left out)", n, err)
	}
	for _, tt := range []struct {
		by         *chat.User
		room, upTo string
		want       string
	}{
		{nil, r.ID, "m1", chat.CodeUnauthorized},
		{cid, r.ID, "m1", chat.CodeNotFound},
		{bob, r.ID, "x1", chat.CodeNotFound},
		{bob, r.ID, "", chat.CodeInvalidPayload},
	} {
		if err := f.svc.MarkRead(ctx, tt.by, tt.room, tt.upTo, "b1"); code(err) != tt.want {
			t.Errorf("MarkRead(%v, %q): %v, want %s", tt.by, tt.upTo, err, tt.want)
		}
	}
	if err := f.svc.MarkRead(ctx, bob, r.ID, "m3", "b1"); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.MarkRead(ctx, bob, r.ID, "m1", "b1"); err != nil {
		t.Fatal(err) // backwards: accepted, nothing moves
	}
	if users, _ := f.out.take(); !slices.Equal(users, []string{"u-bob room:read join= leave= except=b1"}) {
		t.Fatalf("user events %v", users)
	}
	if n, _ := f.store.Unread(ctx, r.ID, bob.ID, 1000); n != 0 {
		t.Fatalf("unread after reading: %d", n)
	}
}

func TestRoomsUnavailable(t *testing.T) {
	ctx := context.Background()
	svc := chat.NewRoomService(chat.RoomServiceOptions{Unavailable: "no rooms here"})
	if _, err := svc.Create(ctx, ann, "x", chat.RoomPublic, nil); code(err) != chat.CodeUnavailable {
		t.Fatalf("Create: %v", err)
	}
	if _, _, err := svc.OpenDirect(ctx, ann, bob.ID); code(err) != chat.CodeUnavailable {
		t.Fatalf("OpenDirect: %v", err)
	}
	if _, _, _, err := svc.Join(ctx, ann, "r", "c"); code(err) != chat.CodeUnavailable {
		t.Fatalf("Join: %v", err)
	}
	for name, fn := range map[string]func() error{
		"Leave":    func() error { return svc.Leave(ctx, ann, "r", "c") },
		"Invite":   func() error { return svc.Invite(ctx, ann, "r", bob.ID) },
		"Remove":   func() error { return svc.Remove(ctx, ann, "r", bob.ID) },
		"Delete":   func() error { return svc.Delete(ctx, ann, "r") },
		"MarkRead": func() error { return svc.MarkRead(ctx, ann, "r", "m", "c") },
	} {
		if err := fn(); code(err) != chat.CodeUnavailable {
			t.Errorf("%s: %v", name, err)
		}
	}
	if rooms, err := svc.RoomsOf(ctx, ann); err != nil || rooms != nil {
		t.Fatalf("RoomsOf: %v %v", rooms, err)
	}
	if err := svc.SeeUser(ctx, ann); err != nil {
		t.Fatal(err)
	}
}
