package chattest

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scalable-chat-go/server/chat"
)

// Cluster is a broker engine's node: a chat.Broker that is a
// chat.Directory too.
type Cluster interface {
	chat.Broker
	chat.Directory
}

// TestBroker runs the Broker and Directory contract against the engine of
// newNodes, which returns n nodes of one new cluster, not yet running (the
// suite registers its handlers, runs them, and closes them).
func TestBroker(t *testing.T, newNodes func(t *testing.T, n int) []Cluster) {
	t.Run("PublishReachesEveryOtherNodeOnceWithItsRoom", func(t *testing.T) {
		nodes, rec := startNodes(t, newNodes, 3)
		m := Msg("m-1", "hello", 1)
		m.UserID = "user-1"
		events := []struct {
			room string
			e    chat.Event
		}{
			{chat.GlobalRoom, chat.MessageEvent(m)},
			{chat.GlobalRoom, chat.Event{Name: chat.EventTyping, Data: map[string]any{"name": "ann", "typing": true}, Except: "sock-1"}},
			{chat.GlobalRoom, chat.DeletionEvent(chat.Deletion{ID: "m-0", By: "mod", At: m.CreatedAt})},
			{"room-a", chat.MessageEvent(Msg("m-2", "in a", 2))},
			{"room-a", chat.Event{Name: chat.EventTyping, Data: map[string]any{"room": "room-a", "name": "bo", "typing": false}}},
			{"room-a", chat.Event{Name: "room:deleted", Data: map[string]any{"room": "room-a"}, Close: true}},
		}
		for _, ev := range events {
			nodes[0].Publish(ev.room, ev.e)
		}
		for _, i := range []int{1, 2} {
			got := rec[i].waitPublications(t, len(events))
			if len(got) != len(events) {
				t.Fatalf("node %d received %d events, want %d: each must arrive once", i, len(got), len(events))
			}
			// Order is per room: take each room's events in turn.
			byRoom := map[string][]publication{}
			for _, g := range got {
				byRoom[g.room] = append(byRoom[g.room], g)
			}
			for j, ev := range events {
				if len(byRoom[ev.room]) == 0 {
					t.Fatalf("node %d, event %d: %s in %s never arrived", i, j, ev.e.Name, ev.room)
				}
				g := byRoom[ev.room][0]
				byRoom[ev.room] = byRoom[ev.room][1:]
				if g.room != ev.room || g.e.Name != ev.e.Name || g.e.Close != ev.e.Close {
					t.Fatalf("node %d, event %d: got %s in %s, want %s in %s", i, j, g.e.Name, g.room, ev.e.Name, ev.room)
				}
				switch {
				case ev.e.IsMessage():
					if !g.e.IsMessage() || !sameMessage(g.e.Message, ev.e.Message) {
						t.Fatalf("node %d: message %+v arrived as %+v", i, ev.e.Message, g.e.Message)
					}
				case ev.e.Deletion != nil:
					if g.e.Deletion == nil || g.e.Deletion.ID != ev.e.Deletion.ID {
						t.Fatalf("node %d: deletion arrived as %+v", i, g.e)
					}
				default:
					if !reflect.DeepEqual(g.e.Data, ev.e.Data) {
						t.Fatalf("node %d: %s data %#v arrived as %#v", i, ev.e.Name, ev.e.Data, g.e.Data)
					}
				}
			}
		}
		// Nothing comes back to the publisher: a sentinel from another
		// node arrives after anything that could have.
		nodes[1].Publish(chat.GlobalRoom, chat.Event{Name: "sentinel", Data: "x"})
		got := rec[0].waitPublications(t, 1)
		if len(got) != 1 || got[0].e.Name != "sentinel" {
			t.Fatalf("the publisher received its own events: %+v", got)
		}
		rec[2].waitPublications(t, 1)
		time.Sleep(200 * time.Millisecond)
		for i := range nodes {
			if n := rec[i].count(); n != 0 {
				t.Fatalf("node %d received %d more events: each must arrive once", i, n)
			}
		}
	})

	t.Run("SentIsCalledOnceThePublicationLeft", func(t *testing.T) {
		nodes, rec := startNodes(t, newNodes, 2)
		sent := make(chan error, 2)
		e := chat.MessageEvent(Msg("s-1", "x", 1))
		e.Sent = func(err error) { sent <- err }
		nodes[0].Publish(chat.GlobalRoom, e)
		select {
		case err := <-sent:
			if err != nil {
				t.Fatalf("Sent(%v) for a publication that left", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Sent not called within 10 s")
		}
		if got := rec[1].waitPublications(t, 1); got[0].e.Sent != nil {
			t.Fatal("the receiving node got the publisher's Sent")
		}
		select {
		case <-sent:
			t.Fatal("Sent called twice")
		case <-time.After(100 * time.Millisecond):
		}
	})

	t.Run("OrderedNodesReadOneLog", func(t *testing.T) {
		nodes, rec := startNodes(t, newNodes, 3)
		if !ordered(nodes[0]) {
			t.Skip("the engine keeps no ordered log (chat.OrderedBroker)")
		}
		const each = 40
		var wg sync.WaitGroup
		for k := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					nodes[k].Publish(chat.GlobalRoom, chat.MessageEvent(Msg(fmt.Sprintf("n%d-%03d", k, i), "x", i)))
				}
				// A node's other events do not come back to it.
				nodes[k].Publish(chat.GlobalRoom, chat.Event{Name: chat.EventTyping, Data: "t"})
			}()
		}
		wg.Wait()
		// Every node reads the same messages in the same order: its own
		// too, marked, at their places.
		var orders [3][]string
		for i := range nodes {
			own := 0
			if i < 2 {
				own = each
			}
			var all []publication
			all = append(all, rec[i].waitOwn(t, own)...)
			for _, p := range rec[i].waitPublications(t, 2*each-own+1+boolInt(i == 2)) {
				if p.e.IsMessage() {
					all = append(all, p)
				}
			}
			sort.Slice(all, func(a, b int) bool { return all[a].e.Pos.Before(all[b].e.Pos) })
			for j, p := range all {
				if p.e.Pos.IsZero() || j > 0 && !all[j-1].e.Pos.Before(p.e.Pos) {
					t.Fatalf("node %d: message %s at %v: positions must rise", i, p.e.Message.ID, p.e.Pos)
				}
				if p.e.Own != strings.HasPrefix(p.e.Message.ID, fmt.Sprintf("n%d-", i)) {
					t.Fatalf("node %d: message %s Own=%v", i, p.e.Message.ID, p.e.Own)
				}
				orders[i] = append(orders[i], fmt.Sprint(p.e.Message.ID, "@", p.e.Pos))
			}
		}
		if len(orders[0]) != 2*each || !reflect.DeepEqual(orders[0], orders[1]) || !reflect.DeepEqual(orders[0], orders[2]) {
			t.Fatalf("the nodes read different logs:\n%v\n%v\n%v", orders[0], orders[1], orders[2])
		}
	})

	t.Run("OrderedNodeReadsTheLatestFirst", func(t *testing.T) {
		nodes := newNodes(t, 2)
		if !ordered(nodes[0]) {
			t.Skip("the engine keeps no ordered log (chat.OrderedBroker)")
		}
		recs := make([]*recorder, 2)
		for i, node := range nodes {
			recs[i] = &recorder{probes: map[string]map[any]bool{}, changed: make(chan struct{}, 1)}
			node.RegisterEventHandler(recs[i])
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			for _, node := range nodes {
				_ = node.Close(ctx)
			}
		})
		if err := nodes[0].Run(); err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			nodes[0].Publish("room-a", chat.MessageEvent(Msg(fmt.Sprintf("s-%d", i), "x", i)))
		}
		own := recs[0].waitOwn(t, 3)
		// A node that starts now reads them first, as another node's.
		if err := nodes[1].Run(); err != nil {
			t.Fatal(err)
		}
		got := recs[1].waitPublications(t, 3)
		for i, p := range got {
			if p.room != "room-a" || p.e.Own || p.e.Message.ID != own[i].e.Message.ID || p.e.Pos != own[i].e.Pos {
				t.Fatalf("the new node read %+v, want %+v", p, own[i])
			}
		}
		if floor, ok := nodes[1].(chat.OrderedBroker).Floor(); !ok || got[0].e.Pos.Before(floor) {
			t.Fatalf("Floor() = %v, %v; want a floor at or before the first message read", floor, ok)
		}
	})

	t.Run("OneNodesEventsArriveInOrder", func(t *testing.T) {
		nodes, rec := startNodes(t, newNodes, 2)
		const n = 500
		for i := range n {
			nodes[0].Publish(chat.GlobalRoom, chat.MessageEvent(Msg(fmt.Sprintf("o-%04d", i), "x", i)))
		}
		got := rec[1].waitPublications(t, n)
		for i, g := range got {
			if want := fmt.Sprintf("o-%04d", i); g.e.Message.ID != want {
				t.Fatalf("event %d is %s, want %s", i, g.e.Message.ID, want)
			}
		}
	})

	t.Run("SubscribedMeansTheNextEventArrives", func(t *testing.T) {
		nodes, rec := startNodes(t, newNodes, 2)
		// Once Subscribed returns, the room's very next message reaches
		// the node: no probe, no retry.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		nodes[1].Subscribe("room-s")
		if err := nodes[1].Subscribed(ctx, "room-s"); err != nil {
			t.Fatal(err)
		}
		nodes[0].Publish("room-s", chat.MessageEvent(Msg("s-1", "first", 1)))
		got := rec[1].waitPublications(t, 1)
		if got[0].room != "room-s" || got[0].e.Message.ID != "s-1" {
			t.Fatalf("got %+v", got)
		}
		if err := nodes[1].Subscribed(ctx, chat.GlobalRoom); err != nil {
			t.Fatalf("the global room: %v", err)
		}
	})

	t.Run("SubscriptionsNest", func(t *testing.T) {
		nodes, rec := startNodes(t, newNodes, 2)
		// Two subscriptions, one undone: node 1 still receives room-b.
		nodes[1].Subscribe("room-b")
		nodes[1].Subscribe("room-b")
		nodes[1].Unsubscribe("room-b")
		nodes[1].Unsubscribe("room-never-subscribed")
		deadline := time.Now().Add(10 * time.Second)
		for !rec[1].probedRoom("room-b") {
			if time.Now().After(deadline) {
				t.Fatal("node 1 does not receive room-b after two subscriptions and one unsubscription")
			}
			nodes[0].Publish("room-b", chat.Event{Name: probeEvent, Data: "0"})
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(200 * time.Millisecond)
		nodes[0].Publish("room-b", chat.MessageEvent(Msg("m-b", "in b", 1)))
		got := rec[1].waitPublications(t, 1)
		if got[0].room != "room-b" || got[0].e.Message.ID != "m-b" {
			t.Fatalf("got %+v", got)
		}
	})

	t.Run("UserEventsReachTheOtherNodes", func(t *testing.T) {
		nodes, rec := startNodes(t, newNodes, 2)
		nodes[0].PublishUser("user-7", chat.Event{Name: "room:invited", Data: map[string]any{"room": "r-1"}, Join: "r-1"})
		nodes[0].PublishUser("user-7", chat.Event{Name: "room:removed", Data: map[string]any{"room": "r-1"}, Leave: "r-1"})
		got := rec[1].waitUser(t, 2)
		if got[0].to != "user-7" || got[0].e.Name != "room:invited" || !reflect.DeepEqual(got[0].e.Data, map[string]any{"room": "r-1"}) ||
			got[0].e.Join != "r-1" || got[1].e.Leave != "r-1" || got[1].e.Name != "room:removed" {
			t.Fatalf("got %+v", got)
		}
		if n := rec[1].count(); n != 0 {
			t.Fatalf("a user event reached the room handlers (%d)", n)
		}
	})

	t.Run("ControlEventsReachTheNodesOnly", func(t *testing.T) {
		nodes, rec := startNodes(t, newNodes, 2)
		b := chat.Ban{ID: "b-1", Username: "mallory", By: "mod", CreatedAt: time.UnixMilli(1_700_000_000_000).UTC()}
		nodes[0].PublishControl(chat.Event{Name: chat.EventBanAdded, Data: b.Wire()})
		got := rec[1].waitControl(t, 1)
		var w chat.BanWire
		if got[0].Name != chat.EventBanAdded || !decodeInto(got[0].Data, &w) || w.ID != "b-1" || w.Username != "mallory" {
			t.Fatalf("got %+v", got[0])
		}
		nodes[0].Publish(chat.GlobalRoom, chat.Event{Name: "sentinel", Data: "x"})
		if pubs := rec[1].waitPublications(t, 1); len(pubs) != 1 || pubs[0].e.Name != "sentinel" {
			t.Fatalf("the control event reached the event handlers too: %+v", pubs)
		}
	})

	t.Run("NodesAreCounted", func(t *testing.T) {
		nodes, _ := startNodes(t, newNodes, 3)
		deadline := time.Now().Add(10 * time.Second)
		for nodes[0].Nodes() != 3 {
			if time.Now().After(deadline) {
				t.Fatalf("Nodes() = %d, want 3", nodes[0].Nodes())
			}
			time.Sleep(50 * time.Millisecond)
		}
	})

	t.Run("DirectoryAsksTheOtherNodes", func(t *testing.T) {
		nodes, rec := startNodes(t, newNodes, 3)
		// A request reaches the nodes listening when it is made: ask until
		// both answered (Redis subscribes each node's channels apart).
		var got []chat.SocketInfo
		deadline := time.Now().Add(15 * time.Second)
		for len(got) != 2 {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			var err error
			got, err = nodes[0].FetchSockets(ctx, "/")
			cancel()
			if time.Now().After(deadline) {
				t.Fatalf("FetchSockets: %+v, %v; want node 1's and node 2's sockets", got, err)
			}
		}
		sort.Slice(got, func(i, j int) bool { return got[i].ID < got[j].ID })
		for i, s := range got {
			want := rec[i+1].socket
			if s.ID != want.ID || s.Namespace != "/" || s.Transport != want.Transport || s.Addr != want.Addr ||
				!s.Since.Equal(want.Since) || !reflect.DeepEqual(s.Rooms, want.Rooms) || !reflect.DeepEqual(s.Data, want.Data) {
				t.Fatalf("socket %+v arrived as %+v", want, s)
			}
		}
		nodes[0].DisconnectSockets("/", true, "room-x")
		for _, i := range []int{1, 2} {
			if d := rec[i].waitDisconnect(t); d != "/ true room-x" {
				t.Fatalf("node %d was asked to disconnect %q", i, d)
			}
		}
		nodes[0].PublishAdmin("server_stats", []any{map[string]any{"serverId": "a"}})
		for _, i := range []int{1, 2} {
			a := rec[i].waitAdmin(t)
			if a.name != "server_stats" || !reflect.DeepEqual(a.args, []any{map[string]any{"serverId": "a"}}) {
				t.Fatalf("node %d got admin event %+v", i, a)
			}
		}
	})
}

