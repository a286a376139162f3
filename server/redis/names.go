package redis

import (
	"context"
	"errors"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/scalable-chat-go/server/chat"
)

// Names holds the guest names of the cluster (chat.NameClaims): a key per
// name, holding its holder and expiring with its token, and a sorted set
// per client address of the names it holds (scored by their ends),
// checked and updated by one script, so that two nodes never give one
// name to two guests, nor one address more names than it may hold.
//
// A script's keys must share a slot on a Redis Cluster, so there every
// key of guest names carries the hash tag {guest-names}: they all live on
// one shard. A sign-in or a renewal is one small script, and sign-ins are
// rate limited, so one shard serves far more than a chat's guests need.
// On one server the keys keep their names from before clusters.
type Names struct{ c *Cluster }

var _ chat.NameClaims = (*Names)(nil)

// Names returns the cluster's guest names.
func (c *Cluster) Names() *Names { return &Names{c: c} }

// claimScript sets KEYS[1] (the name) to ARGV[1] (the holder) until
// ARGV[2] (Unix ms) when it is unset or already ARGV[1]'s, and, when
// ARGV[6] is 1, counts the name ARGV[4] in KEYS[2] (the address's names),
// where claims that ended by ARGV[3] (now) are dropped first and no more
// than ARGV[5] names may be (0: no limit). 1: claimed; 0: held by
// another; -1: the address holds its share.
var claimScript = goredis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v ~= false and v ~= ARGV[1] then
  return 0
end
if ARGV[6] == '1' then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[3])
  local limit = tonumber(ARGV[5])
  if limit > 0 and redis.call('ZSCORE', KEYS[2], ARGV[4]) == false and redis.call('ZCARD', KEYS[2]) >= limit then
    return -1
  end
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[4])
  local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
  redis.call('PEXPIREAT', KEYS[2], last[2])
end
redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[2])
return 1`)

// Claim implements chat.NameClaims.
func (n *Names) Claim(ctx context.Context, c chat.NameClaim) error {
	ctx, cancel := context.WithTimeout(ctx, n.c.o.RequestTimeout)
	defer cancel()
	folded := chat.FoldName(c.Name)
	counted := "0"
	if c.Addr != "" {
		counted = "1"
	}
	keys := []string{n.key(folded), n.prefix() + ":guest-addr:" + c.Addr}
	res, err := claimScript.Run(ctx, n.c.client, keys,
		c.Holder, c.Until.UnixMilli(), time.Now().UnixMilli(), folded, c.PerAddr, counted).Int()
	switch {
	case err != nil:
		return fmt.Errorf("claim guest name: %w", err)
	case res == 0:
		return chat.ErrNameTaken
	case res < 0:
		return chat.ErrNamesPerAddress
	}
	return nil
}

// Holder implements chat.NameClaims.
func (n *Names) Holder(ctx context.Context, name string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, n.c.o.RequestTimeout)
	defer cancel()
	h, err := n.c.client.Get(ctx, n.key(chat.FoldName(name))).Result()
	if errors.Is(err, goredis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("look up guest name: %w", err)
	}
	return h, nil
}

func (n *Names) key(folded string) string { return n.prefix() + ":guest-name:" + folded }

func (n *Names) prefix() string {
	if n.c.cluster != nil {
		return n.c.o.KeyPrefix + ":{guest-names}"
	}
	return n.c.o.KeyPrefix
}
