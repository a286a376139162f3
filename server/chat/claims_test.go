package chat

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// fakeClaims is the cluster's memory as a map: pure logic under test (the
// Redis engine has its own test against a real Redis).
type fakeClaims struct {
	mu       sync.Mutex
	m        map[string]Claim
	down     bool
	released []string
}

func newFakeClaims() *fakeClaims { return &fakeClaims{m: map[string]Claim{}} }

func (f *fakeClaims) Claim(_ context.Context, c Claim) (Claim, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return Claim{}, false, errors.New("redis: connection refused")
	}
	if first, ok := f.m[c.ID]; ok {
		return first, false, nil
	}
	f.m[c.ID] = c
	return c, true, nil
}

func (f *fakeClaims) Release(_ context.Context, c Claim) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m[c.ID] == c {
		delete(f.m, c.ID)
		f.released = append(f.released, c.ID)
	}
	return nil
}

const cid = "0191d2c4-7b1e-7c3a-9f00-5a1b2c3d4e5f"

// node is one node's accept flow on a shared memory of client ids, with a
// clock of its own (so that a second admission would get another time).
type node struct {
	s         *Service
	log       *fakeLog
	fan       *fakeFanout
	delivered map[string]bool
}

func newNode(claims Claims, start time.Time) *node {
	n := &node{log: &fakeLog{}, fan: &fakeFanout{}, delivered: map[string]bool{}}
	now := start
	n.s = NewService(n.log, n.fan, ServiceOptions{
		Claims:    claims,
		Clock:     NewClock(func() time.Time { now = now.Add(time.Millisecond); return now }),
		Delivered: func(_, id string) bool { return n.delivered[id] },
	})
	return n
}

func TestRetryOnAnotherNodeGetsTheFirstOutcome(t *testing.T) {
	payload := map[string]any{"message": "hello", "username": "bob", "clientId": cid}
	for _, tt := range []struct {
		name      string
		delivered bool // the second node delivered the first attempt
	}{
		{"the other node had it: not broadcast again", true},
		{"the first node died before the others had it: broadcast once, here", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			claims := newFakeClaims()
			a := newNode(claims, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
			b := newNode(claims, time.Date(2026, 1, 1, 0, 0, 5, 0, time.UTC))
			first, err := a.s.Accept(Sender{ConnID: "c1"}, payload, nil)
			if err != nil {
				t.Fatal(err)
			}
			// Node a dies before acknowledging; the client retries on b,
			// on a new connection.
			b.delivered[cid] = tt.delivered
			var acks []string
			got, err := b.s.Accept(Sender{ConnID: "c2"}, payload, func(m Message, err error) {
				acks = append(acks, fmt.Sprint(m.ID, " ", m.CreatedAt.Format(TimeLayout), " ", err))
			})
			if err != nil || got.ID != cid || !got.CreatedAt.Equal(first.CreatedAt) {
				t.Fatalf("retry on b: %+v, %v; want the first message's id and time %v", got, err, first.CreatedAt)
			}
			// Appended again on b (the first node's record may be lost),
			// with the first time; acknowledged once durable.
			if len(b.log.admitted) != 1 || !b.log.admitted[0].CreatedAt.Equal(first.CreatedAt) {
				t.Fatalf("b's log got %+v", b.log.admitted)
			}
			if len(acks) != 0 {
				t.Fatal("acknowledged before durable")
			}
			b.log.settle(0, nil)
			if want := cid + " " + first.CreatedAt.Format(TimeLayout) + " <nil>"; len(acks) != 1 || acks[0] != want {
				t.Fatalf("acks %q, want %q", acks, want)
			}
			if broadcast := len(b.fan.got) == 1; broadcast == tt.delivered || len(b.fan.got) > 1 {
				t.Fatalf("b broadcast %d times", len(b.fan.got))
			}
			// A retry again on b is a local one now: no new append.
			if _, err := b.s.Accept(Sender{ConnID: "c3"}, payload, nil); err != nil || len(b.log.admitted) != 1 {
				t.Fatalf("a second retry on b: %v, %d appends", err, len(b.log.admitted))
			}
		})
	}
}

func TestClaimedIDOfAnotherSenderIsTakenOnEveryNode(t *testing.T) {
	claims := newFakeClaims()
	a := newNode(claims, time.Now())
	b := newNode(claims, time.Now())
	if _, err := a.s.Accept(Sender{ConnID: "c1", UserID: "u1", Name: "bob"}, map[string]any{"message": "hi", "clientId": cid}, nil); err != nil {
		t.Fatal(err)
	}
	for name, from := range map[string]Sender{
		"another verified user":             {ConnID: "c2", UserID: "u2", Name: "bob"},
		"an anonymous sender with the name": {ConnID: "c2"},
	} {
		_, err := b.s.Accept(from, map[string]any{"message": "hi", "username": "bob", "clientId": cid}, func(Message, error) {
			t.Errorf("%s: durable called for a refused message", name)
		})
		if CodeOf(err).Code != CodeClientIDTaken {
			t.Fatalf("%s: err %v, want %s", name, err, CodeClientIDTaken)
		}
	}
	if len(b.log.admitted)+len(b.fan.got) != 0 {
		t.Fatal("a taken id went through on b")
	}
	// Nor is it free on b afterwards: b remembered nothing of the refusals.
	if _, err := b.s.Accept(Sender{ConnID: "c9", UserID: "u1", Name: "bob"}, map[string]any{"message": "hi", "clientId": cid}, nil); err != nil {
		t.Fatalf("the first user's retry on b: %v", err)
	}
}

