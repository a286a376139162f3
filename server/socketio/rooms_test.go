package socketio

import (
	"context"
	"fmt"
	"testing"

	"github.com/scalable-chat-go/server/chat"
	"github.com/scalable-chat-go/server/testkit"
)

// roomUsers are the verified users of the room tests.
func roomUsers(o Options) Options {
	o.AuthMode = chat.AuthOptional
	o.Verifier = fakeVerifier{users: map[string]*chat.User{
		"ann": {ID: "u-ann", Name: "ann"},
		"bob": {ID: "u-bob", Name: "bob"},
	}}
	return o
}

// code is the refusal code of a negative acknowledgement.
func code(t *testing.T, ack map[string]any) string {
	t.Helper()
	return str(errorOf(t, ack), "code")
}

// A room's life at the edge: created, joined with its history, talked in,
// typed in, read, left; each refusal with its code.
func TestRoomEvents(t *testing.T) {
	e := startEdge(t, setup{Options: roomUsers(Options{}), Rooms: true, RoomLimits: chat.RoomLimits{AnonymousRooms: 1}})
	ann, _ := e.join(map[string]any{"token": "ann"})
	bob, _ := e.join(map[string]any{"token": "bob"})
	anon, _ := e.join(map[string]any{"username": "anon"})
	testkit.Until(t, wait, "bob recorded as a user", func() (bool, string) {
		_, err := e.store.FindUser(context.Background(), "u-bob")
		return err == nil, fmt.Sprint(err)
	})

	if c := code(t, anon.call(EventRoomCreate, map[string]any{"name": "x", "kind": "public"})); c != chat.CodeUnauthorized {
		t.Fatalf("an anonymous room:create: %s", c)
	}
	if c := code(t, ann.call(EventRoomCreate, "not an object")); c != chat.CodeInvalidPayload {
		t.Fatalf("room:create of no object: %s", c)
	}
	if c := code(t, ann.call(EventRoomCreate, map[string]any{"name": "x", "kind": "public", "members": "bob"})); c != chat.CodeInvalidPayload {
		t.Fatalf("members that are no list: %s", c)
	}
	created := ann.call(EventRoomCreate, map[string]any{"name": "plans", "kind": "public", "members": []any{"u-bob"}})
	room, _ := created["room"].(map[string]any)
	id := str(room, "id")
	if created["ok"] != true || str(room, "name") != "plans" || str(room, "kind") != "public" || len(id) != 36 {
		t.Fatalf("room:create: %v", created)
	}
	// bob, a member now, is told on its socket and is in the room.
	if ev := bob.event(chat.EventRoomInvited); str(ev["room"].(map[string]any), "id") != id {
		t.Fatalf("room:invited %v", ev)
	}
	sent := ann.call("event:message", map[string]any{"message": "in plans", "room": id})
	if sent["ok"] != true {
		t.Fatalf("a message to the room: %v", sent)
	}
	msgID := str(sent, "id")
	if m, _ := bob.message(); str(m, "message") != "in plans" || str(m, "room") != id {
		t.Fatalf("bob got %v", m)
	}
	// An anonymous socket joins a public room (its history comes first),
	// talks in it; a second room is past ROOMS_ANONYMOUS_MAX=1.
	if ack := anon.call(EventRoomJoin, map[string]any{"room": id}); ack["ok"] != true {
		t.Fatalf("anon's room:join: %v", ack)
	}
	if m, _ := anon.message(); str(m, "message") != "in plans" {
		t.Fatalf("anon's history of the room: %v", m)
	}
	other := ann.call(EventRoomCreate, map[string]any{"name": "other", "kind": "public"})
	otherID := str(other["room"].(map[string]any), "id")
	if c := code(t, anon.call(EventRoomJoin, map[string]any{"room": otherID})); c != chat.CodeLimit {
		t.Fatalf("anon's second room: %s", c)
	}
	// Typing in the room reaches its other members.
	anon.emit(chat.EventTyping, map[string]any{"typing": true, "room": id})
	if ev := bob.event(chat.EventTyping); str(ev, "room") != id || str(ev, "name") != "anon" {
		t.Fatalf("typing %v", ev)
	}
	// A room the socket is not in: refused.
	if c := code(t, bob.call("event:message", map[string]any{"message": "x", "room": otherID})); c != chat.CodeForbidden {
		t.Fatalf("a message to a room bob is not in: %s", c)
	}
	if c := code(t, bob.call("event:message", map[string]any{"message": "x", "room": 7})); c != chat.CodeInvalidPayload {
		t.Fatalf("a room that is no id: %s", c)
	}
	bob.emit(chat.EventTyping, map[string]any{"typing": true, "room": otherID})
	if ev := bob.event("error"); str(ev, "code") != chat.CodeForbidden {
		t.Fatalf("typing in a room bob is not in: %v", ev)
	}
	// Read positions: bob's other sockets are told.
	bob2, _ := e.join(map[string]any{"token": "bob"})
	if ack := bob.call(EventRoomRead, map[string]any{"room": id, "upTo": msgID}); ack["ok"] != true {
		t.Fatalf("room:read %v", ack)
	}
	if ev := bob2.event(chat.EventRoomRead); str(ev, "room") != id || str(ev, "upTo") != msgID {
		t.Fatalf("room:read to the other socket: %v", ev)
	}
	// Joining again sends the history again.
	if ack := bob.call(EventRoomJoin, map[string]any{"room": id}); ack["ok"] != true {
		t.Fatalf("bob joins again: %v", ack)
	}
	if m, _ := bob.message(); str(m, "message") != "in plans" {
		t.Fatalf("the history again: %v", m)
	}
	if ack := bob.call(EventRoomJoin, map[string]any{"room": chat.GlobalRoom}); ack["ok"] != true || ack["room"] != nil {
		t.Fatalf("room:join of global: %v", ack)
	}
	// Leaving: global cannot be left; anon leaves its room.
	if c := code(t, anon.call(EventRoomLeave, map[string]any{"room": chat.GlobalRoom})); c != chat.CodeForbidden {
		t.Fatalf("leaving global: %s", c)
	}
	if ack := anon.call(EventRoomLeave, map[string]any{"room": id}); ack["ok"] != true {
		t.Fatalf("anon leaves: %v", ack)
	}
	if c := code(t, anon.call(EventRoomLeave, map[string]any{"room": id})); c != chat.CodeNotFound {
		t.Fatalf("anon leaves twice: %s", c)
	}
	// A direct room, and a room event without an acknowledgement: the
	// refusal comes as an error event.
	if dm := ann.call(EventDMOpen, map[string]any{"userId": "u-bob"}); dm["ok"] != true {
		t.Fatalf("dm:open %v", dm)
	}
	if ev := bob.event(chat.EventRoomInvited); str(ev["room"].(map[string]any), "kind") != string(chat.RoomDirect) {
		t.Fatalf("bob's invitation to the direct room: %v", ev)
	}
	anon.emit(EventDMOpen, map[string]any{"userId": "u-bob"})
	if ev := anon.event("error"); str(ev, "code") != chat.CodeUnauthorized {
		t.Fatalf("an anonymous dm:open without ack: %v", ev)
	}
	// Invite and remove.
	if ack := ann.call(EventRoomRemove, map[string]any{"room": id, "userId": "u-bob"}); ack["ok"] != true {
		t.Fatalf("room:remove %v", ack)
	}
	if ev := bob.event(chat.EventRoomRemoved); str(ev, "room") != id {
		t.Fatalf("room:removed %v", ev)
	}
	if ack := ann.call(EventRoomInvite, map[string]any{"room": id, "userId": "u-bob"}); ack["ok"] != true {
		t.Fatalf("room:invite %v", ack)
	}
	if ev := bob.event(chat.EventRoomInvited); str(ev["room"].(map[string]any), "id") != id {
		t.Fatalf("invited again: %v", ev)
	}
}

