package socketio

import (
	"context"

	"github.com/scalable-chat-go/server/chat"
	"github.com/scalable-chat-go/server/socketio/internal/engine"
)

// Names an anonymous client may not take.
//
// With AUTH_MODE=optional an anonymous client chats under a name it types;
// its messages say verified: false, but a reader who trusts the name is
// fooled all the same. So an anonymous client may not give a name that a
// verified user (a guest included) online anywhere in the cluster shows,
// nor, at its CONNECT, one a live guest session holds (chat.NameClaims:
// held until the guest's token ends, online or not). Such a CONNECT is
// refused with connect_error name_taken, such an event with the error
// name_taken (and its negative acknowledgement). Names compare as
// chat.FoldName does, after the cleaning every name gets (blank
// look-alikes gone).
//
// The names of verified users online are indexed at every sweep
// (SweepInterval, PRESENCE_INTERVAL): this node's verified sockets, and
// the hub's view of the global room's presence, the cluster's, when it
// lists its users (up to PRESENCE_LIST_LIMIT); a user who just connected
// elsewhere is known within a tick or two. The guest sessions are
// looked up at CONNECT only, which is decided off the engine's workers:
// an event never waits on the network.

// refreshHeldNames indexes the names of the verified users online.
func (s *Server) refreshHeldNames() {
	if s.o.AuthMode != chat.AuthOptional {
		return
	}
	view := s.hub.PresenceView(chat.GlobalRoom)
	s.connMu.Lock()
	s.heldNames = s.heldNamesLocked(view)
	s.connMu.Unlock()
}

// heldNamesLocked returns the folded names of the verified users online:
// this node's, and the cluster's view's; connMu is held.
func (s *Server) heldNamesLocked(view chat.PresenceView) map[string]struct{} {
	if s.o.AuthMode != chat.AuthOptional {
		return nil
	}
	held := make(map[string]struct{}, len(view.Users))
	for _, u := range view.Users {
		if u.UserID != "" {
			held[chat.FoldName(u.Name)] = struct{}{}
		}
	}
	for c := range s.conns {
		if c.user != nil && c.user.Name != "" {
			held[chat.FoldName(c.user.Name)] = struct{}{}
		}
	}
	return held
}

// nameHeld reports whether an anonymous client may not use name: a
// verified user online shows it.
func (s *Server) nameHeld(name string) bool {
	if name == "" {
		return false
	}
	s.connMu.Lock()
	_, held := s.heldNames[chat.FoldName(name)]
	s.connMu.Unlock()
	return held
}

// anonymousName is the name an anonymous client of AUTH_MODE=optional
// gives in its CONNECT, to be checked (decidesLater); "" otherwise.
func (s *Server) anonymousName(sock *engine.Socket, h *engine.Hello) string {
	if s.o.AuthMode != chat.AuthOptional || s.o.Verifier == nil || bearer(h.Auth, sock.Authorization()) != "" {
		return ""
	}
	name, _ := h.Auth["username"].(string)
	return name
}

// refuseHeldConnectName refuses the CONNECT of an anonymous client whose
// name a verified user online shows, or a live guest session holds.
func (s *Server) refuseHeldConnectName(c *conn) error {
	if c.user != nil || s.o.AuthMode != chat.AuthOptional || c.name == "" {
		return nil
	}
	held := s.nameHeld(c.name)
	if !held && s.o.Names != nil {
		ctx, cancel := context.WithTimeout(context.Background(), verifyTimeout)
		holder, err := s.o.Names.Holder(ctx, c.name)
		cancel()
		if err != nil {
			s.log.Debug("guest names unavailable; the name is taken as free", "err", err)
		}
		held = holder != ""
	}
	if !held {
		return nil
	}
	s.m.connectRefused.WithLabelValues(chat.CodeNameTaken).Inc()
	return refuse(chat.CodeNameTaken, chat.CodeNameTaken, "this name is a signed-in user's; sign in, or choose another name")
}

// refuseHeldName refuses an anonymous client's event (event:message,
// typing) that gives a name a verified user online shows.
func (s *Server) refuseHeldName(c *conn, args []any, ack engine.Ack) bool {
	if c.user != nil || s.o.AuthMode != chat.AuthOptional || len(args) == 0 {
		return false
	}
	obj, _ := args[0].(map[string]any)
	u, ok := obj["username"].(string)
	if !ok {
		return false
	}
	name, _ := chat.CleanName(u, s.limits())
	if !s.nameHeld(name) {
		return false
	}
	s.refuseEvent(c, ack, &errorEvent{Code: chat.CodeNameTaken, Reason: "this name is a signed-in user's; sign in, or choose another name"})
	return true
}
