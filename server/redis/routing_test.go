package redis

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"reflect"
	"testing"
	"time"

	sioadapter "github.com/zishang520/socket.io/adapters/adapter/v3"

	"github.com/scalable-chat-go/server/chat"
)

// A hub room's event goes out as Node's io.to(room).emit: a broadcast to
// the one room, with its membership effects in "chat" (which Node ignores),
// in JSON and, with binary, in MessagePack; both come back with the
// effects.
func TestRoomMessageCodec(t *testing.T) {
	msg := roomMessage("room-1", chat.Event{Name: "room:deleted", Data: map[string]any{"room": "room-1"}, Close: true})
	msg.Uid, msg.Nsp = "me", "/"
	raw, err := encodeCluster(msg)
	if err != nil {
		t.Fatal(err)
	}
	var wire map[string]any
	if err := json.Unmarshal(raw, &wire); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"uid": "me", "nsp": "/", "type": float64(sioadapter.BROADCAST), "data": map[string]any{
		"packet": map[string]any{"type": float64(2), "nsp": "/", "data": []any{"room:deleted", map[string]any{"room": "room-1"}}},
		"opts": map[string]any{"rooms": []any{"room-1"}, "flags": map[string]any{"volatile": false, "preEncoded": false,
			"local": false, "broadcast": false, "binary": false, "expectSingleResponse": false}},
		"chat": map[string]any{"close": true},
	}}
	if !reflect.DeepEqual(wire, want) {
		t.Fatalf("on the wire:\n%s\nwant\n%v", raw, want)
	}

	for _, e := range []chat.Event{
		{Name: "room:deleted", Data: "x", Close: true},
		{Name: "file", Data: []byte{0, 1, 255}, Close: true},
		{Name: "typing", Data: "x"},
	} {
		msg := roomMessage("room-2", e)
		raw, err := encodeCluster(msg)
		if err != nil {
			t.Fatal(err)
		}
		back, fx, err := decodeClusterEffects(raw)
		if err != nil {
			t.Fatalf("%s: %v", e.Name, err)
		}
		bm, ok := back.Data.(*sioadapter.BroadcastMessage)
		if !ok || len(bm.Opts.Rooms) != 1 || bm.Opts.Rooms[0] != "room-2" || bm.Packet == nil {
			t.Fatalf("%s: decoded %#v", e.Name, back.Data)
		}
		if (fx != nil && fx.Close) != e.Close {
			t.Fatalf("%s: effects %+v, want close %v", e.Name, fx, e.Close)
		}
	}
}

// A new room channel waiting for its confirmation does not make the node
// unready (rooms get their first member all the time) until
// roomSubscribeGrace has passed; any other channel does at once.
func TestPendingRoomChannelsKeepTheNodeReady(t *testing.T) {
	c, err := Open(Options{URL: "redis://127.0.0.1:1", Mode: ModeSharded, KeyPrefix: "grace", RequestTimeout: time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	ctx := context.Background()
	c.subs.addRoom("grace#/#room-1#", nil)
	if err := c.CheckSubscriptions(ctx); err != nil {
		t.Fatalf("a room channel just wanted: %v", err)
	}
	c.subs.mu.Lock()
	c.subs.want["grace#/#room-1#"].since = time.Now().Add(-roomSubscribeGrace)
	c.subs.mu.Unlock()
	if err := c.CheckSubscriptions(ctx); err == nil {
		t.Fatal("a room channel unconfirmed past the grace: ready")
	}
	c.subs.remove("grace#/#room-1#")
	c.subs.add("grace#/#", nil)
	if err := c.CheckSubscriptions(ctx); err == nil {
		t.Fatal("the namespace's channel unconfirmed: ready")
	}
}
