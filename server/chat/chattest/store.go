// Package chattest holds the contract tests that every engine of the chat
// domain runs: one suite per interface, so that the embedded default and
// the scaled-out engines cannot drift apart.
package chattest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scalable-chat-go/server/chat"
)

// StoreOptions tune the Store contract to an engine.
type StoreOptions struct {
	// Unstorable, when set, returns a message the engine's database refuses
	// for its data (a NUL byte for PostgreSQL), to check that it never
	// blocks the rest of its batch.
	Unstorable func(id string) chat.Message
}

// Msg returns a message with the id, text and time (milliseconds after a
// fixed epoch), for tests.
func Msg(id, text string, ms int) chat.Message {
	return chat.Message{
		ID:        id,
		Text:      text,
		Username:  "user-" + id,
		CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).Add(time.Duration(ms) * time.Millisecond),
	}
}

// TestStore runs the Store contract against stores made by open. Each
// subtest gets a new, empty store.
func TestStore(t *testing.T, open func(t *testing.T) chat.Store, o StoreOptions) {
	ctx := context.Background()

	t.Run("SaveAndPageNewestFirst", func(t *testing.T) {
		s := open(t)
		var batch []chat.Message
		for i := range 10 {
			batch = append(batch, Msg(fmt.Sprintf("id-%02d", i), fmt.Sprintf("text %d", i), i*10))
		}
		mustSave(t, s, batch)
		got, err := s.Recent(ctx, chat.GlobalRoom, 4, nil)
		if err != nil {
			t.Fatal(err)
		}
		wantIDs(t, got, "id-09", "id-08", "id-07", "id-06")
		cur := chat.CursorOf(got[3])
		got, err = s.Recent(ctx, chat.GlobalRoom, 4, &cur)
		if err != nil {
			t.Fatal(err)
		}
		wantIDs(t, got, "id-05", "id-04", "id-03", "id-02")
		cur = chat.CursorOf(got[3])
		got, err = s.Recent(ctx, chat.GlobalRoom, 4, &cur)
		if err != nil {
			t.Fatal(err)
		}
		wantIDs(t, got, "id-01", "id-00")
	})

	t.Run("FieldsRoundTrip", func(t *testing.T) {
		s := open(t)
		m := chat.Message{
			ID:        "0191d2c4-7b1e-7c3a-9f00-5a1b2c3d4e5f",
			Text:      "héllo 👋 <img src=x onerror=alert(1)> \"quoted\" 'single' \\ back\nline",
			Username:  "Zoë 🦊",
			CreatedAt: time.Date(2026, 11, 27, 13, 14, 15, 123_000_000, time.UTC),
		}
		mustSave(t, s, []chat.Message{m})
		got, err := s.Find(ctx, m.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != m.ID || got.Text != m.Text || got.Username != m.Username || !got.CreatedAt.Equal(m.CreatedAt) {
			t.Fatalf("round trip changed the message:\n got %+v\nwant %+v", got, m)
		}
		if got.CreatedAt.Location() != time.UTC {
			t.Errorf("CreatedAt comes back in %v, want UTC", got.CreatedAt.Location())
		}
		long := Msg("long", strings.Repeat("ü", 2000), 1)
		mustSave(t, s, []chat.Message{long})
		if got, err := s.Find(ctx, "long"); err != nil || got.Text != long.Text {
			t.Fatalf("2000-character message: err %v, same text %v", err, got.Text == long.Text)
		}
		verified := Msg("verified", "from a token", 3)
		verified.UserID = "auth0|5f7c8ec7c33c6c004bbafe82"
		mustSave(t, s, []chat.Message{verified})
		if got, err := s.Find(ctx, "verified"); err != nil || got.UserID != verified.UserID {
			t.Fatalf("user id: %+v %v", got, err)
		}
		if got, err := s.Find(ctx, m.ID); err != nil || got.UserID != "" {
			t.Fatalf("an anonymous message's user id: %+v %v", got, err)
		}
		empty := Msg("anon", "no name", 2)
		empty.Username = ""
		mustSave(t, s, []chat.Message{empty})
		if got, err := s.Find(ctx, "anon"); err != nil || got.Username != "" {
			t.Fatalf("empty username: %+v %v", got, err)
		}
	})

	t.Run("SaveIsIdempotentByID", func(t *testing.T) {
		s := open(t)
		a, b := Msg("a", "first", 1), Msg("b", "second", 2)
		mustSave(t, s, []chat.Message{a, b})
		changed := a
		changed.Text = "a retry must not overwrite"
		mustSave(t, s, []chat.Message{changed, b, Msg("c", "third", 3)})
		mustSave(t, s, []chat.Message{b, b})
		got, err := s.Recent(ctx, chat.GlobalRoom, 100, nil)
		if err != nil {
			t.Fatal(err)
		}
		wantIDs(t, got, "c", "b", "a")
		if got[2].Text != "first" {
			t.Errorf("stored text changed by a duplicate: %q", got[2].Text)
		}
	})

	t.Run("TiesOrderByID", func(t *testing.T) {
		s := open(t)
		mustSave(t, s, []chat.Message{Msg("b", "x", 5), Msg("a", "x", 5), Msg("c", "x", 5), Msg("z", "x", 4)})
		got, err := s.Recent(ctx, chat.GlobalRoom, 10, nil)
		if err != nil {
			t.Fatal(err)
		}
		wantIDs(t, got, "c", "b", "a", "z")
		cur := chat.CursorOf(got[1])
		got, err = s.Recent(ctx, chat.GlobalRoom, 10, &cur)
		if err != nil {
			t.Fatal(err)
		}
		wantIDs(t, got, "a", "z")
	})

	t.Run("FindUnknown", func(t *testing.T) {
		s := open(t)
		if _, err := s.Find(ctx, "nope"); !errors.Is(err, chat.ErrNotFound) {
			t.Fatalf("Find(unknown) = %v, want ErrNotFound", err)
		}
	})

	t.Run("LargeAndEmptyBatches", func(t *testing.T) {
		s := open(t)
		mustSave(t, s, nil)
		var batch []chat.Message
		for i := range 2500 {
			batch = append(batch, Msg(fmt.Sprintf("m%05d", i), "bulk", i))
		}
		mustSave(t, s, batch)
		got, err := s.Recent(ctx, chat.GlobalRoom, 3000, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2500 {
			t.Fatalf("stored %d of 2500", len(got))
		}
	})

	t.Run("ConcurrentOverlappingBatches", func(t *testing.T) {
		s := open(t)
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var batch []chat.Message
				for i := range 200 {
					batch = append(batch, Msg(fmt.Sprintf("c%03d", (i+w*50)%300), "c", i))
				}
				if _, err := s.SaveBatch(ctx, batch); err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		got, err := s.Recent(ctx, chat.GlobalRoom, 1000, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 300 {
			t.Fatalf("stored %d distinct messages, want 300", len(got))
		}
	})

	if o.Unstorable != nil {
		t.Run("UnstorableRowDoesNotBlockItsBatch", func(t *testing.T) {
			s := open(t)
			batch := []chat.Message{Msg("ok1", "fine", 1), o.Unstorable("bad"), Msg("ok2", "fine", 3)}
			rejected, err := s.SaveBatch(ctx, batch)
			if err != nil {
				t.Fatalf("SaveBatch: %v", err)
			}
			if len(rejected) != 1 || rejected[0].Message.ID != "bad" || rejected[0].Reason == "" {
				t.Fatalf("rejected = %+v, want only the bad row, with a reason", rejected)
			}
			got, err := s.Recent(ctx, chat.GlobalRoom, 10, nil)
			if err != nil {
				t.Fatal(err)
			}
			wantIDs(t, got, "ok2", "ok1")
		})
	}

	t.Run("TombstonesHideMessages", func(t *testing.T) {
		s := open(t)
		var batch []chat.Message
		for i := range 6 {
			batch = append(batch, Msg(fmt.Sprintf("t%d", i), "x", i))
		}
		// A tombstone that arrives before its message (a lagging consumer)
		// hides it all the same.
		early := chat.Deletion{ID: "t5", By: "mod", At: batch[0].CreatedAt}
		if err := s.SaveDeletions(ctx, []chat.Deletion{early}); err != nil {
			t.Fatalf("SaveDeletions: %v", err)
		}
		mustSave(t, s, batch)
		del := []chat.Deletion{{ID: "t3", By: "mod", At: batch[0].CreatedAt}, {ID: "t1", By: "mod", At: batch[0].CreatedAt}}
		if err := s.SaveDeletions(ctx, del); err != nil {
			t.Fatalf("SaveDeletions: %v", err)
		}
		// Again, and in one batch twice: idempotent.
		if err := s.SaveDeletions(ctx, append(del, del[0])); err != nil {
			t.Fatalf("SaveDeletions again: %v", err)
		}
		if err := s.SaveDeletions(ctx, nil); err != nil {
			t.Fatalf("SaveDeletions(nil): %v", err)
		}
		got, err := s.Recent(ctx, chat.GlobalRoom, 10, nil)
		if err != nil {
			t.Fatal(err)
		}
		wantIDs(t, got, "t4", "t2", "t0")
		got, err = s.Recent(ctx, chat.GlobalRoom, 1, nil)
		if err != nil {
			t.Fatal(err)
		}
		wantIDs(t, got, "t4")
		// A deleted message's position still pages.
		d, err := s.Find(ctx, "t3")
		if err != nil {
			t.Fatalf("Find(deleted) = %v, want the stored message", err)
		}
		cur := chat.CursorOf(d)
		got, err = s.Recent(ctx, chat.GlobalRoom, 10, &cur)
		if err != nil {
			t.Fatal(err)
		}
		wantIDs(t, got, "t2", "t0")
	})

	t.Run("RoomsPageOnTheirOwn", func(t *testing.T) {
		s := open(t)
		// Interleaved in time: the global room, room a and room b.
		var batch []chat.Message
		for i := range 12 {
			m := Msg(fmt.Sprintf("r%02d", i), "x", i)
			m.Room = []string{"", "room-a", "room-b"}[i%3]
			batch = append(batch, m)
		}
		mustSave(t, s, batch)
		for room, want := range map[string][]string{
			chat.GlobalRoom: {"r09", "r06", "r03", "r00"},
			"room-a":        {"r10", "r07", "r04", "r01"},
			"room-b":        {"r11", "r08", "r05", "r02"},
			"room-c":        nil,
		} {
			got, err := s.Recent(ctx, room, 100, nil)
			if err != nil {
				t.Fatal(err)
			}
			wantIDs(t, got, want...)
			for _, m := range got {
				if chat.RoomOf(m) != room {
					t.Fatalf("Recent(%q) returned %s of room %q", room, m.ID, m.Room)
				}
			}
		}
		// A page before a cursor stays in its room, even when the cursor
		// is a message of another room.
		first, err := s.Recent(ctx, "room-a", 2, nil)
		if err != nil {
			t.Fatal(err)
		}
		wantIDs(t, first, "r10", "r07")
		cur := chat.CursorOf(first[1])
		got, err := s.Recent(ctx, "room-a", 10, &cur)
		if err != nil {
			t.Fatal(err)
		}
		wantIDs(t, got, "r04", "r01")
		other := chat.CursorOf(batch[6]) // r06, of the global room
		if got, err = s.Recent(ctx, "room-a", 10, &other); err != nil {
			t.Fatal(err)
		}
		wantIDs(t, got, "r04", "r01")
		// Find returns a message with its room; the global room's is "".
		if m, err := s.Find(ctx, "r04"); err != nil || m.Room != "room-a" || chat.RoomOf(m) != "room-a" {
			t.Fatalf("Find(r04) = %+v, %v; want room-a", m, err)
		}
		if m, err := s.Find(ctx, "r03"); err != nil || m.Room != "" || chat.RoomOf(m) != chat.GlobalRoom {
			t.Fatalf("Find(r03) = %+v, %v; want the global room", m, err)
		}
		// A retry with another room changes nothing: the first write stays.
		moved := batch[4]
		moved.Room = "room-b"
		mustSave(t, s, []chat.Message{moved})
		if m, err := s.Find(ctx, "r04"); err != nil || m.Room != "room-a" {
			t.Fatalf("a duplicate moved r04 to %q (%v)", m.Room, err)
		}
		// A tombstone hides a room's message in its room.
		if err := s.SaveDeletions(ctx, []chat.Deletion{{ID: "r07", By: "owner", At: batch[0].CreatedAt}}); err != nil {
			t.Fatal(err)
		}
		if got, err = s.Recent(ctx, "room-a", 10, nil); err != nil {
			t.Fatal(err)
		}
		wantIDs(t, got, "r10", "r04", "r01")
	})

	t.Run("PingAndClose", func(t *testing.T) {
		s := open(t)
		if err := s.Ping(ctx); err != nil {
			t.Fatalf("Ping: %v", err)
		}
	})
}

func mustSave(t *testing.T, s chat.Store, batch []chat.Message) {
	t.Helper()
	rejected, err := s.SaveBatch(context.Background(), batch)
	if err != nil {
		t.Fatalf("SaveBatch(%d): %v", len(batch), err)
	}
	if len(rejected) > 0 {
		t.Fatalf("SaveBatch rejected %+v", rejected)
	}
}

func wantIDs(t *testing.T, got []chat.Message, ids ...string) {
	t.Helper()
	var have []string
	for _, m := range got {
		have = append(have, m.ID)
	}
	if strings.Join(have, ",") != strings.Join(ids, ",") {
		t.Fatalf("ids = %v, want %v", have, ids)
	}
}
