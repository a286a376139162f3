package socketio

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/scalable-chat-go/server/testkit"
)

// hangUp closes c's connection without a DISCONNECT (the engine keeps the
// socket for recovery) and waits until the edge let it go.
func (e *tedge) hangUp(c *client, left int) {
	e.t.Helper()
	c.leave()
	testkit.Until(e.t, wait, "the socket gone from the edge", func() (bool, string) {
		n := e.Connections()
		return n == left, fmt.Sprint(n, " connections")
	})
}

// A client that reconnects within the window with its pid and last offset
// gets its socket back (same id) and only what it missed, then the live
// messages.
func TestRecovery(t *testing.T) {
	e := startEdge(t, setup{Options: Options{RecoveryWindow: time.Minute}})
	ann, hello := e.join(map[string]any{"username": "ann"})
	bob, _ := e.join(nil)
	bob.send("bob", "m1")
	_, offset := ann.message()
	e.hangUp(ann, 1)
	bob.send("bob", "m2")
	bob.send("bob", "m3")

	again := dial(t, e.url, nil)
	back := again.join(map[string]any{"pid": hello["pid"], "offset": offset, "username": "ann"})
	if back["sid"] != hello["sid"] || back["pid"] != hello["pid"] {
		t.Fatalf("recovered CONNECT answer %v, want the old sid and pid %v", back, hello)
	}
	bob.send("bob", "m4")
	if got := again.texts(3); !slices.Equal(got, []string{"m2", "m3", "m4"}) {
		t.Fatalf("the recovered client got %q, want what it missed, then m4", got)
	}
	if n := e.Connections(); n != 2 {
		t.Fatalf("Connections() = %d after the recovery, want 2", n)
	}
}

// A client that cannot be recovered (its session is not kept here, or its
// offset is not in the ring) but sends its offset gets the history after
// it only: the newer id of an offset first, else the last one. An offset
// nobody knows gets the whole history.
func TestResumeAfterOffset(t *testing.T) {
	for _, tt := range []struct {
		name string
		// auth is the CONNECT's, given the ids of m1..m4 and the pid of a
		// socket the engine keeps.
		auth func(ids []string, pid any) map[string]any
		want []string
	}{
		{"unknown session", func(ids []string, _ any) map[string]any {
			return map[string]any{"pid": "not-kept", "offset": ids[1]}
		}, []string{"m3", "m4", "live"}},
		{"newer id first", func(ids []string, _ any) map[string]any {
			return map[string]any{"pid": "not-kept", "offset": "gone~" + ids[2]}
		}, []string{"m4", "live"}},
		{"the newer id when both are known", func(ids []string, _ any) map[string]any {
			return map[string]any{"pid": "not-kept", "offset": ids[0] + "~" + ids[2]}
		}, []string{"m4", "live"}},
		{"last id when the newer is unknown", func(ids []string, _ any) map[string]any {
			return map[string]any{"pid": "not-kept", "offset": ids[0] + "~gone"}
		}, []string{"m2", "m3", "m4", "live"}},
		{"kept session, unknown offset", func(_ []string, pid any) map[string]any {
			return map[string]any{"pid": pid, "offset": "gone"}
		}, []string{"m1", "m2", "m3", "m4", "live"}},
		{"no pid: not a reconnection", func(ids []string, _ any) map[string]any {
			return map[string]any{"offset": ids[2]}
		}, []string{"m1", "m2", "m3", "m4", "live"}},
	} {
		e := startEdge(t, setup{Options: Options{RecoveryWindow: time.Minute}})
		kept, keptHello := e.join(nil)
		e.hangUp(kept, 0)
		bob, _ := e.join(nil)
		var ids []string
		for i := 1; i <= 4; i++ {
			ids = append(ids, bob.send("bob", fmt.Sprint("m", i)))
		}
		c := dial(t, e.url, nil)
		hello := c.join(tt.auth(ids, keptHello["pid"]))
		if hello["sid"] == keptHello["sid"] {
			t.Fatalf("%s: recovered the kept socket %v", tt.name, hello)
		}
		bob.emit("event:message", map[string]any{"message": "live"})
		if got := c.texts(len(tt.want)); !slices.Equal(got, tt.want) {
			t.Fatalf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
}
