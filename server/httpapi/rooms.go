package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/scalable-chat-go/server/chat"
)

// Rooms over HTTP:
//
//	GET    /api/rooms?limit&cursor&q       {rooms: [{id, name, kind, unread?, lastMessage?}], nextCursor}:
//	                                       global first, then the caller's rooms (first page only), then
//	                                       public rooms whose name starts with q; nextCursor pages the public ones
//	POST   /api/rooms                      {name, kind, members?} -> 201 {room} (a verified caller)
//	GET    /api/rooms/{id}/messages?limit&before   as /api/messages, for a room (members only, but a public room)
//	DELETE /api/rooms/{id}                 204 (the owner, or a moderator)
//
// The caller is the bearer of a token (Authorization: Bearer), as for the
// moderation endpoints; without one, GET answers as for an anonymous
// socket (global and the public rooms). Refusals are {error: {code,
// reason, limit?}}: 400 invalid_payload or limit, 401 unauthorized, 403
// forbidden, 404 not_found, 429 rate_limited (with Retry-After), 503
// unavailable.

// RoomsOptions serve the rooms endpoints; a nil Service serves none.
type RoomsOptions struct {
	Service *chat.RoomService
	Store   chat.RoomStore
	// Messages reads the rooms' last messages and unread counts.
	Messages chat.Store
	// History returns the live history of a room on this node (the hub's:
	// the store merged with what was delivered lately), nil when the node
	// has none; the store is read alone then.
	History func(room string) *chat.History
	// HistoryRing sizes the history made for a room the node has none of.
	HistoryRing int
}

// unreadMax is where an unread count stops.
const unreadMax = 1000

func (a *API) registerRooms(mux *http.ServeMux) {
	if a.o.Rooms.Service == nil {
		return
	}
	mux.Handle("GET /api/rooms", SecureHeaders(http.HandlerFunc(a.listRooms)))
	mux.Handle("POST /api/rooms", SecureHeaders(http.HandlerFunc(a.createRoom)))
	mux.Handle("OPTIONS /api/rooms", SecureHeaders(http.HandlerFunc(a.listRooms)))
	mux.Handle("GET /api/rooms/{id}/messages", SecureHeaders(http.HandlerFunc(a.roomMessages)))
	mux.Handle("OPTIONS /api/rooms/{id}/messages", SecureHeaders(http.HandlerFunc(a.roomMessages)))
	mux.Handle("DELETE /api/rooms/{id}", SecureHeaders(http.HandlerFunc(a.deleteRoom)))
	mux.Handle("OPTIONS /api/rooms/{id}", SecureHeaders(http.HandlerFunc(a.deleteRoom)))
}

// optionalCaller is the request's verified caller, nil without a bearer;
// an invalid one is answered 401 (ok false).
func (a *API) optionalCaller(w http.ResponseWriter, r *http.Request) (u *chat.User, ok bool) {
	if bearerToken(r) == "" {
		return nil, true
	}
	u = a.caller(w, r)
	return u, u != nil
}

// roomError answers a refusal of the room rules.
func roomError(w http.ResponseWriter, err error) {
	e := chat.CodeOf(err)
	status := http.StatusServiceUnavailable
	switch e.Code {
	case chat.CodeInvalidPayload, chat.CodeLimit:
		status = http.StatusBadRequest
	case chat.CodeUnauthorized:
		status = http.StatusUnauthorized
	case chat.CodeForbidden:
		status = http.StatusForbidden
	case chat.CodeNotFound:
		status = http.StatusNotFound
	case chat.CodeRateLimited:
		status = http.StatusTooManyRequests
		w.Header().Set("Retry-After", strconv.Itoa(int(max(time.Second, e.RetryAfter+time.Second-1)/time.Second)))
	case chat.CodeInternal:
		status = http.StatusInternalServerError
	}
	writeJSON(w, status, map[string]any{"error": map[string]any{"code": e.Code, "reason": e.Reason,
		"limit": nonEmpty(e.Limit), "retryAfterMs": nonZero(e.RetryAfter.Milliseconds())}})
}

func nonEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func nonZero(n int64) any {
	if n == 0 {
		return nil
	}
	return n
}

// roomEntry is a room as GET /api/rooms lists it.
type roomEntry struct {
	ID          string     `json:"id"`
	Name        string     `json:"name"`
	Kind        string     `json:"kind"`
	Member      bool       `json:"member"`
	Unread      *int       `json:"unread,omitempty"`
	LastMessage *chat.Wire `json:"lastMessage,omitempty"`
}