func TestUnreachableClaimsFallBackToTheNodesMemory(t *testing.T) {
	claims := newFakeClaims()
	claims.down = true
	a := newNode(claims, time.Now())
	payload := map[string]any{"message": "hi", "username": "bob", "clientId": cid}
	if _, err := a.s.Accept(Sender{ConnID: "c1"}, payload, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := a.s.Accept(Sender{ConnID: "c1"}, payload, nil); err != nil {
		t.Fatal(err)
	}
	if len(a.fan.got) != 1 || len(a.log.admitted) != 1 {
		t.Fatalf("broadcast %d, appended %d: want once each (the node's own memory)", len(a.fan.got), len(a.log.admitted))
	}
	// For a second the memory is not asked again: an outage must not hold
	// up every message for a timeout.
	claims.mu.Lock()
	claims.down = false
	claims.mu.Unlock()
	if _, err := a.s.Accept(Sender{ConnID: "c1"}, map[string]any{"message": "next", "clientId": "0191d2c4-7b1e-7c3a-9f00-5a1b2c3d4e50"}, nil); err != nil {
		t.Fatal(err)
	}
	if len(claims.m) != 0 {
		t.Fatal("the memory was asked again at once after it failed")
	}
}

func TestRefusedMessageReleasesItsClaim(t *testing.T) {
	claims := newFakeClaims()
	a := newNode(claims, time.Now())
	a.log.full = true
	if _, err := a.s.Accept(Sender{ConnID: "c1"}, map[string]any{"message": "x", "clientId": cid}, nil); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err %v", err)
	}
	if len(claims.released) != 1 || len(claims.m) != 0 {
		t.Fatalf("released %v, claims left %v", claims.released, claims.m)
	}
	// Anyone may use the id now, on any node.
	b := newNode(claims, time.Now())
	if _, err := b.s.Accept(Sender{ConnID: "c2", UserID: "u2"}, map[string]any{"message": "y", "clientId": cid}, nil); err != nil {
		t.Fatal(err)
	}
}

func TestWaitForLinkAcknowledgesOnceTheLinkTookIt(t *testing.T) {
	l, fo := &fakeLog{}, &fakeFanout{}
	s := NewService(l, fo, ServiceOptions{WaitForLink: true})
	var acks int
	if _, err := s.Accept(alice, map[string]any{"message": "x", "clientId": cid}, func(m Message, err error) {
		if err != nil {
			t.Errorf("ack error %v", err)
		}
		acks++
	}); err != nil {
		t.Fatal(err)
	}
	l.settle(0, nil)
	if acks != 0 {
		t.Fatal("acknowledged before the link took it")
	}
	if len(fo.sent) != 1 || fo.sent[0] == nil {
		t.Fatal("the broadcast carries no Sent callback")
	}
	fo.sent[0](nil)
	if acks != 1 {
		t.Fatalf("acks %d, want 1", acks)
	}
	// The other order, and a link that gave the event up: the message is
	// durable, and acknowledged.
	if _, err := s.Accept(alice, map[string]any{"message": "y"}, func(error2 Message, err error) { acks++ }); err != nil {
		t.Fatal(err)
	}
	fo.sent[1](errors.New("queue full"))
	if acks != 1 {
		t.Fatal("acknowledged before durable")
	}
	l.settle(1, nil)
	if acks != 2 {
		t.Fatalf("acks %d, want 2", acks)
	}
}

func TestClaimRetries(t *testing.T) {
	m := Message{ID: cid, Text: "hi", Username: "bob", Room: "r1"}
	c := ClaimOf(m)
	if len(c.Sum) != 32 {
		t.Fatalf("sum %q", c.Sum)
	}
	other := m
	other.Text = "hi!"
	moved := m
	moved.Room = ""
	renamed := m
	renamed.Username = "bobby"
	if !ClaimOf(m).Retries(c) || ClaimOf(other).Retries(c) || ClaimOf(moved).Retries(c) || ClaimOf(renamed).Retries(c) {
		t.Fatal("anonymous: a retry is the same text, room and username")
	}
	vm := m
	vm.UserID = "u1"
	vr := vm
	vr.Username = "Bob (renamed)"
	if !ClaimOf(vr).Retries(ClaimOf(vm)) {
		t.Fatal("verified: the same user, text and room is a retry whatever the name")
	}
}
