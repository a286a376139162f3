package redis

import (
	"context"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/scalable-chat-go/server/chat"
)

// Names holds the guest names of the cluster (chat.NameClaims): a key per
// name, holding its holder and expiring with its token, taken or renewed
// by one script so that two nodes never give one name to two guests.
type Names struct{ c *Cluster }

var _ chat.NameClaims = (*Names)(nil)

// Names returns the cluster's guest names.
func (c *Cluster) Names() *Names { return &Names{c: c} }

// claimScript sets KEYS[1] to ARGV[1] until ARGV[2] (Unix ms) when it is
// unset or already ARGV[1]'s; 1 when it did.
var claimScript = goredis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v == false or v == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[2])
  return 1
end
return 0`)

// Claim implements chat.NameClaims.
func (n *Names) Claim(ctx context.Context, name, holder string, until time.Time) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, n.c.o.RequestTimeout)
	defer cancel()
	key := n.c.o.KeyPrefix + ":guest-name:" + chat.FoldName(name)
	ok, err := claimScript.Run(ctx, n.c.client, []string{key}, holder, until.UnixMilli()).Int()
	if err != nil {
		return false, fmt.Errorf("claim guest name: %w", err)
	}
	return ok == 1, nil
}
