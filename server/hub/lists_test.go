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
	held := map[*member]bool{}
	for c, cl := range n.conns {
		for _, m := range cl.rooms {
			held[m] = true
			switch {
			case m.cl.c != c:
				t.Errorf("%s holds a membership of %s", c.ID(), m.cl.c.ID())
			case n.rooms[m.r.name] != m.r:
				t.Errorf("%s is in %s, which the hub dropped", c.ID(), m.r.name)
			case m.idx < 0 || int(m.idx) >= len(m.r.members) || m.r.members[m.idx] != m:
				t.Errorf("%s is in %s but not in its list (idx %d)", c.ID(), m.r.name, m.idx)
			case !m.live || m.gone:
				t.Errorf("%s in %s: live %v, gone %v", c.ID(), m.r.name, m.live, m.gone)
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
		live := 0
		for _, m := range r.members {
			if !held[m] {
				t.Errorf("%s lists %s, which is not in it", name, m.cl.c.ID())
			}
			if m.live {
				live++
			}
		}
		if int(r.nlive.Load()) != live {
			t.Errorf("%s: nlive %d, %d live members", name, r.nlive.Load(), live)
		}
	}
}

// A room whose only member is on its way in (enrolled, not in the list
// yet) is not dropped by the presence ticks meanwhile, and a connection
// that leaves meanwhile is not put in the list.
func TestAJoinInFlightKeepsItsRoom(t *testing.T) {
	n := newNode(t, nodeOptions{rooms: []string{"r-0"}})
	a, b := newConn("a", ""), newConn("b", "")
	n.betweenEnrollSteps = func() {
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
	n.betweenEnrollSteps = func() { n.Disconnect(b) }
	if err := n.Join(b, "r-0", JoinOptions{Live: true}); err != nil {
		t.Fatal(err)
	}
	n.betweenEnrollSteps = nil
	n.Broadcast("r-0", chat.MessageEvent(msg(2)))
	if got := b.messages(); len(got) != 0 {
		t.Fatalf("b, gone before it was in the list, got %v", got)
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
