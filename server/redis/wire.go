package redis

import (
	"time"

	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/scalable-chat-go/server/chat"
)

// Rooms of the broker's library namespace "/" that only Go nodes' sinks
// join: a Node server of the cluster has no socket in them, so what is
// broadcast to them reaches no client of its. In the sharded adapter's
// dynamic mode each has a channel of its own, which only Go nodes
// subscribe to; in the streams mode they go through the stream, as every
// broadcast does.
const (
	// internalRoom carries control events (bans).
	internalRoom socket.Room = "scalable-chat-go:internal"
	// nodesRoom carries the Go nodes' requests (broker_sockets.go).
	nodesRoom socket.Room = "scalable-chat-go:nodes"
	// relayRoom carries envelopes: the events addressed to a user, and
	// those of rooms other than the global one in streams mode (and from
	// nodes before routing; see routing.go).
	relayRoom socket.Room = "scalable-chat-go:relay"
)

// Envelopes: the event names of the relay, whose only argument is
// {room | userId, event, args}: the event's own name and arguments, as the
// global room's travel.
const (
	roomEnvelope = "scalable-chat-go:room"
	userEnvelope = "scalable-chat-go:user"
)

// globalData is e as the global room's events travel: [name, args...], a
// message as its wire form.
func globalData(e chat.Event) []any {
	if e.IsMessage() {
		return []any{chat.EventMessage, e.Message.Wire()}
	}
	return []any{e.Name, e.Data}
}

// globalEvent reads an event of the global room (another Go node's, or a
// Node server's, which sends {message, username} only): a message of a Go
// node, a deletion, or any other event relayed as it is.
func globalEvent(name string, payload []any) chat.Event {
	if name == chat.EventMessageDeleted {
		if d, ok := wireDeletion(payload); ok {
			return chat.DeletionEvent(d)
		}
	}
	if m, ok := wireMessage(name, payload); ok {
		return chat.MessageEvent(m)
	}
	var data any
	if len(payload) > 0 {
		data = payload[0]
	}
	return chat.Event{Name: name, Data: data}
}

// seal puts e in an envelope addressed by key (room or userId), with its
// membership effects (join, leave: room ids; close: true).
func seal(e chat.Event, key, to string) map[string]any {
	d := globalData(e)
	env := map[string]any{key: to, "event": d[0], "args": d[1:]}
	if e.Join != "" {
		env["join"] = e.Join
	}
	if e.Leave != "" {
		env["leave"] = e.Leave
	}
	if e.Close {
		env["close"] = true
	}
	return env
}

// openEnvelope reads an envelope: its address (under key) and its event.
func openEnvelope(data any, key string) (string, chat.Event, bool) {
	env, _ := data.(map[string]any)
	to, _ := env[key].(string)
	name, _ := env["event"].(string)
	args, _ := env["args"].([]any)
	join, _ := env["join"].(string)
	leave, _ := env["leave"].(string)
	closing, _ := env["close"].(bool)
	if to == "" || len(to) > 256 || name == "" || len(join) > 256 || len(leave) > 256 {
		return "", chat.Event{}, false
	}
	e := globalEvent(name, args)
	e.Join, e.Leave, e.Close = join, leave, closing
	return to, e, true
}

// wireMessage reads a `message` event of a Go node: {message, username, id,
// createdAt}.
func wireMessage(ev string, payload []any) (chat.Message, bool) {
	if ev != chat.EventMessage || len(payload) == 0 {
		return chat.Message{}, false
	}
	obj, ok := payload[0].(map[string]any)
	if !ok {
		return chat.Message{}, false
	}
	text, _ := obj["message"].(string)
	user, _ := obj["username"].(string)
	id, _ := obj["id"].(string)
	at, _ := obj["createdAt"].(string)
	userID, _ := obj["userId"].(string)
	room, _ := obj["room"].(string)
	created, err := time.Parse(time.RFC3339Nano, at)
	if id == "" || len(id) > 64 || err != nil || len(userID) > 256 || len(room) > 64 {
		return chat.Message{}, false
	}
	return chat.Message{ID: id, Text: text, Username: user, CreatedAt: created.UTC(), UserID: userID, Room: room}, true
}

// wireDeletion reads a `message:deleted` {id} of another node. Who deleted
// it and when do not travel (clients need neither): a replica's tombstone
// says "remote" and the time it arrived.
func wireDeletion(payload []any) (chat.Deletion, bool) {
	if len(payload) == 0 {
		return chat.Deletion{}, false
	}
	obj, _ := payload[0].(map[string]any)
	id, _ := obj["id"].(string)
	room, _ := obj["room"].(string)
	if id == "" || len(id) > 128 || len(room) > 64 {
		return chat.Deletion{}, false
	}
	return chat.Deletion{ID: id, By: "remote", At: time.Now().UTC().Truncate(time.Millisecond), Room: room}, true
}
