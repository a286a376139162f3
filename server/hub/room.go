package hub

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scalable-chat-go/server/chat"
)

// room is a room of this node.
type room struct {
	name    string
	history *chat.History

	// mu orders deliveries with members going live, so that each
	// newcomer's history (or recovered messages) meets the live events
	// exactly.
	mu sync.Mutex
	// nlive counts the live members, for readers that must not wait for
	// mu (a read loop asking Hub.Live while a large room's delivery holds
	// it).
	nlive atomic.Int32
	// skips, on an ordered hub, are what members that came back must not
	// be sent live (nil while none has any; guarded by mu).
	skips map[*member]*skip

	// pmu guards the members' typing and the presence state.
	pmu sync.Mutex
	// members are the room's connections here: one list, which deliveries
	// read under mu (passing over those not live yet) and presence under
	// pmu, so it changes under both. A list of live members beside it cost
	// 8 bytes more a membership.
	members []*member
	// joining counts the members enrolled but not in members yet (enroll);
	// the room is not dropped meanwhile (pmu).
	joining int
	// typists are the members typing now (nil while nobody types).
	typists map[*member]typingState
	// lastView is the cluster's view at the last presence tick and
	// lastOnline its count (-1 before the first), lastLocal this node's
	// count then; dirty: this node's members changed since.
	lastView              chat.PresenceView
	lastOnline, lastLocal int
	dirty                 bool
}

func newRoom(name string, history *chat.History) *room {
	return &room{name: name, history: history, lastOnline: -1}
}

// Live returns how many connections of this node receive the room's
// events now. It does not wait for the room's deliveries.
func (h *Hub) Live(room string) int {
	r := h.lookup(room)
	if r == nil {
		return 0
	}
	return int(r.nlive.Load())
}

// JoinOptions say how a connection joins a room.
type JoinOptions struct {
	// Mark is the room's history mark (Hub.Mark) taken before the client
	// was told it is connected: a newcomer is sent every message after it,
	// with its history.
	Mark uint64
	// RecoverFrom is the id of the last message of the room a recovered
	// client received: it is sent what the ring holds after it, and no
	// history.
	RecoverFrom string
	// ResumeAfter, for a client whose session could not be recovered here,
	// is where it resumes: message ids in order of preference (the newest
	// one it had received, then the last one), the first one known here
	// taken. It gets only the history after it, so it never shows a
	// message twice. The ids may be of any room: history order is one
	// order across rooms.
	ResumeAfter []string
	// Live joins without the room's history: only what was delivered since
	// Mark, and, when recovering or resuming, what was missed after
	// RecoverFrom or ResumeAfter (a verified user's rooms at CONNECT, an
	// invitation).
	Live bool

	// Since, on an ordered hub (order.go), is where the connection stands:
	// the hub's Place when the client was told it is connected (a
	// newcomer), or, with Back, the Place its recovery offset names (a
	// client that comes back, which gets no history). It is sent every
	// message of its rooms after it, then the live ones. Nil: the join
	// happens at once (the history unless Live, then the live events).
	// Mark, RecoverFrom and ResumeAfter are not used there.
	Since *Place
	Back  bool
	// Also, on an ordered hub, are rooms the connection joins at the same
	// time, live, with the same Since: what it missed in all of them is
	// sent in the log's order (a verified user's rooms at CONNECT).
	Also []string

	// first is sent to the connection under the room's lock, before
	// anything of the room (the event that made it join).
	first Frame
}

