package redis

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	goredis "github.com/redis/go-redis/v9"

	"github.com/scalable-chat-go/server/testkit"
)

// A node that reads the stream again after Redis failed finds out when
// the stream no longer holds what followed its last entry (Redis restarted
// without persistence, or trimmed it): counted and logged, never silent.
func TestStreamLossIsCounted(t *testing.T) {
	url := testkit.Service(t, "REDIS_URL", "Redis")
	key := fmt.Sprintf("stream-loss-%d", time.Now().UnixNano())
	c, err := Open(Options{URL: url, KeyPrefix: key, Mode: ModeStreams, RequestTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := &streamReader{b: c.Broker(BrokerOptions{}), client: c.client, stream: key}
	ctx := context.Background()
	add := func() string {
		t.Helper()
		id, err := c.client.XAdd(ctx, &goredis.XAddArgs{Stream: key, Values: map[string]any{"x": 1}}).Result()
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	add()
	last := add()
	resets := func() float64 { return testutil.ToFloat64(c.m.streamResets) }
	r.checkContinuity(ctx, last)
	r.checkContinuity(ctx, "0-0") // nothing read yet: nothing to lose
	if n := resets(); n != 0 {
		t.Fatalf("%v resets while the stream holds the last entry read", n)
	}
	// Redis restarted empty: the stream is gone, then made anew.
	if err := c.client.Del(ctx, key).Err(); err != nil {
		t.Fatal(err)
	}
	r.checkContinuity(ctx, last)
	// A restart takes more than a millisecond: the new stream's first id
	// comes after the last one read (within the same millisecond it could
	// equal it, and pass for the entry read).
	time.Sleep(5 * time.Millisecond)
	add()
	r.checkContinuity(ctx, last)
	if n := resets(); n != 2 {
		t.Fatalf("%v resets, want 2: the stream lost what followed the last entry read", n)
	}
	_ = c.client.Del(ctx, key).Err()
}
