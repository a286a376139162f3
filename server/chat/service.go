package chat

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Service is the accept flow: it turns a client's `event:message` payload
// into an accepted message, admits it to the Log, and broadcasts it.
//
// A message is broadcast only after the Log admitted it, so a message the
// Log refuses is never seen by anyone.
//
// Retries. A client that sends a message with a clientId may send it again
// until it is acknowledged, on any connection and to any node. The first
// message admitted under an id is remembered by this node (the latest
// RememberIDs ids) and, with Claims, by the cluster (for the claims'
// lifetime); a message under a remembered id is a retry when Claim.Retries
// says so: the same text in the same room, from the same verified user or,
// anonymous, under the same username. A retry gets the first outcome (its
// id, its createdAt, an acknowledgement once it is durable) and is not
// broadcast again: a retry of a message another node admitted (or this
// one, before a restart) is appended to the Log again, which stores it
// once, and broadcast only when this node never delivered it (its first
// node died before the other nodes had it). Anything else under a
// remembered id is refused with CodeClientIDTaken. Ids the server made are
// remembered by this node the same way (not by the cluster: nobody retries
// them), so no client can take those either.
type Service struct {
	limits    Limits
	log       Log
	fanout    Fanout
	clock     *Clock
	claims    Claims
	timeout   time.Duration
	delivered func(room, id string) bool
	waitLink  bool
	logger    *slog.Logger

	mu      sync.Mutex
	recent  map[string]*entry // message ids remembered, for retries
	order   []*entry          // circular, oldest first
	orderAt int

	errMu      sync.Mutex
	lastErrLog time.Time
	quiet      int       // claim errors not logged since lastErrLog
	downUntil  time.Time // claims are not tried before it (they failed)
}

// Sender is who sent a message, as the edge knows it.
type Sender struct {
	// ConnID identifies the sender's connection (its Socket.IO socket id).
	ConnID string
	// UserID is the sender's verified user id (User.ID), "" for an
	// anonymous sender. When set, a retry is matched by user, else by
	// username, and the message carries it.
	UserID string
	// Name is the verified user's name (User.Name): with UserID set, the
	// message carries it and the payload's username is ignored.
	Name string
}

// entry is a remembered message: its claim (no text, so that a remembered
// message costs the same however long it was) and its outcome.
type entry struct {
	claim   Claim
	settled bool
	err     error
	waiters []func(Message, error)
	// own is set when waiters[0] is the first sender's durable callback,
	// whom Accept's return tells of a refusal.
	own bool
}

// ServiceOptions configure a Service. Zero fields take their defaults.
type ServiceOptions struct {
	Limits Limits
	// Clock hands out message times; a new real-time Clock by default.
	Clock *Clock
	// RememberIDs is how many of the latest message ids this node
	// remembers (default 100,000; about 25 MB when full): a retry is
	// recognised here, and an id cannot be taken by another sender, while
	// it is (and, with Claims, while the cluster remembers it).
	RememberIDs int
	// Claims is the cluster's memory of admitted client ids (nil: this
	// node's only); ClaimTimeout bounds one claim (default 2 s), after
	// which the node goes on with what it remembers itself.
	Claims       Claims
	ClaimTimeout time.Duration
	// Delivered reports whether this node delivered the message with id
	// in room lately (the hub's): a retry of a message another node
	// admitted is broadcast again only when it did not.
	Delivered func(room, id string) bool
	// WaitForLink acknowledges a message only once the Fanout's link to the
	// other nodes took it too (Event.Sent), besides the Log: set with an
	// ordered broker, so that an acknowledged message is in the log every
	// node reads.
	WaitForLink bool
	Logger      *slog.Logger
}

