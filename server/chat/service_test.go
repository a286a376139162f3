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
	deleted  []Deletion
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
func (f *fakeLog) Delete(d Deletion, done func(error)) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.full {
		return ErrUnavailable
	}
	f.deleted = append(f.deleted, d)
	done(nil)
	return nil
}
func (f *fakeLog) Close(context.Context) error { return nil }
func (f *fakeLog) settle(i int, err error)     { f.dones[i](err) }

type fakeFanout struct {
	got  []Message
	sent []func(error) // each broadcast's Event.Sent
}

// alice and bob are two connections.
var alice, bob = Sender{ConnID: "alice-conn"}, Sender{ConnID: "bob-conn"}

func (f *fakeFanout) Broadcast(room string, e Event) {
	if room != RoomOf(e.Message) {
		panic("a message broadcast to " + room)
	}
	f.got = append(f.got, e.Message)
	f.sent = append(f.sent, e.Sent)
}

func TestAcceptAssignsIDAndMonotonicTime(t *testing.T) {
	l, fo := &fakeLog{}, &fakeFanout{}
	now := time.Date(2026, 1, 1, 0, 0, 0, 999_999_999, time.UTC)
	clock := NewClock(func() time.Time { return now })
	s := NewService(l, fo, ServiceOptions{Clock: clock})
	a, err := s.Accept(alice, map[string]any{"message": "a"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(-time.Hour) // the wall clock steps back
	b, err := s.Accept(alice, map[string]any{"message": "b"}, nil)
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
	_, err := s.Accept(alice, map[string]any{"message": "x", "clientId": "0191d2c4-7b1e-7c3a-9f00-5a1b2c3d4e5f"}, func(Message, error) {
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
	if _, err := s.Accept(alice, map[string]any{"message": "x", "clientId": "0191d2c4-7b1e-7c3a-9f00-5a1b2c3d4e5f"}, nil); err != nil {
		t.Fatal(err)
	}
	if len(fo.got) != 1 {
		t.Fatal("the retry after a refusal was not broadcast")
	}
}

func TestInvalidIsNeitherLoggedNorBroadcast(t *testing.T) {
	l, fo := &fakeLog{}, &fakeFanout{}
	s := NewService(l, fo, ServiceOptions{})
	if _, err := s.Accept(alice, "nope", nil); CodeOf(err).Code != CodeInvalidPayload {
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
	first, err := s.Accept(alice, map[string]any{"message": "x", "clientId": id}, ack)
	if err != nil {
		t.Fatal(err)
	}
	second, err := s.Accept(alice, map[string]any{"message": "x", "clientId": id}, ack)
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
	s.Accept(alice, map[string]any{"message": "x", "clientId": id}, ack)
	if len(acks) != 3 || len(fo.got) != 1 {
		t.Fatalf("a retry after durability: acks %v, broadcasts %d", acks, len(fo.got))
	}
}

func TestRememberedClientIDsAreBounded(t *testing.T) {
	l, fo := &fakeLog{}, &fakeFanout{}
	s := NewService(l, fo, ServiceOptions{RememberIDs: 2})
	ids := []string{
		"0191d2c4-7b1e-7c3a-9f00-5a1b2c3d4e51",
		"0191d2c4-7b1e-7c3a-9f00-5a1b2c3d4e52",
		"0191d2c4-7b1e-7c3a-9f00-5a1b2c3d4e53",
	}
	for _, id := range ids {
		s.Accept(alice, map[string]any{"message": "x", "clientId": id}, nil)
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

// Ids are broadcast to everyone: only the first sender, sending the same
// content again, may use an id it was given or chose. Everyone else is
// refused, and nothing of theirs is admitted or broadcast.
func TestClientIDIsOnlyTheFirstSendersToRetry(t *testing.T) {
	const id = "0191d2c4-7b1e-7c3a-9f00-5a1b2c3d4e5f"
	first := map[string]any{"message": "the original", "username": "bob", "clientId": id}
	withID := func(payload map[string]any, id string) map[string]any {
		out := map[string]any{}
		for k, v := range payload {
			out[k] = v
		}
		out["clientId"] = id
		return out
	}
	userA1, userA2 := Sender{ConnID: "c1", UserID: "user-a"}, Sender{ConnID: "c2", UserID: "user-a"}
	tests := []struct {
		name         string
		first, retry Sender
		payload      map[string]any
		serverMadeID bool // the retry names the id the server gave a message without clientId
		wantRetry    bool // taken as a retry; else refused with client_id_taken
	}{
		{"same connection, same content", bob, bob, first, false, true},
		{"same content after trimming and cleaning", bob, bob, map[string]any{"message": " the original\x00 ", "username": "bob ", "clientId": id}, false, true},
		{"another connection, other content", bob, alice, map[string]any{"message": "HIJACKED", "username": "mallory", "clientId": id}, false, false},
		{"anonymous, another connection, same username and text", bob, alice, first, false, true},
		{"same connection, other text", bob, bob, map[string]any{"message": "edited", "username": "bob", "clientId": id}, false, false},
		{"same connection, other username", bob, bob, map[string]any{"message": "the original", "username": "bobby", "clientId": id}, false, false},
		{"same connection, username dropped", bob, bob, map[string]any{"message": "the original", "clientId": id}, false, false},
		{"same connection, another room", bob, bob, map[string]any{"message": "the original", "username": "bob", "room": "r1", "clientId": id}, false, false},
		{"a server-made id, another connection, same username and text", bob, alice, map[string]any{"message": "the original", "username": "bob"}, true, true},
		{"a server-made id, another username", bob, alice, map[string]any{"message": "the original", "username": "mallory"}, true, false},
		{"same verified user on another connection", userA1, userA2, first, false, true},
		{"same verified user, another username typed", userA1, userA2, map[string]any{"message": "the original", "username": "x", "clientId": id}, false, true},
		{"same verified user, other text", userA1, userA2, map[string]any{"message": "edited", "username": "bob", "clientId": id}, false, false},
		{"verified user, then the same connection unverified", userA1, Sender{ConnID: "c1"}, first, false, false},
		{"unverified, then a verified user with the same name", Sender{ConnID: "c1"}, Sender{ConnID: "c1", UserID: "bob", Name: "bob"}, first, false, false},
		{"another verified user on the same connection", userA1, Sender{ConnID: "c1", UserID: "user-b"}, first, false, false},
		{"anonymous senders the edge could not name", Sender{}, Sender{}, first, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, fo := &fakeLog{}, &fakeFanout{}
			s := NewService(l, fo, ServiceOptions{})
			var acks []string
			ack := func(m Message, err error) { acks = append(acks, fmt.Sprint(m.ID, " ", m.Text, " ", err)) }
			firstPayload, retryPayload := first, tt.payload
			if tt.serverMadeID {
				firstPayload = map[string]any{"message": "the original", "username": "bob"}
			}
			orig, err := s.Accept(tt.first, firstPayload, ack)
			if err != nil {
				t.Fatal(err)
			}
			if tt.serverMadeID {
				retryPayload = withID(tt.payload, orig.ID)
			}
			l.settle(0, nil)
			got, err := s.Accept(tt.retry, retryPayload, ack)
			if tt.wantRetry {
				if err != nil || got != orig {
					t.Fatalf("retry: %+v, %v; want the first %+v", got, err, orig)
				}
				if len(acks) != 2 || acks[1] != acks[0] {
					t.Fatalf("acks %q, want the first outcome twice", acks)
				}
			} else {
				var ce *Error
				if !errors.As(err, &ce) || ce.Code != CodeClientIDTaken || ce.Reason == "" {
					t.Fatalf("retry: %+v, %v; want %s", got, err, CodeClientIDTaken)
				}
				if len(acks) != 1 {
					t.Fatalf("durable called for a refused message: %q", acks)
				}
			}
			if len(l.admitted) != 1 || len(fo.got) != 1 || fo.got[0] != orig {
				t.Fatalf("admitted %d, broadcast %+v; want the first message only", len(l.admitted), fo.got)
			}
		})
	}
}

// An id the log refused was seen by nobody: any sender may use it.
func TestRefusedIDIsFreeForAnySender(t *testing.T) {
	const id = "0191d2c4-7b1e-7c3a-9f00-5a1b2c3d4e5f"
	l, fo := &fakeLog{full: true}, &fakeFanout{}
	s := NewService(l, fo, ServiceOptions{})
	if _, err := s.Accept(bob, map[string]any{"message": "x", "clientId": id}, nil); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v", err)
	}
	l.full = false
	if _, err := s.Accept(alice, map[string]any{"message": "y", "clientId": id}, nil); err != nil {
		t.Fatal(err)
	}
	if len(fo.got) != 1 || fo.got[0].Text != "y" {
		t.Fatalf("broadcast %+v", fo.got)
	}
}
