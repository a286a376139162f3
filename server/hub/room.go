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
	skips map[*client]*skip

	// pmu guards the members' typing and the presence state.
	pmu sync.Mutex
	// members are the room's live connections here, which deliveries walk
	// under mu and presence under pmu: they change under both. index finds
	// a member's place in a large room (nil at indexAbove members or
	// fewer, where a scan of the list costs less than a map's 20 bytes a
	// member).
	members []*client
	index   map[*client]int32
	// pending are the members on their way in (enrolled, their history
	// being sent), under pmu: counted as members (presence, the room's
	// subscription), not sent live events.
	pending []*member
	// held counts Warm's holds: the room is not dropped meanwhile (pmu).
	held int
	// typists are the members typing now (nil while nobody types).
	typists map[*client]typingState
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
		// Held: not dropped, and subscribed for as long, whoever joins or
		// leaves meanwhile.
		r.pmu.Lock()
		r.held++
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
			r.held--
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
		h.welcomeOrdered(r, m.cl, m, o)
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

// enroll makes c a member of room, not live yet (on its way in: pending);
// m is nil when c is in the room already. It returns ErrUnknownRoom for a
// room that does not exist here.
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
		cl = &client{c: c, userID: userID}
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
	cl.append(r)
	m := &member{cl: cl}
	// Pending under the hub's lock, with the client's list: a presence tick
	// that drops empty rooms (under the hub's lock too) sees it, and a
	// leave finds it. Only the presence lock is needed, never held long.
	r.pmu.Lock()
	r.addPendingLocked(m)
	h.membershipChangedLocked(r, true)
	r.pmu.Unlock()
	h.mu.Unlock()
	if h.afterEnroll != nil {
		h.afterEnroll()
	}
	return r, m, nil
}

// countLocked is how many members the room has here, live or on their
// way in; pmu is held.
func (r *room) countLocked() int { return len(r.members) + len(r.pending) }

// connsLocked returns the connections of every member; pmu is held.
func (r *room) connsLocked() []Conn {
	out := make([]Conn, 0, r.countLocked())
	for _, cl := range r.members {
		out = append(out, cl.c)
	}
	for _, m := range r.pending {
		out = append(out, m.cl.c)
	}
	return out
}

// membershipChangedLocked follows a member's coming or going: the
// presence changed, and the broker hears of the room's first member and
// its last, in the order they happened (under pmu); pmu is held.
func (h *Hub) membershipChangedLocked(r *room, came bool) {
	r.dirty = true
	if r.name == chat.GlobalRoom {
		return
	}
	switch n := r.countLocked(); {
	case came && n == 1:
		h.o.Broker.Subscribe(r.name)
	case !came && n == 0:
		h.o.Broker.Unsubscribe(r.name)
	}
}

// addPendingLocked adds m, enrolled, to the members on their way in; pmu
// is held.
func (r *room) addPendingLocked(m *member) {
	m.idx = int32(len(r.pending))
	r.pending = append(r.pending, m)
}

// dropPendingLocked takes m out of the members on its way in: it went
// live or left. False when it was not there (it did either already); pmu
// is held.
func (r *room) dropPendingLocked(m *member) bool {
	if !r.isPendingLocked(m) {
		return false
	}
	i, last := int(m.idx), len(r.pending)-1
	r.pending[i] = r.pending[last]
	r.pending[i].idx = int32(i)
	r.pending[last] = nil
	r.pending = r.pending[:last]
	if len(r.pending) == 0 {
		r.pending = nil // a burst of joins leaves no array behind
	}
	m.idx = -1
	return true
}

// waitingLocked reports whether m is still on its way in: it did not
// leave (nor go live). A member that left is sent nothing more; r.mu is
// held.
func (r *room) waitingLocked(m *member) bool {
	r.pmu.Lock()
	defer r.pmu.Unlock()
	return r.isPendingLocked(m)
}

// isPendingLocked reports whether m is in pending; pmu is held.
func (r *room) isPendingLocked(m *member) bool {
	i := int(m.idx)
	return i >= 0 && i < len(r.pending) && r.pending[i] == m
}

// pendingOfLocked returns cl's member on its way in, or nil; pmu is held.
func (r *room) pendingOfLocked(cl *client) *member {
	for _, m := range r.pending {
		if m.cl == cl {
			return m
		}
	}
	return nil
}

// indexAbove is the size of a room past which it keeps an index of its
// members' places: leaving a room of thousands (the global one) must not
// scan it, and scanning 1,024 pointers takes a few hundred nanoseconds.
const indexAbove = 1024

// liveIndexLocked returns cl's place in members, -1 when it is not live
// here; pmu (or mu) is held.
func (r *room) liveIndexLocked(cl *client) int {
	if r.index != nil {
		if i, ok := r.index[cl]; ok {
			return int(i)
		}
		return -1
	}
	for i, x := range r.members {
		if x == cl {
			return i
		}
	}
	return -1
}

