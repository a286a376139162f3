package chat

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
)

// History answers "what was said lately": the store's pages merged, by id,
// with a ring of the messages this node delivered most recently. The store
// lags the live broadcast by a batch, or by more during an outage; the ring
// covers that lag, so a newcomer's history has no gap and no duplicate at the
// seam with the live messages that follow it.
//
// History is safe for concurrent use.
type History struct {
	store Store
	room  string // GlobalRoom, or a room's id: the store pages it reads

	mu sync.RWMutex
	// ring is circular once it holds capacity messages; until then it
	// grows, so that a room with few messages costs little (a node may
	// hold many rooms).
	ring     []Message
	highs    []string // per ring entry: the high-water id when it was delivered
	capacity int
	next     int // where the next message goes
	size     int
	byID     map[string]int // id -> index in ring
	high     Message        // the newest message delivered here (CreatedAt, then ID)
	seq      uint64         // how many messages were observed, ever

	// deleted holds the ids of the latest deletions: their messages are
	// left out of every page and
	// recovery, and a late delivery of one (from another node) is dropped,
	// even before the store has the tombstone.
	deleted *RecentIDs
}

// Delivery is a message as this node delivered it: with the id of the
// newest message (by CreatedAt, then ID) it had delivered up to and
// including this one, its high-water mark. Messages of several nodes reach
// a client slightly out of that order; a client that saw a delivery has
// seen every message up to its high-water mark that this node delivered
// before it, so another node resuming the client skips up to that mark, not
// just up to the last message it saw (which may be older than one it saw
// before it).
type Delivery struct {
	Message Message
	High    string
}

// NewHistory returns the History of the global room over store, which
// remembers the last capacity delivered messages.
func NewHistory(store Store, capacity int) *History {
	return NewRoomHistory(store, GlobalRoom, capacity)
}

// NewRoomHistory returns the History of room over store.
func NewRoomHistory(store Store, room string, capacity int) *History {
	capacity = max(capacity, 1)
	return &History{
		store:    store,
		room:     room,
		capacity: capacity,
		byID:     make(map[string]int),
		deleted:  NewRecentIDs(max(4*capacity, 10_000)),
	}
}

// Forget records the deletion of the message with id: it is left out of
// every page and recovery from now on (the ring keeps its place, so a
// client whose recovery offset names it still resumes after it).
func (h *History) Forget(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.deleted.Add(id)
}

// Deleted reports whether the message with id was deleted lately.
func (h *History) Deleted(id string) bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.deleted.Has(id)
}

// Known reports whether a message with id was delivered here lately or is
// in the store (deleted or not).
func (h *History) Known(ctx context.Context, id string) (bool, error) {
	h.mu.RLock()
	_, inRing := h.byID[id]
	gone := h.deleted.Has(id)
	h.mu.RUnlock()
	if inRing || gone {
		return true, nil
	}
	_, err := h.store.Find(ctx, id)
	switch {
	case errors.Is(err, ErrNotFound):
		return false, nil
	case err != nil:
		return false, err
	}
	return true, nil
}

// Lookup returns the message with id from the ring or the store (of any
// room, deleted or not); known is false when neither has it. A message
// known only by its tombstone is returned with its id alone.
func (h *History) Lookup(ctx context.Context, id string) (m Message, known bool, err error) {
	h.mu.RLock()
	i, inRing := h.byID[id]
	if inRing {
		m = h.ring[i]
	}
	gone := h.deleted.Has(id)
	h.mu.RUnlock()
	if inRing {
		return m, true, nil
	}
	m, err = h.store.Find(ctx, id)
	switch {
	case errors.Is(err, ErrNotFound) && gone:
		return Message{ID: id}, true, nil
	case errors.Is(err, ErrNotFound):
		return Message{}, false, nil
	case err != nil:
		return Message{}, false, err
	}
	return m, true, nil
}

// Observe records a message this node delivered to its clients, and
// returns the id of its high-water mark (see Delivery): m's own id when m is
// the newest delivered so far. A message observed again keeps the mark of
// its first delivery.
func (h *History) Observe(m Message) (high string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if i, seen := h.byID[m.ID]; seen {
		return h.highs[i]
	}
	if h.high.ID == "" || h.high.Before(m) {
		h.high = m
	}
	if h.size < h.capacity {
		// Growing: the ring is in order from 0, and next is its length
		// (0 once it is full).
		h.ring = append(h.ring, m)
		h.highs = append(h.highs, h.high.ID)
		h.byID[m.ID] = h.size
		h.size++
		h.next = h.size % h.capacity
	} else {
		delete(h.byID, h.ring[h.next].ID)
		h.ring[h.next] = m
		h.highs[h.next] = h.high.ID
		h.byID[m.ID] = h.next
		h.next = (h.next + 1) % h.capacity
	}
	h.seq++
	return h.high.ID
}

// Mark returns the place of the next message to be observed: SinceMark
// returns those observed from there on. A newcomer takes a mark before it
// is told it is connected, and is sent every message after the mark, even
// those delivered while its history was read.
func (h *History) Mark() uint64 {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.seq
}

// SinceMark returns the messages observed since mark (see Mark), in
// delivery order with their high-water marks; found is false when more
// were observed since than the ring holds. Deleted messages are left out.
func (h *History) SinceMark(mark uint64) (out []Delivery, found bool) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if mark > h.seq || h.seq-mark > uint64(h.size) {
		return nil, false
	}
	n := int(h.seq - mark)
	for k := n; k > 0; k-- {
		j := (h.next - k + len(h.ring)) % len(h.ring)
		if h.deleted.Has(h.ring[j].ID) {
			continue
		}
		out = append(out, Delivery{Message: h.ring[j], High: h.highs[j]})
	}
	return out, true
}

