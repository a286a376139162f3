package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/scalable-chat-go/server/chat"
)

// ClientIDs is the cluster's memory of admitted client ids (chat.Claims):
// one key per id, <prefix>:client-id:<id>, holding the first claim as
// JSON, set only when absent (SET NX GET: one round trip, atomic) and
// expiring TTL after it was set. A Redis that restarts without persistence
// forgets them all: each node still remembers the ids it admitted itself,
// and the Store keeps the first message under an id whatever comes later.
type ClientIDs struct {
	c   *Cluster
	ttl time.Duration
}

var _ chat.Claims = (*ClientIDs)(nil)

// ClientIDs returns the cluster's memory of client ids, each kept for ttl
// (CLIENT_ID_TTL).
func (c *Cluster) ClientIDs(ttl time.Duration) *ClientIDs { return &ClientIDs{c: c, ttl: ttl} }

func (x *ClientIDs) key(id string) string { return x.c.o.KeyPrefix + ":client-id:" + id }

// Claim implements chat.Claims.
func (x *ClientIDs) Claim(ctx context.Context, c chat.Claim) (chat.Claim, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, x.c.o.RequestTimeout)
	defer cancel()
	v, err := json.Marshal(c)
	if err != nil {
		return chat.Claim{}, false, err
	}
	old, err := x.c.client.SetArgs(ctx, x.key(c.ID), v, goredis.SetArgs{Mode: "NX", Get: true, TTL: x.ttl}).Result()
	switch {
	case errors.Is(err, goredis.Nil):
		x.c.m.claims.WithLabelValues("new").Inc()
		return c, true, nil
	case err != nil:
		x.c.m.claims.WithLabelValues("error").Inc()
		return chat.Claim{}, false, fmt.Errorf("claim client id: %w", err)
	}
	var first chat.Claim
	if err := json.Unmarshal([]byte(old), &first); err != nil || first.ID != c.ID {
		x.c.m.claims.WithLabelValues("error").Inc()
		return chat.Claim{}, false, fmt.Errorf("client id %s: its claim in Redis is unreadable: %q", c.ID, old)
	}
	x.c.m.claims.WithLabelValues("known").Inc()
	return first, false, nil
}

// releaseScript deletes KEYS[1] when it still holds ARGV[1].
var releaseScript = goredis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`)

// Release implements chat.Claims.
func (x *ClientIDs) Release(ctx context.Context, c chat.Claim) error {
	ctx, cancel := context.WithTimeout(ctx, x.c.o.RequestTimeout)
	defer cancel()
	v, err := json.Marshal(c)
	if err != nil {
		return err
	}
	if err := releaseScript.Run(ctx, x.c.client, []string{x.key(c.ID)}, v).Err(); err != nil && !errors.Is(err, goredis.Nil) {
		return fmt.Errorf("release client id: %w", err)
	}
	return nil
}
