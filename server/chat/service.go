package chat

import (
	"hash/maphash"
	"sync"
	"time"
)

// Service is the accept flow: it turns a client's `event:message` payload
// into an accepted message, admits it to the Log, and broadcasts it.
//
// A message is broadcast only after the Log admitted it, so a message the
// Log refuses is never seen by anyone. Message ids are broadcast to every
// client, so an id alone proves nothing: a client id sent again while its
// message is remembered is a retry only when it comes from the same Sender
// with the same text and username; then it is neither admitted nor
// broadcast twice, and its durability is reported as the first one's.
// Anything else is refused with CodeClientIDTaken. Ids the server made are
// remembered the same way, so no client can take those either.
type Service struct {
	limits Limits
	log    Log
	fanout Fanout
	clock  *Clock
	seed   maphash.Seed

	mu      sync.Mutex
	recent  map[string]*entry // message ids remembered, for retries
	order   []*entry          // circular, oldest first
	orderAt int
}

// Sender is who sent a message, as the edge knows it: what a retry must
// match to be taken for one.
type Sender struct {
	// ConnID identifies the sender's connection (its Socket.IO socket id).
	ConnID string
	// UserID is the sender's verified user id (User.ID), "" for an
	// anonymous sender. When set, a retry is matched by user, else by
	// connection, and the message carries it.
	UserID string
	// Name is the verified user's name (User.Name): with UserID set, the
	// message carries it and the payload's username is ignored.
	Name string
}

// sent reports whether a retry from s comes from first, the sender of the
// first attempt. A sender the edge could not name matches no one.
func (s Sender) sent(first Sender) bool {
	if s.UserID != "" || first.UserID != "" {
		return s.UserID == first.UserID
	}
	return s.ConnID != "" && s.ConnID == first.ConnID
}

// entry is a remembered message: who sent it and a digest of its content.
// It keeps no text, so that a remembered message costs the same however
// long it was.
type entry struct {
	id        string
	createdAt time.Time
	from      Sender
	sum       uint64 // digest of the text and the username
	settled   bool
	err       error
	waiters   []func(Message, error)
}

// ServiceOptions configure a Service. Zero fields take their defaults.
type ServiceOptions struct {
	Limits Limits
	// Clock hands out message times; a new real-time Clock by default.
	Clock *Clock
	// RememberIDs is how many of the latest message ids are remembered
	// (default 100,000; about 25 MB when full): a retry is recognised, and
	// an id cannot be taken by another sender, while it is. An id older
	// than that sent again as a clientId is taken for a new message; the
	// Store still keeps the first message under it (SaveBatch is
	// idempotent by id).
	RememberIDs int
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
	return &Service{
		limits: o.Limits,
		log:    log,
		fanout: fanout,
		clock:  o.Clock,
		seed:   maphash.MakeSeed(),
		recent: make(map[string]*entry),
		order:  make([]*entry, o.RememberIDs),
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
	sum := s.digest(m)

	s.mu.Lock()
	if m.ID == "" {
		m.ID = NewID()
	} else if e, dup := s.recent[m.ID]; dup {
		if !from.sent(e.from) || e.sum != sum {
			s.mu.Unlock()
			return Message{}, Errorf(CodeClientIDTaken, "clientId %s is the id of another message; give a new message a new clientId", m.ID)
		}
		// A retry: report the first message's outcome, broadcast nothing.
		m.CreatedAt = e.createdAt
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
	e := &entry{id: m.ID, createdAt: m.CreatedAt, from: from, sum: sum}
	if durable != nil {
		e.waiters = append(e.waiters, durable)
	}
	s.remember(e)
	s.mu.Unlock()

	err = s.admit(m, func(m Message, err error) {
		s.mu.Lock()
		e.settled, e.err = true, err
		waiters := e.waiters
		e.waiters = nil
		s.mu.Unlock()
		for _, w := range waiters {
			w(m, err)
		}
	})
	if err != nil {
		// Refused: nobody saw it, so the id is free again.
		s.mu.Lock()
		if s.recent[m.ID] == e {
			delete(s.recent, m.ID)
		}
		s.mu.Unlock()
	}
	return m, err
}

// digest sums what a retry must repeat: the text, the username and the
// room (free of NUL after ParseDraft, so NUL separates them).
func (s *Service) digest(m Message) uint64 {
	var h maphash.Hash
	h.SetSeed(s.seed)
	_, _ = h.WriteString(m.Text)
	_ = h.WriteByte(0)
	_, _ = h.WriteString(m.Username)
	_ = h.WriteByte(0)
	_, _ = h.WriteString(m.Room)
	return h.Sum64()
}

func (s *Service) admit(m Message, durable func(Message, error)) error {
	var done func(error)
	if durable != nil {
		done = func(err error) { durable(m, err) }
	} else {
		done = func(error) {}
	}
	if err := s.log.Append(m, done); err != nil {
		return err
	}
	s.fanout.Broadcast(RoomOf(m), MessageEvent(m))
	return nil
}

// remember records e, forgetting the oldest id when full. s.mu is held.
func (s *Service) remember(e *entry) {
	if old := s.order[s.orderAt]; old != nil && s.recent[old.id] == old {
		delete(s.recent, old.id)
	}
	s.order[s.orderAt] = e
	s.orderAt = (s.orderAt + 1) % len(s.order)
	s.recent[e.id] = e
}
