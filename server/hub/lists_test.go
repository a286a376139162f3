package hub

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scalable-chat-go/server/chat"
)

// Joins, leaves and disconnections of the same connections race each
// other (a socket's worker and the broker's user events both join it),
// with deliveries and presence ticks that drop empty rooms. Afterwards
// every membership a connection has is in its room's list, live, and the
// list holds no other; every room with members is the hub's; and each
// room is subscribed exactly while it has members.
func TestRacingJoinsAndLeavesKeepTheListsWhole(t *testing.T) {
	rooms := []string{"r-0", "r-1", "r-2", "r-3"}
	subs := &subscriptions{}
	// A ring that holds every message: a newcomer's mark is always found.
	n := newNode(t, nodeOptions{rooms: rooms, subs: subs, ring: 1 << 16})
	conns := make([]*testConn, 16)
	for i := range conns {
		conns[i] = newConn(fmt.Sprintf("c-%02d", i), "")
	}
	var wg sync.WaitGroup
	for i, c := range conns {
		for g := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rnd := rand.New(rand.NewPCG(uint64(i), uint64(g)))
				for range 400 {
					room := rooms[rnd.IntN(len(rooms))]
					switch k := rnd.IntN(20); {
					case k < 10:
						_ = n.Join(c, room, JoinOptions{Live: true})
					case k < 19:
						_ = n.Leave(c, room)
					default:
						n.Disconnect(c)
					}
				}
			}()
		}
	}
	stop := make(chan struct{})
	var bg sync.WaitGroup
	bg.Add(2)
	go func() {
		defer bg.Done()
		for i := range 1 << 15 {
			select {
			case <-stop:
				return
			default:
			}
			n.Broadcast(rooms[i%len(rooms)], chat.MessageEvent(msg(i)))
		}
	}()
	go func() {
		defer bg.Done()
		for range 1 << 15 {
			select {
			case <-stop:
				return
			default:
			}
			n.presenceTick()
		}
	}()
	wg.Wait()
	close(stop)
	bg.Wait()

	n.mu.Lock()
	defer n.mu.Unlock()
	held := map[*room]map[*client]bool{}
	for c, cl := range n.conns {
		if cl.c != c {
			t.Errorf("%s is listed as %s", c.ID(), cl.c.ID())
		}
		for _, r := range cl.rooms {
			if held[r] == nil {
				held[r] = map[*client]bool{}
			}
			held[r][cl] = true
			switch {
			case n.rooms[r.name] != r:
				t.Errorf("%s is in %s, which the hub dropped", c.ID(), r.name)
			case r.liveIndexLocked(cl) < 0:
				t.Errorf("%s is in %s but not in its live list (on its way in: %v)", c.ID(), r.name, r.pendingOfLocked(cl) != nil)
			}
		}
	}
	balance := map[string]int{}
	for _, call := range subs.take() {
		if strings.HasPrefix(call, "+") {
			balance[call[1:]]++
		} else {
			balance[call[1:]]--
		}
	}
	for _, name := range rooms {
		r := n.rooms[name]
		want := 0
		if r != nil && len(r.members) > 0 {
			want = 1
		}
		if balance[name] != want {
			t.Errorf("%s: subscribed %d times more than left, with %d members", name, balance[name], want)
		}
		if r == nil {
			continue
		}
		if len(r.pending) > 0 {
			t.Errorf("%s: %d members still on their way in", name, len(r.pending))
		}
		for i, cl := range r.members {
			if !held[r][cl] {
				t.Errorf("%s lists %s, which is not in it", name, cl.c.ID())
			}
			if r.liveIndexLocked(cl) != i {
				t.Errorf("%s lists %s at %d, and finds it at %d", name, cl.c.ID(), i, r.liveIndexLocked(cl))
			}
		}
		if int(r.nlive.Load()) != len(r.members) {
			t.Errorf("%s: nlive %d, %d live members", name, r.nlive.Load(), len(r.members))
		}
	}
}