// NewService returns the accept flow over log and fanout.
func NewService(log Log, fanout Fanout, o ServiceOptions) *Service {
	if o.Limits == (Limits{}) {
		o.Limits = DefaultLimits()
	}
	if o.Clock == nil {
		o.Clock = NewClock(nil)
	}
	if o.RememberIDs <= 0 {
		o.RememberIDs = 100_000
	}
	if o.ClaimTimeout <= 0 {
		o.ClaimTimeout = 2 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Service{
		limits:    o.Limits,
		log:       log,
		fanout:    fanout,
		clock:     o.Clock,
		claims:    o.Claims,
		timeout:   o.ClaimTimeout,
		delivered: o.Delivered,
		waitLink:  o.WaitForLink,
		logger:    o.Logger,
		recent:    make(map[string]*entry),
		order:     make([]*entry, o.RememberIDs),
	}
}

// Limits returns the limits messages are checked against.
func (s *Service) Limits() Limits { return s.limits }

// Accept validates payload, sent by from, gives the message its id and
// time, admits it to the Log and broadcasts it. It returns the accepted
// message, or an *Error the client can act on (CodeClientIDTaken among
// them: see Service), or ErrUnavailable when the Log refused it (then
// nothing was broadcast).
//
// durable, when not nil, is called exactly once, from another goroutine or
// before Accept returns, when the message is durable (nil) or lost for good.
// Accept is safe for concurrent use; one sender's calls must be sequential
// for its order to be kept.
func (s *Service) Accept(from Sender, payload any, durable func(Message, error)) (Message, error) {
	d, err := ParseDraft(payload, s.limits)
	if err != nil {
		return Message{}, err
	}
	m := Message{ID: d.ClientID, Text: d.Text, Username: d.Username, Room: d.Room}
	if from.UserID != "" {
		// A verified sender is who its token says, whatever it typed.
		m.Username, m.UserID = from.Name, from.UserID
	}
	claimed := m.ID != ""

	s.mu.Lock()
	if !claimed {
		m.ID = NewID()
	} else if e, dup := s.recent[m.ID]; dup {
		if !ClaimOf(m).Retries(e.claim) {
			s.mu.Unlock()
			return Message{}, taken(m.ID)
		}
		// A retry: report the first message's outcome, broadcast nothing.
		m.CreatedAt = e.claim.CreatedAt
		if !e.settled {
			if durable != nil {
				e.waiters = append(e.waiters, durable)
			}
			s.mu.Unlock()
			return m, nil
		}
		ferr := e.err
		s.mu.Unlock()
		if durable != nil {
			durable(m, ferr)
		}
		return m, nil
	}
	m.CreatedAt = s.clock.Next()
	e := &entry{claim: ClaimOf(m), own: durable != nil}
	if durable != nil {
		e.waiters = append(e.waiters, durable)
	}
	s.remember(e)
	s.mu.Unlock()

	if claimed && s.claims != nil && s.claimsUp() {
		ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
		first, fresh, err := s.claims.Claim(ctx, e.claim)
		cancel()
		switch {
		case err != nil:
			s.claimFailed(m.ID, err)
		case !fresh && !e.claim.Retries(first):
			s.forget(e, taken(m.ID))
			return Message{}, taken(m.ID)
		case !fresh:
			// Another node admitted it first (or this one, before a restart).
			m.CreatedAt = first.CreatedAt
			s.mu.Lock()
			e.claim.CreatedAt = first.CreatedAt
			s.mu.Unlock()
			return m, s.readmit(m, e)
		}
	}
	err = s.admit(m, e, true)
	if err != nil && claimed && s.claims != nil {
		// Refused: nobody saw it, so the id is free again.
		ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
		if rerr := s.claims.Release(ctx, e.claim); rerr != nil {
			s.claimFailed(m.ID, rerr)
		}
		cancel()
	}
	return m, err
}

func taken(id string) *Error {
	return Errorf(CodeClientIDTaken, "clientId %s is the id of another message; give a new message a new clientId", id)
}

// readmit is the retry of a message another node admitted: appended to
// the Log again (the Store keeps it once), so that it is durable whatever
// became of the first node, and broadcast only when this node never
// delivered it.
func (s *Service) readmit(m Message, e *entry) error {
	broadcast := s.delivered == nil || !s.delivered(RoomOf(m), m.ID)
	return s.admit(m, e, broadcast)
}

// admit appends m to the Log and, when broadcast, broadcasts it; e's
// waiters get the outcome once the Log made m durable (and, with
// WaitForLink, the link took it). A refused m is forgotten.
func (s *Service) admit(m Message, e *entry, broadcast bool) error {
	parts := 1
	if broadcast && s.waitLink {
		parts = 2
	}
	var mu sync.Mutex
	var logErr error
	part := func(fromLog bool, err error) {
		mu.Lock()
		if fromLog {
			logErr = err
		}
		parts--
		last := parts == 0
		mu.Unlock()
		if last {
			s.settle(e, m, logErr)
		}
	}
	if err := s.log.Append(m, func(err error) { part(true, err) }); err != nil {
		s.forget(e, err)
		return err
	}
	if broadcast {
		ev := MessageEvent(m)
		if s.waitLink {
			// A link that gave the event up counted and logged it; the
			// message is durable all the same.
			ev.Sent = func(error) { part(false, nil) }
		}
		s.fanout.Broadcast(RoomOf(m), ev)
	}
	return nil
}

// settle records e's outcome and tells its waiters.
func (s *Service) settle(e *entry, m Message, err error) {
	s.mu.Lock()
	e.settled, e.err = true, err
	waiters := e.waiters
	e.waiters = nil
	s.mu.Unlock()
	for _, w := range waiters {
		w(m, err)
	}
}

// forget drops e, refused with err: its id is free again on this node.
// Retries that waited on it (the same sender's, sent meanwhile) get err;
// the first sender learns it from Accept's return.
func (s *Service) forget(e *entry, err error) {
	s.mu.Lock()
	if s.recent[e.claim.ID] == e {
		delete(s.recent, e.claim.ID)
	}
	waiters := e.waiters
	if e.own {
		waiters = waiters[1:]
	}
	e.waiters = nil
	s.mu.Unlock()
	for _, w := range waiters {
		w(Message{ID: e.claim.ID}, err)
	}
}

// claimsUp reports whether the cluster's memory is worth asking: not for
// a second after it failed, so that an outage does not hold up every
// message for a timeout.
func (s *Service) claimsUp() bool {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return !time.Now().Before(s.downUntil)
}

// claimFailed logs, at most once a second, that the cluster's memory of
// client ids could not be reached: the node goes on with its own, and
// does not ask again for a second.
func (s *Service) claimFailed(id string, err error) {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	s.downUntil = time.Now().Add(time.Second)
	if time.Since(s.lastErrLog) < time.Second {
		s.quiet++
		return
	}
	s.logger.Warn("the cluster's memory of client ids is unreachable: this node goes on with what it remembers itself, "+
		"and a retry sent to another node meanwhile may be broadcast twice", "id", id, "err", err, "suppressed_since_last", s.quiet)
	s.lastErrLog, s.quiet = time.Now(), 0
}

// remember records e, forgetting the oldest id when full. s.mu is held.
func (s *Service) remember(e *entry) {
	if old := s.order[s.orderAt]; old != nil && s.recent[old.claim.ID] == old {
		delete(s.recent, old.claim.ID)
	}
	s.order[s.orderAt] = e
	s.orderAt = (s.orderAt + 1) % len(s.order)
	s.recent[e.claim.ID] = e
}
