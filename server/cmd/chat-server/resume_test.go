package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"
)

// placed returns the next `message` event and its recovery offset.
func (c *sio) placed() (wire, string) {
	c.t.Helper()
	for {
		f := c.next()
		if !strings.HasPrefix(f, `2["message",`) {
			continue
		}
		var ev []any
		if err := json.Unmarshal([]byte(f[1:]), &ev); err != nil {
			c.t.Fatalf("bad packet %q: %v", f, err)
		}
		offset := ""
		if len(ev) > 2 {
			offset, _ = ev[2].(string)
		}
		return toWire(ev[1]), offset
	}
}

// TestStreamsClientComesBackAfterItsNodeCrashed: in streams mode a client
// whose node is killed comes back, to the node restarted or to another
// one, with the offset it last had, and gets exactly what it missed: what
// the others said meanwhile, not one message twice, not one missing. So
// does one whose connection alone was cut (its socket recovered).
func TestStreamsClientComesBackAfterItsNodeCrashed(t *testing.T) {
	for _, where := range []string{"restarted", "other", "recovered"} {
		t.Run(where, func(t *testing.T) {
			t.Parallel()
			env := []string{"REDIS_URL=" + redisURL(t), "REDIS_ADAPTER_MODE=streams", "REDIS_KEY_PREFIX=" + prefix(t),
				"RATE_LIMIT_PER_SEC=0", "HISTORY_LIMIT=0"}
			a, b := start(t, "", env...), start(t, "", env...)
			a.awaitServers(2)
			b.awaitServers(2)
			c := dialSIO(t, a.URL, "websocket")
			pid := c.conn.PID
			if pid == "" {
				t.Fatal("no pid in the CONNECT answer: connection-state recovery is off")
			}
			sender := dialSIO(t, b.URL, "websocket")
			say := func(text string) {
				t.Helper()
				if ack := sender.ack(`{"message":"` + text + `","username":"bob","clientId":"` + uuidFor(text) + `"}`); ack["ok"] != true {
					t.Fatalf("%s: ack %v", text, ack)
				}
			}
			var last string
			for i := 1; i <= 3; i++ {
				say(fmt.Sprint("before ", i))
				m, off := c.placed()
				if m.Message != fmt.Sprint("before ", i) || off == "" {
					t.Fatalf("got %+v at %q", m, off)
				}
				last = off
			}
			to := b
			if where == "recovered" {
				// Its connection is cut, the node lives on: the same socket
				// comes back (socket.recovered), its session kept here.
				_ = c.conn.Close()
				to = a
			} else {
				a.signal(syscall.SIGKILL)
				a.Wait(t, 10*time.Second)
			}
			for i := 1; i <= 3; i++ {
				say(fmt.Sprint("while down ", i))
			}
			if where == "restarted" {
				to = start(t, "", env...)
			}
			auth, _ := json.Marshal(map[string]any{"pid": pid, "offset": last})
			back := dialSIOAuth(t, to.URL, "websocket", auth)
			if recovered := back.conn.PID == pid; recovered != (where == "recovered") {
				t.Fatalf("socket recovered: %v (pid %q, was %q)", recovered, back.conn.PID, pid)
			}
			say("live")
			for _, want := range []string{"while down 1", "while down 2", "while down 3", "live"} {
				if m, _ := back.placed(); m.Message != want {
					t.Fatalf("came back and got %q, want %q", m.Message, want)
				}
			}
			if n := to.metric(t, "chat_resumed_total"); n != 1 {
				t.Fatalf("chat_resumed_total %v, want 1", n)
			}
			// Nothing more: a sentinel from the client itself comes next.
			back.emit(`{"message":"sentinel","username":"carol"}`)
			if m, _ := back.placed(); m.Message != "sentinel" {
				t.Fatalf("got %q after the live message, want the sentinel", m.Message)
			}
		})
	}
}

// TestClusterRetryIsNotBroadcastAgain: a retry of a message another node
// admitted (same clientId, text and username, another connection) is
// acknowledged with the first outcome and reaches nobody a second time.
func TestClusterRetryIsNotBroadcastAgain(t *testing.T) {
	nodes := startCluster(t, 2, redisURL(t), "sharded", prefix(t))
	first, retry, watcher := dialSIO(t, nodes[0].URL, "websocket"), dialSIO(t, nodes[1].URL, "websocket"), dialSIO(t, nodes[1].URL, "websocket")
	time.Sleep(200 * time.Millisecond)
	payload := `{"message":"once","username":"bob","clientId":"` + uuidFor("once") + `"}`
	if ack := first.ack(payload); ack["ok"] != true {
		t.Fatalf("ack %v", ack)
	}
	if ack := retry.ack(payload); ack["ok"] != true || ack["id"] != uuidFor("once") {
		t.Fatalf("the retry on the other node: ack %v, want the first outcome", ack)
	}
	if ack := retry.ack(`{"message":"taken?","username":"mallory","clientId":"` + uuidFor("once") + `"}`); ack["ok"] == true {
		t.Fatalf("another sender took the id on the other node: %v", ack)
	}
	first.emit(`{"message":"after","username":"bob"}`)
	for _, want := range []string{"once", "after"} {
		if m := watcher.message(); m.Message != want {
			t.Fatalf("the watcher got %q, want %q: the retry must not be broadcast", m.Message, want)
		}
	}
}

// uuidFor is a clientId made from text (a test's, readable in failures).
func uuidFor(text string) string {
	var h uint64 = 1469598103934665603
	for _, c := range []byte(text) {
		h = (h ^ uint64(c)) * 1099511628211
	}
	return fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", uint32(h>>32), uint16(h>>16), uint16(h)&0xfff, uint16(h>>8)&0xfff, h&0xffffffffffff)
}