// A room whose only member is on its way in (enrolled, not live yet) is
// not dropped by the presence ticks meanwhile, and a connection that
// leaves meanwhile does not go live.
func TestAJoinInFlightKeepsItsRoom(t *testing.T) {
	n := newNode(t, nodeOptions{rooms: []string{"r-0"}})
	a, b := newConn("a", ""), newConn("b", "")
	n.afterEnroll = func() {
		n.presenceTick()
		n.presenceTick()
	}
	if err := n.Join(a, "r-0", JoinOptions{Live: true}); err != nil {
		t.Fatal(err)
	}
	n.Broadcast("r-0", chat.MessageEvent(msg(1)))
	if got := a.messages(); len(got) != 1 {
		t.Fatalf("a got %v after joining, want m-001: the room was dropped under it", got)
	}
	n.afterEnroll = func() { n.Disconnect(b) }
	if err := n.Join(b, "r-0", JoinOptions{Live: true}); err != nil {
		t.Fatal(err)
	}
	n.afterEnroll = nil
	n.Broadcast("r-0", chat.MessageEvent(msg(2)))
	if got := b.messages(); len(got) != 0 {
		t.Fatalf("b, gone on its way in, got %v", got)
	}
	if r := n.lookup("r-0"); r == nil || len(r.members) != 1 || r.nlive.Load() != 1 {
		t.Fatalf("r-0 after b left on its way in: %+v", r)
	}
}

// Warm holds a room, subscribed, for its hold: the presence ticks keep
// it meanwhile, a member that comes and goes leaves its subscription in
// place, and the room is let go once the hold ends.
func TestWarmHoldsARoomSubscribed(t *testing.T) {
	subs := &subscriptions{}
	n := newNode(t, nodeOptions{rooms: []string{"r-0"}, subs: subs})
	if err := n.Warm(context.Background(), []string{"r-0", chat.GlobalRoom}, 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	n.presenceTick()
	n.presenceTick()
	if n.lookup("r-0") == nil {
		t.Fatal("r-0 dropped during its hold")
	}
	a := newConn("a", "")
	if err := n.Join(a, "r-0", JoinOptions{Live: true}); err != nil {
		t.Fatal(err)
	}
	if err := n.Leave(a, "r-0"); err != nil {
		t.Fatal(err)
	}
	if got := subs.take(); !slices.Equal(got, []string{"+r-0", "+r-0", "-r-0"}) {
		t.Fatalf("subscriptions during the hold: %v", got)
	}
	time.Sleep(200 * time.Millisecond)
	n.presenceTick()
	n.presenceTick()
	if got := subs.take(); !slices.Equal(got, []string{"-r-0"}) {
		t.Fatalf("subscriptions after the hold: %v", got)
	}
	if n.lookup("r-0") != nil {
		t.Fatal("r-0 kept after its hold, with no member")
	}
}

// A room past indexAbove members finds them through its index: members
// leave in any order, each of the others keeps its place, deliveries
// reach exactly those still in, and the index goes once the room is
// small again.
func TestALargeRoomKeepsItsIndexWhole(t *testing.T) {
	n := newNode(t, nodeOptions{rooms: []string{"r-0"}})
	conns := make([]*testConn, indexAbove+indexAbove/2)
	for i := range conns {
		conns[i] = newConn(fmt.Sprintf("c-%04d", i), "")
		if err := n.Join(conns[i], "r-0", JoinOptions{Live: true}); err != nil {
			t.Fatal(err)
		}
	}
	r := n.lookup("r-0")
	check := func(when string, wantIndex bool) {
		t.Helper()
		r.mu.Lock()
		defer r.mu.Unlock()
		r.pmu.Lock()
		defer r.pmu.Unlock()
		if (r.index != nil) != wantIndex {
			t.Fatalf("%s: %d members, index %v, want %v", when, len(r.members), r.index != nil, wantIndex)
		}
		if r.index != nil && len(r.index) != len(r.members) {
			t.Fatalf("%s: %d in the index, %d members", when, len(r.index), len(r.members))
		}
		for i, cl := range r.members {
			if got := r.liveIndexLocked(cl); got != i {
				t.Fatalf("%s: %s at %d, found at %d", when, cl.c.ID(), i, got)
			}
		}
	}
	check("all joined", true)
	rnd := rand.New(rand.NewPCG(1, 2))
	order := rnd.Perm(len(conns))
	gone := map[int]bool{}
	for k, i := range order[:len(conns)-indexAbove/4] {
		if err := n.Leave(conns[i], "r-0"); err != nil {
			t.Fatal(err)
		}
		gone[i] = true
		if k%100 == 0 {
			check(fmt.Sprintf("after %d left", k+1), len(conns)-k-1 >= indexAbove/2)
		}
	}
	check("most left", false)
	n.Broadcast("r-0", chat.MessageEvent(msg(1)))
	for i, c := range conns {
		if got := len(c.messages()); got != map[bool]int{true: 0, false: 1}[gone[i]] {
			t.Fatalf("%s (left: %v) got %d messages", c.ID(), gone[i], got)
		}
	}
}