// A verified user's sockets are in its rooms from their CONNECT on: live,
// without the room's history.
func TestMemberRoomsAtConnect(t *testing.T) {
	e := startEdge(t, setup{Options: roomUsers(Options{}), Rooms: true})
	ann, _ := e.join(map[string]any{"token": "ann"})
	first, _ := e.join(map[string]any{"token": "bob"})
	testkit.Until(t, wait, "bob recorded as a user", func() (bool, string) {
		_, err := e.store.FindUser(context.Background(), "u-bob")
		return err == nil, fmt.Sprint(err)
	})
	first.leave()
	created := ann.call(EventRoomCreate, map[string]any{"name": "r", "kind": "private", "members": []any{"u-bob"}})
	id := str(created["room"].(map[string]any), "id")
	if ack := ann.call("event:message", map[string]any{"message": "before bob came", "room": id}); ack["ok"] != true {
		t.Fatal(ack)
	}
	bob, _ := e.join(map[string]any{"token": "bob"})
	if ack := ann.call("event:message", map[string]any{"message": "after", "room": id}); ack["ok"] != true {
		t.Fatal(ack)
	}
	if m, _ := bob.message(); str(m, "message") != "after" {
		t.Fatalf("bob's first message of the room: %v, want the live one", m)
	}
}

// Without rooms (a replica node), every room event is refused
// unavailable.
func TestRoomsUnavailable(t *testing.T) {
	e := startEdge(t, setup{Options: roomUsers(Options{})})
	ann, _ := e.join(map[string]any{"token": "ann"})
	for _, ev := range []string{EventRoomCreate, EventRoomJoin, EventRoomLeave, EventRoomInvite, EventRoomRemove, EventDMOpen, EventRoomRead} {
		if c := code(t, ann.call(ev, map[string]any{"room": "r", "userId": "u-bob", "name": "x", "kind": "public", "upTo": "m"})); c != chat.CodeUnavailable {
			t.Fatalf("%s without rooms: %s", ev, c)
		}
	}
}
