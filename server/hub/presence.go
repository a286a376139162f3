package hub

import (
	"context"
	"fmt"
	"sync"

	"github.com/scalable-chat-go/server/chat"
)

// Presence: who is online in a room.
//
// Every PresenceInterval the hub syncs each room's view on this node (its
// members, and the distinct users among those with a name) with the
// cluster's (chat.Presence) and, when the cluster's view changed, tells
// the room's members here: `presence` {online, users} (users omitted above
// PresenceListLimit), and one `presence:join` or `presence:leave` {name,
// userId?} per user who came or went. Every node computes the same view
// of a room, so these events never cross the broker. A newcomer gets
// `presence` at once: the last view, its count corrected by this node's
// change since. The events of rooms other than chat.GlobalRoom name their
// room; the global room's are the original protocol's.

// presenceUser is a chat.OnlineUser on the wire.
type presenceUser struct {
	Name   string `json:"name"`
	UserID string `json:"userId,omitempty"`
	Since  string `json:"since"`
}

type presenceEvent struct {
	Room   string          `json:"room,omitempty"`
	Online int             `json:"online"`
	Users  *[]presenceUser `json:"users,omitempty"`
}

type presenceChange struct {
	Room   string `json:"room,omitempty"`
	Name   string `json:"name"`
	UserID string `json:"userId,omitempty"`
}

// wireRoom is the room field of an event of room: none for the global
// room.
func wireRoom(room string) string {
	if room == chat.GlobalRoom {
		return ""
	}
	return room
}

func wireUsers(v chat.PresenceView) *[]presenceUser {
	if v.Truncated {
		return nil
	}
	users := make([]presenceUser, 0, len(v.Users))
	for _, u := range v.Users {
		users = append(users, presenceUser{Name: u.Name, UserID: u.UserID, Since: u.Since.UTC().Format(chat.TimeLayout)})
	}
	return &users
}

// PresenceView is the cluster's view of room at the last presence tick
// (this node's count before the first).
func (h *Hub) PresenceView(room string) chat.PresenceView {
	r := h.room(room)
	if r == nil {
		return chat.PresenceView{}
	}
	r.pmu.Lock()
	defer r.pmu.Unlock()
	v := r.lastView
	if r.lastOnline < 0 {
		v.Online = r.countLocked()
	}
	return v
}

// localViewLocked is this node's view of r now; r.pmu is held.
func (h *Hub) localViewLocked(r *room) chat.PresenceView {
	v := chat.PresenceView{Online: r.countLocked()}
	// Grown from nil: a room of anonymous sockets allocates nothing a
	// tick. Sized by the members, the list cost a tick 56 bytes a member
	// (2.8 MB a second, idle, for 50,000 memberships).
	var users []chat.OnlineUser
	add := func(cl *client) {
		if id := cl.c.Identity(); id.Name != "" {
			users = append(users, chat.OnlineUser{Name: id.Name, UserID: id.UserID, Since: id.Since})
		}
	}
	for _, cl := range r.members {
		add(cl)
	}
	for _, m := range r.pending {
		add(m.cl)
	}
	v.Users, v.Truncated = chat.MergeUsers(h.o.PresenceListLimit, users)
	return v
}

// sendPresence tells c who is online in r: the last view, with this
// node's change of count since.
func (h *Hub) sendPresence(r *room, c Conn) {
	r.pmu.Lock()
	n := r.countLocked()
	if r.lastOnline >= 0 {
		n = max(r.lastOnline+n-r.lastLocal, n)
	}
	users := wireUsers(r.lastView)
	r.pmu.Unlock()
	f, err := h.o.Encoder.Event(chat.EventPresence, presenceEvent{Room: wireRoom(r.name), Online: n, Users: users})
	if err != nil {
		h.encodeFailed(chat.Event{Name: chat.EventPresence}, err)
		return
	}
	c.Send(f)
}

// A tick syncs the rooms other than the global one in batches of
// presenceBatch, one round trip to Redis each (Presence.SyncRooms), at most
// presenceSyncs batches at once. One room a round trip cost Redis about
// 39 µs of CPU a room (BenchmarkRoomPresenceSync) and a node could sync
// no more than 4,000 to 8,000 rooms a second one at a time; batched, a
// room costs Redis a few µs and a tick's round trips are few.
const (
	presenceBatch = 256
	presenceSyncs = 4
)

func (h *Hub) presenceTick() {
	var (
		batch  []*room
		locals []chat.RoomView
	)
	for _, r := range h.snapshotRooms() {
		if r.name == chat.GlobalRoom {
			h.guard("presence", func() { h.syncPresence(r) })
			continue
		}
		if local, ok := h.presenceLocal(r); ok {
			batch = append(batch, r)
			locals = append(locals, chat.RoomView{Room: r.name, View: local})
		}
	}
	work := make(chan int)
	var wg sync.WaitGroup
	chunks := (len(batch) + presenceBatch - 1) / presenceBatch
	for range min(presenceSyncs, chunks) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for start := range work {
				end := min(start+presenceBatch, len(batch))
				h.guard("presence", func() { h.syncRooms(batch[start:end], locals[start:end]) })
			}
		}()
	}
	for start := 0; start < len(batch); start += presenceBatch {
		work <- start
	}
	close(work)
	wg.Wait()
	h.dropEmpty()
}

