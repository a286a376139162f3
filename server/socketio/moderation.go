package socketio

import (
	"context"
	"errors"
	"time"

	"github.com/scalable-chat-go/server/chat"
	"github.com/scalable-chat-go/server/socketio/internal/engine"
)

// Moderation at the edge.
//
// A moderator (a verified user whose roles name moderator or admin) emits
// `event:delete` {id} with an acknowledgement: {ok: true} once the
// tombstone is durable, or {ok: false, error: {code, reason}} (forbidden,
// not_found, unavailable). Every client then receives `message:deleted`
// {id}. A banned client's CONNECT is refused (connect_error "banned" with
// {code, reason, until}), its events get `error` {code: "banned"}, and
// when a ban comes into force (made on this node or another: Moderation
// tells the edge, see chat.Moderation.Watch) its sockets get that `error`
// and are disconnected at once.

// EventDelete is the client's request to delete a message.
const EventDelete = "event:delete"

// deleteTimeout bounds how long a deletion waits to be durable.
const deleteTimeout = 10 * time.Second

func bannedData(b chat.Ban) refusal {
	r := refusal{Code: chat.CodeBanned, Reason: "you are banned"}
	if b.Reason != "" {
		r.Reason = "you are banned: " + b.Reason
	}
	if !b.Until.IsZero() {
		r.Until = b.Until.UTC().Format(chat.TimeLayout)
	}
	return r
}

// banned returns the ban that keeps c out; name is a name the client gives
// with an event (an anonymous client's username), "" for its own.
func (s *Server) banned(c *conn, name string) (chat.Ban, bool) {
	if s.o.Moderation == nil {
		return chat.Ban{}, false
	}
	if name == "" {
		c.mu.Lock()
		name = c.name
		c.mu.Unlock()
	}
	return s.o.Moderation.Match(c.user, name, c.sock.Addr())
}

// addrBanned tells whether an IP ban keeps addr out, with the data of the
// refusal (for the Admin UI's namespace).
func (s *Server) addrBanned(addr string) (any, bool) {
	if s.o.Moderation == nil {
		return nil, false
	}
	b, banned := s.o.Moderation.Match(nil, "", addr)
	if !banned {
		return nil, false
	}
	return bannedData(b), true
}

// refuseBanned answers an event of a banned client: `error` {code:
// "banned"} (at most once a second) and a negative acknowledgement.
func (s *Server) refuseBanned(c *conn, name string, args []any, ack engine.Ack) bool {
	if s.o.Moderation == nil {
		return false
	}
	if c.user == nil && name == "" && len(args) > 0 {
		if obj, ok := args[0].(map[string]any); ok {
			if u, ok := obj["username"].(string); ok {
				name, _ = chat.CleanName(u, s.limits())
			}
		}
	}
	b, ok := s.banned(c, name)
	if !ok {
		if name != "" {
			b, ok = s.banned(c, "")
		}
		if !ok {
			return false
		}
	}
	d := bannedData(b)
	s.refuseEvent(c, ack, &errorEvent{Code: d.Code, Reason: d.Reason, Until: d.Until})
	return true
}

// onDelete handles `event:delete` {id}.
func (s *Server) onDelete(c *conn, args []any, ack engine.Ack) {
	fail := func(e *chat.Error) {
		if ack == nil {
			s.refuseEvent(c, nil, refusalOf(e))
			return
		}
		// With an acknowledgement, it alone says why.
		s.m.rejected.WithLabelValues(e.Code).Inc()
		ack(ackEvent{Error: refusalOf(e)})
	}
	// A moderator deletes any message, the owner of a room its messages
	// (chat.Moderation decides from the stored message); an anonymous
	// socket none.
	if s.o.Moderation == nil || c.user == nil {
		fail(chat.ErrForbidden)
		return
	}
	var id string
	if len(args) > 0 {
		if obj, ok := args[0].(map[string]any); ok {
			id, _ = obj["id"].(string)
		}
	}
	if id == "" {
		fail(chat.Errorf(chat.CodeInvalidPayload, "event:delete wants {id}"))
		return
	}
	// The deletion waits for durability off the session's worker.
	go s.guard("delete", func() {
		ctx, cancel := context.WithTimeout(context.Background(), deleteTimeout)
		defer cancel()
		err := s.o.Moderation.Delete(ctx, c.user, id)
		switch {
		case err == nil:
			if ack != nil {
				ack(ackEvent{OK: true, ID: id})
			}
		case errors.Is(err, chat.ErrNotFound):
			fail(chat.Errorf(chat.CodeNotFound, "no message has the id %q", limitID(id)))
		default:
			fail(chat.CodeOf(err))
		}
	})
}

func limitID(id string) string {
	if len(id) > 64 {
		return id[:64]
	}
	return id
}

// kick disconnects every socket of this node that b keeps out, after
// telling it why.
func (s *Server) kick(b chat.Ban) {
	d := bannedData(b)
	for _, c := range s.snapshot() {
		if got, ok := s.banned(c, ""); !ok || got.ID != b.ID {
			continue
		}
		s.m.banDisconnects.Inc()
		s.emitError(c, &errorEvent{Code: d.Code, Reason: d.Reason, Until: d.Until})
		c.sock.Disconnect()
	}
}

// enforceBans disconnects the sockets that a ban in force keeps out (a ban
// this node took in from the store rather than from an event).
func (s *Server) enforceBans() {
	if s.o.Moderation == nil {
		return
	}
	s.o.Moderation.Expire()
	if len(s.o.Moderation.Bans()) == 0 {
		return
	}
	for _, c := range s.snapshot() {
		if b, ok := s.banned(c, ""); ok && c.sock.Connected() {
			d := bannedData(b)
			s.m.banDisconnects.Inc()
			s.emitError(c, &errorEvent{Code: d.Code, Reason: d.Reason, Until: d.Until})
			c.sock.Disconnect()
		}
	}
}
