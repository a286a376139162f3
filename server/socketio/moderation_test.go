package socketio

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/scalable-chat-go/server/chat"
	"github.com/scalable-chat-go/server/testkit"
)

// verified is an edge with optional authentication: "mod" is a moderator's
// token, "user" a plain verified user's.
func verified(o Options) Options {
	o.AuthMode = chat.AuthOptional
	o.Verifier = fakeVerifier{users: map[string]*chat.User{
		"mod":  moderator,
		"user": {ID: "user-1", Name: "plain"},
	}}
	return o
}

// deleteCode sends event:delete with payload and returns the refusal's
// code.
func deleteCode(t *testing.T, c *client, payload ...any) string {
	t.Helper()
	return str(errorOf(t, c.call(EventDelete, payload...)), "code")
}

// Only a moderator deletes, a message that exists; every client is told,
// and the message leaves the history.
func TestDelete(t *testing.T) {
	e := startEdge(t, setup{Options: verified(Options{})})
	anon, _ := e.join(nil)
	user, _ := e.join(map[string]any{"token": "user"})
	mod, _ := e.join(map[string]any{"token": "mod"})
	keep := anon.send("anon", "keep me")
	id := anon.send("anon", "delete me")

	// An anonymous socket is refused before anything else: a bad payload
	// is not looked at. A verified user may own a room, so its payload is
	// read; a message of the global room is a moderator's to delete.
	for _, payload := range []any{map[string]any{"id": id}, "not even an object"} {
		if code := deleteCode(t, anon, payload); code != chat.CodeForbidden {
			t.Fatalf("a deletion of %v by an anonymous socket: %s, want forbidden", payload, code)
		}
	}
	if code := deleteCode(t, user, map[string]any{"id": id}); code != chat.CodeForbidden {
		t.Fatalf("a deletion of a global message by a user: %s, want forbidden", code)
	}
	if code := deleteCode(t, user, "not even an object"); code != chat.CodeInvalidPayload {
		t.Fatalf("a user's deletion of no object: %s, want invalid_payload", code)
	}
	// Without an acknowledgement the refusal is an error event.
	user.emit(EventDelete, map[string]any{"id": id})
	if ev := user.event("error"); str(ev, "code") != chat.CodeForbidden {
		t.Fatalf("error event %v, want forbidden", ev)
	}
	for _, payload := range [][]any{nil, {"just an id"}, {map[string]any{}}, {map[string]any{"id": 5}}} {
		if code := deleteCode(t, mod, payload...); code != chat.CodeInvalidPayload {
			t.Fatalf("event:delete %v: %s, want invalid_payload", payload, code)
		}
	}
	if code := deleteCode(t, mod, map[string]any{"id": uuid.NewString()}); code != chat.CodeNotFound {
		t.Fatalf("deleting an unknown id: %s, want not_found", code)
	}

	ack := mod.call(EventDelete, map[string]any{"id": id})
	if ack["ok"] != true || str(ack, "id") != id {
		t.Fatalf("deletion ack %v, want {ok: true, id: %s}", ack, id)
	}
	for _, c := range []*client{anon, user, mod} {
		if ev := c.event(chat.EventMessageDeleted); str(ev, "id") != id {
			t.Fatalf("message:deleted %v, want id %s", ev, id)
		}
	}
	late, _ := e.join(nil)
	if m, _ := late.message(); str(m, "id") != keep {
		t.Fatalf("a newcomer's history starts with %v, want the message kept", m)
	}
	late.quiet("/", chat.EventMessage, 0)
}

// Deletions count against the rate limit; without moderation nobody may
// delete.
func TestDeleteLimits(t *testing.T) {
	e := startEdge(t, setup{Options: verified(Options{RatePerSecond: 0.5, RateBurst: 1})})
	mod, _ := e.join(map[string]any{"token": "mod"})
	if code := deleteCode(t, mod, map[string]any{"id": uuid.NewString()}); code != chat.CodeNotFound {
		t.Fatalf("first deletion: %s, want not_found", code)
	}
	if code := deleteCode(t, mod, map[string]any{"id": uuid.NewString()}); code != chat.CodeRateLimited {
		t.Fatalf("second deletion within the rate: %s, want rate_limited", code)
	}

	bare := startEdge(t, setup{Options: verified(Options{}), NoModeration: true})
	mod, _ = bare.join(map[string]any{"token": "mod"})
	id := mod.send("", "no moderation here")
	if code := deleteCode(t, mod, map[string]any{"id": id}); code != chat.CodeForbidden {
		t.Fatalf("a deletion without moderation: %s, want forbidden", code)
	}
}

