package redis_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/scalable-chat-go/server/chat"
	"github.com/scalable-chat-go/server/chat/chattest"
	"github.com/scalable-chat-go/server/redis"
	"github.com/scalable-chat-go/server/testkit"
)

// backends are the deployments every test of the package runs against: one
// Redis server (REDIS_URL) and a Redis Cluster (REDIS_CLUSTER_NODES), both
// from scripts/services.
var backends = []string{"redis", "cluster"}

// target returns the options that reach backend: its URL or its seeds.
func target(t testing.TB, backend string) redis.Options {
	t.Helper()
	if backend == "cluster" {
		return redis.Options{ClusterNodes: strings.Split(testkit.Service(t, "REDIS_CLUSTER_NODES", "Redis Cluster"), ",")}
	}
	return redis.Options{URL: testkit.Service(t, "REDIS_URL", "Redis")}
}

// open returns n connections to backend in mode, sharing a key prefix of
// their own (so runs and modes never hear each other).
func open(t testing.TB, backend, mode string, n int, presenceTTL time.Duration) []*redis.Cluster {
	t.Helper()
	return openWith(t, backend, mode, "", n, presenceTTL)
}

// openWith is open in a subscription mode ("": the default).
func openWith(t testing.TB, backend, mode, subscription string, n int, presenceTTL time.Duration) []*redis.Cluster {
	t.Helper()
	o := target(t, backend)
	o.KeyPrefix = fmt.Sprintf("broker-test-%s-%d", mode, time.Now().UnixNano())
	o.Mode, o.Subscription, o.RequestTimeout, o.PresenceTTL = mode, subscription, 2*time.Second, presenceTTL
	out := make([]*redis.Cluster, n)
	for i := range out {
		c, err := redis.Open(o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		out[i] = c
	}
	return out
}

func TestBroker(t *testing.T) {
	for _, backend := range backends {
		for _, mode := range []string{redis.ModeSharded, redis.ModeStreams} {
			t.Run(backend+"/"+mode, func(t *testing.T) {
				// Each has its own key prefix; most of their time is
				// waiting (for a node count, a stream's reader).
				t.Parallel()
				chattest.TestBroker(t, func(t *testing.T, n int) []chattest.Cluster {
					out := make([]chattest.Cluster, n)
					for i, c := range open(t, backend, mode, n, 0) {
						out[i] = c.Broker(redis.BrokerOptions{Admin: true, FetchTimeout: 2 * time.Second})
					}
					return out
				})
			})
		}
	}
}

// In static subscription mode every room rides the namespace's channel,
// as with Node's subscriptionMode "static": the contract holds the same.
func TestBrokerStaticSubscription(t *testing.T) {
	chattest.TestBroker(t, func(t *testing.T, n int) []chattest.Cluster {
		out := make([]chattest.Cluster, n)
		for i, c := range openWith(t, "redis", redis.ModeSharded, redis.SubscriptionStatic, n, 0) {
			out[i] = c.Broker(redis.BrokerOptions{Admin: true, FetchTimeout: 2 * time.Second})
		}
		return out
	})
}

func TestPresence(t *testing.T) {
	const ttl = time.Second
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			chattest.TestPresence(t, ttl, func(t *testing.T, n int) []chat.Presence {
				out := make([]chat.Presence, n)
				for i, c := range open(t, backend, redis.ModeSharded, n, ttl) {
					out[i] = c.Presence()
				}
				return out
			})
		})
	}
}
