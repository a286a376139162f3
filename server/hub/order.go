package hub

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/scalable-chat-go/server/chat"
)

// The hub on an ordered broker.
//
// On a chat.OrderedBroker (Redis in streams mode) every node reads one log
// of events, the same for all, in the same order. The hub delivers
// messages in that order, its own too: it publishes a message and delivers
// it when the message comes back from the log. So what a client of any
// node has seen of its rooms is a prefix of the log: its Place, which
// every message frame carries as its recovery offset. A client that comes
// back, to this node or another, after a crash too, hands its Place back
// and is sent every message of its rooms after it, from this node's copy
// of the log's latest messages, then the live ones.
//
// When the link fails (the broker's last publication failed: Redis is
// down), or the message takes longer than Options.EarlyAfter to come back,
// the hub delivers its own message at once instead (an early delivery),
// and the Place of the frames lists it until the log has it; the message
// keeps its place in the log, where every other node reads it. A slow but
// working link is waited for: early deliveries make Places longer, and a
// Place lists at most MaxEarly of them.
//
// Guarantees (beyond the hub's):
//   - Resume: a client that comes back with a Place this node's log covers
//     (Floor) receives every message of its rooms admitted before it came
//     back that it had not seen, once, and nothing it had seen, however
//     many nodes crashed meanwhile, and whether the messages are stored
//     yet or not. A message still on its way is sent live when it comes.
//   - Bound: a Place older than this node's log (the client was away for
//     more than Options.LogSize messages, or the log was lost with Redis),
//     or one that lists fewer early messages than the client saw (more
//     than MaxEarly, while Redis was down), cannot be resumed exactly: the
//     client gets the latest history page, and the gap is counted
//     (chat_resume_gaps_total) and logged.
type order struct {
	b    chat.OrderedBroker
	wait time.Duration // before an own message is delivered early

	// mu orders every message delivery of the node and every join: one at
	// a time, in the log's order. Taken before any room's lock.
	mu sync.Mutex
	// pos is the position of the last message processed from the log.
	pos chat.Position
	// ring is the log's latest messages, circular, oldest at next when
	// full; byID indexes it. evicted is the newest position dropped.
	ring    []logEntry
	next    int
	size    int
	byID    map[string]int
	evicted chat.Position
	// deleted are the latest deletions, of every room: a client that
	// comes back is not sent them.
	deleted *chat.RecentIDs
	// earlies are this node's own messages it delivered before the log
	// had them, oldest first; flights the ones published and not yet
	// delivered, in publish order.
	earlies []logEntry
	flights []*flight
}

// logEntry is a message of the log (or an early one: no position yet).
type logEntry struct {
	pos  chat.Position
	room string
	m    chat.Message
}

// flight is an own message on its way through the log, since when.
type flight struct {
	room  string
	e     chat.Event
	since time.Time
	timer *time.Timer
}

// earlyCheck is how often a node looks whether its link failed while an
// own message is on its way: it then delivers the message at once.
const earlyCheck = 25 * time.Millisecond

func newOrder(b chat.OrderedBroker, size int, wait time.Duration) *order {
	size = max(size, 1)
	return &order{
		b:       b,
		wait:    wait,
		ring:    make([]logEntry, size),
		byID:    make(map[string]int, size),
		deleted: chat.NewRecentIDs(max(size, 10_000)),
	}
}

// skip is what a member that came back must not be sent live: messages up
// to a position this node has not reached yet, and the early messages
// another node sent it.
type skip struct {
	upTo chat.Position
	ids  []string
}

func (s *skip) drops(pos chat.Position, id string) bool {
	if !pos.IsZero() && !s.upTo.Before(pos) {
		return true
	}
	for _, x := range s.ids {
		if x == id {
			return true
		}
	}
	return false
}

// setSkipLocked sets what cl, a member, must not be sent live (nil:
// nothing); r.mu is held.
func (r *room) setSkipLocked(cl *client, sk *skip) {
	if sk == nil {
		delete(r.skips, cl)
		return
	}
	if r.skips == nil {
		r.skips = make(map[*client]*skip)
	}
	r.skips[cl] = sk
}