func decodeInto(data any, v any) bool {
	if w, ok := data.(chat.BanWire); ok {
		if p, ok := v.(*chat.BanWire); ok {
			*p = w
			return true
		}
	}
	m, ok := data.(map[string]any)
	if !ok {
		return false
	}
	p, ok := v.(*chat.BanWire)
	if !ok {
		return false
	}
	p.ID, _ = m["id"].(string)
	p.Username, _ = m["username"].(string)
	return true
}

func sameMessage(a, b chat.Message) bool {
	return a.ID == b.ID && a.Text == b.Text && a.Username == b.Username && a.UserID == b.UserID && a.CreatedAt.Equal(b.CreatedAt)
}

// ordered reports whether the node is an ordered broker that keeps a log.
func ordered(b chat.Broker) bool {
	ob, ok := b.(chat.OrderedBroker)
	return ok && ob.Ordered()
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// startNodes makes n nodes, registers a recorder on each, and runs them.
func startNodes(t *testing.T, newNodes func(t *testing.T, n int) []Cluster, n int) ([]Cluster, []*recorder) {
	t.Helper()
	nodes := newNodes(t, n)
	recs := make([]*recorder, n)
	for i, node := range nodes {
		r := &recorder{socket: chat.SocketInfo{ID: fmt.Sprintf("sock-of-node-%d", i), Namespace: "/", Transport: "websocket",
			Addr: fmt.Sprintf("10.0.0.%d", i+1), Since: time.UnixMilli(1_700_000_000_000 + int64(i)).UTC(),
			Rooms: []string{fmt.Sprintf("sock-of-node-%d", i), "chat:live"}, Data: map[string]any{"name": fmt.Sprint("user ", i)}},
			probes: map[string]map[any]bool{}, changed: make(chan struct{}, 1)}
		recs[i] = r
		node.RegisterEventHandler(r)
		node.RegisterControlHandler(r)
		node.RegisterDirectoryHandler(r)
		// Before Run: an engine that routes subscribes to them as it runs.
		for _, room := range suiteRooms {
			node.Subscribe(room)
		}
	}
	for _, node := range nodes {
		if err := node.Run(); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, node := range nodes {
			_ = node.Close(ctx)
		}
	})
	// Every node listens before the test publishes: a publication reaches
	// only the nodes subscribed when it is made.
	waitListening(t, nodes, recs)
	return nodes, recs
}

