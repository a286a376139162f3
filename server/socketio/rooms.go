package socketio

import (
	"context"
	"errors"
	"time"

	"github.com/scalable-chat-go/server/chat"
	"github.com/scalable-chat-go/server/hub"
	"github.com/scalable-chat-go/server/socketio/internal/engine"
)

// Rooms at the edge.
//
// A client emits room:create {name, kind, members?}, room:join {room},
// room:leave {room}, room:invite {room, userId}, room:remove {room,
// userId}, dm:open {userId} and room:read {room, upTo}, each with an
// acknowledgement: {ok: true, ...} or {ok: false, error: {code, reason,
// limit?, retryAfterMs?}}. They count against the connection's rate limit.
// The rules are chat.RoomService's; the edge parses, answers, and moves the
// socket in and out of the hub's rooms. A verified user's sockets are in
// all of the user's rooms from their CONNECT on (live; history comes with
// room:join or the API); the other sockets of the user follow through the
// hub's user events (room:joined, room:invited, room:left, room:removed).

// Room events of clients.
const (
	EventRoomCreate = "room:create"
	EventRoomJoin   = "room:join"
	EventRoomLeave  = "room:leave"
	EventRoomInvite = "room:invite"
	EventRoomRemove = "room:remove"
	EventDMOpen     = "dm:open"
	EventRoomRead   = "room:read"
)

// isRoomEvent reports whether name is one of the room events.
func isRoomEvent(name string) bool {
	switch name {
	case EventRoomCreate, EventRoomJoin, EventRoomLeave, EventRoomInvite, EventRoomRemove, EventDMOpen, EventRoomRead:
		return true
	}
	return false
}

// roomTimeout bounds the store work of one room event.
const roomTimeout = 5 * time.Second

// roomAck is a positive acknowledgement with a room.
type roomAck struct {
	OK   bool           `json:"ok"`
	Room *chat.RoomWire `json:"room,omitempty"`
}

// onRoomEvent handles a room event. It runs on the socket's worker, in the
// order of the socket's packets: a room:join answered is in force for the
// next message.
func (s *Server) onRoomEvent(c *conn, name string, args []any, ack engine.Ack, now time.Time) {
	if ok, wait := c.bucket.Take(now); !ok {
		s.refuse(c, ack, &chat.Error{Code: chat.CodeRateLimited, Reason: "you are sending too fast", RetryAfter: wait})
		return
	}
	var obj map[string]any
	if len(args) > 0 {
		obj, _ = args[0].(map[string]any)
	}
	if obj == nil {
		s.refuse(c, ack, chat.Errorf(chat.CodeInvalidPayload, "%s wants an object", name))
		return
	}
	str := func(k string) string { v, _ := obj[k].(string); return v }
	ctx, cancel := context.WithTimeout(context.Background(), roomTimeout)
	defer cancel()
	rs := s.o.Rooms
	var err error
	var room *chat.Room
	switch name {
	case EventRoomCreate:
		var members []string
		if list, ok := obj["members"].([]any); ok {
			for _, m := range list {
				id, _ := m.(string)
				members = append(members, id)
			}
		} else if obj["members"] != nil {
			err = chat.Errorf(chat.CodeInvalidPayload, "members must be a list of user ids")
			break
		}
		var r chat.Room
		if r, err = rs.Create(ctx, c.user, str("name"), chat.ParseRoomKind(str("kind")), members); err == nil {
			room = &r
			err = s.joinRoom(c, r.ID, false)
		}
	case EventRoomJoin:
		room, err = s.onRoomJoin(ctx, c, str("room"))
	case EventRoomLeave:
		id := str("room")
		if err = rs.Leave(ctx, c.user, id, c.sock.ID()); err == nil {
			if lerr := s.hub.Leave(c, id); errors.Is(lerr, hub.ErrNotMember) && c.user == nil {
				err = chat.Errorf(chat.CodeNotFound, "you are not in the room")
			}
		}
	case EventRoomInvite:
		err = rs.Invite(ctx, c.user, str("room"), str("userId"))
	case EventRoomRemove:
		err = rs.Remove(ctx, c.user, str("room"), str("userId"))
	case EventDMOpen:
		var r chat.Room
		if r, _, err = rs.OpenDirect(ctx, c.user, str("userId")); err == nil {
			room = &r
			err = s.joinRoom(c, r.ID, false)
		}
	case EventRoomRead:
		err = rs.MarkRead(ctx, c.user, str("room"), str("upTo"), c.sock.ID())
	}
	if err != nil {
		s.refuse(c, ack, chat.CodeOf(err))
		return
	}
	if ack != nil {
		a := roomAck{OK: true}
		if room != nil {
			w := room.Wire()
			a.Room = &w
		}
		ack(a)
	}
}

