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

// open returns n connections to the Redis of REDIS_URL in mode, sharing a
// key prefix of their own (so runs and modes never hear each other).
func open(t *testing.T, mode string, n int, presenceTTL time.Duration) []*redis.Cluster {
	t.Helper()
	url := testkit.Service(t, "REDIS_URL", "Redis")
	prefix := fmt.Sprintf("broker-test-%s-%d", mode, time.Now().UnixNano())
	out := make([]*redis.Cluster, n)
	for i := range out {
		c, err := redis.Open(redis.Options{URL: url, KeyPrefix: prefix, Mode: mode, RequestTimeout: 2 * time.Second,
			PresenceTTL: presenceTTL})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		out[i] = c
	}
	return out
}

func TestBroker(t *testing.T) {
	for _, mode := range []string{redis.ModeSharded, redis.ModeStreams} {
		t.Run(mode, func(t *testing.T) {
			chattest.TestBroker(t, func(t *testing.T, n int) []chattest.Cluster {
				out := make([]chattest.Cluster, n)
				for i, c := range open(t, mode, n, 0) {
					out[i] = c.Broker(redis.BrokerOptions{Admin: true, FetchTimeout: 2 * time.Second})
				}
				return out
			})
		})
	}
}

func TestPresence(t *testing.T) {
	const ttl = time.Second
	chattest.TestPresence(t, ttl, func(t *testing.T, n int) []chat.Presence {
		out := make([]chat.Presence, n)
		for i, c := range open(t, redis.ModeSharded, n, ttl) {
			out[i] = c.Presence()
		}
		return out
	})
}