// Warm makes this node receive the events of rooms before a connection
// joins them: it holds each room here, and subscribed, for hold, and
// waits until the broker says every subscription is in place or ctx
// ends. A connection whose marks (Mark) are taken after Warm, and that
// joins within hold, then gets every message of its rooms published after
// its marks, on any node: without it, what other nodes published in the
// round trip of the subscription its first join makes was lost. It
// returns ctx's error (the rooms stay held for hold all the same).
func (h *Hub) Warm(ctx context.Context, rooms []string, hold time.Duration) error {
	held := make([]*room, 0, len(rooms))
	for _, name := range rooms {
		r := h.room(name)
		if r == nil || name == chat.GlobalRoom {
			continue
		}
		// Held as a member on its way in is (enroll): not dropped, and
		// subscribed for as long, whoever joins or leaves meanwhile.
		r.pmu.Lock()
		r.joining++
		r.pmu.Unlock()
		h.o.Broker.Subscribe(name)
		held = append(held, r)
	}
	if len(held) == 0 {
		return nil
	}
	time.AfterFunc(hold, func() {
		for _, r := range held {
			r.pmu.Lock()
			r.joining--
			r.pmu.Unlock()
			h.o.Broker.Unsubscribe(r.name)
		}
	})
	for _, r := range held {
		if err := h.o.Broker.Subscribed(ctx, r.name); err != nil {
			return err
		}
	}
	return nil
}

// Mark returns the place of the next message of room: a newcomer takes it
// before it is told it is connected (JoinOptions.Mark).
func (h *Hub) Mark(room string) uint64 {
	if r := h.room(room); r != nil {
		return r.history.Mark()
	}
	return 0
}

// Recoverable reports whether a client whose last message of room had the
// id last can be recovered here: this node's ring still holds it.
func (h *Hub) Recoverable(room, last string) bool {
	r := h.room(room)
	if r == nil {
		return false
	}
	_, found := r.history.Since(last)
	return found
}

// Join makes c a member of room: it is sent the room's history (or, when
// recovering, what it missed), then its live events, then who is online.
// Joining a room c is in already sends nothing again. It returns
// ErrUnknownRoom for a room that does not exist here.
func (h *Hub) Join(c Conn, room string, o JoinOptions) error {
	if h.ord != nil && (o.Since != nil || len(o.Also) > 0) {
		return h.joinOrdered(c, append([]string{room}, o.Also...), o)
	}
	r, m, err := h.enroll(c, room)
	switch {
	case err != nil:
		return err
	case m == nil:
		if o.first != nil {
			c.Send(o.first)
		}
		return nil
	case h.ord != nil:
		h.welcomeOrdered(r, m, o, false)
	case o.RecoverFrom == "" || !h.recovered(r, m, o.RecoverFrom, &o.first):
		if o.RecoverFrom != "" {
			// The ring lost its place meanwhile: resume after it.
			o.ResumeAfter = []string{o.RecoverFrom}
		}
		h.welcome(r, m, o)
	}
	h.sendPresence(r, c)
	return nil
}

// enroll makes c a member of room, not live yet; m is nil when c is in the
// room already. It returns ErrUnknownRoom for a room that does not exist
// here.
func (h *Hub) enroll(c Conn, room string) (*room, *member, error) {
	userID := c.Identity().UserID
	h.mu.Lock()
	r := h.roomLocked(room)
	if r == nil {
		h.mu.Unlock()
		return nil, nil, ErrUnknownRoom
	}
	cl := h.conns[c]
	if cl == nil {
		cl = &client{c: c, userID: userID, rooms: make([]*member, 0, 1)}
		h.conns[c] = cl
		if cl.userID != "" {
			if h.users[cl.userID] == nil {
				h.users[cl.userID] = make(map[Conn]struct{}, 1)
			}
			h.users[cl.userID][c] = struct{}{}
		}
	}
	if cl.in(room) != nil {
		h.mu.Unlock()
		return r, nil, nil
	}
	m := &member{cl: cl, r: r, idx: -1}
	cl.append(m)
	// Counted under both locks: a room is dropped only when it has no
	// member and none joining (see dropEmpty).
	r.pmu.Lock()
	r.joining++
	r.pmu.Unlock()
	h.mu.Unlock()
	if h.betweenEnrollSteps != nil {
		h.betweenEnrollSteps()
	}
	// In the list under the room's lock, which a large room's delivery
	// holds for a while: not with the hub's held, which every room needs.
	r.mu.Lock()
	r.pmu.Lock()
	r.joining--
	gone := m.gone
	if !gone {
		m.idx = int32(len(r.members))
		r.members = append(r.members, m)
		r.dirty = true
		if len(r.members) == 1 && r.name != chat.GlobalRoom {
			// Under the members' lock: the broker sees a room's first join
			// and last leave in the order they happened.
			h.o.Broker.Subscribe(r.name)
		}
	}
	r.pmu.Unlock()
	r.mu.Unlock()
	if gone {
		return r, nil, nil // it left meanwhile (Leave, Disconnect)
	}
	return r, m, nil
}