// onRoomJoin lets the socket into a room (chat.RoomService.Join) and sends
// it the room's history, then its live events: again when it is in the
// room already.
func (s *Server) onRoomJoin(ctx context.Context, c *conn, id string) (*chat.Room, error) {
	if id == chat.GlobalRoom {
		if err := s.hub.Rejoin(c, chat.GlobalRoom); err != nil {
			return nil, err
		}
		return nil, nil
	}
	r, _, _, err := s.o.Rooms.Join(ctx, c.user, id, c.sock.ID())
	if err != nil {
		return nil, err
	}
	if s.hub.IsMember(c, r.ID) {
		return &r, s.hub.Rejoin(c, r.ID)
	}
	if c.user == nil && len(s.hub.Rooms(c))-1 >= s.o.Rooms.Limits().AnonymousRooms {
		return nil, chat.LimitError("ROOMS_ANONYMOUS_MAX", "a socket without a verified identity may join %d rooms", s.o.Rooms.Limits().AnonymousRooms)
	}
	return &r, s.joinRoom(c, r.ID, true)
}

// joinRoom joins the socket to a room of the hub: with its history, or
// live only (a room it made, or opened).
func (s *Server) joinRoom(c *conn, room string, history bool) error {
	err := s.hub.Join(c, room, hub.JoinOptions{Mark: s.hub.Mark(room), Live: !history})
	if err != nil {
		s.log.Error("a socket could not join a room", "room", room, "err", err)
		return chat.Errorf(chat.CodeInternal, "the room could not be joined")
	}
	return nil
}

// refuse answers a refused room event: its negative acknowledgement, or,
// when it asked for none, an `error` event (refusals.go).
func (s *Server) refuse(c *conn, ack engine.Ack, e *chat.Error) {
	ev := refusalOf(e)
	if ack != nil {
		s.m.rejected.WithLabelValues(ev.Code).Inc()
		ack(ackEvent{Error: ev})
		return
	}
	s.refuseEvent(c, nil, ev)
}

// memberRooms loads the rooms of a verified user at CONNECT, has this
// node receive them (Hub.Warm: a room new here is subscribed to, and
// what other nodes publish to it after that reaches the client), then
// takes each one's mark, all before the client is told it is connected.
func (s *Server) memberRooms(c *conn) {
	if c.user == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), roomTimeout)
	defer cancel()
	rooms, err := s.o.Rooms.RoomsOf(ctx, c.user)
	if err != nil {
		s.log.Warn("a verified user's rooms could not be read at CONNECT; it joins the global room only", "err", err)
		return
	}
	ids := make([]string, len(rooms))
	for i, r := range rooms {
		ids[i] = r.ID
	}
	wctx, wcancel := context.WithTimeout(context.Background(), warmWait)
	defer wcancel()
	if err := s.hub.Warm(wctx, ids, warmHold); err != nil {
		s.m.warmMisses.Inc()
		s.log.Warn("a verified user's rooms were not all subscribed to before it was told it is connected; what other nodes publish to them in the next moments may not reach it",
			"rooms", len(ids), "err", err)
	}
	c.rooms = make([]roomJoin, 0, len(rooms))
	for _, r := range rooms {
		c.rooms = append(c.rooms, roomJoin{id: r.ID, mark: s.hub.Mark(r.ID)})
	}
}

// warmWait bounds how long a CONNECT waits for its rooms' subscriptions (a
// round trip to Redis, as a rule); warmHold is how long they are held for
// the socket's joins, which follow the CONNECT at once.
const (
	warmWait = time.Second
	warmHold = 10 * time.Second
)

// roomJoin is a room a socket joins in Ready, with its mark.
type roomJoin struct {
	id   string
	mark uint64
}

// joinMemberRooms joins the socket to the rooms memberRooms loaded: live,
// and, when it comes back, with what it missed in each after its offset.
func (s *Server) joinMemberRooms(c *conn) {
	for _, r := range c.rooms {
		o := hub.JoinOptions{Mark: r.mark, Live: true, RecoverFrom: c.join.RecoverFrom, ResumeAfter: c.join.ResumeAfter}
		if err := s.hub.Join(c, r.id, o); err != nil {
			s.log.Warn("a socket could not join one of its user's rooms", "room", r.id, "err", err)
		}
	}
	c.rooms = nil
}

// seeUser records a verified user as seen, in the background.
func (s *Server) seeUser(u *chat.User) {
	if u == nil {
		return
	}
	go s.guard("see user", func() {
		ctx, cancel := context.WithTimeout(context.Background(), roomTimeout)
		defer cancel()
		if err := s.o.Rooms.SeeUser(ctx, u); err != nil {
			s.log.Warn("a verified user could not be recorded", "err", err)
		}
	})
}

// roomOf reads the room of a typing or message payload: the global room
// when absent; ok is false when it is not a room id.
func roomOf(args []any) (room string, ok bool) {
	var obj map[string]any
	if len(args) > 0 {
		obj, _ = args[0].(map[string]any)
	}
	raw, present := obj["room"]
	if !present || raw == nil {
		return chat.GlobalRoom, true
	}
	room, ok = raw.(string)
	if !ok || room == "" || len(room) > 64 {
		return "", false
	}
	return room, true
}
