package main

import (
	"testing"

	"github.com/scalable-chat-go/server/config"
)

// A room's ring is ROOM_HISTORY_RING_SIZE, or HISTORY_LIMIT when that is
// larger: a configuration with a long history that predates the setting
// keeps working, and a node without its store still sends a newcomer the
// whole history it delivered.
func TestRoomRing(t *testing.T) {
	for _, tt := range []struct{ ring, limit, want int }{{100, 50, 100}, {100, 200, 200}, {20, 0, 20}} {
		if got := roomRing(config.Config{RoomHistoryRingSize: tt.ring, HistoryLimit: tt.limit}); got != tt.want {
			t.Errorf("ROOM_HISTORY_RING_SIZE=%d HISTORY_LIMIT=%d: a room's ring of %d, want %d", tt.ring, tt.limit, got, tt.want)
		}
	}
}
