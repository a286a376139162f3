package redis_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/scalable-chat-go/server/chat"
	"github.com/scalable-chat-go/server/chat/chattest"
	"github.com/scalable-chat-go/server/redis"
)

// Guest names are the NameClaims contract across two nodes of one Redis,
// and of one Redis Cluster.
func TestGuestNames(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			o := target(t, backend)
			o.Mode, o.RequestTimeout = redis.ModeSharded, time.Second
			chattest.TestNameClaims(t, func(t *testing.T) (chat.NameClaims, chat.NameClaims) {
				o := o
				o.KeyPrefix = fmt.Sprintf("names-test-%d", time.Now().UnixNano())
				var nodes [2]chat.NameClaims
				for i := range nodes {
					c, err := redis.Open(o)
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { c.Close() })
					nodes[i] = c.Names()
				}
				return nodes[0], nodes[1]
			})
		})
	}
}