// Pending returns how many messages were observed since mark.
func (h *History) Pending(mark uint64) int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if mark > h.seq {
		return 0
	}
	return int(min(h.seq-mark, uint64(h.capacity)))
}

// Recent returns up to limit messages, newest first, strictly before the
// message with id before when before is not empty. An unknown before is
// reported as ErrNotFound.
func (h *History) Recent(ctx context.Context, limit int, before string) ([]Message, error) {
	if limit <= 0 {
		return nil, nil
	}
	var cur *Cursor
	if before != "" {
		c, err := h.cursor(ctx, before)
		if err != nil {
			return nil, err
		}
		cur = &c
	}
	stored, err := h.store.Recent(ctx, h.room, limit, cur)
	if err != nil {
		return nil, fmt.Errorf("read history from the store: %w", err)
	}
	return h.Merge(stored, limit, cur), nil
}

// Stored returns the store's newest limit messages, newest first, without
// the ring's (a newcomer's history merges the ring in later, under the
// lock that orders it with live deliveries: see Merge).
func (h *History) Stored(ctx context.Context, limit int) ([]Message, error) {
	if limit <= 0 {
		return nil, nil
	}
	stored, err := h.store.Recent(ctx, h.room, limit, nil)
	if err != nil {
		return nil, fmt.Errorf("read history from the store: %w", err)
	}
	return stored, nil
}

// Merge returns the newest limit messages of stored (a store page, newest
// first) and of the ring, newest first, each once, strictly before cur when
// cur is not nil.
//
// Every ring entry before cur is a candidate, not only the limit delivered
// last: the ring is in delivery order, and messages of several nodes are
// delivered out of their time order, so a newer one may sit behind limit
// older ones. The ring is walked newest delivered first, so that in the
// usual, nearly ordered case the page fills at once and each older entry
// costs one comparison.
func (h *History) Merge(stored []Message, limit int, cur *Cursor) []Message {
	if limit <= 0 {
		return []Message{}
	}
	p := newestPage{limit: limit}
	seen := make(map[string]struct{}, len(stored))
	h.mu.RLock()
	for _, m := range stored {
		if h.deleted.Has(m.ID) {
			continue
		}
		if _, dup := seen[m.ID]; !dup {
			seen[m.ID] = struct{}{}
			p.add(m)
		}
	}
	p.msgs = slices.Grow(p.msgs, min(limit, len(stored)+h.size)+1)
	for i := 0; i < h.size; i++ {
		m := h.ring[(h.next-1-i+2*len(h.ring))%len(h.ring)]
		if !p.wants(m) || cur != nil && !m.Before(Message{CreatedAt: cur.CreatedAt, ID: cur.ID}) {
			continue
		}
		if h.deleted.Has(m.ID) {
			continue
		}
		if _, dup := seen[m.ID]; !dup {
			p.add(m)
		}
	}
	h.mu.RUnlock()
	return p.msgs
}

// newestPage keeps the newest limit messages it is given, newest first.
type newestPage struct {
	limit int
	msgs  []Message
}

// wants reports whether m is newer than the oldest message kept, or there
// is room.
func (p *newestPage) wants(m Message) bool {
	n := len(p.msgs)
	return n < p.limit || p.msgs[n-1].Before(m)
}

// add keeps m when it is among the newest limit so far. m must not be
// kept already.
func (p *newestPage) add(m Message) {
	if !p.wants(m) {
		return
	}
	i, _ := slices.BinarySearchFunc(p.msgs, m, func(e, target Message) int {
		switch {
		case target.Before(e):
			return -1
		case e.Before(target):
			return 1
		}
		return 0
	})
	p.msgs = slices.Insert(p.msgs, i, m)
	if len(p.msgs) > p.limit {
		p.msgs = p.msgs[:p.limit]
	}
}

func (h *History) cursor(ctx context.Context, id string) (Cursor, error) {
	h.mu.RLock()
	i, ok := h.byID[id]
	var m Message
	if ok {
		m = h.ring[i]
	}
	h.mu.RUnlock()
	if ok {
		return CursorOf(m), nil
	}
	m, err := h.store.Find(ctx, id)
	if err != nil {
		return Cursor{}, err
	}
	return CursorOf(m), nil
}

// Since returns the messages delivered after the one with id, in delivery
// order with their high-water marks, from the ring only. found is false
// when the ring does not hold id (too old, or never delivered on this node).
func (h *History) Since(id string) (out []Delivery, found bool) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	i, ok := h.byID[id]
	if !ok {
		return nil, false
	}
	// Positions from the oldest entry: the ring is full or starts at 0.
	oldest := 0
	if h.size == len(h.ring) {
		oldest = h.next
	}
	pos := (i - oldest + len(h.ring)) % len(h.ring)
	for k := pos + 1; k < h.size; k++ {
		j := (oldest + k) % len(h.ring)
		if h.deleted.Has(h.ring[j].ID) {
			continue
		}
		out = append(out, Delivery{Message: h.ring[j], High: h.highs[j]})
	}
	return out, true
}

// Cursor returns the position of the message with id, from the ring or the
// store, or ErrNotFound.
func (h *History) Cursor(ctx context.Context, id string) (Cursor, error) {
	return h.cursor(ctx, id)
}

// Has reports whether the ring holds the message with id.
func (h *History) Has(id string) bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	_, ok := h.byID[id]
	return ok
}