// ban bans r for a moderator.
func (e *tedge) ban(r chat.BanRequest) chat.Ban {
	e.t.Helper()
	b, err := e.mod.Ban(context.Background(), moderator, r)
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

// A banned client's CONNECT is refused with connect_error "banned", its
// reason and its end.
func TestBannedConnect(t *testing.T) {
	e := startEdge(t, setup{Options: verified(Options{})})
	b := e.ban(chat.BanRequest{Username: "Troll", Reason: "spam", Duration: time.Hour})
	e.ban(chat.BanRequest{UserID: "user-1"})
	for _, auth := range []map[string]any{{"username": "troll"}, {"token": "user"}} {
		got := refusedConnect(t, dial(t, e.url, nil), "/", auth)
		data, _ := got["data"].(map[string]any)
		if str(got, "message") != chat.CodeBanned || str(data, "code") != chat.CodeBanned {
			t.Fatalf("CONNECT %v: %v, want banned", auth, got)
		}
		if auth["username"] != nil {
			if str(data, "reason") != "you are banned: spam" || str(data, "until") != b.Until.Format(chat.TimeLayout) {
				t.Fatalf("refusal %v, want the ban's reason and end %s", data, b.Until)
			}
		} else if _, ok := data["until"]; ok || str(data, "reason") != "you are banned" {
			t.Fatalf("refusal %v of a ban for good, want no end", data)
		}
	}
	if n := e.metric("chat_connect_refused_total", "reason", chat.CodeBanned); n != 2 {
		t.Fatalf("chat_connect_refused_total{reason=banned} = %v, want 2", n)
	}
	e.join(map[string]any{"username": "not a troll"})
}

// A ban made while its target is connected disconnects it at once (the
// sweep is an hour away), after an `error` that says why.
func TestBanKicks(t *testing.T) {
	e := startEdge(t, setup{Options: verified(Options{})})
	troll, _ := e.join(map[string]any{"username": "troll"})
	user, _ := e.join(map[string]any{"token": "user"})
	other, _ := e.join(map[string]any{"username": "fine"})
	e.ban(chat.BanRequest{Username: "TROLL", Reason: "flood"})
	e.ban(chat.BanRequest{UserID: "user-1"})
	for _, c := range []*client{troll, user} {
		if ev := c.event("error"); str(ev, "code") != chat.CodeBanned {
			t.Fatalf("error event %v, want banned", ev)
		}
		c.take("the server's DISCONNECT", func(p pkt) bool { return p.typ == '1' && p.nsp == "/" })
	}
	testkit.Until(t, wait, "the banned sockets gone", func() (bool, string) {
		return e.Connections() == 1, fmt.Sprint(e.Connections(), " connections")
	})
	other.send("fine", "still chatting")
	other.quiet("/", "error", 0)
	if n := e.metric("chat_ban_disconnects_total"); n != 2 {
		t.Fatalf("chat_ban_disconnects_total = %v, want 2", n)
	}
}

// A client that says it is a banned name in an event is refused, with at
// most one `error` a second; nothing it sent reaches anyone.
func TestBannedEvents(t *testing.T) {
	e := startEdge(t, setup{Options: verified(Options{TypingRatePerSecond: 5})})
	e.ban(chat.BanRequest{Username: "evil"})
	c, _ := e.join(nil)
	watcher, _ := e.join(nil)
	start := time.Now()
	for range 2 {
		ack := c.call("event:message", map[string]any{"message": "hi", "username": " Evil "})
		if code := str(errorOf(t, ack), "code"); code != chat.CodeBanned {
			t.Fatalf("a message as a banned name: %v, want banned", ack)
		}
	}
	c.emit(chat.EventTyping, map[string]any{"typing": true, "username": "evil"})
	c.send("good", "under another name")
	c.oneErrorSince(start)
	if got := watcher.texts(1); !slices.Equal(got, []string{"under another name"}) {
		t.Fatalf("the watcher got %q", got)
	}
	watcher.quiet("/", chat.EventTyping, 0)

	// A socket that gave a banned name before the ban: refused for its own
	// name, whatever its event says.
	named, _ := e.join(map[string]any{"username": "later"})
	if _, ok := e.mod.Apply(context.Background(), chat.Event{Name: chat.EventBanAdded, Data: chat.Ban{
		ID: uuid.NewString(), Username: "later", CreatedAt: time.Now()}.Wire()}, false); !ok {
		t.Fatal("the ban was not taken in")
	}
	ack := named.call("event:message", map[string]any{"message": "hi", "username": "other"})
	if code := str(errorOf(t, ack), "code"); code != chat.CodeBanned {
		t.Fatalf("a message of a banned socket under another name: %v, want banned", ack)
	}
}

// The sweep disconnects the sockets that a ban this node only read from
// the store keeps out (no watcher told the edge).
func TestSweepEnforcesBans(t *testing.T) {
	e := startEdge(t, setup{Options: Options{SweepInterval: 20 * time.Millisecond}})
	c, _ := e.join(map[string]any{"username": "sneaky"})
	ctx := context.Background()
	b := chat.Ban{ID: uuid.NewString(), Username: "sneaky", By: moderator.ID, CreatedAt: time.Now().UTC().Truncate(time.Millisecond)}
	if err := e.store.SaveBan(ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := e.mod.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if ev := c.event("error"); str(ev, "code") != chat.CodeBanned {
		t.Fatalf("error event %v, want banned", ev)
	}
	c.take("the server's DISCONNECT", func(p pkt) bool { return p.typ == '1' })
	if n := e.metric("chat_ban_disconnects_total"); n != 1 {
		t.Fatalf("chat_ban_disconnects_total = %v, want 1", n)
	}
}