// placeLocked is where a client that saw every delivery so far stands;
// o.mu is held.
func (o *order) placeLocked() Place {
	p := Place{Pos: o.pos}
	n := len(o.earlies)
	from := max(0, n-MaxEarly)
	for _, e := range o.earlies[from:] {
		p.Early = append(p.Early, e.m.ID)
	}
	p.More = from > 0
	return p
}

// appendLocked records a message of the log; o.mu is held.
func (o *order) appendLocked(pos chat.Position, room string, m chat.Message) {
	o.pos = pos
	if o.size == len(o.ring) {
		old := o.ring[o.next]
		delete(o.byID, old.m.ID)
		o.evicted = old.pos
	} else {
		o.size++
	}
	o.ring[o.next] = logEntry{pos: pos, room: room, m: m}
	o.byID[m.ID] = o.next
	o.next = (o.next + 1) % len(o.ring)
}

// knownLocked reports whether the message with id was delivered here, or
// is on its way; o.mu is held.
func (o *order) knownLocked(id string) bool {
	if _, ok := o.byID[id]; ok {
		return true
	}
	for _, e := range o.earlies {
		if e.m.ID == id {
			return true
		}
	}
	for _, f := range o.flights {
		if f.e.Message.ID == id {
			return true
		}
	}
	return false
}

// covers reports whether every message after pos is in this node's log
// (or still to come).
func (o *order) coversLocked(pos chat.Position) bool {
	floor, ok := o.b.Floor()
	if !ok {
		return false
	}
	if floor.Before(o.evicted) {
		floor = o.evicted
	}
	return !pos.Before(floor)
}

