package chat

import (
	"strconv"
	"strings"
)

// Position is a place in the cluster's ordered log of events: the log an
// OrderedBroker keeps (a Redis stream, whose entry ids are "ms-seq").
// Positions of one log compare in the log's order; the zero Position is
// before every event.
type Position struct {
	Ms, Seq uint64
}

// ParsePosition reads "ms-seq" (two decimal numbers), as String writes it.
func ParsePosition(s string) (Position, bool) {
	a, b, ok := strings.Cut(s, "-")
	if !ok || a == "" || b == "" || len(a) > 20 || len(b) > 20 {
		return Position{}, false
	}
	ms, err := strconv.ParseUint(a, 10, 64)
	if err != nil {
		return Position{}, false
	}
	seq, err := strconv.ParseUint(b, 10, 64)
	if err != nil {
		return Position{}, false
	}
	return Position{Ms: ms, Seq: seq}, true
}

// String writes p as "ms-seq".
func (p Position) String() string {
	return strconv.FormatUint(p.Ms, 10) + "-" + strconv.FormatUint(p.Seq, 10)
}

// IsZero reports whether p is the zero Position.
func (p Position) IsZero() bool { return p == Position{} }

// Before reports whether p comes before q in the log.
func (p Position) Before(q Position) bool {
	if p.Ms != q.Ms {
		return p.Ms < q.Ms
	}
	return p.Seq < q.Seq
}

// OrderedBroker is a Broker whose nodes share one ordered log: every node
// reads the same events in the same order, its own included, and each
// event it hands to the handlers carries its Position (Event.Pos). A hub on
// an ordered broker delivers messages in the log's order, so what a client
// has seen is a prefix of the log, and a client that comes back anywhere
// resumes exactly after it.
//
// Guarantees, beyond Broker's:
//   - Messages come back: a message event this node published is handed to
//     its handlers again, with Event.Own set, when the log has it (the
//     node's other own events are not).
//   - Order: handlers get the log's events one at a time, in log order,
//     across rooms too (Broker orders each room alone), each once; a node that starts reads the last events already in the
//     log first (a seed: its handlers see them before anything newer), and
//     Floor says from where its reading is complete.
//   - Sent (see Broker) is called once the log holds the event.
type OrderedBroker interface {
	Broker
	// Ordered reports whether the engine keeps an ordered log (a Redis
	// broker does in streams mode only).
	Ordered() bool
	// Linked reports whether the last attempt to publish succeeded: while
	// it is false, a hub delivers its own messages at once instead of
	// waiting for them to come back.
	Linked() bool
	// Floor is where this node's reading of the log is complete: it has
	// read every event after it; ok is false until its reading started. A
	// client whose last position is at or after it can be resumed exactly
	// here, one before it cannot.
	Floor() (floor Position, ok bool)
}