// recovered sends a recovered member the messages it missed since the id
// from (from the ring) and lets the live events through, under the
// room's lock; false when the ring lost its place meanwhile.
func (h *Hub) recovered(r *room, m *member, from string, first *Frame) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	missed, found := r.history.Since(from)
	if !found {
		return false
	}
	if *first != nil {
		m.cl.c.Send(*first)
		*first = nil
	}
	for _, d := range missed {
		h.sendMessage(m.cl.c, d.Message, d.High)
	}
	r.goLiveLocked(m)
	return true
}

// welcome sends a newcomer the room's history, then every message
// delivered since its mark (which its client, once told it is connected,
// expects to see, however long the history took to read), then lets live
// events through.
//
// The store is read outside the room's lock, so a slow store holds up no
// one, and merged with the ring under it. Messages stored while it was
// read may push older ones out of the page read: then it is read again,
// larger (twice at most).
func (h *Hub) welcome(r *room, m *member, o JoinOptions) {
	limit := max(h.o.HistoryLimit, 0)
	if o.Live && len(o.ResumeAfter) == 0 {
		limit = 0 // nothing missed to send: live from the mark on
	}
	var after *chat.Cursor
	ctx, cancel := context.WithTimeout(context.Background(), historyTimeout)
	defer cancel()
	if limit > 0 {
		for _, id := range o.ResumeAfter {
			if id == "" {
				continue
			}
			if cur, err := r.history.Cursor(ctx, id); err == nil {
				after = &cur
				break
			}
		}
	}
	seen := func(msg chat.Message) bool {
		return after != nil && !(chat.Message{CreatedAt: after.CreatedAt, ID: after.ID}).Before(msg)
	}
	// The messages delivered since the mark are sent apart: the page is the
	// history before them.
	want := limit + r.history.Pending(o.Mark)
	for attempt := 0; ; attempt++ {
		var stored []chat.Message
		if limit > 0 {
			var err error
			if stored, err = r.history.Stored(ctx, want); err != nil {
				h.log.Warn("history unavailable for a newcomer; sending what this node remembers", "room", r.name, "err", err)
			}
		}
		r.mu.Lock()
		since, found := r.history.SinceMark(o.Mark)
		var older []chat.Message
		if limit > 0 {
			fresh := make(map[string]struct{}, len(since))
			for _, d := range since {
				fresh[d.Message.ID] = struct{}{}
			}
			for _, msg := range r.history.Merge(stored, limit+len(since), nil) {
				if _, ok := fresh[msg.ID]; !ok && len(older) < limit {
					older = append(older, msg)
				}
			}
		}
		if next := limit + r.history.Pending(o.Mark); found && len(older) < limit && len(stored) == want &&
			next > want && attempt < 2 {
			// The page read may have lost older messages to newer ones.
			want = next
			r.mu.Unlock()
			continue
		}
		if !found {
			h.m.joinGaps.Inc()
			h.log.Warn("a newcomer's history took longer than the history ring covers; it gets the latest page, and may miss messages delivered while it was read",
				"room", r.name, "conn", m.cl.c.ID(), "ring", ringSetting(r.name))
		}
		if o.first != nil {
			m.cl.c.Send(o.first)
			o.first = nil
		}
		for i := len(older) - 1; i >= 0; i-- {
			if msg := older[i]; !seen(msg) {
				h.sendMessage(m.cl.c, msg, "")
			}
		}
		for _, d := range since {
			if !seen(d.Message) {
				h.sendMessage(m.cl.c, d.Message, d.High)
			}
		}
		r.goLiveLocked(m)
		r.mu.Unlock()
		return
	}
}

