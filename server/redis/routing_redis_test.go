package redis

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/scalable-chat-go/server/chat"
	"github.com/scalable-chat-go/server/chat/chattest"
	"github.com/scalable-chat-go/server/testkit"
)

// roomRecorder keeps the publications a node is handed.
type roomRecorder struct {
	mu   sync.Mutex
	pubs []string // room/event, room/message:id for a message
	// onUser, when set, is handed the user events (a hub joins the
	// user's sockets there).
	onUser func(e chat.Event)
}

func (r *roomRecorder) HandlePublication(room string, e chat.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e.IsMessage() {
		r.pubs = append(r.pubs, room+"/message:"+e.Message.ID)
		return
	}
	r.pubs = append(r.pubs, room+"/"+e.Name)
}

func (r *roomRecorder) HandleUserEvent(_ string, e chat.Event) {
	r.mu.Lock()
	f := r.onUser
	r.mu.Unlock()
	if f != nil {
		f(e)
	}
}

// got returns the publications so far, and whether one of them is want.
func (r *roomRecorder) got(want string) ([]string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.pubs {
		if p == want {
			return append([]string(nil), r.pubs...), true
		}
	}
	return append([]string(nil), r.pubs...), false
}

// routingNodes opens n brokers of one new cluster in mode on backend,
// running, each with a registry of its own.
func routingNodes(t testing.TB, backend, mode string, n int) ([]*Broker, []*roomRecorder, *Cluster) {
	t.Helper()
	o := Options{Mode: mode, RequestTimeout: 2 * time.Second, KeyPrefix: fmt.Sprintf("routing-%s-%d", mode, time.Now().UnixNano()),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if backend == "cluster" {
		o.ClusterNodes = strings.Split(testkit.Service(t, "REDIS_CLUSTER_NODES", "Redis Cluster"), ",")
	} else {
		o.URL = testkit.Service(t, "REDIS_URL", "Redis")
	}
	nodes, recs := make([]*Broker, n), make([]*roomRecorder, n)
	var first *Cluster
	for i := range nodes {
		o.Registerer = prometheus.NewRegistry()
		c, err := Open(o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		if first == nil {
			first = c
		}
		nodes[i], recs[i] = c.Broker(BrokerOptions{}), &roomRecorder{}
		nodes[i].RegisterEventHandler(recs[i])
		if err := nodes[i].Run(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = nodes[i].Close(ctx)
		})
	}
	// All listen on the global room before the test begins.
	for i := 0; ; i++ {
		nodes[0].Publish(chat.GlobalRoom, chat.Event{Name: fmt.Sprint("hello-", i)})
		time.Sleep(50 * time.Millisecond)
		heard := true
		for _, r := range recs[1:] {
			_, ok := r.got(fmt.Sprint("global/hello-", i))
			heard = heard && ok
		}
		if heard {
			break
		}
		if i == 200 {
			t.Fatal("the other nodes never heard node 0 on the global room")
		}
	}
	return nodes, recs, first
}

// eventually waits up to 10 s for cond.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 10 s: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// In sharded mode a node that has no member of a room is not subscribed
// to its channel and receives nothing of it; once a member joins (the hub
// subscribes) it receives the room's next event; once the member leaves
// it is unsubscribed again. Checked by Redis itself (PUBSUB SHARDNUMSUB)
// and by the metrics. Before routing, every room went to every node.
func TestRoutingReachesOnlyTheNodesOfTheRoom(t *testing.T) {
	for _, backend := range []string{"redis", "cluster"} {
		t.Run(backend, func(t *testing.T) {
			nodes, recs, c := routingNodes(t, backend, ModeSharded, 2)
			a, b := nodes[0], nodes[1]
			const room = "room-r"
			channel := c.o.KeyPrefix + "#/#" + room + "#"
			subscribers := func() int64 {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				node, err := c.nodeFor(ctx, channel)
				if err != nil {
					t.Fatal(err)
				}
				n, err := node.PubSubShardNumSub(ctx, channel).Result()
				if err != nil {
					t.Fatal(err)
				}
				return n[channel]
			}
			// settle publishes a global sentinel from A and waits for it at
			// B: what A published before it had its chance to arrive.
			sentinels := 0
			settle := func() {
				sentinels++
				name := fmt.Sprint("sentinel-", sentinels)
				a.Publish(chat.GlobalRoom, chat.Event{Name: name})
				eventually(t, "the sentinel at B", func() bool { _, ok := recs[1].got("global/" + name); return ok })
				time.Sleep(100 * time.Millisecond)
			}
			expect := func(what string, c prometheus.Collector, want float64) {
				t.Helper()
				if v := testutil.ToFloat64(c); v != want {
					t.Fatalf("%s: %v, want %v", what, v, want)
				}
			}

			// B holds no member of the room.
			for range 20 {
				a.Publish(room, chat.Event{Name: "before"})
			}
			settle()
			if n := subscribers(); n != 0 {
				t.Fatalf("%d servers subscribe to %s, want none", n, channel)
			}
			if got, ok := recs[1].got(room + "/before"); ok {
				t.Fatalf("B received the room it has no member of: %v", got)
			}
			expect("B: room events received", b.m.roomReceived, 0)

			// A member joins on B.
			b.Subscribe(room)
			eventually(t, "B subscribed to the room's channel", func() bool { return subscribers() == 1 })
			eventually(t, "B's subscription gauge to agree with its channels", func() bool {
				st := b.c.subs.state()
				return st.Subscribed == st.Wanted && testutil.ToFloat64(b.c.subs.m.subscribed) == float64(st.Wanted)
			})
			expect("room channels gauge", b.m.roomChannels, 1)
			expect("subscribes", b.m.roomSubscribes, 1)
			a.Publish(room, chat.Event{Name: "while-member"})
			eventually(t, "the room's event at B", func() bool { _, ok := recs[1].got(room + "/while-member"); return ok })
			expect("B: room events received", b.m.roomReceived, 1)

			// It leaves.
			b.Unsubscribe(room)
			eventually(t, "B left the room's channel", func() bool { return subscribers() == 0 })
			expect("unsubscribes", b.m.roomUnsubscribes, 1)
			expect("room channels gauge", b.m.roomChannels, 0)
			a.Publish(room, chat.Event{Name: "after"})
			settle()
			if got, ok := recs[1].got(room + "/after"); ok {
				t.Fatalf("B received the room after its member left: %v", got)
			}
			expect("B: room events received", b.m.roomReceived, 1)
		})
	}
}

// In streams mode every node reads the one stream: a node with no member
// of a room receives its events anyway, counted as dropped (no client of
// it gets them), and hands them on, as the stream is every node's log.
func TestStreamsModeReceivesTheRoomsOfNoMember(t *testing.T) {
	nodes, recs, _ := routingNodes(t, "redis", ModeStreams, 2)
	a, b := nodes[0], nodes[1]
	for range 5 {
		a.Publish("room-s", chat.Event{Name: "unwanted"})
	}
	eventually(t, "B to drop 5 room events", func() bool { return testutil.ToFloat64(b.m.roomDropped) == 5 })
	if v := testutil.ToFloat64(b.m.roomReceived); v != 5 {
		t.Fatalf("B counted %v room events received, want 5", v)
	}
	if got, ok := recs[1].got("room-s/unwanted"); !ok {
		t.Fatalf("B did not hand on the stream's room events: %v", got)
	}
	if v := testutil.ToFloat64(b.m.roomChannels); v != 0 {
		t.Fatalf("room channels gauge %v in streams mode, want 0", v)
	}
}

// BenchmarkSubscribeRooms subscribes one node to b.N rooms, as many rooms
// getting their first member here, until Redis confirmed every one, then
// leaves them: the cost per room of the subscriptions on the shared
// connections (one per server or master).
func BenchmarkSubscribeRooms(b *testing.B) {
	for _, backend := range []string{"redis", "cluster"} {
		b.Run(backend, func(b *testing.B) {
			nodes, _, _ := routingNodes(b, backend, ModeSharded, 2)
			node := nodes[1]
			subs := node.c.subs
			base := subs.state().Wanted
			b.ResetTimer()
			for i := range b.N {
				node.Subscribe(fmt.Sprint("bench-room-", i))
			}
			eventually(b, "every room subscription confirmed", func() bool { st := subs.state(); return st.Subscribed == base+b.N })
			for i := range b.N {
				node.Unsubscribe(fmt.Sprint("bench-room-", i))
			}
			b.StopTimer()
			subs.mu.Lock()
			b.ReportMetric(float64(len(subs.conns)), "connections")
			subs.mu.Unlock()
		})
	}
}

// BenchmarkJoinAmongRooms is a room's first member joining a node that
// holds benchRoomsHeld rooms already: the subscription of the one room,
// waited for until Redis confirmed it. A round of the subscriber looks at
// the channels that changed only, so it does not grow with the rooms held.
func BenchmarkJoinAmongRooms(b *testing.B) {
	const benchRoomsHeld = 100_000
	nodes, _, _ := routingNodes(b, "redis", ModeSharded, 2)
	node := nodes[1]
	subs := node.c.subs
	for i := range benchRoomsHeld {
		node.Subscribe(fmt.Sprint("held-", i))
	}
	eventually(b, "the held rooms subscribed", func() bool { st := subs.state(); return st.Subscribed == st.Wanted })
	b.ResetTimer()
	for i := range b.N {
		channel := node.routes.router.roomChannel(socket.Room(fmt.Sprint("new-", i)))
		node.Subscribe(fmt.Sprint("new-", i))
		for !subs.confirmed(channel) {
			time.Sleep(50 * time.Microsecond)
		}
	}
}

// Rooms across three nodes, each room's members on one node or two: the
// room events a node receives from the others are exactly those of the
// rooms it holds in sharded mode (the bound is 1.2 times), where
// streams mode, one stream for all, brings every node every room's.
func TestRoomsAcrossThreeNodes(t *testing.T) {
	const (
		nodesN   = 3
		rooms    = 300
		perRoom  = 5
		maxRatio = 1.2
	)
	for _, c := range []struct{ backend, mode string }{
		{"redis", ModeSharded}, {"cluster", ModeSharded}, {"redis", ModeStreams},
	} {
		t.Run(c.backend+"/"+c.mode, func(t *testing.T) {
			nodes, recs, _ := routingNodes(t, c.backend, c.mode, nodesN)
			// Room i has members on node i%3, and, for even i, on the next
			// node too; its first node publishes its events.
			holders := func(i int) []int {
				if i%2 == 0 {
					return []int{i % nodesN, (i + 1) % nodesN}
				}
				return []int{i % nodesN}
			}
			for i := range rooms {
				for _, n := range holders(i) {
					nodes[n].Subscribe(fmt.Sprint("room-", i))
				}
			}
			for _, n := range nodes {
				if subs := n.c.subs; subs != nil {
					eventually(t, "every room channel subscribed", func() bool { st := subs.state(); return st.Subscribed == st.Wanted })
				}
			}
			want := make([]int, nodesN) // cross-node events of the rooms each node holds
			for i := range rooms {
				h := holders(i)
				for k := range perRoom {
					nodes[h[0]].Publish(fmt.Sprint("room-", i), chat.Event{Name: fmt.Sprint("e-", k)})
				}
				for _, n := range h[1:] {
					want[n] += perRoom
				}
			}
			for n := range nodes {
				nodes[n].Publish(chat.GlobalRoom, chat.Event{Name: fmt.Sprint("done-", n)})
			}
			for _, r := range recs {
				for n := range nodes {
					eventually(t, "the last sentinels", func() bool {
						_, ok := r.got(fmt.Sprint("global/done-", n))
						return ok || r == recs[n]
					})
				}
			}
			time.Sleep(200 * time.Millisecond)
			for n, node := range nodes {
				got := testutil.ToFloat64(node.m.roomReceived)
				ratio := got / float64(want[n])
				t.Logf("node %d: %v cross-node room events received for %d of the rooms it holds: %.2f×", n, got, want[n], ratio)
				if c.mode == ModeSharded && (ratio > maxRatio || got < float64(want[n])) {
					t.Fatalf("node %d received %v cross-node room events, want %d (at most %.1f×)", n, got, want[n], maxRatio)
				}
			}
		})
	}
}

// A user event that joins a room (an invite, a direct room), then this
// node's messages of the room at once: the node that joins the user's
// sockets on that event, and only then subscribes to the room's channel,
// gets every message, as the relay carries those its subscription comes
// too late for; a node with no member drops the copies. A user's own join
// (no Invite) and a room with no join announced are not relayed. Without the relay, B missed the first
// messages (they were published before its SSUBSCRIBE).
func TestMessagesRightAfterAJoinReachTheJoiningNode(t *testing.T) {
	for _, backend := range []string{"redis", "cluster"} {
		t.Run(backend, func(t *testing.T) {
			nodes, recs, _ := routingNodes(t, backend, ModeSharded, 3)
			a, b, c := nodes[0], nodes[1], nodes[2]
			recs[1].mu.Lock()
			recs[1].onUser = func(e chat.Event) {
				if e.Join != "" {
					b.Subscribe(e.Join) // as the hub's join of its first member
				}
			}
			recs[1].mu.Unlock()
			const room, n = "dm-1", 5
			a.PublishUser("bob", chat.Event{Name: "room:invited", Join: room, Invite: true})
			for i := range n {
				a.Publish(room, chat.MessageEvent(chattest.Msg(fmt.Sprint("m-", i), "hi", i)))
			}
			for i := range n {
				want := fmt.Sprintf("%s/message:m-%d", room, i)
				eventually(t, "B got "+want, func() bool { _, ok := recs[1].got(want); return ok })
			}
			if v := testutil.ToFloat64(a.m.roomRelayed); v != n {
				t.Fatalf("A relayed %v messages, want %d", v, n)
			}
			eventually(t, "C dropped the copies", func() bool { return testutil.ToFloat64(c.m.roomDropped) == n })
			if got, _ := recs[2].got(""); len(got) > 0 && strings.Contains(strings.Join(got, " "), room) {
				t.Fatalf("C, with no member, was handed the room: %v", got)
			}

			// A user's own join (no Invite) is not relayed, nor is a room
			// with no join announced.
			a.PublishUser("bob", chat.Event{Name: "room:joined", Join: "room-2"})
			eventually(t, "B subscribed to room-2", func() bool {
				st := b.c.subs.state()
				return b.holds("room-2") && st.Subscribed == st.Wanted
			})
			a.Publish("room-2", chat.MessageEvent(chattest.Msg("m-x", "hi", 9)))
			a.Publish("room-3", chat.MessageEvent(chattest.Msg("m-y", "hi", 10)))
			eventually(t, "B got room-2's message", func() bool { _, ok := recs[1].got("room-2/message:m-x"); return ok })
			if v := testutil.ToFloat64(a.m.roomRelayed); v != n {
				t.Fatalf("A relayed %v messages, want still %d", v, n)
			}
		})
	}
}

// Subscribed returns once the room's channel is subscribed to: a message
// published right after reaches the node (without the wait it was missed
// on the Redis Cluster, see the test above). A room the node does not
// subscribe to is waited for until ctx ends; the global room is not.
func TestSubscribedWaitsForTheChannel(t *testing.T) {
	for _, backend := range []string{"redis", "cluster"} {
		t.Run(backend, func(t *testing.T) {
			nodes, recs, _ := routingNodes(t, backend, ModeSharded, 2)
			a, b := nodes[0], nodes[1]
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			for i := range 3 {
				room := fmt.Sprint("warm-", i)
				b.Subscribe(room)
				if err := b.Subscribed(ctx, room); err != nil {
					t.Fatal(err)
				}
				a.Publish(room, chat.MessageEvent(chattest.Msg(fmt.Sprint("w-", i), "hi", i)))
				want := fmt.Sprintf("%s/message:w-%d", room, i)
				eventually(t, "B got "+want, func() bool { _, ok := recs[1].got(want); return ok })
			}
			if err := b.Subscribed(ctx, chat.GlobalRoom); err != nil {
				t.Fatalf("the global room: %v", err)
			}
			short, cancelShort := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancelShort()
			if err := b.Subscribed(short, "never-subscribed"); err == nil {
				t.Fatal("a room never subscribed to was reported subscribed")
			}
		})
	}
}
