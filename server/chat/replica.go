package chat

import (
	"log/slog"
	"sync"
	"time"
)

// Replica keeps a node's own store in step with the cluster when the nodes
// share no database (REDIS_URL without DATABASE_URL): it receives what the
// other nodes broadcast, through the Broker, and appends their messages
// and tombstones to this node's Log. The Store is idempotent by id, so a
// publication that arrives twice is stored once. What this node missed
// while its broker was cut off is not replayed: a replica is best effort.
// What its Log refuses (full, or closing) is counted and logged, at most
// once a second.
type Replica struct {
	log    Log
	logger *slog.Logger

	mu      sync.Mutex
	refused int // since the last log line
	lastLog time.Time
}

var _ BrokerEventHandler = (*Replica)(nil)

// NewReplica returns the replica that appends to log.
func NewReplica(log Log, logger *slog.Logger) *Replica {
	if logger == nil {
		logger = slog.Default()
	}
	return &Replica{log: log, logger: logger}
}

// HandlePublication stores another node's message or deletion (not this
// node's own, which an ordered broker hands back: its Log has them).
func (r *Replica) HandlePublication(_ string, e Event) {
	if e.Own {
		return
	}
	var err error
	switch {
	case e.IsMessage():
		err = r.log.Append(e.Message, func(error) {})
	case e.Deletion != nil:
		err = r.log.Delete(*e.Deletion, func(error) {})
	}
	if err != nil {
		r.lost(err)
	}
}

// lost counts what the log refused, and logs it at most once a second.
func (r *Replica) lost(err error) {
	r.mu.Lock()
	r.refused++
	if time.Since(r.lastLog) < time.Second {
		r.mu.Unlock()
		return
	}
	n := r.refused
	r.refused, r.lastLog = 0, time.Now()
	r.mu.Unlock()
	r.logger.Warn("this node's replica of the history missed another node's events: its log refused them",
		"count", n, "err", err)
}

// HandleUserEvent ignores events addressed to users: nothing of them is
// stored.
func (r *Replica) HandleUserEvent(string, Event) {}
