package chattest

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/scalable-chat-go/server/chat"
)

// TestPresence runs the Presence contract against the engine of newNodes,
// which returns the presences of n nodes of one new cluster, whose views
// expire ttl after their last Sync (the suite waits that long once).
func TestPresence(t *testing.T, ttl time.Duration, newNodes func(t *testing.T, n int) []chat.Presence) {
	ctx := context.Background()
	at := func(ms int64) time.Time { return time.UnixMilli(1_700_000_000_000 + ms).UTC() }
	sync := func(t *testing.T, p chat.Presence, room string, v chat.PresenceView) chat.PresenceView {
		t.Helper()
		got, err := p.Sync(ctx, room, v)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}

	t.Run("TheClusterMergesEveryNodesView", func(t *testing.T) {
		p := newNodes(t, 2)
		sync(t, p[0], chat.GlobalRoom, chat.PresenceView{Online: 3, Users: []chat.OnlineUser{
			{Name: "ann", Since: at(20)}, {Name: "Zoë", UserID: "u-1", Since: at(30)}}})
		got := sync(t, p[1], chat.GlobalRoom, chat.PresenceView{Online: 2, Users: []chat.OnlineUser{
			{Name: "zoe (phone)", UserID: "u-1", Since: at(10)}, {Name: "bob", Since: at(40)}}})
		if got.Online != 5 || got.Truncated {
			t.Fatalf("online %d (truncated %v), want 5", got.Online, got.Truncated)
		}
		// One entry per user (by verified id, else by name), the earliest
		// Since, in order of Since.
		want := []string{"u-1@10", "ann@20", "bob@40"}
		if len(got.Users) != len(want) {
			t.Fatalf("users %+v, want %v", got.Users, want)
		}
		for i, u := range got.Users {
			key := u.UserID
			if key == "" {
				key = u.Name
			}
			if k := key + "@" + strconv.FormatInt(u.Since.Sub(at(0)).Milliseconds(), 10); k != want[i] {
				t.Fatalf("user %d is %s, want %s (all: %+v)", i, k, want[i], got.Users)
			}
		}
	})

	t.Run("RoomsAreApart", func(t *testing.T) {
		p := newNodes(t, 2)
		sync(t, p[0], "room-a", chat.PresenceView{Online: 4, Users: []chat.OnlineUser{{Name: "ann", Since: at(1)}}})
		sync(t, p[1], "room-b", chat.PresenceView{Online: 1, Users: []chat.OnlineUser{{Name: "bob", Since: at(2)}}})
		got := sync(t, p[1], chat.GlobalRoom, chat.PresenceView{Online: 7})
		if got.Online != 7 || len(got.Users) != 0 {
			t.Fatalf("global: %+v, want 7 and nobody named", got)
		}
		a := sync(t, p[1], "room-a", chat.PresenceView{})
		if a.Online != 4 || len(a.Users) != 1 || a.Users[0].Name != "ann" {
			t.Fatalf("room-a: %+v", a)
		}
		b := sync(t, p[0], "room-b", chat.PresenceView{Online: 2})
		if b.Online != 3 || len(b.Users) != 1 || b.Users[0].Name != "bob" {
			t.Fatalf("room-b: %+v", b)
		}
		// A room whose name reads as a pattern counts only itself.
		sync(t, p[0], "room-*", chat.PresenceView{Online: 100})
		if got := sync(t, p[1], "room-[ab]", chat.PresenceView{Online: 1}); got.Online != 1 {
			t.Fatalf("room-[ab]: %+v, want only its own count", got)
		}
	})

	t.Run("ATruncatedViewStaysTruncated", func(t *testing.T) {
		p := newNodes(t, 2)
		sync(t, p[0], chat.GlobalRoom, chat.PresenceView{Online: 900, Truncated: true})
		got := sync(t, p[1], chat.GlobalRoom, chat.PresenceView{Online: 1, Users: []chat.OnlineUser{{Name: "ann", Since: at(1)}}})
		if got.Online != 901 || !got.Truncated || len(got.Users) != 0 {
			t.Fatalf("%+v, want 901, truncated, no list", got)
		}
	})

	t.Run("ANodeThatStopsSyncingDropsOut", func(t *testing.T) {
		p := newNodes(t, 2)
		for _, room := range []string{chat.GlobalRoom, "room-a"} {
			sync(t, p[0], room, chat.PresenceView{Online: 5, Users: []chat.OnlineUser{{Name: "gone", Since: at(1)}}})
			if got := sync(t, p[1], room, chat.PresenceView{Online: 1}); got.Online != 6 {
				t.Fatalf("%s before: %+v", room, got)
			}
		}
		time.Sleep(ttl + ttl/2)
		for _, room := range []string{chat.GlobalRoom, "room-a"} {
			if got := sync(t, p[1], room, chat.PresenceView{Online: 1}); got.Online != 1 || len(got.Users) != 0 {
				t.Fatalf("%s, %v after the other node's last sync: %+v, want only this node's", room, ttl+ttl/2, got)
			}
		}
	})

	// A node that syncs the same view again and again stays counted well
	// past the expiry (an engine may skip rewriting an unchanged view, not
	// refreshing it).
	t.Run("ANodeThatKeepsSyncingStaysIn", func(t *testing.T) {
		p := newNodes(t, 2)
		view := chat.PresenceView{Online: 2, Users: []chat.OnlineUser{{Name: "ann", Since: at(1)}}}
		for end := time.Now().Add(2*ttl + ttl/2); time.Now().Before(end); time.Sleep(ttl / 5) {
			sync(t, p[0], "room-a", view)
		}
		if got := sync(t, p[1], "room-a", chat.PresenceView{Online: 1}); got.Online != 3 || len(got.Users) != 1 {
			t.Fatalf("%+v, want the other node's 2 and ann", got)
		}
	})

	t.Run("SyncRoomsIsSyncOfEach", func(t *testing.T) {
		p := newNodes(t, 2)
		sync(t, p[0], "room-a", chat.PresenceView{Online: 1, Users: []chat.OnlineUser{{Name: "ann", Since: at(1)}}})
		sync(t, p[0], "room-b", chat.PresenceView{Online: 3, Truncated: true})
		got, err := p[1].SyncRooms(ctx, []chat.RoomView{
			{Room: "room-a", View: chat.PresenceView{Online: 1, Users: []chat.OnlineUser{{Name: "bob", Since: at(2)}}}},
			{Room: "room-b", View: chat.PresenceView{Online: 1}},
			{Room: "room-c", View: chat.PresenceView{Online: 2}},
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 3 || got[0].Online != 2 || len(got[0].Users) != 2 || got[1].Online != 4 || !got[1].Truncated ||
			got[2].Online != 2 || len(got[2].Users) != 0 {
			t.Fatalf("%+v", got)
		}
		if a := sync(t, p[0], "room-a", chat.PresenceView{Online: 1, Users: []chat.OnlineUser{{Name: "ann", Since: at(1)}}}); a.Online != 2 || len(a.Users) != 2 {
			t.Fatalf("room-a seen from the first node: %+v", a)
		}
		if got, err := p[1].SyncRooms(ctx, nil); err != nil || len(got) != 0 {
			t.Fatalf("no rooms: %v, %v", got, err)
		}
	})
}
