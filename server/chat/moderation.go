package chat

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Moderation: taking back what was said, and keeping an abuser out.
//
// A deletion travels like a message: it is admitted to the Log (so it is
// durable and, with Kafka, ordered after the message in the topic), then
// broadcast as EventMessageDeleted to every node, each of which forgets the
// message from its history ring; the Store keeps a tombstone, so no history
// page, recovery or replay returns the message again, even when the
// tombstone is stored before the message itself (a lagging consumer).
//
// A ban is stored (the source of truth, read again at start and every
// refresh), cached by every node, and announced to the other nodes by a
// control event of the Broker (EventBanAdded, EventBanLifted: never sent
// to clients). The edge refuses a banned client's CONNECT and events, and
// disconnects its sockets when the ban comes into force here (Watch),
// whichever node it was made on. A ban with an end expires by itself.

// Events of moderation.
const (
	// EventMessageDeleted: {id}, to every client: the message is gone.
	EventMessageDeleted = "message:deleted"
	// EventBanAdded and EventBanLifted are internal: they carry a Ban
	// (BanWire) or {id} between nodes and never reach a client.
	EventBanAdded  = "chat:ban"
	EventBanLifted = "chat:unban"
)

// IsInternal reports whether an event of that name is for the nodes only.
func IsInternal(name string) bool { return name == EventBanAdded || name == EventBanLifted }

// Error codes of moderation.
const (
	// CodeUnauthorized: no valid token (CONNECT refused, HTTP 401).
	CodeUnauthorized = "unauthorized"
	// CodeForbidden: the caller is not a moderator.
	CodeForbidden = "forbidden"
	// CodeBanned: the client is banned (with until, when the ban ends).
	CodeBanned = "banned"
	// CodeNotFound: no message (or ban) has the id.
	CodeNotFound = "not_found"
)

// Deletion is the tombstone of a message a moderator deleted.
type Deletion struct {
	// ID is the deleted message's id.
	ID string
	// By is the moderator's user id ("admin-token" for the API's token).
	By string
	// At is when it was deleted (UTC, milliseconds).
	At time.Time
	// Room is the deleted message's room ("" the global room, or not
	// known): where the deletion is announced. It is not stored.
	Room string
}

// DeletedWire is the payload of EventMessageDeleted: the message's id,
// and its room outside the global room.
type DeletedWire struct {
	ID   string `json:"id"`
	Room string `json:"room,omitempty"`
}

// DeletionEvent returns the event that tells every client of the
// message's room that d's message is gone.
func DeletionEvent(d Deletion) Event {
	return Event{Name: EventMessageDeleted, Data: DeletedWire{ID: d.ID, Room: d.Room}, Deletion: &d}
}

// Ban keeps a user, a name or an address out.
type Ban struct {
	ID string
	// One of UserID (a verified user), Username (a name, compared without
	// regard to case) and IP (an address or a CIDR range) is set.
	UserID, Username, IP string
	Reason               string
	// By is the moderator's user id.
	By        string
	CreatedAt time.Time
	// Until is when the ban ends; zero: never.
	Until time.Time
}

// Active reports whether b is in force at now.
func (b Ban) Active(now time.Time) bool { return b.Until.IsZero() || now.Before(b.Until) }

// BanWire is a Ban as the API and the nodes write it.
type BanWire struct {
	ID        string `json:"id"`
	UserID    string `json:"userId,omitempty"`
	Username  string `json:"username,omitempty"`
	IP        string `json:"ip,omitempty"`
	Reason    string `json:"reason"`
	By        string `json:"by"`
	CreatedAt string `json:"createdAt"`
	Until     string `json:"until,omitempty"`
}

// Wire returns b as the API writes it.
func (b Ban) Wire() BanWire {
	w := BanWire{ID: b.ID, UserID: b.UserID, Username: b.Username, IP: b.IP, Reason: b.Reason, By: b.By,
		CreatedAt: b.CreatedAt.UTC().Format(TimeLayout)}
	if !b.Until.IsZero() {
		w.Until = b.Until.UTC().Format(TimeLayout)
	}
	return w
}

