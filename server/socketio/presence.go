package socketio

import (
	"context"
	"time"

	"github.com/scalable-chat-go/server/chat"
	"github.com/scalable-chat-go/server/socketio/internal/engine"
)

// Presence: who is online.
//
// Every PRESENCE_INTERVAL the node syncs its view (its connections, and
// the distinct users among those with a name) with the cluster's
// (chat.Presence) and, when the cluster's view changed, tells its own
// clients: `presence` {online, users} (users omitted above
// PRESENCE_LIST_LIMIT), and one `presence:join` or `presence:leave`
// {name, userId?} per user who came or went. Every node computes the same
// cluster view, so these events never cross the cluster link. A newcomer
// gets `presence` at once: the last view, its count corrected by this
// node's change since.

// presenceUser is a chat.OnlineUser on the wire.
type presenceUser struct {
	Name   string `json:"name"`
	UserID string `json:"userId,omitempty"`
	Since  string `json:"since"`
}

type presenceEvent struct {
	Online int             `json:"online"`
	Users  *[]presenceUser `json:"users,omitempty"`
}

type presenceChange struct {
	Name   string `json:"name"`
	UserID string `json:"userId,omitempty"`
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

// PresenceView is the cluster's view at the last presence tick (GET
// /api/presence).
func (s *Server) PresenceView() chat.PresenceView {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	v := s.lastView
	if s.lastOnline < 0 {
		v.Online = len(s.conns)
	}
	return v
}

// localView is this node's view now. connMu is held.
func (s *Server) localViewLocked() chat.PresenceView {
	v := chat.PresenceView{Online: len(s.conns)}
	users := make([]chat.OnlineUser, 0, len(s.conns))
	for c := range s.conns {
		c.mu.Lock()
		name := c.name
		c.mu.Unlock()
		if name != "" {
			users = append(users, chat.OnlineUser{Name: name, UserID: c.userID(), Since: c.since})
		}
	}
	v.Users, v.Truncated = chat.MergeUsers(s.o.PresenceListLimit, users)
	return v
}

// sendPresence tells one socket who is online: the last view, with this
// node's change of count since.
func (s *Server) sendPresence(c *conn) {
	s.connMu.Lock()
	n := len(s.conns)
	if s.lastOnline >= 0 {
		n = max(s.lastOnline+n-s.lastLocal, n)
	}
	users := wireUsers(s.lastView)
	s.connMu.Unlock()
	_ = c.sock.Emit(chat.EventPresence, presenceEvent{Online: n, Users: users})
}

// loop sends presence and expires typing at most once an interval.
func (s *Server) loop() {
	defer close(s.stopped)
	t := time.NewTicker(s.o.PresenceInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		s.eng.Guard("presence", s.presenceTick)
		s.eng.Guard("typing", s.expireTyping)
		s.eng.Guard("token expiry", s.expireTokens)
		s.eng.Guard("bans", s.enforceBans)
	}
}

func (s *Server) presenceTick() {
	s.connMu.Lock()
	local := s.localViewLocked()
	s.connMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), s.o.PresenceInterval)
	view, err := s.o.Presence.Sync(ctx, local)
	cancel()
	if err != nil {
		s.log.Debug("cluster presence unavailable; using this node's view", "err", err)
		view = local
	}
	if !view.Truncated && len(view.Users) > s.o.PresenceListLimit {
		view.Users, view.Truncated = nil, true
	}

	s.connMu.Lock()
	var joined, left []chat.OnlineUser
	if !view.Truncated && !s.lastView.Truncated && s.lastOnline >= 0 {
		joined, left = diffUsers(s.lastView.Users, view.Users)
	}
	// A client that joined since the last tick was told an estimate: send
	// everyone the view when it or this node's clients changed.
	changed := view.Online != s.lastOnline || s.presenceDirty || view.Truncated != s.lastView.Truncated ||
		len(joined) > 0 || len(left) > 0
	s.presenceDirty = false
	s.lastOnline = view.Online
	s.lastLocal = local.Online
	s.lastView = view
	s.heldNames = s.heldNamesLocked(view)
	var all []*conn
	if changed {
		all = make([]*conn, 0, len(s.conns))
		for c := range s.conns {
			all = append(all, c)
		}
	}
	s.connMu.Unlock()
	if !changed {
		return
	}
	frames := make([]*engine.Frame, 0, 1+len(joined)+len(left))
	for _, u := range joined {
		frames = append(frames, engine.MustEventFrame(chat.EventPresenceJoin, presenceChange{Name: u.Name, UserID: u.UserID}))
	}
	for _, u := range left {
		frames = append(frames, engine.MustEventFrame(chat.EventPresenceLeave, presenceChange{Name: u.Name, UserID: u.UserID}))
	}
	frames = append(frames, engine.MustEventFrame(chat.EventPresence, presenceEvent{Online: view.Online, Users: wireUsers(view)}))
	for _, c := range all {
		for _, f := range frames {
			c.sock.Send(f)
		}
	}
	n := float64(len(all))
	s.m.deliveries.WithLabelValues(chat.EventPresenceJoin).Add(n * float64(len(joined)))
	s.m.deliveries.WithLabelValues(chat.EventPresenceLeave).Add(n * float64(len(left)))
	s.m.deliveries.WithLabelValues(chat.EventPresence).Add(n)
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
