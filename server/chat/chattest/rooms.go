package chattest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/scalable-chat-go/server/chat"
)

// RoomEngine is what the RoomStore contract runs against: the rooms and
// the messages of one database.
type RoomEngine interface {
	chat.RoomStore
	chat.Store
}

// OpenRooms makes a new, empty database for t and returns a store on it,
// and a function that opens another store on the same database, as another
// node would.
type OpenRooms func(t *testing.T) (RoomEngine, func() RoomEngine)

// roomEpoch is the time the contract's rooms are made at.
var roomEpoch = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

// at returns roomEpoch plus ms milliseconds.
func at(ms int) time.Time { return roomEpoch.Add(time.Duration(ms) * time.Millisecond) }

// NewRoom returns a room for tests, made at ms after a fixed epoch by
// "owner".
func NewRoom(id, name string, kind chat.RoomKind, ms int) chat.Room {
	return chat.Room{ID: id, Name: name, Kind: kind, CreatedBy: "owner", CreatedAt: at(ms)}
}

// TestRoomStore runs the RoomStore contract against the stores open makes:
// every method, unknown ids, and the races between nodes (one direct room
// per pair, concurrent additions and removals, read positions).
func TestRoomStore(t *testing.T, open OpenRooms) {
	ctx := context.Background()

	t.Run("Users", func(t *testing.T) {
		s, _ := open(t)
		if _, err := s.FindUser(ctx, "auth0|zoe"); !errors.Is(err, chat.ErrNotFound) {
			t.Fatalf("FindUser(unknown) = %v, want ErrNotFound", err)
		}
		u := chat.UserRecord{ID: "auth0|zoe", Name: "Zoë 🦊", LastSeen: at(1).Add(456 * time.Microsecond)}
		mustDo(t, s.SaveUser(ctx, u))
		wantUser(t, s, chat.UserRecord{ID: u.ID, Name: u.Name, LastSeen: at(1)})
		mustDo(t, s.SaveUser(ctx, chat.UserRecord{ID: u.ID, Name: "Zoé", LastSeen: at(10)}))
		wantUser(t, s, chat.UserRecord{ID: u.ID, Name: "Zoé", LastSeen: at(10)})
		// A node that saw the user earlier writes late: the newest stays.
		mustDo(t, s.SaveUser(ctx, chat.UserRecord{ID: u.ID, Name: "stale", LastSeen: at(5)}))
		wantUser(t, s, chat.UserRecord{ID: u.ID, Name: "Zoé", LastSeen: at(10)})
		if err := s.SaveUser(ctx, chat.UserRecord{Name: "no id", LastSeen: at(1)}); err == nil {
			t.Fatal("SaveUser without an id succeeded")
		}
	})

	t.Run("CreateAndFindRoom", func(t *testing.T) {
		s, _ := open(t)
		r := NewRoom("room-1", "Général ☕", chat.RoomPublic, 0)
		r.CreatedAt = r.CreatedAt.Add(789 * time.Microsecond) // kept to the millisecond
		members := []chat.Member{
			{UserID: "owner", Role: chat.RoomOwner},
			{RoomID: "room-1", UserID: "bob", Role: chat.RoomMember, JoinedAt: at(5)},
			{UserID: "ada", JoinedAt: at(5)}, // no role: a member
		}
		mustDo(t, s.CreateRoom(ctx, r, members))
		got, err := s.FindRoom(ctx, "room-1")
		if err != nil {
			t.Fatal(err)
		}
		want := NewRoom("room-1", "Général ☕", chat.RoomPublic, 0)
		if got != want || got.Deleted() || got.CreatedAt.Location() != time.UTC {
			t.Fatalf("FindRoom = %+v, want %+v", got, want)
		}
		wantMembers(t, s, "room-1", "owner:owner", "ada:member", "bob:member")
		m, err := s.Member(ctx, "room-1", "bob")
		if err != nil || m != (chat.Member{RoomID: "room-1", UserID: "bob", Role: chat.RoomMember, JoinedAt: at(5)}) {
			t.Fatalf("Member(bob) = %+v, %v", m, err)
		}
		if m, err := s.Member(ctx, "room-1", "owner"); err != nil || !m.JoinedAt.Equal(at(0)) {
			t.Fatalf("the owner joined at %v (%v), want the room's creation", m.JoinedAt, err)
		}
		wantRooms(t, s, "bob", "room-1")
		// The same id again is refused, and changes nothing.
		if err := s.CreateRoom(ctx, NewRoom("room-1", "again", chat.RoomPrivate, 9), []chat.Member{{UserID: "mallory"}}); err == nil {
			t.Fatal("a second room with the same id was stored")
		}
		if got, _ := s.FindRoom(ctx, "room-1"); got.Name != "Général ☕" {
			t.Fatalf("the first room became %+v", got)
		}
		wantRooms(t, s, "mallory")
		for _, bad := range []chat.Room{
			NewRoom("dm", "direct", chat.RoomDirect, 0),
			NewRoom("odd", "odd kind", "secret", 0),
			NewRoom("", "no id", chat.RoomPublic, 0),
			NewRoom(chat.GlobalRoom, "global", chat.RoomPublic, 0),
			{ID: "no-time", Name: "x", Kind: chat.RoomPublic},
		} {
			if err := s.CreateRoom(ctx, bad, nil); err == nil {
				t.Errorf("CreateRoom(%+v) succeeded", bad)
			}
		}
		if err := s.CreateRoom(ctx, NewRoom("r2", "x", chat.RoomPublic, 0), []chat.Member{{RoomID: "other", UserID: "u"}}); err == nil {
			t.Error("a member of another room was accepted")
		}
		for _, f := range []func() error{
			func() error { _, err := s.FindRoom(ctx, "nope"); return err },
			func() error { _, err := s.Member(ctx, "room-1", "nobody"); return err },
			func() error { _, err := s.Member(ctx, "nope", "bob"); return err },
			func() error { _, err := s.Members(ctx, "nope"); return err },
			func() error { _, err := s.DeleteRoom(ctx, "nope", at(1)); return err },
			func() error { _, err := s.AddMember(ctx, chat.Member{RoomID: "nope", UserID: "bob"}); return err },
			func() error { _, _, _, err := s.RemoveMember(ctx, "nope", "bob", at(1)); return err },
		} {
			if err := f(); !errors.Is(err, chat.ErrNotFound) {
				t.Errorf("an unknown id: %v, want ErrNotFound", err)
			}
		}
		if rs, err := s.RoomsOf(ctx, "nobody"); err != nil || len(rs) != 0 {
			t.Errorf("RoomsOf(nobody) = %+v, %v", rs, err)
		}
	})

	t.Run("AddMember", func(t *testing.T) {
		s, _ := open(t)
		mustDo(t, s.CreateRoom(ctx, NewRoom("p", "private", chat.RoomPrivate, 0), []chat.Member{{UserID: "owner", Role: chat.RoomOwner}}))
		added, err := s.AddMember(ctx, chat.Member{RoomID: "p", UserID: "bob", JoinedAt: at(3)})
		if err != nil || !added {
			t.Fatalf("AddMember(bob) = %v, %v", added, err)
		}
		added, err = s.AddMember(ctx, chat.Member{RoomID: "p", UserID: "bob", Role: chat.RoomOwner, JoinedAt: at(9)})
		if err != nil || added {
			t.Fatalf("AddMember(bob) again = %v, %v; want false", added, err)
		}
		wantMembers(t, s, "p", "owner:owner", "bob:member")
		if m, _ := s.Member(ctx, "p", "bob"); !m.JoinedAt.Equal(at(3)) {
			t.Fatalf("adding again changed bob's membership: %+v", m)
		}
		wantRooms(t, s, "bob", "p")
		// A deleted room takes no one.
		if ok, err := s.DeleteRoom(ctx, "p", at(10)); err != nil || !ok {
			t.Fatal(ok, err)
		}
		if _, err := s.AddMember(ctx, chat.Member{RoomID: "p", UserID: "carol"}); !errors.Is(err, chat.ErrNotFound) {
			t.Fatalf("AddMember to a deleted room: %v, want ErrNotFound", err)
		}
		// A direct room's members are its pair.
		dm, _, err := s.OpenDirect(ctx, NewRoom("dm", "", chat.RoomDirect, 0), "a", "b")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.AddMember(ctx, chat.Member{RoomID: dm.ID, UserID: "c"}); err == nil {
			t.Fatal("a third user joined a direct room")
		}
	})

	t.Run("RemoveMemberHandsOwnershipOn", func(t *testing.T) {
		s, _ := open(t)
		mustDo(t, s.CreateRoom(ctx, NewRoom("pub", "public", chat.RoomPublic, 0), []chat.Member{
			{UserID: "owner", Role: chat.RoomOwner},
			{UserID: "zed", JoinedAt: at(2)},
			{UserID: "bob", JoinedAt: at(2)}, // as old as zed: the smaller id is older
			{UserID: "ada", JoinedAt: at(3)},
		}))
		removed, owner, deleted, err := s.RemoveMember(ctx, "pub", "ada", at(10))
		if err != nil || !removed || owner != "" || deleted {
			t.Fatalf("RemoveMember(ada) = %v %q %v %v", removed, owner, deleted, err)
		}
		removed, owner, deleted, err = s.RemoveMember(ctx, "pub", "ada", at(11))
		if err != nil || removed || owner != "" || deleted {
			t.Fatalf("RemoveMember(ada) again = %v %q %v %v; want nothing removed", removed, owner, deleted, err)
		}
		removed, owner, deleted, err = s.RemoveMember(ctx, "pub", "owner", at(12))
		if err != nil || !removed || owner != "bob" || deleted {
			t.Fatalf("RemoveMember(owner) = %v %q %v %v; want bob the owner", removed, owner, deleted, err)
		}
		wantMembers(t, s, "pub", "bob:owner", "zed:member")
		wantRooms(t, s, "owner")
		for _, u := range []string{"bob", "zed"} {
			if _, _, _, err := s.RemoveMember(ctx, "pub", u, at(13)); err != nil {
				t.Fatal(err)
			}
		}
		// An empty public room stays.
		if r, err := s.FindRoom(ctx, "pub"); err != nil || r.Deleted() {
			t.Fatalf("the empty public room: %+v %v", r, err)
		}
		wantMembers(t, s, "pub")
	})

	t.Run("EmptyPrivateRoomIsDeleted", func(t *testing.T) {
		s, _ := open(t)
		mustDo(t, s.CreateRoom(ctx, NewRoom("p", "private", chat.RoomPrivate, 0), []chat.Member{
			{UserID: "owner", Role: chat.RoomOwner}, {UserID: "bob", JoinedAt: at(1)},
		}))
		msg := Msg("in-p", "hello", 5)
		msg.Room = "p"
		mustSave(t, s, []chat.Message{msg})
		if _, _, deleted, err := s.RemoveMember(ctx, "p", "owner", at(8)); err != nil || deleted {
			t.Fatalf("the owner left: deleted %v, %v", deleted, err)
		}
		removed, owner, deleted, err := s.RemoveMember(ctx, "p", "bob", at(9))
		if err != nil || !removed || owner != "" || !deleted {
			t.Fatalf("the last member left: %v %q %v %v; want the room deleted", removed, owner, deleted, err)
		}
		r, err := s.FindRoom(ctx, "p")
		if err != nil || !r.DeletedAt.Equal(at(9)) {
			t.Fatalf("FindRoom after the last member left: %+v %v", r, err)
		}
		wantRooms(t, s, "bob")
		if page, err := s.Recent(ctx, "p", 10, nil); err != nil || len(page) != 0 {
			t.Fatalf("Recent of a deleted room: %+v %v", page, err)
		}
	})

	t.Run("DeleteRoom", func(t *testing.T) {
		s, _ := open(t)
		mustDo(t, s.CreateRoom(ctx, NewRoom("r", "room", chat.RoomPublic, 0), []chat.Member{{UserID: "owner", Role: chat.RoomOwner}}))
		var batch []chat.Message
		for i := range 3 {
			m := Msg(fmt.Sprintf("m%d", i), "x", i)
			m.Room = "r"
			batch = append(batch, m)
		}
		mustSave(t, s, append(batch, Msg("g", "global", 1)))
		ok, err := s.DeleteRoom(ctx, "r", at(20).Add(time.Microsecond))
		if err != nil || !ok {
			t.Fatalf("DeleteRoom = %v %v", ok, err)
		}
		if ok, err = s.DeleteRoom(ctx, "r", at(30)); err != nil || ok {
			t.Fatalf("DeleteRoom again = %v %v; want false", ok, err)
		}
		r, err := s.FindRoom(ctx, "r")
		if err != nil || !r.Deleted() || !r.DeletedAt.Equal(at(20)) {
			t.Fatalf("FindRoom(deleted) = %+v %v", r, err)
		}
		// Its messages are kept and hidden; the global room is untouched.
		if page, err := s.Recent(ctx, "r", 10, nil); err != nil || len(page) != 0 {
			t.Fatalf("Recent of a deleted room: %+v %v", page, err)
		}
		if m, err := s.Find(ctx, "m1"); err != nil || m.Room != "r" {
			t.Fatalf("Find of a deleted room's message: %+v %v", m, err)
		}
		page, err := s.Recent(ctx, chat.GlobalRoom, 10, nil)
		if err != nil {
			t.Fatal(err)
		}
		wantIDs(t, page, "g")
		// A message of the room still in flight is stored, and hidden.
		late := Msg("late", "in flight", 40)
		late.Room = "r"
		mustSave(t, s, []chat.Message{late})
		if page, err := s.Recent(ctx, "r", 10, nil); err != nil || len(page) != 0 {
			t.Fatalf("Recent after a late message: %+v %v", page, err)
		}
		wantRooms(t, s, "owner")
		wantMembers(t, s, "r", "owner:owner") // the memberships stay
		if rs, err := s.PublicRooms(ctx, "", "", 10); err != nil || len(rs) != 0 {
			t.Fatalf("PublicRooms lists a deleted room: %+v %v", rs, err)
		}
	})

	t.Run("OpenDirect", func(t *testing.T) {
		s, _ := open(t)
		r, created, err := s.OpenDirect(ctx, NewRoom("dm-1", "", chat.RoomDirect, 0), "zoe", "ada")
		if err != nil || !created || r.ID != "dm-1" || r.Kind != chat.RoomDirect {
			t.Fatalf("OpenDirect = %+v %v %v", r, created, err)
		}
		if got, err := s.FindRoom(ctx, "dm-1"); err != nil || got != r {
			t.Fatalf("FindRoom(dm-1) = %+v %v, want %+v", got, err, r)
		}
		wantMembers(t, s, "dm-1", "ada:member", "zoe:member")
		// The pair in either order gets the same room; r is not stored.
		again, created, err := s.OpenDirect(ctx, NewRoom("dm-2", "", chat.RoomDirect, 5), "ada", "zoe")
		if err != nil || created || again != r {
			t.Fatalf("OpenDirect again = %+v %v %v, want %+v", again, created, err, r)
		}
		if _, err := s.FindRoom(ctx, "dm-2"); !errors.Is(err, chat.ErrNotFound) {
			t.Fatalf("the losing room was stored: %v", err)
		}
		// Another pair has its own; one user may not talk to itself.
		other, created, err := s.OpenDirect(ctx, NewRoom("dm-3", "", chat.RoomDirect, 6), "ada", "bob")
		if err != nil || !created || other.ID != "dm-3" {
			t.Fatalf("another pair: %+v %v %v", other, created, err)
		}
		wantRooms(t, s, "ada", "dm-1", "dm-3")
		for _, pair := range [][2]string{{"ada", "ada"}, {"", "ada"}} {
			if _, _, err := s.OpenDirect(ctx, NewRoom("dm-x", "", chat.RoomDirect, 7), pair[0], pair[1]); err == nil {
				t.Errorf("OpenDirect(%q, %q) succeeded", pair[0], pair[1])
			}
		}
		// One who left is a member again when the room is opened again.
		if _, _, _, err := s.RemoveMember(ctx, "dm-1", "zoe", at(8)); err != nil {
			t.Fatal(err)
		}
		wantMembers(t, s, "dm-1", "ada:member")
		if again, _, err := s.OpenDirect(ctx, NewRoom("dm-4", "", chat.RoomDirect, 9), "ada", "zoe"); err != nil || again.ID != "dm-1" {
			t.Fatalf("reopened: %+v %v", again, err)
		}
		wantMembers(t, s, "dm-1", "ada:member", "zoe:member")
		// A deleted direct room gives the pair up: the next open makes one.
		if ok, err := s.DeleteRoom(ctx, "dm-1", at(10)); err != nil || !ok {
			t.Fatal(ok, err)
		}
		fresh, created, err := s.OpenDirect(ctx, NewRoom("dm-5", "", chat.RoomDirect, 11), "zoe", "ada")
		if err != nil || !created || fresh.ID != "dm-5" {
			t.Fatalf("after deleting the pair's room: %+v %v %v", fresh, created, err)
		}
		wantRooms(t, s, "zoe", "dm-5")
	})

	t.Run("OpenDirectRaceOnTwoNodes", func(t *testing.T) {
		s, another := open(t)
		nodes := []RoomEngine{s, another()}
		const calls = 16
		type result struct {
			room    chat.Room
			created bool
			err     error
		}
		results := make(chan result, calls)
		var start, wg sync.WaitGroup
		start.Add(1)
		for i := range calls {
			wg.Add(1)
			go func() {
				defer wg.Done()
				a, b := "ada", "zoe"
				if i%2 == 1 {
					a, b = b, a
				}
				start.Wait()
				r, created, err := nodes[i%2].OpenDirect(ctx, NewRoom(fmt.Sprintf("dm-%02d", i), "", chat.RoomDirect, i), a, b)
				results <- result{r, created, err}
			}()
		}
		start.Done()
		wg.Wait()
		close(results)
		ids := map[string]int{}
		createdN := 0
		for r := range results {
			if r.err != nil {
				t.Fatalf("OpenDirect: %v", r.err)
			}
			ids[r.room.ID]++
			if r.created {
				createdN++
			}
		}
		if len(ids) != 1 || createdN != 1 {
			t.Fatalf("%d racing calls made rooms %v, %d of them created; want one room, created once", calls, ids, createdN)
		}
		var id string
		for id = range ids {
		}
		wantMembers(t, s, id, "ada:member", "zoe:member")
		wantRooms(t, nodes[1], "ada", id)
		wantRooms(t, s, "zoe", id)
	})

	t.Run("ConcurrentAddMemberOnTwoNodes", func(t *testing.T) {
		s, another := open(t)
		nodes := []RoomEngine{s, another()}
		mustDo(t, s.CreateRoom(ctx, NewRoom("r", "busy", chat.RoomPublic, 0), []chat.Member{{UserID: "owner", Role: chat.RoomOwner}}))
		var added sync.Map
		errs := make(chan error, 40)
		var wg sync.WaitGroup
		for i := range 40 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// 20 distinct users, and one user added by 20 calls at once.
				user := fmt.Sprintf("u%02d", i)
				if i%2 == 1 {
					user = "same"
				}
				ok, err := nodes[i%2].AddMember(ctx, chat.Member{RoomID: "r", UserID: user, JoinedAt: at(i + 1)})
				if err != nil {
					errs <- err
					return
				}
				if ok {
					n, _ := added.LoadOrStore(user, new(int))
					*n.(*int)++
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("AddMember: %v", err)
		}
		members, err := s.Members(ctx, "r")
		if err != nil {
			t.Fatal(err)
		}
		if len(members) != 22 {
			t.Fatalf("%d members, want the owner, 20 users and one more", len(members))
		}
		added.Range(func(k, v any) bool {
			if *v.(*int) != 1 {
				t.Errorf("%s was added %d times", k, *v.(*int))
			}
			return true
		})
		if n, _ := added.Load("same"); n == nil {
			t.Error("no call reported adding the user that 20 calls added")
		}
	})

	t.Run("RemovalsRaceOnTwoNodes", func(t *testing.T) {
		s, another := open(t)
		nodes := []RoomEngine{s, another()}
		for round := range 10 {
			// The owner and the oldest member leave at once: whatever the
			// order, the next oldest is the one owner.
			id := fmt.Sprintf("own-%d", round)
			mustDo(t, s.CreateRoom(ctx, NewRoom(id, "x", chat.RoomPublic, 0), []chat.Member{
				{UserID: "owner", Role: chat.RoomOwner}, {UserID: "m1", JoinedAt: at(1)},
				{UserID: "m2", JoinedAt: at(2)}, {UserID: "m3", JoinedAt: at(3)},
			}))
			race(t, func() error { _, _, _, err := nodes[0].RemoveMember(ctx, id, "owner", at(9)); return err },
				func() error { _, _, _, err := nodes[1].RemoveMember(ctx, id, "m1", at(9)); return err })
			wantMembers(t, s, id, "m2:owner", "m3:member")

			// Every member of a private room leaves at once: it is deleted
			// once, by the last one out.
			id = fmt.Sprintf("priv-%d", round)
			mustDo(t, s.CreateRoom(ctx, NewRoom(id, "x", chat.RoomPrivate, 0), []chat.Member{
				{UserID: "owner", Role: chat.RoomOwner}, {UserID: "m1", JoinedAt: at(1)}, {UserID: "m2", JoinedAt: at(2)},
			}))
			var deletes sync.Map
			leave := func(node int, u string) func() error {
				return func() error {
					_, _, deleted, err := nodes[node].RemoveMember(ctx, id, u, at(9))
					if deleted {
						deletes.Store(u, true)
					}
					return err
				}
			}
			race(t, leave(0, "owner"), leave(1, "m1"), leave(0, "m2"))
			n := 0
			deletes.Range(func(any, any) bool { n++; return true })
			if r, err := s.FindRoom(ctx, id); err != nil || !r.Deleted() || n != 1 {
				t.Fatalf("round %d: the room %+v (%v) after everyone left, reported deleted %d times", round, r, err, n)
			}

			// The last member leaves while another joins: either the
			// join comes first (the room lives on with the newcomer as a
			// member) or the room is deleted and the join refused.
			id = fmt.Sprintf("last-%d", round)
			mustDo(t, s.CreateRoom(ctx, NewRoom(id, "x", chat.RoomPrivate, 0), []chat.Member{{UserID: "owner", Role: chat.RoomOwner}}))
			var joined, deleted bool
			var joinErr error
			race(t, func() error {
				var err error
				_, _, deleted, err = nodes[0].RemoveMember(ctx, id, "owner", at(9))
				return err
			}, func() error {
				joined, joinErr = nodes[1].AddMember(ctx, chat.Member{RoomID: id, UserID: "newcomer", JoinedAt: at(9)})
				if errors.Is(joinErr, chat.ErrNotFound) {
					return nil
				}
				return joinErr
			})
			r, err := s.FindRoom(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			members, err := s.Members(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case joined && !deleted && !r.Deleted() && len(members) == 1 && members[0].UserID == "newcomer":
			case !joined && errors.Is(joinErr, chat.ErrNotFound) && deleted && r.Deleted() && len(members) == 0:
			default:
				t.Fatalf("round %d: joined %v (%v), deleted %v, room %+v, members %+v", round, joined, joinErr, deleted, r, members)
			}
		}
	})

	t.Run("PublicRooms", func(t *testing.T) {
		s, _ := open(t)
		for i, r := range []struct {
			id, name string
			kind     chat.RoomKind
		}{
			{"r1", "games", chat.RoomPublic},
			{"r2", "Gamma rays", chat.RoomPublic},
			{"r3", "GAMES", chat.RoomPublic}, // the same name in lower case: ordered by id
			{"r4", "garden", chat.RoomPrivate},
			{"r5", "ZÉRO", chat.RoomPublic},
			{"r6", "100%_sure", chat.RoomPublic},
			{"r7", "100x sure", chat.RoomPublic},
			{"r8", "books", chat.RoomPublic},
			{"r9", "gone", chat.RoomPublic},
		} {
			mustDo(t, s.CreateRoom(ctx, NewRoom(r.id, r.name, r.kind, i), []chat.Member{{UserID: "owner", Role: chat.RoomOwner}}))
		}
		if _, err := s.DeleteRoom(ctx, "r9", at(20)); err != nil {
			t.Fatal(err)
		}
		page := func(prefix, after string, limit int, want ...string) {
			t.Helper()
			rs, err := s.PublicRooms(ctx, prefix, after, limit)
			if err != nil {
				t.Fatalf("PublicRooms(%q, %q, %d): %v", prefix, after, limit, err)
			}
			var got []string
			for _, r := range rs {
				got = append(got, r.ID)
				if r.Kind != chat.RoomPublic || r.Deleted() {
					t.Errorf("listed %+v", r)
				}
			}
			if !slices.Equal(got, want) {
				t.Fatalf("PublicRooms(%q, %q, %d) = %v, want %v", prefix, after, limit, got, want)
			}
		}
		// The names sort alike in byte order and in a linguistic
		// collation (PostgreSQL's order is its database's).
		page("", "", 100, "r6", "r7", "r8", "r1", "r3", "r2", "r5")
		page("", "", 3, "r6", "r7", "r8")
		page("", "r8", 2, "r1", "r3")
		page("", "r3", 10, "r2", "r5")
		page("GA", "", 10, "r1", "r3", "r2")
		page("games", "r1", 10, "r3")
		page("zé", "", 10, "r5")   // any case beyond ASCII too
		page("100%", "", 10, "r6") // % and _ are themselves
		page("100_", "", 10)
		page("gard", "", 10) // private rooms are not listed
		page("zzz", "", 10)
		page("", "", 0)
		if _, err := s.PublicRooms(ctx, "", "nope", 10); !errors.Is(err, chat.ErrNotFound) {
			t.Fatalf("PublicRooms after an unknown room: %v, want ErrNotFound", err)
		}
	})

	t.Run("MarkReadAndUnread", func(t *testing.T) {
		s, _ := open(t)
		mustDo(t, s.CreateRoom(ctx, NewRoom("r", "room", chat.RoomPublic, 0), []chat.Member{
			{UserID: "me", Role: chat.RoomOwner}, {UserID: "you"},
		}))
		mustDo(t, s.CreateRoom(ctx, NewRoom("other", "other", chat.RoomPublic, 0), []chat.Member{{UserID: "me", Role: chat.RoomOwner}}))
		var batch []chat.Message
		for i := range 8 {
			// Two at each millisecond: history order is time, then id.
			m := Msg(fmt.Sprintf("m%d", i), "x", i/2)
			m.Room, m.UserID = "r", "you"
			if i == 2 {
				m.UserID = "me" // my own: never unread
			}
			if i == 5 {
				m.UserID = "" // anonymous: unread
			}
			batch = append(batch, m)
		}
		elsewhere := Msg("o1", "x", 1)
		elsewhere.Room = "other"
		mustSave(t, s, append(batch, elsewhere, Msg("g1", "global", 1)))
		mustDo(t, s.SaveDeletions(ctx, []chat.Deletion{{ID: "m6", By: "me", At: at(10)}}))
		unread := func(user string, max, want int) {
			t.Helper()
			if n, err := s.Unread(ctx, "r", user, max); err != nil || n != want {
				t.Fatalf("Unread(%s, max %d) = %d, %v; want %d", user, max, n, err, want)
			}
		}
		unread("me", 1000, 6) // m0 m1 m3 m4 m5 m7: not m2 (mine), not m6 (deleted)
		unread("me", 4, 4)
		unread("me", 0, 0)
		unread("you", 1000, 2) // m2 (mine) and m5 (anonymous)
		mark := func(upTo string, want bool) {
			t.Helper()
			if moved, err := s.MarkRead(ctx, "r", "me", upTo); err != nil || moved != want {
				t.Fatalf("MarkRead(%s) = %v, %v; want %v", upTo, moved, err, want)
			}
		}
		mark("m3", true)
		unread("me", 1000, 3) // m4 m5 m7
		mark("m2", false)     // backwards: not moved
		mark("m3", false)     // the same: not moved
		if m, _ := s.Member(ctx, "r", "me"); m.ReadUpTo != "m3" {
			t.Fatalf("the read position is %q, want m3", m.ReadUpTo)
		}
		mark("m6", true) // a deleted message is still a position
		unread("me", 1000, 1)
		mark("m7", true)
		unread("me", 1000, 0)
		for _, tc := range []struct{ room, user, upTo string }{
			{"r", "me", "o1"},       // another room's message
			{"r", "me", "g1"},       // the global room's
			{"r", "me", "nope"},     // no such message
			{"r", "stranger", "m7"}, // not a member
			{"nope", "me", "m7"},    // no such room
			{"other", "you", "o1"},  // not a member there
			{chat.GlobalRoom, "me", "g1"},
		} {
			if _, err := s.MarkRead(ctx, tc.room, tc.user, tc.upTo); !errors.Is(err, chat.ErrNotFound) {
				t.Errorf("MarkRead(%+v): %v, want ErrNotFound", tc, err)
			}
		}
		if _, err := s.Unread(ctx, "r", "stranger", 10); !errors.Is(err, chat.ErrNotFound) {
			t.Errorf("Unread of a stranger: %v, want ErrNotFound", err)
		}
		// A deleted room has nothing unread.
		if _, err := s.DeleteRoom(ctx, "r", at(20)); err != nil {
			t.Fatal(err)
		}
		unread("you", 1000, 0)
	})

	t.Run("MarkReadNeverMovesBackOnTwoNodes", func(t *testing.T) {
		s, another := open(t)
		nodes := []RoomEngine{s, another()}
		mustDo(t, s.CreateRoom(ctx, NewRoom("r", "room", chat.RoomPublic, 0), []chat.Member{{UserID: "me", Role: chat.RoomOwner}}))
		var batch []chat.Message
		for i := range 30 {
			m := Msg(fmt.Sprintf("m%02d", i), "x", i)
			m.Room, m.UserID = "r", "you"
			batch = append(batch, m)
		}
		mustSave(t, s, batch)
		for round := range 5 {
			// Positions up to m(10+round*4), in an order of their own.
			top := 10 + round*4
			order := make([]int, top+1)
			for i := range order {
				order[i] = (i*7 + round) % (top + 1)
			}
			var fns []func() error
			for i, n := range order {
				fns = append(fns, func() error {
					_, err := nodes[i%2].MarkRead(ctx, "r", "me", fmt.Sprintf("m%02d", n))
					return err
				})
			}
			race(t, fns...)
			if m, err := s.Member(ctx, "r", "me"); err != nil || m.ReadUpTo != fmt.Sprintf("m%02d", top) {
				t.Fatalf("round %d: read up to %q (%v) after racing marks up to m%02d", round, m.ReadUpTo, err, top)
			}
		}
	})
}

// race runs fns at once and fails t with their errors.
func race(t *testing.T, fns ...func() error) {
	t.Helper()
	var start, wg sync.WaitGroup
	start.Add(1)
	errs := make([]error, len(fns))
	for i, f := range fns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start.Wait()
			errs[i] = f()
		}()
	}
	start.Done()
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
}

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantUser(t *testing.T, s chat.RoomStore, want chat.UserRecord) {
	t.Helper()
	got, err := s.FindUser(context.Background(), want.ID)
	if err != nil || got != want || got.LastSeen.Location() != time.UTC {
		t.Fatalf("FindUser(%s) = %+v, %v; want %+v", want.ID, got, err, want)
	}
}

// wantMembers checks roomID's members, oldest first, as "user:role".
func wantMembers(t *testing.T, s chat.RoomStore, roomID string, want ...string) {
	t.Helper()
	ms, err := s.Members(context.Background(), roomID)
	if err != nil {
		t.Fatalf("Members(%s): %v", roomID, err)
	}
	var got []string
	for _, m := range ms {
		if m.RoomID != roomID {
			t.Errorf("Members(%s) has a member of %s", roomID, m.RoomID)
		}
		got = append(got, fmt.Sprintf("%s:%s", m.UserID, m.Role))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Members(%s) = %v, want %v", roomID, got, want)
	}
}

// wantRooms checks the ids of userID's rooms, oldest membership first.
func wantRooms(t *testing.T, s chat.RoomStore, userID string, want ...string) {
	t.Helper()
	rs, err := s.RoomsOf(context.Background(), userID)
	if err != nil {
		t.Fatalf("RoomsOf(%s): %v", userID, err)
	}
	var got []string
	for _, r := range rs {
		got = append(got, r.ID)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("RoomsOf(%s) = %v, want %v", userID, got, want)
	}
}