// Ban returns the Ban w describes; false when w is not one.
func (w BanWire) Ban() (Ban, bool) {
	b := Ban{ID: w.ID, UserID: w.UserID, Username: w.Username, IP: w.IP, Reason: w.Reason, By: w.By}
	var err error
	if b.CreatedAt, err = time.Parse(time.RFC3339Nano, w.CreatedAt); err != nil {
		return Ban{}, false
	}
	if w.Until != "" {
		if b.Until, err = time.Parse(time.RFC3339Nano, w.Until); err != nil {
			return Ban{}, false
		}
	}
	b.CreatedAt, b.Until = b.CreatedAt.UTC(), b.Until.UTC()
	if b.ID == "" || len(b.ID) > 64 || targets(b) != 1 {
		return Ban{}, false
	}
	return b, true
}

func targets(b Ban) int {
	n := 0
	for _, s := range []string{b.UserID, b.Username, b.IP} {
		if s != "" {
			n++
		}
	}
	return n
}

// BanStore keeps bans.
//
// SaveBan stores b (a ban stored before under its id is left as it is).
// LiftBan ends the ban with id at; false when no ban in force has it.
// ActiveBans returns every ban in force at now.
type BanStore interface {
	SaveBan(ctx context.Context, b Ban) error
	LiftBan(ctx context.Context, id string, at time.Time) (bool, error)
	ActiveBans(ctx context.Context, now time.Time) ([]Ban, error)
}

// ErrForbidden refuses a moderation action to a caller who is not a
// moderator.
var ErrForbidden = &Error{Code: CodeForbidden, Reason: "only a moderator may do this"}

// BanRequest is what a moderator asks for: one target, for Duration (0:
// for good), with a reason.
type BanRequest struct {
	UserID, Username, IP string
	Duration             time.Duration
	Reason               string
}

// Limits of a ban request.
const (
	maxBanReason   = 500
	maxBanDuration = 10 * 365 * 24 * time.Hour
	maxTargetLen   = 256
)

// Action is one moderation action, for the audit log and metrics.
type Action struct {
	// Kind is "delete", "ban" or "unban".
	Kind string
	// By is the moderator's user id.
	By string
	// Target is the message id, or the ban (its id and what it names).
	Target string
	At     time.Time
}

// ControlPublisher sends control events to the other nodes (a Broker).
type ControlPublisher interface {
	PublishControl(e Event)
}

// alone is the ControlPublisher of a node without others.
type alone struct{}

func (alone) PublishControl(Event) {}

// ModerationOptions configure a Moderation.
type ModerationOptions struct {
	Log Log
	// Fanout carries deletions to every client; Control carries bans to
	// the other nodes.
	Fanout  Fanout
	Control ControlPublisher
	History *History
	Bans    BanStore
	// Rooms, when set, lets the owner of a room delete its messages.
	Rooms RoomStore
	// Limits clean a banned username as a username is cleaned.
	Limits Limits
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// OnAction, when set, is told of every action taken (the audit log).
	OnAction func(Action)
	// Replica: this node keeps a store of its own (no shared database), so
	// bans announced by other nodes are stored here too.
	Replica bool
}

// Moderation deletes messages and keeps the bans, cached for the edge.
// It is safe for concurrent use.
type Moderation struct {
	o ModerationOptions

	watchMu  sync.RWMutex
	watchers []func(Ban)

	mu     sync.RWMutex
	bans   map[string]Ban
	byUser map[string]string // user id -> ban id
	byName map[string]string // folded name -> ban id
	byAddr map[netip.Addr]string
	ranges []rangeBan
}

type rangeBan struct {
	p  netip.Prefix
	id string
}

// NewModeration returns the moderation of a node; Load fills its ban
// cache from the store.
func NewModeration(o ModerationOptions) *Moderation {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Limits == (Limits{}) {
		o.Limits = DefaultLimits()
	}
	if o.Control == nil {
		o.Control = alone{}
	}
	m := &Moderation{o: o}
	m.index(map[string]Ban{})
	return m
}