// waitListening publishes probes of every kind from each node until every
// other node received each kind, then forgets the probes.
func waitListening(t *testing.T, nodes []Cluster, recs []*recorder) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		for i, node := range nodes {
			probe := chat.Event{Name: probeEvent, Data: fmt.Sprint(i)}
			node.Publish(chat.GlobalRoom, probe)
			for _, room := range suiteRooms {
				node.Publish(room, probe)
			}
			node.PublishUser("probe-user", probe)
			// Control events are the internal ones (chat.IsInternal).
			node.PublishControl(chat.Event{Name: chat.EventBanLifted, Data: chat.DeletedWire{ID: probeEvent + fmt.Sprint(i)}})
			node.PublishAdmin(probeEvent, []any{fmt.Sprint(i)})
		}
		time.Sleep(100 * time.Millisecond)
		all := true
		for _, r := range recs {
			if !r.probed(len(nodes) - 1) {
				all = false
			}
		}
		if all {
			break
		}
		if time.Now().After(deadline) {
			var heard []string
			for i, r := range recs {
				r.mu.Lock()
				heard = append(heard, fmt.Sprintf("node %d: %v", i, r.probes))
				r.mu.Unlock()
			}
			t.Fatalf("the nodes did not hear each other within 15 s; probes heard: %v", heard)
		}
	}
	// Probes still on their way are dropped as they come.
	time.Sleep(200 * time.Millisecond)
}

