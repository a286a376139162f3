package inmem

import (
	"context"
	"time"

	"github.com/scalable-chat-go/server/chat"
)

// Presence is a node's presence on a Bus (chat.Presence): each node's view
// of a room lives on the bus for TTL after its last Sync, and the cluster's
// view of a room is the merge of its nodes' views alive, as with Redis.
type Presence struct {
	bus *Bus
	ttl time.Duration
	now func() time.Time
}

type view struct {
	v  chat.PresenceView
	at time.Time
}

var _ chat.Presence = (*Presence)(nil)

// Presence returns a new node's presence on the bus; its views expire ttl
// after their last Sync (5 s when 0).
func (b *Bus) Presence(ttl time.Duration) *Presence {
	if ttl <= 0 {
		ttl = 5 * time.Second
	}
	return &Presence{bus: b, ttl: ttl, now: time.Now}
}

// Sync records local, this node's view of room, and returns the cluster's.
func (p *Presence) Sync(_ context.Context, room string, local chat.PresenceView) (chat.PresenceView, error) {
	now := p.now()
	b := p.bus
	b.pmu.Lock()
	defer b.pmu.Unlock()
	if b.views[room] == nil {
		b.views[room] = make(map[*Presence]view)
	}
	b.views[room][p] = view{v: local, at: now}
	var out chat.PresenceView
	var lists [][]chat.OnlineUser
	for node, v := range b.views[room] {
		if now.Sub(v.at) >= node.ttl {
			delete(b.views[room], node)
			continue
		}
		out.Online += v.v.Online
		out.Truncated = out.Truncated || v.v.Truncated
		lists = append(lists, v.v.Users)
	}
	if !out.Truncated {
		out.Users, _ = chat.MergeUsers(-1, lists...)
	}
	return out, nil
}

// SyncRooms is Sync of each room.
func (p *Presence) SyncRooms(ctx context.Context, rooms []chat.RoomView) ([]chat.PresenceView, error) {
	out := make([]chat.PresenceView, len(rooms))
	for i, r := range rooms {
		v, err := p.Sync(ctx, r.Room, r.View)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

// Leave removes this node's views of the rooms at once.
func (p *Presence) Leave(_ context.Context, rooms ...string) error {
	p.bus.pmu.Lock()
	defer p.bus.pmu.Unlock()
	for _, r := range rooms {
		delete(p.bus.views[r], p)
	}
	return nil
}
