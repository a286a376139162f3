package redis

import (
	"encoding/json"
	"reflect"
	"testing"

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
