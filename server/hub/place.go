package hub

import (
	"strings"

	"github.com/scalable-chat-go/server/chat"
)

// Place is where a client stands in the messages of an ordered hub (one
// on a chat.OrderedBroker): it has seen every message of its rooms up to
// Pos in the cluster's log, and Early, the messages its node delivered
// before the log had them (its own, while the link was slow or down): at
// most MaxEarly ids, the newest, with More set when there were more.
//
// A client is told its Place with every message (its recovery offset, in
// String's form), and hands it back when it comes back, to any node.
type Place struct {
	Pos   chat.Position
	Early []string
	More  bool
}

// MaxEarly is the most early messages a Place lists.
const MaxEarly = 4

// String writes p as "ms-seq", then ".id" for each early message, then
// "+" when there were more. Message ids are UUIDs, which hold neither
// separator.
func (p Place) String() string {
	var b strings.Builder
	b.WriteString(p.Pos.String())
	for _, id := range p.Early {
		b.WriteByte('.')
		b.WriteString(id)
	}
	if p.More {
		b.WriteByte('+')
	}
	return b.String()
}

// ParsePlace reads a Place as String writes it: ok is false for anything
// else (an unordered hub's offset, say).
func ParsePlace(s string) (p Place, ok bool) {
	if len(s) > MaxPlaceLength {
		return Place{}, false
	}
	s, p.More = strings.CutSuffix(s, "+")
	parts := strings.Split(s, ".")
	if p.Pos, ok = chat.ParsePosition(parts[0]); !ok || len(parts)-1 > MaxEarly {
		return Place{}, false
	}
	for _, id := range parts[1:] {
		if id == "" || strings.ContainsAny(id, "+~") {
			return Place{}, false
		}
		p.Early = append(p.Early, id)
	}
	return p, true
}

// MaxPlaceLength is the longest Place String writes: a position of two
// 20-digit numbers, MaxEarly ids of at most 64 bytes, their separators.
const MaxPlaceLength = 41 + MaxEarly*65 + 1

// seen reports whether the place lists id among its early messages.
func (p Place) seen(id string) bool {
	for _, e := range p.Early {
		if e == id {
			return true
		}
	}
	return false
}