// dropEmpty forgets the rooms other than the global one that have had no
// member here since the last tick: their events no longer need this node,
// and a newcomer reads their history from the store.
func (h *Hub) dropEmpty() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for name, r := range h.rooms {
		if name == chat.GlobalRoom {
			continue
		}
		r.pmu.Lock()
		if r.countLocked() == 0 && r.held == 0 && !r.dirty {
			delete(h.rooms, name)
		}
		r.pmu.Unlock()
	}
}

// presenceLocal returns this node's view of r, and whether r is to be
// synced: a room other than the global one is synced while it has members
// here (and once more when the last one left).
func (h *Hub) presenceLocal(r *room) (chat.PresenceView, bool) {
	r.pmu.Lock()
	defer r.pmu.Unlock()
	if r.name != chat.GlobalRoom && r.countLocked() == 0 && !r.dirty {
		return chat.PresenceView{}, false
	}
	return h.localViewLocked(r), true
}

// syncPresence syncs r's view with the cluster's.
func (h *Hub) syncPresence(r *room) {
	local, ok := h.presenceLocal(r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.o.PresenceInterval)
	view, err := h.o.Presence.Sync(ctx, r.name, local)
	cancel()
	if err != nil {
		h.log.Debug("cluster presence unavailable; using this node's view", "room", r.name, "err", err)
		view = local
	}
	h.applyPresence(r, local, view)
}

// syncRooms syncs the views of rooms (locals) with the cluster's at once.
func (h *Hub) syncRooms(rooms []*room, locals []chat.RoomView) {
	ctx, cancel := context.WithTimeout(context.Background(), h.o.PresenceInterval)
	views, err := h.o.Presence.SyncRooms(ctx, locals)
	cancel()
	if err == nil && len(views) != len(rooms) {
		err = fmt.Errorf("presence: %d views for %d rooms", len(views), len(rooms))
	}
	if err != nil {
		h.log.Debug("cluster presence unavailable; using this node's views", "rooms", len(rooms), "err", err)
	}
	for i, r := range rooms {
		view := locals[i].View
		if err == nil {
			view = views[i]
		}
		h.applyPresence(r, locals[i].View, view)
	}
}

// applyPresence takes view, the cluster's view of r after a sync of local
// (local itself when the sync failed), and tells r's members here when it
// changed.
func (h *Hub) applyPresence(r *room, local, view chat.PresenceView) {
	if !view.Truncated && len(view.Users) > h.o.PresenceListLimit {
		view.Users, view.Truncated = nil, true
	}

	r.pmu.Lock()
	var joined, left []chat.OnlineUser
	if !view.Truncated && !r.lastView.Truncated && r.lastOnline >= 0 {
		joined, left = diffUsers(r.lastView.Users, view.Users)
	}
	// A member that joined since the last tick was told an estimate: send
	// everyone the view when it or this node's members changed.
	changed := view.Online != r.lastOnline || r.dirty || view.Truncated != r.lastView.Truncated ||
		len(joined) > 0 || len(left) > 0
	r.dirty = false
	r.lastOnline = view.Online
	r.lastLocal = local.Online
	r.lastView = view
	var all []Conn
	if changed {
		all = r.connsLocked()
	}
	r.pmu.Unlock()
	if !changed || len(all) == 0 {
		return
	}
	room := wireRoom(r.name)
	frames := make([]Frame, 0, 1+len(joined)+len(left))
	add := func(name string, data any) {
		f, err := h.o.Encoder.Event(name, data)
		if err != nil {
			h.encodeFailed(chat.Event{Name: name}, err)
			return
		}
		frames = append(frames, f)
	}
	for _, u := range joined {
		add(chat.EventPresenceJoin, presenceChange{Room: room, Name: u.Name, UserID: u.UserID})
	}
	for _, u := range left {
		add(chat.EventPresenceLeave, presenceChange{Room: room, Name: u.Name, UserID: u.UserID})
	}
	add(chat.EventPresence, presenceEvent{Room: room, Online: view.Online, Users: wireUsers(view)})
	for _, f := range frames {
		fanout(f, len(all))
	}
	for _, c := range all {
		for _, f := range frames {
			c.Send(f)
		}
	}
	n := float64(len(all))
	h.m.deliveries.WithLabelValues(chat.EventPresenceJoin).Add(n * float64(len(joined)))
	h.m.deliveries.WithLabelValues(chat.EventPresenceLeave).Add(n * float64(len(left)))
	h.m.deliveries.WithLabelValues(chat.EventPresence).Add(n)
}

// diffUsers returns who is in now and was not in before, and who left.
func diffUsers(before, now []chat.OnlineUser) (joined, left []chat.OnlineUser) {
	was := make(map[string]bool, len(before))
	for _, u := range before {
		was[u.Key()] = true
	}
	is := make(map[string]bool, len(now))
	for _, u := range now {
		is[u.Key()] = true
		if !was[u.Key()] {
			joined = append(joined, u)
		}
	}
	for _, u := range before {
		if !is[u.Key()] {
			left = append(left, u)
		}
	}
	return joined, left
}
