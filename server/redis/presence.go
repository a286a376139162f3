package redis

import (
	"context"
	"fmt"
	"strconv"
)

// Presence counts the connections of every Go node of the cluster: each
// node writes its own count to a key that expires after PresenceTTL, and
// the total is the sum of the keys alive. A crashed node stops refreshing
// its key and drops out within the TTL. Nodes running Node's adapters do
// not publish a count, so their clients are not counted.
type Presence struct{ c *Cluster }

// Presence returns the cluster's presence counter.
func (c *Cluster) Presence() *Presence { return &Presence{c: c} }

func (p *Presence) key(node string) string { return p.c.o.KeyPrefix + ":presence:" + node }

// Online publishes local, this node's count, and returns the cluster's.
func (p *Presence) Online(ctx context.Context, local int) (int, error) {
	c := p.c
	if err := c.client.Set(ctx, p.key(c.nodeID), local, c.o.PresenceTTL).Err(); err != nil {
		return 0, fmt.Errorf("publish presence: %w", err)
	}
	var keys []string
	iter := c.client.Scan(ctx, 0, p.key("*"), 100).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return 0, fmt.Errorf("list presence keys: %w", err)
	}
	if len(keys) == 0 {
		return local, nil
	}
	vals, err := c.client.MGet(ctx, keys...).Result()
	if err != nil {
		return 0, fmt.Errorf("read presence: %w", err)
	}
	total := 0
	for _, v := range vals {
		if s, ok := v.(string); ok {
			if n, err := strconv.Atoi(s); err == nil && n > 0 {
				total += n
			}
		}
	}
	return total, nil
}

// Leave removes this node's count at once (graceful shutdown).
func (p *Presence) Leave(ctx context.Context) error {
	return p.c.client.Del(ctx, p.key(p.c.nodeID)).Err()
}
