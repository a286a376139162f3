package redis_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/scalable-chat-go/server/redis"
)

// A guest name is one holder's, cluster-wide, until it expires.
func TestGuestNames(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) { testGuestNames(t, backend) })
	}
}

func testGuestNames(t *testing.T, backend string) {
	o := target(t, backend)
	o.KeyPrefix = fmt.Sprintf("names-test-%d", time.Now().UnixNano())
	o.Mode, o.RequestTimeout = redis.ModeSharded, time.Second
	a, err := redis.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := redis.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	soon := time.Now().Add(300 * time.Millisecond)
	for _, step := range []struct {
		on     *redis.Cluster
		name   string
		holder string
		want   bool
	}{
		{a, "Zoë", "guest:1", true},
		{b, "zoë", "guest:2", false}, // another node, another case: held
		{b, "Zoë", "guest:1", true},  // the holder renews anywhere
		{a, "Ada", "guest:2", true},
	} {
		ok, err := step.on.Names().Claim(ctx, step.name, step.holder, soon)
		if err != nil || ok != step.want {
			t.Fatalf("Claim(%s, %s) = %v %v, want %v", step.name, step.holder, ok, err, step.want)
		}
	}
	time.Sleep(400 * time.Millisecond)
	if ok, err := b.Names().Claim(ctx, "ZOË", "guest:2", time.Now().Add(time.Minute)); err != nil || !ok {
		t.Fatalf("after the first holder's expiry: %v %v", ok, err)
	}
}