// afterLocked returns the log's messages after pos in rooms, in log order,
// but those deleted and those p lists as seen early; o.mu is held.
func (o *order) afterLocked(p Place, rooms map[string]*room) []logEntry {
	var out []logEntry
	oldest := 0
	if o.size == len(o.ring) {
		oldest = o.next
	}
	// Entries are in log order from the oldest: find the first after pos.
	lo, hi := 0, o.size
	for lo < hi {
		mid := (lo + hi) / 2
		if p.Pos.Before(o.ring[(oldest+mid)%len(o.ring)].pos) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	for k := lo; k < o.size; k++ {
		e := o.ring[(oldest+k)%len(o.ring)]
		if o.wanted(e, p, rooms) {
			out = append(out, e)
		}
	}
	return out
}

// wanted reports whether a client at p in rooms is to be sent e.
func (o *order) wanted(e logEntry, p Place, rooms map[string]*room) bool {
	r := rooms[e.room]
	if r == nil || p.seen(e.m.ID) {
		return false
	}
	return !o.deleted.Has(e.m.ID) && !r.history.Deleted(e.m.ID)
}

// broadcastOrdered publishes an own message; it is delivered when it comes
// back from the log, or early.
func (h *Hub) broadcastOrdered(room string, e chat.Event) {
	o := h.ord
	id := e.Message.ID
	o.mu.Lock()
	if o.knownLocked(id) {
		// Delivered here already (a retry raced its first): the log has it,
		// or will.
		o.mu.Unlock()
		if e.Sent != nil {
			e.Sent(nil)
		}
		return
	}
	// A message the link gives up never comes back from the log: it is
	// delivered here at once, and not waited for.
	sent := e.Sent
	e.Sent = func(err error) {
		if err != nil {
			h.deliverEarly(id)
			h.dropEarly(id)
		}
		if sent != nil {
			sent(err)
		}
	}
	f := &flight{room: room, e: e, since: time.Now()}
	o.flights = append(o.flights, f)
	linked := o.b.Linked()
	if linked && o.wait > 0 {
		f.timer = time.AfterFunc(min(earlyCheck, o.wait), func() { h.checkEarly(f) })
	}
	o.mu.Unlock()
	h.o.Broker.Publish(room, e)
	if !linked || o.wait <= 0 {
		h.deliverEarly(id)
	}
}

// checkEarly delivers an own message still on its way at once when the
// link failed meanwhile, or when it waited EarlyAfter; else it looks again
// a little later.
func (h *Hub) checkEarly(f *flight) {
	o := h.ord
	o.mu.Lock()
	if !slices.Contains(o.flights, f) {
		o.mu.Unlock()
		return // back from the log, or delivered early already
	}
	if o.b.Linked() && time.Since(f.since) < o.wait {
		f.timer.Reset(min(earlyCheck, o.wait-time.Since(f.since)))
		o.mu.Unlock()
		return
	}
	o.mu.Unlock()
	h.deliverEarly(f.e.Message.ID)
}

// deliverEarly delivers the own message with id at once, and every own
// message published before it that is still on its way (so that a
// sender's order is kept), when they have not come back from the log yet.
func (h *Hub) deliverEarly(id string) {
	o := h.ord
	o.mu.Lock()
	defer o.mu.Unlock()
	i := -1
	for k, f := range o.flights {
		if f.e.Message.ID == id {
			i = k
			break
		}
	}
	if i < 0 {
		return
	}
	for _, f := range o.flights[:i+1] {
		if f.timer != nil {
			f.timer.Stop()
		}
		o.earlies = append(o.earlies, logEntry{room: f.room, m: f.e.Message})
		h.m.early.Inc()
		if r := h.lookup(f.room); r != nil {
			r.mu.Lock()
			h.deliverPlaced(r, f.e, chat.Position{}, o.placeLocked())
			r.mu.Unlock()
		}
	}
	o.flights = append(o.flights[:0], o.flights[i+1:]...)
}

// dropEarly forgets an early message the link gave up: it will never come
// back from the log.
func (h *Hub) dropEarly(id string) {
	o := h.ord
	o.mu.Lock()
	defer o.mu.Unlock()
	for k, e := range o.earlies {
		if e.m.ID == id {
			o.earlies = append(o.earlies[:k], o.earlies[k+1:]...)
			return
		}
	}
}

// handleOrdered processes a message of the log: delivered to this node's
// members of its room unless it was delivered here already (this node's
// own, early; or a second copy, of a retry that raced its first).
func (h *Hub) handleOrdered(room string, e chat.Event) {
	o := h.ord
	id := e.Message.ID
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.pos.Before(e.Pos) {
		return // handed over again
	}
	if _, dup := o.byID[id]; dup {
		o.pos = e.Pos
		return
	}
	for k, x := range o.earlies {
		if x.m.ID == id {
			o.earlies = append(o.earlies[:k], o.earlies[k+1:]...)
			o.appendLocked(e.Pos, room, x.m)
			return
		}
	}
	for k, f := range o.flights {
		if f.e.Message.ID == id {
			if f.timer != nil {
				f.timer.Stop()
			}
			o.flights = append(o.flights[:k], o.flights[k+1:]...)
			break
		}
	}
	o.appendLocked(e.Pos, room, e.Message)
	if r := h.lookup(room); r != nil {
		r.mu.Lock()
		h.deliverPlaced(r, e, e.Pos, o.placeLocked())
		r.mu.Unlock()
	}
}

// deliverPlaced delivers message e (at pos in the log; zero for an early
// delivery) to r's live members, whose frames say they stand at place;
// r.mu is held. Members that came back past pos, or that saw e early on
// another node, are passed over.
func (h *Hub) deliverPlaced(r *room, e chat.Event, pos chat.Position, place Place) {
	if r.history.Deleted(e.Message.ID) {
		return
	}
	r.history.Observe(e.Message)
	f, err := h.o.Encoder.Message(e.Message, Offset{Place: place.String()})
	if err != nil {
		h.encodeFailed(e, err)
		return
	}
	fanout(f, int(r.nlive.Load()))
	n := 0
	for _, cl := range r.members {
		if len(r.skips) > 0 {
			if sk := r.skips[cl]; sk != nil && sk.drops(pos, e.Message.ID) {
				continue
			}
		}
		cl.c.Send(f)
		n++
	}
	h.m.deliveries.WithLabelValues(chat.EventMessage).Add(float64(n))
	h.m.broadcast.Inc()
}

// Place returns where a client that is told now it is connected stands
// (JoinOptions.Since); ok is false on a hub that is not ordered.
func (h *Hub) Place() (p Place, ok bool) {
	if h.ord == nil {
		return Place{}, false
	}
	h.ord.mu.Lock()
	defer h.ord.mu.Unlock()
	return h.ord.placeLocked(), true
}

// Ordered reports whether the hub delivers in the order of the cluster's
// log (its broker is a chat.OrderedBroker that keeps one).
func (h *Hub) Ordered() bool { return h.ord != nil }

// CanResume reports whether a client at p can be resumed exactly here:
// this node's log holds every message after it.
func (h *Hub) CanResume(p Place) bool {
	if h.ord == nil {
		return false
	}
	h.ord.mu.Lock()
	defer h.ord.mu.Unlock()
	return h.ord.coversLocked(p.Pos) && !p.More
}

// Delivered reports whether this node delivered the message with id in
// room lately (or has it on its way): a retry of it is not broadcast again
// (chat.ServiceOptions.Delivered).
func (h *Hub) Delivered(room, id string) bool {
	if h.ord != nil {
		h.ord.mu.Lock()
		defer h.ord.mu.Unlock()
		return h.ord.knownLocked(id)
	}
	r := h.lookup(room)
	return r != nil && r.history.Has(id)
}

// joined is a membership a join made.
type joined struct {
	r *room
	m *member
}

// joinOrdered is Join on an ordered hub: names are the rooms joined at
// once (the first with its history when asked), o.Since where the client
// stands (nil: now).
func (h *Hub) joinOrdered(c Conn, names []string, o JoinOptions) error {
	var js []joined
	for i, name := range names {
		r, m, err := h.enroll(c, name)
		if err != nil {
			if i == 0 {
				return err
			}
			h.log.Warn("a connection could not join one of its rooms", "room", name, "err", err)
			continue
		}
		if m != nil {
			js = append(js, joined{r, m})
		}
	}
	if len(js) == 0 {
		if o.first != nil {
			c.Send(o.first)
		}
		return nil
	}
	ord := h.ord
	since := o.Since
	limit := 0
	if !o.Live && !o.Back && js[0].r.name == names[0] {
		limit = max(h.o.HistoryLimit, 0)
	}
	if since != nil && o.Back {
		ord.mu.Lock()
		covered := ord.coversLocked(since.Pos)
		ord.mu.Unlock()
		if !covered || since.More {
			reason := "log"
			if covered {
				reason = "early"
			}
			h.m.resumeGaps.WithLabelValues(reason).Inc()
			h.log.Warn("a client came back from a place this node cannot resume exactly: it gets the latest history, and may miss messages or see some again",
				"conn", c.ID(), "place", since.String(), "reason", reason, "setting", "RESUME_LOG_SIZE")
			since, limit = nil, max(h.o.HistoryLimit, 0)
			if js[0].r.name != names[0] {
				limit = 0
			}
		}
	}
	if since != nil && !o.Back {
		// A newcomer's place is this node's own: only the log's eviction
		// can have passed it.
		ord.mu.Lock()
		lost := since.Pos.Before(ord.evicted)
		ord.mu.Unlock()
		if lost {
			h.m.joinGaps.Inc()
			h.log.Warn("a newcomer took longer to join than this node's log covers; it may miss messages delivered meanwhile",
				"conn", c.ID(), "setting", "RESUME_LOG_SIZE")
		}
	}
	var stored []chat.Message
	if limit > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), historyTimeout)
		var err error
		// The page is the history before what is sent as missed; a few
		// more than the limit cover the messages delivered meanwhile.
		if stored, err = js[0].r.history.Stored(ctx, limit+historySlack); err != nil {
			h.log.Warn("history unavailable for a newcomer; sending what this node remembers", "room", js[0].r.name, "err", err)
		}
		cancel()
	}

	ord.mu.Lock()
	rooms := make(map[string]*room, len(js))
	for _, j := range js {
		rooms[j.r.name] = j.r
	}
	at := ord.placeLocked()
	var missed, early []logEntry
	if since != nil {
		at = *since
		missed = ord.afterLocked(*since, rooms)
		for _, e := range ord.earlies {
			if rooms[e.room] != nil && !since.seen(e.m.ID) {
				early = append(early, e)
			}
		}
	}
	if o.first != nil {
		c.Send(o.first)
	}
	if limit > 0 {
		fresh := make(map[string]struct{}, len(missed)+len(early))
		for _, e := range missed {
			fresh[e.m.ID] = struct{}{}
		}
		for _, e := range early {
			fresh[e.m.ID] = struct{}{}
		}
		var older []chat.Message
		for _, msg := range js[0].r.history.Merge(stored, limit+len(fresh), nil) {
			if _, ok := fresh[msg.ID]; !ok && len(older) < limit {
				older = append(older, msg)
			}
		}
		for i := len(older) - 1; i >= 0; i-- {
			h.sendPlaced(c, older[i], at)
		}
	}
	for _, e := range missed {
		at.Pos = e.pos
		h.sendPlaced(c, e.m, at)
	}
	for _, e := range early {
		at.Early = append(at.Early, e.m.ID)
		if n := len(at.Early); n > MaxEarly {
			at.Early, at.More = at.Early[n-MaxEarly:], true
		}
		h.sendPlaced(c, e.m, at)
	}
	var sk *skip
	if since != nil && (ord.pos.Before(since.Pos) || len(since.Early) > 0) {
		sk = &skip{upTo: since.Pos, ids: since.Early}
	}
	for _, j := range js {
		j.r.mu.Lock()
		// Only a member still there: a skip left behind would hold back
		// the live events of the connection's next membership.
		if j.r.goLiveLocked(j.m) {
			j.r.setSkipLocked(j.m.cl, sk)
		}
		j.r.mu.Unlock()
	}
	ord.mu.Unlock()
	if o.Back && since != nil {
		h.m.resumed.Inc()
	}
	for _, j := range js {
		h.sendPresence(j.r, c)
	}
	return nil
}

