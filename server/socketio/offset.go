package socketio

import (
	"strings"

	"github.com/scalable-chat-go/server/hub"
)

// Connection-state recovery offsets.
//
// On an ordered hub (streams mode) the offset is the hub's Place instead
// (hub/place.go): where the client stands in the cluster's log, which any
// node resumes exactly. What follows is the offset of the other hubs.
//
// The offset of a `message` event is the message's id, followed, when a
// newer message was delivered before it (messages of several nodes arrive
// slightly out of their time order), by offsetSep and that newer message's
// id: its high-water mark (chat.Delivery). socket.io-client keeps the last
// offset it received and sends it back when it reconnects; this node's ring
// resumes the client after the last id, another node (or this one after a
// restart) after the high-water id, so no message is shown twice.

// offsetSep joins a message id and its high-water id in a recovery offset
// (ids are UUIDs, which never hold it).
const offsetSep = "~"

// maxOffsetLength is the longest recovery offset a client may send back:
// two ids of 64 bytes, or an ordered hub's Place (hub.MaxPlaceLength).
const maxOffsetLength = max(2*64+len(offsetSep), hub.MaxPlaceLength)

// makeOffset is the recovery offset of a message: its id, then, when a
// newer message was delivered before it, offsetSep and that message's id.
func makeOffset(id, high string) string {
	if high == "" || high == id {
		return id
	}
	return id + offsetSep + high
}

// parseOffset reads a recovery offset: last is the id of the last message
// the client received (where this node's ring resumes it), high the id of
// the newest message it had received (where another node resumes it; the
// same id when the offset carries only one).
func parseOffset(offset string) (last, high string) {
	last, high, ok := strings.Cut(offset, offsetSep)
	if !ok || high == "" {
		high = last
	}
	return last, high
}
