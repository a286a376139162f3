// Command roomsfixture stores users, rooms, memberships, a room's message
// and a read position through sqlstore's RoomStore on the PostgreSQL
// database DATABASE_URL names, and prints what it stored as JSON. The
// Prisma test (prisma-compat/test) runs it to check that a Prisma client
// reads what the Go server stores, until the rooms protocol can store the
// same through a running server.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/google/uuid"

	"github.com/scalable-chat-go/server/chat"
	"github.com/scalable-chat-go/server/sqlstore"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "roomsfixture:", err)
		os.Exit(1)
	}
}

// fixture is what run stored.
type fixture struct {
	Users   []chat.UserRecord `json:"users"`
	Private chat.Room         `json:"private"`
	Direct  chat.Room         `json:"direct"`
	Members []chat.Member     `json:"members"`
	Message chat.Message      `json:"message"`
}

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := sqlstore.OpenPostgres(ctx, os.Getenv("DATABASE_URL"), sqlstore.PostgresOptions{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	defer s.Close()
	now := time.Now().UTC().Truncate(time.Millisecond)
	id := func() string { return uuid.Must(uuid.NewV7()).String() }
	var f fixture
	f.Users = []chat.UserRecord{{ID: "auth0|ada", Name: "Ada", LastSeen: now}, {ID: "auth0|zoe", Name: "Zoë 🦊", LastSeen: now}}
	for _, u := range f.Users {
		if err := s.SaveUser(ctx, u); err != nil {
			return err
		}
	}
	f.Private = chat.Room{ID: id(), Name: "Plans", Kind: chat.RoomPrivate, CreatedBy: "auth0|ada", CreatedAt: now}
	if err := s.CreateRoom(ctx, f.Private, []chat.Member{{UserID: "auth0|ada", Role: chat.RoomOwner}}); err != nil {
		return err
	}
	if _, err := s.AddMember(ctx, chat.Member{RoomID: f.Private.ID, UserID: "auth0|zoe", JoinedAt: now.Add(time.Millisecond)}); err != nil {
		return err
	}
	f.Message = chat.Message{ID: id(), Text: "in the private room", Username: "Ada", UserID: "auth0|ada", Room: f.Private.ID,
		CreatedAt: now.Add(2 * time.Millisecond)}
	if rejected, err := s.SaveBatch(ctx, []chat.Message{f.Message}); err != nil || len(rejected) > 0 {
		return fmt.Errorf("save the room's message: %v %v", rejected, err)
	}
	if _, err := s.MarkRead(ctx, f.Private.ID, "auth0|zoe", f.Message.ID); err != nil {
		return err
	}
	if f.Direct, _, err = s.OpenDirect(ctx, chat.Room{ID: id(), CreatedBy: "auth0|zoe", CreatedAt: now}, "auth0|zoe", "auth0|ada"); err != nil {
		return err
	}
	if f.Members, err = s.Members(ctx, f.Private.ID); err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(f)
}