// probeEvent is the suite's event for knowing that nodes listen.
const probeEvent = "chattest:probe"

// suiteRooms are the rooms other than the global one that every node of
// the suite subscribes to, and probes.
var suiteRooms = []string{"probe-room", "room-a"}

// probeKinds are the ways a probe comes.
var probeKinds = []string{"global", "room:probe-room", "room:room-a", "user", "control", "admin"}

type publication struct {
	room string
	e    chat.Event
}

type userEvent struct {
	to string
	e  chat.Event
}

type adminEvent struct {
	name string
	args []any
}

// recorder is a node's handlers: it keeps what it is handed.
type recorder struct {
	socket chat.SocketInfo

	mu          sync.Mutex
	pubs        []publication
	own         []publication // the node's own messages, back (ordered)
	users       []userEvent
	control     []chat.Event
	disconnects []string
	admin       []adminEvent
	probes      map[string]map[any]bool // kind -> the nodes whose probe came
	changed     chan struct{}
}

func (r *recorder) note() {
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

// probe counts a probe of kind; false when e is not a probe.
func (r *recorder) probe(kind string, e chat.Event) bool {
	if e.Name != probeEvent {
		return false
	}
	r.mu.Lock()
	if r.probes[kind] == nil {
		r.probes[kind] = map[any]bool{}
	}
	r.probes[kind][e.Data] = true
	r.mu.Unlock()
	return true
}

func (r *recorder) HandlePublication(room string, e chat.Event) {
	kind := "global"
	if room != chat.GlobalRoom {
		kind = "room:" + room
	}
	if r.probe(kind, e) {
		return
	}
	r.mu.Lock()
	if e.Own {
		r.own = append(r.own, publication{room, e})
	} else {
		r.pubs = append(r.pubs, publication{room, e})
	}
	r.mu.Unlock()
	r.note()
}

func (r *recorder) HandleUserEvent(to string, e chat.Event) {
	if r.probe("user", e) {
		return
	}
	r.mu.Lock()
	r.users = append(r.users, userEvent{to, e})
	r.mu.Unlock()
	r.note()
}

func (r *recorder) HandleControl(e chat.Event) {
	if m, ok := e.Data.(map[string]any); ok && e.Name == chat.EventBanLifted {
		if id, _ := m["id"].(string); strings.HasPrefix(id, probeEvent) {
			r.probe("control", chat.Event{Name: probeEvent, Data: strings.TrimPrefix(id, probeEvent)})
			return
		}
	}
	r.mu.Lock()
	r.control = append(r.control, e)
	r.mu.Unlock()
	r.note()
}

func (r *recorder) LocalSockets(nsp string, limit int) []chat.SocketInfo {
	if nsp != "/" || limit < 1 {
		return nil
	}
	return []chat.SocketInfo{r.socket}
}

func (r *recorder) DisconnectLocal(nsp string, closeConn bool, filter string) int {
	r.mu.Lock()
	r.disconnects = append(r.disconnects, fmt.Sprint(nsp, " ", closeConn, " ", filter))
	r.mu.Unlock()
	r.note()
	return 1
}

func (r *recorder) HandleAdmin(name string, args []any) {
	var from any
	if len(args) > 0 {
		from = args[0]
	}
	if r.probe("admin", chat.Event{Name: name, Data: from}) {
		return
	}
	r.mu.Lock()
	r.admin = append(r.admin, adminEvent{name, args})
	r.mu.Unlock()
	r.note()
}

// probed reports whether probes of every kind came from n other nodes.
func (r *recorder) probed(n int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range probeKinds {
		if len(r.probes[k]) < n {
			return false
		}
	}
	return true
}

// probedRoom reports whether a probe of room came.
func (r *recorder) probedRoom(room string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.probes["room:"+room]) > 0
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pubs)
}

