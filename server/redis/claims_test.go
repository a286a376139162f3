package redis_test

import (
	"context"
	"testing"
	"time"

	"github.com/scalable-chat-go/server/chat"
	"github.com/scalable-chat-go/server/redis"
)

// Client id claims hold across two nodes of one Redis, and of one Redis
// Cluster (one key a claim: any shard serves it).
func TestClientIDsAreClaimedOnceForTheCluster(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) { testClaimedOnce(t, open(t, backend, redis.ModeSharded, 2, 0)) })
	}
}

func testClaimedOnce(t *testing.T, nodes []*redis.Cluster) {
	a, b := nodes[0].ClientIDs(time.Minute), nodes[1].ClientIDs(time.Minute)
	ctx := context.Background()
	first := chat.ClaimOf(chat.Message{ID: "0191d2c4-7b1e-7c3a-9f00-5a1b2c3d4e5f", Text: "hi", Username: "bob",
		CreatedAt: time.UnixMilli(1_796_000_000_123).UTC()})
	got, fresh, err := a.Claim(ctx, first)
	if err != nil || !fresh || got != first {
		t.Fatalf("first claim: %+v, %v, %v", got, fresh, err)
	}
	again := first
	again.CreatedAt = again.CreatedAt.Add(time.Second) // another node's later admission
	got, fresh, err = b.Claim(ctx, again)
	if err != nil || fresh || !got.CreatedAt.Equal(first.CreatedAt) || got != first {
		t.Fatalf("the second node's claim: %+v, %v, %v; want the first claim back", got, fresh, err)
	}
	// Only the claim's own holder releases it.
	if err := b.Release(ctx, again); err != nil {
		t.Fatal(err)
	}
	if _, fresh, _ := b.Claim(ctx, again); fresh {
		t.Fatal("released by another claim")
	}
	if err := a.Release(ctx, first); err != nil {
		t.Fatal(err)
	}
	if _, fresh, err := b.Claim(ctx, again); err != nil || !fresh {
		t.Fatalf("after its release the id is free: %v, %v", fresh, err)
	}
}

func TestClientIDClaimsExpire(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) { testClaimsExpire(t, open(t, backend, redis.ModeSharded, 1, 0)[0]) })
	}
}

func testClaimsExpire(t *testing.T, c *redis.Cluster) {
	ids := c.ClientIDs(1200 * time.Millisecond)
	claim := chat.Claim{ID: "0191d2c4-7b1e-7c3a-9f00-5a1b2c3d4e5f", Username: "bob", Sum: "x"}
	if _, fresh, err := ids.Claim(context.Background(), claim); err != nil || !fresh {
		t.Fatal(fresh, err)
	}
	time.Sleep(1500 * time.Millisecond)
	if _, fresh, err := ids.Claim(context.Background(), claim); err != nil || !fresh {
		t.Fatalf("a claim past CLIENT_ID_TTL is still there: %v, %v", fresh, err)
	}
}

func TestClientIDClaimsFailWhenRedisIsDown(t *testing.T) {
	c, err := redis.Open(redis.Options{URL: "redis://127.0.0.1:1", KeyPrefix: "down", Mode: redis.ModeSharded, RequestTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, _, err := c.ClientIDs(time.Minute).Claim(context.Background(), chat.Claim{ID: "x"}); err == nil {
		t.Fatal("a claim without Redis succeeded")
	}
}
