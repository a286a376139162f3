package chat

import (
	"sync"
	"time"

	"github.com/google/uuid"
)

// Clock hands out message times: UTC, whole milliseconds, never going
// backwards on one node even when the wall clock does. It is safe for
// concurrent use.
type Clock struct {
	mu   sync.Mutex
	last time.Time
	now  func() time.Time
}

// NewClock returns a Clock reading now, or time.Now when now is nil.
func NewClock(now func() time.Time) *Clock {
	if now == nil {
		now = time.Now
	}
	return &Clock{now: now}
}

// Next returns the time of a message accepted now.
func (c *Clock) Next() time.Time {
	t := c.now().UTC().Truncate(time.Millisecond)
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.Before(c.last) {
		t = c.last
	}
	c.last = t
	return t
}

// NewID returns a new message id: a UUIDv7, so that ids sort by time.
func NewID() string {
	id, err := uuid.NewV7()
	if err != nil {
		// NewV7 fails only when the system's random source does.
		return uuid.NewString()
	}
	return id.String()
}