// historyTimeout bounds the store read of one newcomer's history.
const historyTimeout = 5 * time.Second

// sendMessage sends c one message of its history or recovery, with the
// high-water id high ("" when it is sent in order).
func (h *Hub) sendMessage(c Conn, m chat.Message, high string) {
	f, err := h.o.Encoder.Message(m, Offset{High: high})
	if err != nil {
		h.encodeFailed(chat.MessageEvent(m), err)
		return
	}
	c.Send(f)
}

// goLiveLocked lets m, a member still in the room, receive live events;
// r.mu is held.
func (r *room) goLiveLocked(m *member) {
	if !m.live && !m.gone {
		m.live = true
		r.nlive.Add(1)
	}
}

// leaveLiveLocked stops m's live events; r.mu is held.
func (r *room) leaveLiveLocked(m *member) {
	if m.live {
		m.live = false
		r.nlive.Add(-1)
	}
}

// Rejoin sends c, a member of room, the room's history again, then its
// live events, with no gap and no duplicate at the seam (its live events
// pause while the history is read). ErrNotMember when c is not in room.
func (h *Hub) Rejoin(c Conn, room string) error {
	m := h.member(c, room)
	if m == nil {
		return ErrNotMember
	}
	r := h.room(room)
	if h.ord != nil {
		h.welcomeOrdered(r, m, JoinOptions{}, true)
		return nil
	}
	r.mu.Lock()
	r.leaveLiveLocked(m)
	mark := r.history.Mark()
	r.mu.Unlock()
	h.welcome(r, m, JoinOptions{Mark: mark})
	return nil
}

// Leave takes c out of room: it receives nothing of it from now on, and
// its typing there ends. It returns ErrNotMember when c is not in room.
func (h *Hub) Leave(c Conn, room string) error {
	h.mu.Lock()
	cl := h.conns[c]
	var m *member
	if cl != nil {
		if m = cl.in(room); m != nil {
			cl.drop(m)
		}
	}
	h.mu.Unlock()
	if m == nil {
		return ErrNotMember
	}
	h.leave(m.r, m)
	return nil
}

func (h *Hub) leave(r *room, m *member) {
	r.mu.Lock()
	r.leaveLiveLocked(m)
	delete(r.skips, m)
	r.pmu.Lock()
	m.gone = true
	// Its typing ends with it, under the lock that takes it out: a typing
	// event racing the leaving finds it gone (Typing).
	_, typing := r.typists[m]
	delete(r.typists, m)
	if i := int(m.idx); i >= 0 && i < len(r.members) && r.members[i] == m {
		last := len(r.members) - 1
		r.members[i] = r.members[last]
		r.members[i].idx = int32(i)
		r.members[last] = nil
		r.members = r.members[:last]
		m.idx = -1
		r.dirty = true
		if last == 0 && r.name != chat.GlobalRoom {
			h.o.Broker.Unsubscribe(r.name)
		}
	}
	r.pmu.Unlock()
	r.mu.Unlock()
	if typing {
		h.broadcastTyping(m.cl.c, r.name, false)
	}
}

// Disconnect forgets c: it leaves every room (its typing ends).
func (h *Hub) Disconnect(c Conn) {
	h.mu.Lock()
	cl := h.conns[c]
	if cl == nil {
		h.mu.Unlock()
		return
	}
	delete(h.conns, c)
	if cl.userID != "" {
		delete(h.users[cl.userID], c)
		if len(h.users[cl.userID]) == 0 {
			delete(h.users, cl.userID)
		}
	}
	rooms := cl.rooms
	cl.rooms = nil
	h.mu.Unlock()
	for _, m := range rooms {
		h.leave(m.r, m)
	}
}

// ringSetting names the setting that sizes room's history ring.
func ringSetting(room string) string {
	if room == chat.GlobalRoom {
		return "HISTORY_RING_SIZE"
	}
	return "ROOM_HISTORY_RING_SIZE"
}
