package hub

import (
	"time"

	"github.com/scalable-chat-go/server/chat"
)

// Typing: a member says it is typing in a room, or stopped; the room's
// other members, on every node, receive `typing` {name, userId?, typing}.
// It is never stored. It ends by itself TypingTimeout after the last
// renewal, when the member leaves the room, or when the edge says its
// message was sent (StopTyping). While a member keeps typing, the others
// are told again every half TypingTimeout, so that clients (and nodes
// whose typist's node died) can expire an indicator that is not renewed.
// Rate limits and the payload are the edge's.

// typingState is a typing member's, in its room's typists (guarded by
// the room's pmu). Times are Unix nanoseconds.
type typingState struct {
	until int64 // it ends then unless renewed
	sent  int64 // when the others were last told
}

type typingEvent struct {
	Room   string `json:"room,omitempty"`
	Name   string `json:"name"`
	UserID string `json:"userId,omitempty"`
	Typing bool   `json:"typing"`
}

// member returns c's client and room when c is in room, nils otherwise.
func (h *Hub) member(c Conn, room string) (*client, *room) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if cl := h.conns[c]; cl != nil {
		if r := cl.in(room); r != nil {
			return cl, r
		}
	}
	return nil, nil
}

// Typing records that c is typing in room (or stopped), at now, and tells
// the room's other members when it started, stopped, or was renewed after
// half TypingTimeout. It returns ErrNotMember when c is not in room.
func (h *Hub) Typing(c Conn, room string, typing bool, now time.Time) error {
	cl, r := h.member(c, room)
	if cl == nil {
		return ErrNotMember
	}
	send := false
	r.pmu.Lock()
	if !r.holdsLocked(cl) { // it left meanwhile
		r.pmu.Unlock()
		return ErrNotMember
	}
	st, was := r.typists[cl]
	switch {
	case typing:
		st.until = now.Add(h.o.TypingTimeout).UnixNano()
		if !was || now.UnixNano()-st.sent >= int64(h.o.TypingTimeout/2) {
			st.sent, send = now.UnixNano(), true
		}
		if r.typists == nil {
			r.typists = make(map[*client]typingState)
		}
		r.typists[cl] = st
	case was:
		delete(r.typists, cl)
		send = true
	}
	r.pmu.Unlock()
	if send {
		h.broadcastTyping(c, room, typing)
	}
	return nil
}

// StopTyping ends c's typing in room, if it is typing there.
func (h *Hub) StopTyping(c Conn, room string) {
	if cl, r := h.member(c, room); cl != nil {
		h.stopTyping(r, cl)
	}
}

// stopTyping ends cl's typing in r, if it is typing there.
func (h *Hub) stopTyping(r *room, cl *client) {
	r.pmu.Lock()
	_, was := r.typists[cl]
	delete(r.typists, cl)
	r.pmu.Unlock()
	if was {
		h.broadcastTyping(cl.c, r.name, false)
	}
}

func (h *Hub) broadcastTyping(c Conn, room string, typing bool) {
	id := c.Identity()
	h.Broadcast(room, chat.Event{Name: chat.EventTyping,
		Data: typingEvent{Room: wireRoom(room), Name: id.Name, UserID: id.UserID, Typing: typing}, Except: c.ID()})
}

// expireTyping ends the typing not renewed within TypingTimeout.
func (h *Hub) expireTyping(now time.Time) {
	type expired struct {
		r  *room
		cl *client
	}
	var out []expired
	for _, r := range h.snapshotRooms() {
		r.pmu.Lock()
		for cl, st := range r.typists {
			if now.UnixNano() > st.until {
				out = append(out, expired{r, cl})
			}
		}
		r.pmu.Unlock()
	}
	for _, e := range out {
		h.stopTyping(e.r, e.cl)
	}
}
