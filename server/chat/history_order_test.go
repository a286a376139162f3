package chat

import (
	"context"
	"slices"
	"testing"
)

// A node delivers its own newest message, then older ones another node
// sent a moment before (they arrive late): a page of the newest must hold
// the newest, however many older ones were delivered after it, before the
// store has any of them.
func TestHistoryPageOfMessagesDeliveredOutOfTimeOrder(t *testing.T) {
	h := NewHistory(&memStore{}, 10)
	for _, i := range []int{5, 1, 2, 3, 4} {
		h.Observe(hm(i))
	}
	got, err := h.Recent(context.Background(), 2, "")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"m005", "m004"}; !slices.Equal(ids(got), want) {
		t.Fatalf("page %v, want %v", ids(got), want)
	}
	got, err = h.Recent(context.Background(), 2, "m004")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"m003", "m002"}; !slices.Equal(ids(got), want) {
		t.Fatalf("next page %v, want %v", ids(got), want)
	}
	if page := h.Merge(nil, 3, nil); !slices.Equal(ids(page), []string{"m005", "m004", "m003"}) {
		t.Fatalf("a newcomer's history %v", ids(page))
	}
}
