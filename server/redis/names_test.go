package redis_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/scalable-chat-go/server/chat"
	"github.com/scalable-chat-go/server/chat/chattest"
	"github.com/scalable-chat-go/server/redis"
	"github.com/scalable-chat-go/server/testkit"
)

// Guest names are the NameClaims contract across two nodes of one Redis.
func TestGuestNames(t *testing.T) {
	url := testkit.Service(t, "REDIS_URL", "Redis")
	chattest.TestNameClaims(t, func(t *testing.T) (chat.NameClaims, chat.NameClaims) {
		prefix := fmt.Sprintf("names-test-%d", time.Now().UnixNano())
		var nodes [2]chat.NameClaims
		for i := range nodes {
			c, err := redis.Open(redis.Options{URL: url, KeyPrefix: prefix, Mode: redis.ModeSharded, RequestTimeout: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			nodes[i] = c.Names()
		}
		return nodes[0], nodes[1]
	})
}
