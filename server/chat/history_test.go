package chat

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"
)

// memStore is a Store in a slice: pure logic, for History's unit tests.
type memStore struct{ msgs []Message }

func (s *memStore) SaveBatch(_ context.Context, b []Message) ([]Rejected, error) {
	s.msgs = append(s.msgs, b...)
	return nil, nil
}
func (s *memStore) Recent(_ context.Context, _ string, limit int, cur *Cursor) ([]Message, error) {
	all := slices.Clone(s.msgs)
	slices.SortFunc(all, func(a, b Message) int {
		if b.Before(a) {
			return -1
		}
		return 1
	})
	var out []Message
	for _, m := range all {
		if cur != nil && !m.Before(Message{CreatedAt: cur.CreatedAt, ID: cur.ID}) {
			continue
		}
		if len(out) == limit {
			break
		}
		out = append(out, m)
	}
	return out, nil
}
func (s *memStore) Find(_ context.Context, id string) (Message, error) {
	for _, m := range s.msgs {
		if m.ID == id {
			return m, nil
		}
	}
	return Message{}, ErrNotFound
}
func (s *memStore) SaveDeletions(context.Context, []Deletion) error { return nil }
func (s *memStore) Ping(context.Context) error                      { return nil }
func (s *memStore) Close() error                                    { return nil }

func hm(i int) Message {
	return Message{ID: fmt.Sprintf("m%03d", i), Text: "t", CreatedAt: time.Unix(1000, 0).Add(time.Duration(i) * time.Millisecond)}
}

func ids(ms []Message) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.ID)
	}
	return out
}

func TestHistoryMergesStoreAndRingWithoutGapOrDuplicate(t *testing.T) {
	st := &memStore{}
	for i := range 10 {
		st.msgs = append(st.msgs, hm(i)) // stored: 0..9
	}
	h := NewHistory(st, 5)
	for i := 7; i < 15; i++ {
		h.Observe(hm(i)) // delivered: 7..14, the ring keeps 10..14
	}
	got, err := h.Recent(context.Background(), 8, "")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"m014", "m013", "m012", "m011", "m010", "m009", "m008", "m007"}
	if !slices.Equal(ids(got), want) {
		t.Fatalf("got %v, want %v", ids(got), want)
	}
	next, err := h.Recent(context.Background(), 4, "m007")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids(next), []string{"m006", "m005", "m004", "m003"}) {
		t.Fatalf("next page %v", ids(next))
	}
	// A cursor only the ring knows.
	fromRing, _ := h.Recent(context.Background(), 2, "m012")
	if !slices.Equal(ids(fromRing), []string{"m011", "m010"}) {
		t.Fatalf("page before a ring message: %v", ids(fromRing))
	}
	if _, err := h.Recent(context.Background(), 2, "unknown"); err != ErrNotFound {
		t.Fatalf("unknown before: %v", err)
	}
	h.Observe(hm(14))
	if got, _ := h.Recent(context.Background(), 3, ""); !slices.Equal(ids(got), []string{"m014", "m013", "m012"}) {
		t.Fatalf("observing twice duplicated: %v", ids(got))
	}
}

func TestHistoryHighWaterMark(t *testing.T) {
	h := NewHistory(&memStore{}, 4)
	// Delivered out of order, as messages of several nodes arrive:
	// 5, 3, 7, 6, then 8 (the ring keeps the last four).
	for _, tt := range []struct {
		i    int
		high string
	}{{5, "m005"}, {3, "m005"}, {7, "m007"}, {6, "m007"}, {8, "m008"}} {
		if got := h.Observe(hm(tt.i)); got != tt.high {
			t.Errorf("Observe(m%03d) = %q, want %q", tt.i, got, tt.high)
		}
	}
	if got := h.Observe(hm(6)); got != "m007" {
		t.Errorf("observing m006 again = %q, want the mark of its first delivery m007", got)
	}
	got, found := h.Since("m003")
	if !found {
		t.Fatal("m003 is in the ring")
	}
	want := []Delivery{{hm(7), "m007"}, {hm(6), "m007"}, {hm(8), "m008"}}
	if !slices.Equal(got, want) {
		t.Fatalf("Since(m003) = %v, want %v", got, want)
	}
	if _, found := h.Since("m005"); found {
		t.Fatal("m005 left the ring")
	}
}

// A mark names the place of the next message: SinceMark returns every
// message observed after it, in delivery order, across the ring's wrap, and
// reports when the ring no longer holds them all.
func TestHistoryMark(t *testing.T) {
	h := NewHistory(&memStore{}, 5)
	m0 := h.Mark()
	if got, found := h.SinceMark(m0); !found || len(got) != 0 {
		t.Fatalf("empty: %v %v", got, found)
	}
	h.Observe(hm(1))
	h.Observe(hm(2))
	m2 := h.Mark()
	for _, i := range []int{4, 3, 5} { // out of time order: delivery order counts
		h.Observe(hm(i))
	}
	h.Observe(hm(3)) // observed again: not a new message
	if got, found := h.SinceMark(m2); !found || !slices.Equal(deliveryIDs(got), []string{"m004", "m003", "m005"}) {
		t.Fatalf("since m2: %v %v", deliveryIDs(got), found)
	}
	if n := h.Pending(m2); n != 3 {
		t.Fatalf("pending %d, want 3", n)
	}
	if got, found := h.SinceMark(m0); !found || len(got) != 5 {
		t.Fatalf("since m0, the whole full ring: %v %v", deliveryIDs(got), found)
	}
	h.Observe(hm(6)) // the ring wraps: m001 is gone
	if _, found := h.SinceMark(m0); found {
		t.Fatal("since m0 after the ring lost m001: found")
	}
	if got, found := h.SinceMark(m2); !found || !slices.Equal(deliveryIDs(got), []string{"m004", "m003", "m005", "m006"}) {
		t.Fatalf("since m2 across the wrap: %v %v", deliveryIDs(got), found)
	}
	if got, found := h.SinceMark(h.Mark()); !found || len(got) != 0 {
		t.Fatalf("since now: %v", deliveryIDs(got))
	}
	h.Forget("m003")
	if got, _ := h.SinceMark(m2); !slices.Equal(deliveryIDs(got), []string{"m004", "m005", "m006"}) {
		t.Fatalf("since m2 after m003's deletion: %v", deliveryIDs(got))
	}
	if _, found := h.SinceMark(h.Mark() + 1); found {
		t.Fatal("a mark from the future: found")
	}
}

func deliveryIDs(ds []Delivery) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Message.ID)
	}
	return out
}

// A node holds a History for every room one of its sockets is in: one
// without messages must cost little, whatever HISTORY_RING_SIZE says (the
// ring and the deletions grow as they fill; they took 330 KB a room when
// made at full size).
func TestAnEmptyRoomHistoryIsSmall(t *testing.T) {
	const rooms = 100
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	hs := make([]*History, rooms)
	for i := range hs {
		hs[i] = NewRoomHistory(&memStore{}, "r", 1000)
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / rooms; per > 4096 {
		t.Fatalf("an empty room's History allocated %d bytes", per)
	}
	runtime.KeepAlive(hs)
}
