package chat

import (
	"sync"
)

// Service is the accept flow: it turns a client's `event:message` payload
// into an accepted message, admits it to the Log, and broadcasts it.
//
// A message is broadcast only after the Log admitted it, so a message the
// Log refuses is never seen by anyone. A client id sent again while its
// message is remembered is neither admitted nor broadcast twice; its
// durability is reported as the first one's.
type Service struct {
	limits Limits
	log    Log
	fanout Fanout
	clock  *Clock

	mu      sync.Mutex
	recent  map[string]*entry // client ids remembered, for retries
	order   []string          // circular, oldest client id first
	orderAt int
}

type entry struct {
	m       Message
	settled bool
	err     error
	waiters []func(Message, error)
}

// ServiceOptions configure a Service. Zero fields take their defaults.
type ServiceOptions struct {
	Limits Limits
	// Clock hands out message times; a new real-time Clock by default.
	Clock *Clock
	// RememberClientIDs is how many client ids are remembered to make
	// retries idempotent (default 100,000).
	RememberClientIDs int
}

// NewService returns the accept flow over log and fanout.
func NewService(log Log, fanout Fanout, o ServiceOptions) *Service {
	if o.Limits == (Limits{}) {
		o.Limits = DefaultLimits()
	}
	if o.Clock == nil {
		o.Clock = NewClock(nil)
	}
	if o.RememberClientIDs <= 0 {
		o.RememberClientIDs = 100_000
	}
	return &Service{
		limits: o.Limits,
		log:    log,
		fanout: fanout,
		clock:  o.Clock,
		recent: make(map[string]*entry),
		order:  make([]string, o.RememberClientIDs),
	}
}

// Limits returns the limits messages are checked against.
func (s *Service) Limits() Limits { return s.limits }

// Accept validates payload, gives the message its id and time, admits it to
// the Log and broadcasts it. It returns the accepted message, or an *Error
// the client can act on, or ErrUnavailable when the Log refused it (then
// nothing was broadcast).
//
// durable, when not nil, is called exactly once, from another goroutine or
// before Accept returns, when the message is durable (nil) or lost for good.
// Accept is safe for concurrent use; one sender's calls must be sequential
// for its order to be kept.
func (s *Service) Accept(payload any, durable func(Message, error)) (Message, error) {
	d, err := ParseDraft(payload, s.limits)
	if err != nil {
		return Message{}, err
	}
	m := Message{ID: d.ClientID, Text: d.Text, Username: d.Username}
	if m.ID == "" {
		m.ID = NewID()
		m.CreatedAt = s.clock.Next()
		return m, s.admit(m, durable)
	}

	s.mu.Lock()
	if e, dup := s.recent[m.ID]; dup {
		// A retry: report the first message's outcome, broadcast nothing.
		if !e.settled {
			if durable != nil {
				e.waiters = append(e.waiters, durable)
			}
			s.mu.Unlock()
			return e.m, nil
		}
		first, ferr := e.m, e.err
		s.mu.Unlock()
		if durable != nil {
			durable(first, ferr)
		}
		return first, nil
	}
	m.CreatedAt = s.clock.Next()
	e := &entry{m: m}
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
		s.mu.Lock()
		if s.recent[m.ID] == e {
			delete(s.recent, m.ID)
		}
		s.mu.Unlock()
	}
	return m, err
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
	s.fanout.Broadcast(MessageEvent(m))
	return nil
}

// remember records e, forgetting the oldest client id when full. s.mu is held.
func (s *Service) remember(e *entry) {
	if old := s.order[s.orderAt]; old != "" {
		delete(s.recent, old)
	}
	s.order[s.orderAt] = e.m.ID
	s.orderAt = (s.orderAt + 1) % len(s.order)
	s.recent[e.m.ID] = e
}