func (a *API) listRooms(w http.ResponseWriter, r *http.Request) {
	if a.corsMethods(w, r, "GET, POST") {
		return
	}
	by, ok := a.optionalCaller(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	limit := 50
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > a.o.MaxPage {
			fail(w, http.StatusBadRequest, chat.CodeInvalidPayload, "limit must be a whole number from 1 to "+strconv.Itoa(a.o.MaxPage))
			return
		}
		limit = n
	}
	cursor, prefix := q.Get("cursor"), q.Get("q")
	if len(cursor) > 64 || len(prefix) > 256 {
		fail(w, http.StatusBadRequest, chat.CodeInvalidPayload, "cursor is a room id and q a name's start")
		return
	}
	ctx := r.Context()
	var out []roomEntry
	mine := map[string]bool{}
	if cursor == "" {
		global := roomEntry{ID: chat.GlobalRoom, Name: chat.GlobalRoom, Kind: chat.GlobalRoom, Member: true}
		global.LastMessage = a.lastMessage(ctx, chat.GlobalRoom)
		out = append(out, global)
	}
	rooms, err := a.o.Rooms.Service.RoomsOf(ctx, by)
	if err != nil {
		roomError(w, err)
		return
	}
	for _, room := range rooms {
		mine[room.ID] = true
		if cursor != "" {
			continue
		}
		e, err := a.entry(ctx, by, room, true)
		if err != nil {
			roomError(w, err)
			return
		}
		out = append(out, e)
	}
	var next any
	if a.o.Rooms.Store != nil {
		public, err := a.o.Rooms.Store.PublicRooms(ctx, prefix, cursor, limit)
		if err != nil {
			roomError(w, err)
			return
		}
		for _, room := range public {
			if mine[room.ID] {
				continue
			}
			e, err := a.entry(ctx, by, room, false)
			if err != nil {
				roomError(w, err)
				return
			}
			out = append(out, e)
		}
		if len(public) == limit {
			next = public[len(public)-1].ID
		}
	}
	if out == nil {
		out = []roomEntry{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"rooms": out, "nextCursor": next})
}

// entry describes a room for by: a direct room is named after its other
// member; a member's room has its unread count.
func (a *API) entry(ctx context.Context, by *chat.User, room chat.Room, member bool) (roomEntry, error) {
	e := roomEntry{ID: room.ID, Name: room.Name, Kind: string(room.Kind), Member: member}
	if room.Kind == chat.RoomDirect && by != nil {
		members, err := a.o.Rooms.Store.Members(ctx, room.ID)
		if err != nil {
			return e, err
		}
		for _, m := range members {
			if m.UserID != by.ID {
				if u, err := a.o.Rooms.Store.FindUser(ctx, m.UserID); err == nil {
					e.Name = u.Name
				}
			}
		}
	}
	if member && by != nil {
		n, err := a.o.Rooms.Store.Unread(ctx, room.ID, by.ID, unreadMax)
		if err != nil {
			return e, err
		}
		e.Unread = &n
	}
	e.LastMessage = a.lastMessage(ctx, room.ID)
	return e, nil
}

// lastMessage is the newest message of room, nil when none (or when it
// cannot be read: a list is better shown without it).
func (a *API) lastMessage(ctx context.Context, room string) *chat.Wire {
	page, err := a.roomHistory(room).Recent(ctx, 1, "")
	if err != nil || len(page) == 0 {
		return nil
	}
	w := page[0].WireFor(a.o.Trust.AuthMode)
	return &w
}

// roomHistory is the history of room: this node's live one, or the store's.
func (a *API) roomHistory(room string) *chat.History {
	if a.o.Rooms.History != nil {
		if h := a.o.Rooms.History(room); h != nil {
			return h
		}
	}
	if room == chat.GlobalRoom {
		return a.o.History
	}
	return chat.NewRoomHistory(a.o.Rooms.Messages, room, max(a.o.Rooms.HistoryRing, 1))
}

func (a *API) createRoom(w http.ResponseWriter, r *http.Request) {
	if a.corsMethods(w, r, "GET, POST") {
		return
	}
	by := a.caller(w, r)
	if by == nil {
		return
	}
	var req struct {
		Name    string   `json:"name"`
		Kind    string   `json:"kind"`
		Members []string `json:"members"`
	}
	if !readJSON(w, r, &req) {
		return
	}
	room, err := a.o.Rooms.Service.Create(r.Context(), by, req.Name, chat.ParseRoomKind(req.Kind), req.Members)
	if err != nil {
		roomError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"room": room.Wire()})
}

func (a *API) roomMessages(w http.ResponseWriter, r *http.Request) {
	if a.cors(w, r) {
		return
	}
	by, ok := a.optionalCaller(w, r)
	if !ok {
		return
	}
	id := r.PathValue("id")
	if id != chat.GlobalRoom {
		// A public room's messages are anyone's; another's, its members'.
		if _, _, err := a.o.Rooms.Service.Visible(r.Context(), by, id); err != nil {
			roomError(w, err)
			return
		}
	}
	a.page(w, r, a.roomHistory(id))
}

func (a *API) deleteRoom(w http.ResponseWriter, r *http.Request) {
	if a.corsMethods(w, r, "DELETE") {
		return
	}
	by := a.caller(w, r)
	if by == nil {
		return
	}
	if err := a.o.Rooms.Service.Delete(r.Context(), by, r.PathValue("id")); err != nil {
		roomError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