// Delete deletes the message with id, for by (a moderator, or the owner
// of the message's room): admits the tombstone to the Log, broadcasts
// EventMessageDeleted to the message's room, and waits until the tombstone
// is durable or ctx ends. Deleting a deleted message again succeeds. It
// returns ErrForbidden (to anyone else, whether the message exists or
// not), ErrNotFound for an id no message has, or ErrUnavailable when the
// Log cannot take it now.
func (m *Moderation) Delete(ctx context.Context, by *User, id string) error {
	if by == nil {
		return ErrForbidden
	}
	if id == "" || len(id) > 128 || !utf8.ValidString(id) {
		return Errorf(CodeInvalidPayload, "id must be a message id")
	}
	// The room is the stored message's, never the caller's word.
	msg, known, err := m.o.History.Lookup(ctx, id)
	if err != nil {
		return fmt.Errorf("look up message %s: %w", id, err)
	}
	if !by.IsModerator() {
		if !known || !m.ownsRoom(ctx, by, msg.Room) {
			return ErrForbidden
		}
	} else if !known {
		return ErrNotFound
	}
	d := Deletion{ID: id, By: by.ID, At: m.o.Now().UTC().Truncate(time.Millisecond), Room: msg.Room}
	done := make(chan error, 1)
	if err := m.o.Log.Delete(d, func(err error) { done <- err }); err != nil {
		return err
	}
	m.o.Fanout.Broadcast(RoomOf(msg), DeletionEvent(d))
	m.act(Action{Kind: "delete", By: d.By, Target: id, At: d.At})
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("delete message %s: %w", id, ctx.Err())
	}
}

// ownsRoom reports whether by owns room, a room other than the global
// one: the owner of a room moderates it.
func (m *Moderation) ownsRoom(ctx context.Context, by *User, room string) bool {
	if room == "" || m.o.Rooms == nil {
		return false
	}
	mem, err := m.o.Rooms.Member(ctx, room, by.ID)
	return err == nil && mem.Role == RoomOwner
}

// Ban keeps r's target out, for by: stored, cached, announced to every
// node (whose edge disconnects the target's sockets).
func (m *Moderation) Ban(ctx context.Context, by *User, r BanRequest) (Ban, error) {
	if !by.IsModerator() {
		return Ban{}, ErrForbidden
	}
	b := Ban{ID: uuid.NewString(), UserID: strings.TrimSpace(r.UserID), IP: strings.TrimSpace(r.IP), Reason: clean(r.Reason, false), By: by.ID}
	b.Username = clean(r.Username, true)
	switch {
	case targets(b) != 1:
		return Ban{}, Errorf(CodeInvalidPayload, "a ban names exactly one of userId, username and ip")
	case len(b.UserID) > maxTargetLen || len(b.Username) > maxTargetLen || !utf8.ValidString(b.UserID):
		return Ban{}, Errorf(CodeInvalidPayload, "the target is too long")
	case b.IP != "" && !validBanIP(b.IP):
		return Ban{}, Errorf(CodeInvalidPayload, "ip must be an IP address or a CIDR range (203.0.113.7, 2001:db8::/32), without a zone (%%eth0)")
	case r.Duration < 0 || r.Duration > maxBanDuration:
		return Ban{}, Errorf(CodeInvalidPayload, "durationSec must be from 0 (for good) to %d", int64(maxBanDuration/time.Second))
	case utf8.RuneCountInString(b.Reason) > maxBanReason:
		return Ban{}, Errorf(CodeInvalidPayload, "reason is longer than %d characters", maxBanReason)
	}
	if b.IP != "" {
		b.IP = canonicalIP(b.IP)
	}
	b.CreatedAt = m.o.Now().UTC().Truncate(time.Millisecond)
	if r.Duration > 0 {
		b.Until = b.CreatedAt.Add(r.Duration).Truncate(time.Millisecond)
	}
	if err := m.o.Bans.SaveBan(ctx, b); err != nil {
		return Ban{}, fmt.Errorf("store ban: %w", err)
	}
	m.put(b)
	m.o.Control.PublishControl(Event{Name: EventBanAdded, Data: b.Wire()})
	m.notify(b)
	m.act(Action{Kind: "ban", By: b.By, Target: describeBan(b), At: b.CreatedAt})
	return b, nil
}