// waitFor waits until ready (under r.mu) holds, failing t after 10 s.
func (r *recorder) waitFor(t *testing.T, what string, ready func() bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		r.mu.Lock()
		ok := ready()
		r.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-r.changed:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("waited 10 s for %s", what)
		}
	}
}

// waitOwn waits until n of the node's own messages came back (an ordered
// broker), and returns and forgets them.
func (r *recorder) waitOwn(t *testing.T, n int) []publication {
	t.Helper()
	r.waitFor(t, fmt.Sprintf("%d own messages back", n), func() bool { return len(r.own) >= n })
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.own
	r.own = nil
	return out
}

func (r *recorder) waitPublications(t *testing.T, n int) []publication {
	t.Helper()
	r.waitFor(t, fmt.Sprint(n, " publications"), func() bool { return len(r.pubs) >= n })
	r.mu.Lock()
	defer r.mu.Unlock()
	out := append([]publication(nil), r.pubs...)
	r.pubs = r.pubs[:0]
	return out
}

func (r *recorder) waitUser(t *testing.T, n int) []userEvent {
	t.Helper()
	r.waitFor(t, fmt.Sprint(n, " user events"), func() bool { return len(r.users) >= n })
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]userEvent(nil), r.users...)
}

func (r *recorder) waitControl(t *testing.T, n int) []chat.Event {
	t.Helper()
	r.waitFor(t, fmt.Sprint(n, " control events"), func() bool { return len(r.control) >= n })
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]chat.Event(nil), r.control...)
}

func (r *recorder) waitDisconnect(t *testing.T) string {
	t.Helper()
	r.waitFor(t, "a disconnect request", func() bool { return len(r.disconnects) > 0 })
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.disconnects[0]
}

func (r *recorder) waitAdmin(t *testing.T) adminEvent {
	t.Helper()
	r.waitFor(t, "an admin event", func() bool { return len(r.admin) > 0 })
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.admin[0]
}
