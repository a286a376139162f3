package redis

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	sioadapter "github.com/zishang520/socket.io/adapters/adapter/v3"
	"github.com/zishang520/socket.io/parsers/socket/v3/parser"
	"github.com/zishang520/socket.io/servers/socket/v3"
)

// A broadcast as Node's sharded adapter publishes it decodes into what the
// library's cluster adapter expects, and ours goes back out the same way.
func TestClusterCodec(t *testing.T) {
	node := `{"uid":"fhT2bQ","nsp":"/","type":3,"data":{"packet":{"type":2,"data":["message",{"message":"hi","username":"ann"}],"nsp":"/"},"opts":{"rooms":[],"except":[],"flags":{}}}}`
	msg, err := decodeCluster([]byte(node))
	if err != nil {
		t.Fatal(err)
	}
	b, ok := msg.Data.(*sioadapter.BroadcastMessage)
	if msg.Uid != "fhT2bQ" || msg.Nsp != "/" || msg.Type != sioadapter.BROADCAST || !ok || b.Packet == nil {
		t.Fatalf("decoded %+v", msg)
	}
	if args, _ := b.Packet.Data.([]any); len(args) != 2 || args[0] != "message" {
		t.Fatalf("packet data %#v", b.Packet.Data)
	}

	for _, tt := range []struct {
		name string
		data []any
		json bool
	}{
		{"text", []any{"message", map[string]any{"message": "hi"}}, true},
		{"binary", []any{"file", []byte{0, 1, 2, 255}}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out := &sioadapter.ClusterMessage{Uid: "me", Nsp: "/", Type: sioadapter.BROADCAST, Data: &sioadapter.BroadcastMessage{
				Packet: &parser.Packet{Type: parser.EVENT, Nsp: "/", Data: tt.data},
				Opts:   &sioadapter.PacketOptions{Rooms: []socket.Room{"r"}, Except: []socket.Room{}, Flags: &socket.BroadcastFlags{}},
			}}
			raw, err := encodeCluster(out)
			if err != nil {
				t.Fatal(err)
			}
			if (raw[0] == '{') != tt.json {
				t.Fatalf("encoded as %q, want JSON %v", raw[:1], tt.json)
			}
			back, err := decodeCluster(raw)
			if err != nil {
				t.Fatal(err)
			}
			bm := back.Data.(*sioadapter.BroadcastMessage)
			if back.Uid != "me" || len(bm.Opts.Rooms) != 1 || bm.Opts.Rooms[0] != "r" {
				t.Fatalf("round trip: %+v %+v", back, bm.Opts)
			}
		})
	}

	for _, bad := range []string{"", "{", `{"type":99}`, "\xc1"} {
		if _, err := decodeCluster([]byte(bad)); err == nil {
			t.Errorf("decodeCluster(%q): no error", bad)
		}
	}
	if m, err := decodeCluster([]byte(`{"uid":"x","nsp":"/","type":13}`)); err != nil || m.Type != sioadapter.ADAPTER_CLOSE {
		t.Errorf("ADAPTER_CLOSE: %+v %v", m, err)
	}
}

// The publishing side counts the other servers a publication missed: its
// own echo tells whether SPUBLISH counted this server.
func TestReachCountsTheOthersMissed(t *testing.T) {
	r := newReach(slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	const ch = "p#/#"
	count := func() float64 { return testutil.ToFloat64(r.undelivered) }
	age := func() { // make every waiting publication older than echoWait
		for c, w := range r.waiting {
			for i := range w {
				w[i].at = time.Now().Add(-2 * echoWait)
			}
			r.waiting[c] = w
		}
	}

	r.published(ch, []byte("m1"), 3, true) // this server and two others
	r.echo(ch, []byte("m1"))
	if got := r.expected(ch); got != 2 || count() != 0 {
		t.Fatalf("after m1: expected %d others, counted %v", got, count())
	}
	// This server was not subscribed (no echo): 2 subscribers are two
	// others, nothing missed.
	r.published(ch, []byte("m2"), 2, true)
	age()
	r.mu.Lock()
	r.expireLocked()
	r.mu.Unlock()
	if count() != 0 {
		t.Fatalf("m2 without echo: counted %v", count())
	}
	// Subscribed, but one other is not: one missed.
	r.published(ch, []byte("m3"), 2, true)
	r.echo(ch, []byte("m3"))
	if count() != 1 {
		t.Fatalf("m3: counted %v, want 1", count())
	}
	// The echo can come before SPUBLISH's reply.
	r.echo(ch, []byte("m4"))
	r.published(ch, []byte("m4"), 2, true)
	if count() != 2 {
		t.Fatalf("m4 (echo first): counted %v, want 2", count())
	}
	// A channel this server does not subscribe to: n are all others.
	r.published("p#/#other#", []byte("x"), 1, false)
	r.published("p#/#other#", []byte("y"), 0, false)
	if count() != 3 {
		t.Fatalf("unsubscribed channel: counted %v, want 3", count())
	}
	// A server that leaves says so: nothing is expected of it after.
	r.forget()
	r.published(ch, []byte("m5"), 2, true)
	r.echo(ch, []byte("m5"))
	if count() != 3 || r.expected(ch) != 1 {
		t.Fatalf("after forget: counted %v, expected %d", count(), r.expected(ch))
	}
	// The expectation fades after reachWindow.
	r.peaks[ch] = peak{n: 5, at: time.Now().Add(-2 * reachWindow)}
	r.published(ch, []byte("m6"), 2, true)
	r.echo(ch, []byte("m6"))
	if count() != 3 || r.expected(ch) != 1 {
		t.Fatalf("after the window: counted %v, expected %d", count(), r.expected(ch))
	}
	// A failed publication marks the channel recovering until one succeeds.
	r.failed(ch)
	if !r.recovering(ch) {
		t.Fatal("not recovering after a failure")
	}
	r.published(ch, []byte("m7"), 2, true)
	if r.recovering(ch) {
		t.Fatal("still recovering after a publication")
	}
}

func TestSlot(t *testing.T) {
	// Values of CLUSTER KEYSLOT.
	for key, want := range map[string]int{
		"socket.io#/#": 13868, "foo": 12182, "{user1000}.following": 3443, "foo{}{bar}": 8363, "{}": 15257,
	} {
		if got := Slot(key); got != want {
			t.Errorf("Slot(%q) = %d, want %d", key, got, want)
		}
	}
}