// holdsLocked reports whether cl is a member, live or on its way in; pmu
// is held.
func (r *room) holdsLocked(cl *client) bool {
	return r.liveIndexLocked(cl) >= 0 || r.pendingOfLocked(cl) != nil
}

// addLiveLocked puts cl in the live list; mu and pmu are held.
func (r *room) addLiveLocked(cl *client) {
	if r.index != nil {
		r.index[cl] = int32(len(r.members))
	}
	r.members = append(r.members, cl)
	if r.index == nil && len(r.members) > indexAbove {
		r.index = make(map[*client]int32, len(r.members))
		for i, x := range r.members {
			r.index[x] = int32(i)
		}
	}
	r.nlive.Store(int32(len(r.members)))
}

// dropLiveLocked takes the live member at i out of the list; mu and pmu
// are held.
func (r *room) dropLiveLocked(i int) {
	cl := r.members[i]
	last := len(r.members) - 1
	moved := r.members[last]
	r.members[i] = moved
	r.members[last] = nil
	r.members = r.members[:last]
	if r.index != nil {
		delete(r.index, cl)
		if i != last {
			r.index[moved] = int32(i)
		}
		if len(r.members) < indexAbove/2 {
			r.index = nil
		}
	}
	r.nlive.Store(int32(len(r.members)))
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
	if !r.waitingLocked(m) {
		return true // it left meanwhile
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
		if !r.waitingLocked(m) {
			r.mu.Unlock()
			return // it left meanwhile
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

// goLiveLocked lets m, a member on its way in, receive live events;
// false when it left meanwhile (or went live already). r.mu is held.
func (r *room) goLiveLocked(m *member) bool {
	r.pmu.Lock()
	defer r.pmu.Unlock()
	if !r.dropPendingLocked(m) {
		return false
	}
	r.addLiveLocked(m.cl)
	return true
}

// pauseLocked stops cl's live events, to send it the history again: it is
// on its way in again, as the member it returns (the one already on its
// way in, if it is; nil when it is not in the room). r.mu is held.
func (r *room) pauseLocked(cl *client) *member {
	r.pmu.Lock()
	defer r.pmu.Unlock()
	i := r.liveIndexLocked(cl)
	if i < 0 {
		return r.pendingOfLocked(cl)
	}
	r.dropLiveLocked(i)
	m := &member{cl: cl}
	r.addPendingLocked(m)
	return m
}

// Rejoin sends c, a member of room, the room's history again, then its
// live events, with no gap and no duplicate at the seam (its live events
// pause while the history is read). ErrNotMember when c is not in room.
func (h *Hub) Rejoin(c Conn, room string) error {
	cl, r := h.member(c, room)
	if cl == nil {
		return ErrNotMember
	}
	if h.ord != nil {
		h.welcomeOrdered(r, cl, nil, JoinOptions{})
		return nil
	}
	r.mu.Lock()
	m := r.pauseLocked(cl)
	mark := r.history.Mark()
	r.mu.Unlock()
	if m == nil {
		return ErrNotMember // it left meanwhile
	}
	h.welcome(r, m, JoinOptions{Mark: mark})
	return nil
}

// Leave takes c out of room: it receives nothing of it from now on, and
// its typing there ends. It returns ErrNotMember when c is not in room.
func (h *Hub) Leave(c Conn, room string) error {
	h.mu.Lock()
	cl := h.conns[c]
	in := cl.inOrNil(room)
	if in != nil {
		cl.drop(in)
	}
	h.mu.Unlock()
	if in == nil {
		return ErrNotMember
	}
	h.leave(in, cl)
	return nil
}

func (h *Hub) leave(r *room, cl *client) {
	r.mu.Lock()
	delete(r.skips, cl)
	r.pmu.Lock()
	// Its typing ends with it, under the lock that takes it out: a typing
	// event racing the leaving finds it gone (Typing).
	_, typing := r.typists[cl]
	delete(r.typists, cl)
	left := true
	if i := r.liveIndexLocked(cl); i >= 0 {
		r.dropLiveLocked(i)
	} else if m := r.pendingOfLocked(cl); m != nil {
		r.dropPendingLocked(m) // its welcome, under way, lets it go live no more
	} else {
		left = false
	}
	if left {
		h.membershipChangedLocked(r, false)
	}
	r.pmu.Unlock()
	r.mu.Unlock()
	if typing {
		h.broadcastTyping(cl.c, r.name, false)
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
	for _, r := range rooms {
		h.leave(r, cl)
	}
}

// ringSetting names the setting that sizes room's history ring.
func ringSetting(room string) string {
	if room == chat.GlobalRoom {
		return "HISTORY_RING_SIZE"
	}
	return "ROOM_HISTORY_RING_SIZE"
}
