package sqlstore_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/scalable-chat-go/server/chat"
	"github.com/scalable-chat-go/server/chat/chattest"
	"github.com/scalable-chat-go/server/sqlstore"
)

func openSQLite(t *testing.T) *sqlstore.Store {
	t.Helper()
	s, err := sqlstore.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "data", "chat.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestSQLiteStoreContract(t *testing.T) {
	chattest.TestStore(t, func(t *testing.T) chat.Store { return openSQLite(t) }, chattest.StoreOptions{})
}

func TestSQLiteBanStoreContract(t *testing.T) {
	chattest.TestBanStore(t, func(t *testing.T) chat.BanStore { return openSQLite(t) })
}

// A database file made before identity and moderation, and before rooms,
// gets the new columns, tables and indexes when it is opened, and keeps
// its messages in the global room.
func TestSQLiteOpensAnEarlierFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chat.db")
	ctx := context.Background()
	s, err := sqlstore.OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	db := s.DB()
	for _, q := range []string{`DROP TABLE message_deletions`, `DROP TABLE bans`, `DROP TABLE room_members`, `DROP TABLE rooms`,
		`DROP TABLE users`, `DROP INDEX messages_room_id_created_at_id_idx`, `ALTER TABLE messages DROP COLUMN room_id`,
		`ALTER TABLE messages DROP COLUMN user_id`,
		`INSERT INTO messages (id, content, username, created_at) VALUES ('old', 'before', 'ada', '2026-01-01 00:00:00.000')`,
		`INSERT INTO messages (id, content, username, created_at) VALUES ('old2', 'before', 'ada', '2026-01-01 00:00:00.001')`} {
		if err := db.Exec(q).Error; err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	_ = s.Close()
	s, err = sqlstore.OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.SaveDeletions(ctx, []chat.Deletion{{ID: "old", By: "mod"}}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Recent(ctx, chat.GlobalRoom, 10, nil); err != nil || len(got) != 1 || got[0].ID != "old2" || got[0].Room != "" {
		t.Fatalf("Recent after deleting the old message: %+v %v", got, err)
	}
	inRoom := chattest.Msg("new", "in a room", 5)
	inRoom.Room = "room-1"
	if _, err := s.SaveBatch(ctx, []chat.Message{inRoom}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Recent(ctx, "room-1", 10, nil); err != nil || len(got) != 1 || got[0].Room != "room-1" {
		t.Fatalf("Recent(room-1): %+v %v", got, err)
	}
	var n int64
	if err := s.DB().Raw(`SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'messages_room_id_created_at_id_idx'`).Scan(&n).Error; err != nil || n != 1 {
		t.Fatalf("the room history index: %d %v", n, err)
	}
}

func TestSQLiteReopenKeepsMessages(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chat.db")
	ctx := context.Background()
	s, err := sqlstore.OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.SaveBatch(ctx, []chat.Message{chattest.Msg("a", "kept", 1)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = sqlstore.OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if m, err := s.Find(ctx, "a"); err != nil || m.Text != "kept" {
		t.Fatalf("after reopening: %+v, %v", m, err)
	}
}

// Every statement shape the SQLite store writes with: a batch in one
// prepared INSERT (kept, then reused), one INSERT too large to keep
// prepared, and a batch over several INSERTs in a transaction whose last
// part is a prepared one. Each batch written twice stores each row once.
func TestSQLiteBatchShapes(t *testing.T) {
	ctx := context.Background()
	s, err := sqlstore.OpenSQLite(ctx, filepath.Join(t.TempDir(), "chat.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	n := 0
	for _, size := range []int{1, 6, 6, 64, 65, 1000, 1010, 2064} {
		batch := make([]chat.Message, size)
		for i := range batch {
			batch[i] = chattest.Msg(fmt.Sprintf("m%06d", n), "shape", n)
			batch[i].Room = "r"
			n++
		}
		for range 2 {
			if rej, err := s.SaveBatch(ctx, batch); err != nil || len(rej) > 0 {
				t.Fatalf("batch of %d: %v, %v", size, rej, err)
			}
		}
		got, err := s.Recent(ctx, "r", n+1, nil)
		if err != nil || len(got) != n {
			t.Fatalf("after a batch of %d: %d stored of %d, %v", size, len(got), n, err)
		}
		if got[0].ID != batch[size-1].ID || got[0].Room != "r" {
			t.Fatalf("after a batch of %d: newest %+v, want %s in room r", size, got[0], batch[size-1].ID)
		}
	}
}

// The RoomStore contract on SQLite; another node is another Store on the
// same file.
func TestSQLiteRoomStoreContract(t *testing.T) {
	chattest.TestRoomStore(t, func(t *testing.T) (chattest.RoomEngine, func() chattest.RoomEngine) {
		path := filepath.Join(t.TempDir(), "chat.db")
		open := func() chattest.RoomEngine {
			s, err := sqlstore.OpenSQLite(context.Background(), path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			return s
		}
		return open(), open
	})
}
