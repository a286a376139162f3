// Package stamp writes and reads the bench's chat messages: each message's
// text carries the run it belongs to, its sender, its sequence number and
// the time it was sent, so a receiver can tell loss, duplicates, order and
// latency from the broadcast alone, whatever else the server adds to it
// (the Node reference echoes {message, username}; the Go server adds id and
// createdAt).
//
// The text is `bench|<run>|<sender>|<seq>|<sentNanos>|` padded with 'x' to
// the wanted length: only characters that JSON never escapes.
package stamp

import (
	"bytes"
	"strconv"
)

// Stamp is what a message carries.
type Stamp struct {
	// Run tells phases apart (probe, warm-up, measurement); a receiver
	// ignores runs it does not wait for.
	Run int64
	// Sender is the sending connection's index, Seq its message number
	// (0, 1, 2, ...).
	Sender, Seq int64
	// Sent is when it was sent, in nanoseconds on the bench's monotonic
	// clock.
	Sent int64
}

// Username is the username of every bench message.
const Username = "bench"

var marker = []byte(`"bench|`)

// AppendEvent appends to dst the Engine.IO frame of the Socket.IO event
// `event:message` {message, username} whose text carries s, padded to
// textLen characters (a text never gets shorter than its stamp).
func AppendEvent(dst []byte, s Stamp, textLen int) []byte {
	return AppendRoomEvent(dst, s, textLen, "")
}

// AppendRoomEvent is AppendEvent with the payload's room ({message,
// username, room}); room "" leaves it out (the global room). A room id is
// written as it is: the bench's are UUIDs and plain names, which JSON never
// escapes.
func AppendRoomEvent(dst []byte, s Stamp, textLen int, room string) []byte {
	dst = append(dst, `42["event:message",{"message":"bench|`...)
	start := len(dst) - len("bench|")
	dst = strconv.AppendInt(dst, s.Run, 10)
	dst = append(dst, '|')
	dst = strconv.AppendInt(dst, s.Sender, 10)
	dst = append(dst, '|')
	dst = strconv.AppendInt(dst, s.Seq, 10)
	dst = append(dst, '|')
	dst = strconv.AppendInt(dst, s.Sent, 10)
	dst = append(dst, '|')
	for len(dst)-start < textLen {
		dst = append(dst, 'x')
	}
	dst = append(dst, `","username":"`+Username+`"`...)
	if room != "" {
		dst = append(dst, `,"room":"`...)
		dst = append(dst, room...)
		dst = append(dst, '"')
	}
	return append(dst, "}]"...)
}

// Parse finds a stamp in a received frame. It reports false when the frame
// carries none or a malformed one.
func Parse(frame []byte) (Stamp, bool) {
	i := bytes.Index(frame, marker)
	if i < 0 {
		return Stamp{}, false
	}
	b := frame[i+len(marker):]
	var v [4]int64
	for k := range v {
		n, rest, ok := number(b)
		if !ok {
			return Stamp{}, false
		}
		v[k], b = n, rest
	}
	return Stamp{Run: v[0], Sender: v[1], Seq: v[2], Sent: v[3]}, true
}

// number reads a non-negative decimal followed by '|'.
func number(b []byte) (int64, []byte, bool) {
	var n int64
	i := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		if i >= 18 {
			return 0, nil, false
		}
		n = n*10 + int64(b[i]-'0')
	}
	if i == 0 || i >= len(b) || b[i] != '|' {
		return 0, nil, false
	}
	return n, b[i+1:], true
}
