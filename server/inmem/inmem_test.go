package inmem_test

import (
	"testing"
	"time"

	"github.com/scalable-chat-go/server/chat"
	"github.com/scalable-chat-go/server/chat/chattest"
	"github.com/scalable-chat-go/server/inmem"
)

func TestBroker(t *testing.T) {
	chattest.TestBroker(t, func(t *testing.T, n int) []chattest.Cluster {
		bus := inmem.NewBus()
		out := make([]chattest.Cluster, n)
		for i := range out {
			out[i] = bus.Broker(inmem.BrokerOptions{})
		}
		return out
	})
}

func TestPresence(t *testing.T) {
	const ttl = 300 * time.Millisecond
	chattest.TestPresence(t, ttl, func(t *testing.T, n int) []chat.Presence {
		bus := inmem.NewBus()
		out := make([]chat.Presence, n)
		for i := range out {
			out[i] = bus.Presence(ttl)
		}
		return out
	})
}