// Lift ends the ban with id, for by; ErrNotFound when no ban in force has
// it.
func (m *Moderation) Lift(ctx context.Context, by *User, id string) error {
	if !by.IsModerator() {
		return ErrForbidden
	}
	if id == "" || len(id) > 64 {
		return ErrNotFound
	}
	now := m.o.Now().UTC().Truncate(time.Millisecond)
	found, err := m.o.Bans.LiftBan(ctx, id, now)
	if err != nil {
		return fmt.Errorf("lift ban %s: %w", id, err)
	}
	m.remove(id)
	if !found {
		return ErrNotFound
	}
	m.o.Control.PublishControl(Event{Name: EventBanLifted, Data: DeletedWire{ID: id}})
	m.act(Action{Kind: "unban", By: by.ID, Target: id, At: now})
	return nil
}

// Bans returns the bans in force, newest first.
func (m *Moderation) Bans() []Ban {
	now := m.o.Now()
	m.mu.RLock()
	out := make([]Ban, 0, len(m.bans))
	for _, b := range m.bans {
		if b.Active(now) {
			out = append(out, b)
		}
	}
	m.mu.RUnlock()
	sortBans(out)
	return out
}

// Load reads the bans in force from the store into the cache, replacing
// it: at start, and every refresh (what a node missed while the cluster
// link was down comes back this way).
func (m *Moderation) Load(ctx context.Context) error {
	bans, err := m.o.Bans.ActiveBans(ctx, m.o.Now())
	if err != nil {
		return fmt.Errorf("read bans: %w", err)
	}
	all := make(map[string]Ban, len(bans))
	for _, b := range bans {
		all[b.ID] = b
	}
	m.mu.Lock()
	m.index(all)
	m.mu.Unlock()
	return nil
}

// Watch has fn called with every ban that comes into force on this node,
// made here or announced by another node (the edge disconnects the sockets
// it keeps out). Call it before the node serves; fn must not block.
func (m *Moderation) Watch(fn func(Ban)) {
	m.watchMu.Lock()
	defer m.watchMu.Unlock()
	m.watchers = append(m.watchers, fn)
}

func (m *Moderation) notify(b Ban) {
	m.watchMu.RLock()
	defer m.watchMu.RUnlock()
	for _, fn := range m.watchers {
		fn(b)
	}
}

// HandleControl takes in another node's control event (ControlEventHandler).
func (m *Moderation) HandleControl(e Event) {
	if b, added := m.Apply(context.Background(), e, true); added {
		m.notify(b)
	}
}

var _ ControlEventHandler = (*Moderation)(nil)

// Apply takes in an internal event (EventBanAdded or EventBanLifted) from
// this node or another: the cache follows it (and, on a replica, the
// store). It returns the ban that came into force, if any.
func (m *Moderation) Apply(ctx context.Context, e Event, remote bool) (Ban, bool) {
	switch e.Name {
	case EventBanAdded:
		var w BanWire
		if !decodeData(e.Data, &w) {
			return Ban{}, false
		}
		b, ok := w.Ban()
		if !ok || !b.Active(m.o.Now()) {
			return Ban{}, false
		}
		if b.IP != "" && !validBanIP(b.IP) {
			return Ban{}, false
		}
		m.put(b)
		if remote && m.o.Replica {
			_ = m.o.Bans.SaveBan(ctx, b)
		}
		return b, true
	case EventBanLifted:
		var w DeletedWire
		if decodeData(e.Data, &w) && w.ID != "" {
			m.remove(w.ID)
			if remote && m.o.Replica {
				_, _ = m.o.Bans.LiftBan(ctx, w.ID, m.o.Now().UTC().Truncate(time.Millisecond))
			}
		}
	}
	return Ban{}, false
}

// decodeData reads an event's payload into v: a value of v's type (from
// this node), or its JSON decoded (from another node).
func decodeData(data any, v any) bool {
	switch d := data.(type) {
	case BanWire:
		if p, ok := v.(*BanWire); ok {
			*p = d
			return true
		}
	case DeletedWire:
		if p, ok := v.(*DeletedWire); ok {
			*p = d
			return true
		}
	}
	b, err := json.Marshal(data)
	if err != nil {
		return false
	}
	return json.Unmarshal(b, v) == nil
}

