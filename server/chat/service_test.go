package chat

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// fakeLog admits until full and settles when told: pure logic under test.
type fakeLog struct {
	mu       sync.Mutex
	full     bool
	admitted []Message
	dones    []func(error)
}

func (f *fakeLog) Append(m Message, done func(error)) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.full {
		return ErrUnavailable
	}
	f.admitted = append(f.admitted, m)
	f.dones = append(f.dones, done)
	return nil
}
func (f *fakeLog) Close(context.Context) error { return nil }
func (f *fakeLog) settle(i int, err error)     { f.dones[i](err) }

type fakeFanout struct{ got []Message }

func (f *fakeFanout) Broadcast(e Event) { f.got = append(f.got, e.Message) }

func TestAcceptAssignsIDAndMonotonicTime(t *testing.T) {
	l, fo := &fakeLog{}, &fakeFanout{}
	now := time.Date(2026, 1, 1, 0, 0, 0, 999_999_999, time.UTC)
	clock := NewClock(func() time.Time { return now })
	s := NewService(l, fo, ServiceOptions{Clock: clock})
	a, err := s.Accept(map[string]any{"message": "a"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(-time.Hour) // the wall clock steps back
	b, err := s.Accept(map[string]any{"message": "b"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a.CreatedAt.Nanosecond()%int(time.Millisecond) != 0 {
		t.Fatalf("createdAt not in whole ms: %v", a.CreatedAt)
	}
	if b.CreatedAt.Before(a.CreatedAt) {
		t.Fatalf("time went backwards: %v then %v", a.CreatedAt, b.CreatedAt)
	}
	if a.ID == b.ID || len(a.ID) != 36 || a.ID[14] != '7' {
		t.Fatalf("ids %q %q, want distinct UUIDv7", a.ID, b.ID)
	}
	if len(fo.got) != 2 || fo.got[0].ID != a.ID {
		t.Fatalf("broadcast %v", fo.got)
	}
}

func TestRefusedByLogIsNotBroadcast(t *testing.T) {
	l, fo := &fakeLog{full: true}, &fakeFanout{}
	s := NewService(l, fo, ServiceOptions{})
	_, err := s.Accept(map[string]any{"message": "x", "clientId": "0191d2c4-7b1e-7c3a-9f00-5a1b2c3d4e5f"}, func(Message, error) {
		t.Error("durable called for a refused message")
	})
	if !errors.Is(err, ErrUnavailable) || CodeOf(err).Code != CodeUnavailable {
		t.Fatalf("err = %v", err)
	}
	if len(fo.got) != 0 {
		t.Fatal("a refused message was broadcast")
	}
	// Once the log has room again, the same client id goes through.
	l.full = false
	if _, err := s.Accept(map[string]any{"message": "x", "clientId": "0191d2c4-7b1e-7c3a-9f00-5a1b2c3d4e5f"}, nil); err != nil {
		t.Fatal(err)
	}
	if len(fo.got) != 1 {
		t.Fatal("the retry after a refusal was not broadcast")
	}
}

func TestInvalidIsNeitherLoggedNorBroadcast(t *testing.T) {
	l, fo := &fakeLog{}, &fakeFanout{}
	s := NewService(l, fo, ServiceOptions{})
	if _, err := s.Accept("nope", nil); CodeOf(err).Code != CodeInvalidPayload {
		t.Fatalf("err = %v", err)
	}
	if len(l.admitted)+len(fo.got) != 0 {
		t.Fatal("an invalid message went through")
	}
}

func TestRetriedClientIDIsBroadcastOnceAndAckedAfterTheFirst(t *testing.T) {
	l, fo := &fakeLog{}, &fakeFanout{}
	s := NewService(l, fo, ServiceOptions{})
	id := "0191d2c4-7b1e-7c3a-9f00-5a1b2c3d4e5f"
	var acks []string
	ack := func(m Message, err error) { acks = append(acks, fmt.Sprint(m.ID, err)) }
	first, err := s.Accept(map[string]any{"message": "x", "clientId": id}, ack)
	if err != nil {
		t.Fatal(err)
	}
	second, err := s.Accept(map[string]any{"message": "x (retry)", "clientId": id}, ack)
	if err != nil {
		t.Fatal(err)
	}
	if second != first {
		t.Fatalf("retry returned %+v, want the first %+v", second, first)
	}
	if len(fo.got) != 1 || len(l.admitted) != 1 {
		t.Fatalf("broadcast %d, admitted %d; want 1, 1", len(fo.got), len(l.admitted))
	}
	if len(acks) != 0 {
		t.Fatal("acknowledged before durable")
	}
	l.settle(0, nil)
	if len(acks) != 2 {
		t.Fatalf("acks after durable: %v", acks)
	}
	s.Accept(map[string]any{"message": "x", "clientId": id}, ack)
	if len(acks) != 3 || len(fo.got) != 1 {
		t.Fatalf("a retry after durability: acks %v, broadcasts %d", acks, len(fo.got))
	}
}

func TestRememberedClientIDsAreBounded(t *testing.T) {
	l, fo := &fakeLog{}, &fakeFanout{}
	s := NewService(l, fo, ServiceOptions{RememberClientIDs: 2})
	ids := []string{
		"0191d2c4-7b1e-7c3a-9f00-5a1b2c3d4e51",
		"0191d2c4-7b1e-7c3a-9f00-5a1b2c3d4e52",
		"0191d2c4-7b1e-7c3a-9f00-5a1b2c3d4e53",
	}
	for _, id := range ids {
		s.Accept(map[string]any{"message": "x", "clientId": id}, nil)
	}
	if len(s.recent) != 2 {
		t.Fatalf("remembers %d ids, want 2", len(s.recent))
	}
}

func TestTokenBucket(t *testing.T) {
	start := time.Unix(0, 0)
	b := NewTokenBucket(2, 3, start)
	for i := range 3 {
		if ok, _ := b.Take(start); !ok {
			t.Fatalf("burst token %d refused", i)
		}
	}
	ok, wait := b.Take(start)
	if ok || wait != 500*time.Millisecond {
		t.Fatalf("past the burst: ok=%v wait=%v, want refused, 500ms", ok, wait)
	}
	if ok, _ := b.Take(start.Add(500 * time.Millisecond)); !ok {
		t.Fatal("a token should be back after 1/rate")
	}
	if ok, _ := b.Take(start.Add(time.Hour)); !ok {
		t.Fatal("refill")
	}
	unlimited := NewTokenBucket(0, 1, start)
	for range 1000 {
		if ok, _ := unlimited.Take(start); !ok {
			t.Fatal("rate 0 must not limit")
		}
	}
}
