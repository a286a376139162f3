package sqlstore_test

import (
	"context"
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