// Match returns the ban in force that keeps out a client: user (nil when
// anonymous), the name it gives, and its address.
func (m *Moderation) Match(user *User, name, addr string) (Ban, bool) {
	now := m.o.Now()
	m.mu.RLock()
	defer m.mu.RUnlock()
	if len(m.bans) == 0 {
		return Ban{}, false
	}
	var ids []string
	if user != nil {
		ids = append(ids, m.byUser[user.ID])
		name = user.Name
	}
	if name != "" {
		ids = append(ids, m.byName[foldName(name)])
	}
	if a, err := netip.ParseAddr(addr); err == nil {
		a = a.Unmap()
		ids = append(ids, m.byAddr[a])
		// An IPv6 range that spans the mapped space (::/80, say) covers
		// IPv4 clients too.
		mapped := netip.AddrFrom16(a.As16())
		for _, r := range m.ranges {
			if r.p.Contains(a) || (a.Is4() && r.p.Contains(mapped)) {
				ids = append(ids, r.id)
			}
		}
	}
	for _, id := range ids {
		if b, ok := m.bans[id]; ok && id != "" && b.Active(now) {
			return b, true
		}
	}
	return Ban{}, false
}

func (m *Moderation) put(b Ban) {
	m.mu.Lock()
	defer m.mu.Unlock()
	all := make(map[string]Ban, len(m.bans)+1)
	for id, x := range m.bans {
		all[id] = x
	}
	all[b.ID] = b
	m.index(all)
}

func (m *Moderation) remove(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.bans[id]; !ok {
		return
	}
	all := make(map[string]Ban, len(m.bans))
	for x, b := range m.bans {
		if x != id {
			all[x] = b
		}
	}
	m.index(all)
}

// index rebuilds the look-ups over all, dropping the bans that ended
// (bans are few; a rebuild per change keeps Match lock-light). m.mu is
// held.
func (m *Moderation) index(all map[string]Ban) {
	now := m.o.Now()
	m.bans = make(map[string]Ban, len(all))
	m.byUser, m.byName, m.byAddr, m.ranges = map[string]string{}, map[string]string{}, map[netip.Addr]string{}, nil
	for id, b := range all {
		if !b.Active(now) {
			continue
		}
		m.bans[id] = b
		switch {
		case b.UserID != "":
			m.byUser[b.UserID] = id
		case b.Username != "":
			m.byName[foldName(b.Username)] = id
		case b.IP != "":
			// Bans stored before addresses were normalised are read as now.
			a, p, ok := parseBanIP(b.IP)
			switch {
			case ok && a.IsValid():
				m.byAddr[a] = id
			case ok:
				m.ranges = append(m.ranges, rangeBan{p: p, id: id})
			}
		}
	}
}

// Expire drops the bans that ended from the cache.
func (m *Moderation) Expire() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.index(m.bans)
}

func (m *Moderation) act(a Action) {
	if m.o.OnAction != nil {
		m.o.OnAction(a)
	}
}

func foldName(s string) string { return FoldName(s) }

func validBanIP(s string) bool {
	_, _, ok := parseBanIP(s)
	return ok
}

// parseBanIP reads a ban's address or CIDR range the way client addresses
// are read: an IPv4-mapped address (::ffff:a.b.c.d) is its IPv4 address,
// and an IPv4-mapped range (::ffff:a.b.c.d/104) its IPv4 range, since a
// client's address is unmapped before it is matched; a range is masked. A
// zone (fe80::1%eth0) is refused: no client address has one, so such a
// ban would never hold.
func parseBanIP(s string) (netip.Addr, netip.Prefix, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		if a.Zone() != "" {
			return netip.Addr{}, netip.Prefix{}, false
		}
		return a.Unmap(), netip.Prefix{}, true
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Addr{}, netip.Prefix{}, false
	}
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return netip.Addr{}, p.Masked(), true
}

func canonicalIP(s string) string {
	a, p, ok := parseBanIP(s)
	switch {
	case !ok:
		return s
	case a.IsValid():
		return a.String()
	}
	return p.String()
}

func describeBan(b Ban) string {
	switch {
	case b.UserID != "":
		return b.ID + " userId=" + b.UserID
	case b.Username != "":
		return b.ID + " username=" + b.Username
	}
	return b.ID + " ip=" + b.IP
}

func sortBans(bs []Ban) {
	slices.SortFunc(bs, func(a, b Ban) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}