// historySlack is how many messages more than the limit a history page
// reads, for those delivered while it is read.
const historySlack = 64

// sendPlaced sends c one message of its history or of what it missed, with
// its place.
func (h *Hub) sendPlaced(c Conn, m chat.Message, at Place) {
	f, err := h.o.Encoder.Message(m, Offset{Place: at.String()})
	if err != nil {
		h.encodeFailed(chat.MessageEvent(m), err)
		return
	}
	c.Send(f)
}

// welcomeOrdered sends a member joining alone (m, on its way in) its
// history (unless live) and lets the live events through, at once in the
// log's order; with m nil, cl, a member, is sent the history again (its
// live events pause meanwhile).
func (h *Hub) welcomeOrdered(r *room, cl *client, m *member, o JoinOptions) {
	limit := max(h.o.HistoryLimit, 0)
	if o.Live {
		limit = 0
	}
	var stored []chat.Message
	if limit > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), historyTimeout)
		var err error
		if stored, err = r.history.Stored(ctx, limit); err != nil {
			h.log.Warn("history unavailable for a newcomer; sending what this node remembers", "room", r.name, "err", err)
		}
		cancel()
	}
	h.ord.mu.Lock()
	defer h.ord.mu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	if m == nil {
		m = r.pauseLocked(cl)
	}
	if m == nil || !r.waitingLocked(m) {
		return // it left meanwhile
	}
	at := h.ord.placeLocked()
	if o.first != nil {
		cl.c.Send(o.first)
	}
	if limit > 0 {
		older := r.history.Merge(stored, limit, nil)
		for i := len(older) - 1; i >= 0; i-- {
			h.sendPlaced(cl.c, older[i], at)
		}
	}
	r.goLiveLocked(m)
}
