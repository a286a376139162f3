package chattest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/scalable-chat-go/server/chat"
)

// TestNameClaims runs the NameClaims contract against the claims made by
// open: two handles on one store (two nodes of a cluster, or the same one
// twice for a single node). Each subtest gets a new, empty store. Claims
// end within a second, so the suite waits that long.
func TestNameClaims(t *testing.T, open func(t *testing.T) (a, b chat.NameClaims)) {
	ctx := context.Background()

	t.Run("OneHolderAtATime", func(t *testing.T) {
		a, b := open(t)
		soon := time.Now().Add(400 * time.Millisecond)
		for _, step := range []struct {
			on           chat.NameClaims
			name, holder string
			want         error
		}{
			{a, "Zoë", "guest:1", nil},
			{b, "zoë", "guest:2", chat.ErrNameTaken}, // another node, another case: held
			{b, "ZOË", "guest:1", nil},               // the holder renews anywhere
			{a, "Ada", "guest:2", nil},
		} {
			err := step.on.Claim(ctx, chat.NameClaim{Name: step.name, Holder: step.holder, Until: soon})
			if !errors.Is(err, step.want) {
				t.Fatalf("Claim(%s, %s) = %v, want %v", step.name, step.holder, err, step.want)
			}
		}
		if h, err := b.Holder(ctx, "zOË"); err != nil || h != "guest:1" {
			t.Fatalf("Holder = %q, %v; want guest:1", h, err)
		}
		if h, err := a.Holder(ctx, "nobody"); err != nil || h != "" {
			t.Fatalf("Holder of a free name = %q, %v", h, err)
		}
		time.Sleep(time.Until(soon) + 100*time.Millisecond)
		if h, _ := a.Holder(ctx, "Zoë"); h != "" {
			t.Fatalf("an ended claim is still held by %q", h)
		}
		if err := b.Claim(ctx, chat.NameClaim{Name: "ZOË", Holder: "guest:2", Until: time.Now().Add(time.Minute)}); err != nil {
			t.Fatalf("after the first holder's end: %v", err)
		}
	})

	// One address holds PerAddr names at most, across the nodes; a renewal
	// is no new name, and an ended claim frees its place.
	t.Run("NamesPerAddress", func(t *testing.T) {
		a, b := open(t)
		short := time.Now().Add(400 * time.Millisecond)
		long := time.Now().Add(time.Minute)
		claim := func(on chat.NameClaims, name, addr string, until time.Time) error {
			return on.Claim(ctx, chat.NameClaim{Name: name, Holder: "h-" + name, Until: until, Addr: addr, PerAddr: 3})
		}
		for i, on := range []chat.NameClaims{a, b, a} {
			until := long
			if i == 0 {
				until = short
			}
			if err := claim(on, fmt.Sprint("n", i), "192.0.2.1", until); err != nil {
				t.Fatalf("name %d: %v", i, err)
			}
		}
		if err := claim(b, "n3", "192.0.2.1", long); !errors.Is(err, chat.ErrNamesPerAddress) {
			t.Fatalf("a fourth name: %v, want ErrNamesPerAddress", err)
		}
		if err := claim(b, "n1", "192.0.2.1", long); err != nil {
			t.Fatalf("a renewal at the limit: %v", err)
		}
		if err := claim(a, "n3", "192.0.2.2", long); err != nil {
			t.Fatalf("another address: %v", err)
		}
		time.Sleep(time.Until(short) + 100*time.Millisecond)
		if err := claim(b, "n4", "192.0.2.1", long); err != nil {
			t.Fatalf("once a claim ended: %v", err)
		}
	})
}
