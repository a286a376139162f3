package chattest

import (
	"context"
	"testing"
	"time"

	"github.com/scalable-chat-go/server/chat"
)

// TestBanStore runs the BanStore contract against stores made by open
// (each subtest gets a new, empty one).
func TestBanStore(t *testing.T, open func(t *testing.T) chat.BanStore) {
	ctx := context.Background()
	at := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)

	t.Run("SaveListExpireLift", func(t *testing.T) {
		s := open(t)
		bans := []chat.Ban{
			{ID: "b-user", UserID: "auth0|42", Reason: "spam", By: "mod-1", CreatedAt: at},
			{ID: "b-name", Username: "Mallory", By: "mod-1", CreatedAt: at.Add(time.Second), Until: at.Add(time.Hour)},
			{ID: "b-ip", IP: "203.0.113.0/24", Reason: "flood ☔", By: "admin-token", CreatedAt: at.Add(2 * time.Second), Until: at.Add(time.Minute)},
		}
		for _, b := range bans {
			if err := s.SaveBan(ctx, b); err != nil {
				t.Fatalf("SaveBan(%s): %v", b.ID, err)
			}
		}
		// Saved again under the same id: left as it was.
		again := bans[0]
		again.Reason = "changed"
		if err := s.SaveBan(ctx, again); err != nil {
			t.Fatalf("SaveBan again: %v", err)
		}
		got := active(t, s, at.Add(30*time.Second))
		if len(got) != 3 {
			t.Fatalf("%d bans in force, want 3: %+v", len(got), got)
		}
		for _, want := range bans {
			b, ok := got[want.ID]
			if !ok || b.UserID != want.UserID || b.Username != want.Username || b.IP != want.IP || b.Reason != want.Reason ||
				b.By != want.By || !b.CreatedAt.Equal(want.CreatedAt) || !b.Until.Equal(want.Until) {
				t.Errorf("ban %s read back as %+v, want %+v", want.ID, b, want)
			}
		}
		// Expired by itself.
		if got := active(t, s, at.Add(2*time.Minute)); len(got) != 2 || got["b-ip"].ID != "" {
			t.Fatalf("after the minute ban ended: %+v", got)
		}
		// Lifted, once.
		if ok, err := s.LiftBan(ctx, "b-user", at.Add(time.Minute)); err != nil || !ok {
			t.Fatalf("LiftBan = %v %v", ok, err)
		}
		if ok, err := s.LiftBan(ctx, "b-user", at.Add(time.Minute)); err != nil || ok {
			t.Fatalf("LiftBan twice = %v %v, want false", ok, err)
		}
		if ok, err := s.LiftBan(ctx, "b-ip", at.Add(2*time.Minute)); err != nil || ok {
			t.Fatalf("LiftBan of an expired ban = %v %v, want false", ok, err)
		}
		if ok, err := s.LiftBan(ctx, "nope", at); err != nil || ok {
			t.Fatalf("LiftBan(unknown) = %v %v", ok, err)
		}
		if got := active(t, s, at.Add(2*time.Minute)); len(got) != 1 || got["b-name"].ID == "" {
			t.Fatalf("after the lift: %+v", got)
		}
	})
}

func active(t *testing.T, s chat.BanStore, now time.Time) map[string]chat.Ban {
	t.Helper()
	bans, err := s.ActiveBans(context.Background(), now)
	if err != nil {
		t.Fatalf("ActiveBans: %v", err)
	}
	out := map[string]chat.Ban{}
	for _, b := range bans {
		out[b.ID] = b
	}
	return out
}
