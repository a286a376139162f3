package main

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scalable-chat-go/server/chat"
	"github.com/scalable-chat-go/server/config"
	"github.com/scalable-chat-go/server/httpapi"
	"github.com/scalable-chat-go/server/inmem"
	"github.com/scalable-chat-go/server/redis"
)

// clusterLink is what links this node to the others: the broker (and its
// directory of sockets) and presence, through Redis with REDIS_URL, in
// memory for a node alone.
type clusterLink struct {
	broker    chat.Broker
	directory chat.Directory
	presence  chat.Presence
	// kind names the broker in logs and /readyz: memory, redis-sharded or
	// redis-streams.
	kind   string
	checks []httpapi.Check
	// redis is the Redis connection (nil alone).
	redis *redis.Cluster
	// replica: REDIS_URL without DATABASE_URL; each node keeps its own
	// store, fed with what the others broadcast.
	replica bool
}

func newClusterLink(cfg config.Config, reg prometheus.Registerer, logger *slog.Logger) (*clusterLink, error) {
	if cfg.RedisURL == "" {
		b := inmem.NewBus().Broker(inmem.BrokerOptions{Logger: logger.With("component", "broker")})
		return &clusterLink{broker: b, directory: b, presence: chat.LocalPresence{}, kind: "memory"}, nil
	}
	c, err := redis.Open(redis.Options{
		URL:            cfg.RedisURL,
		Password:       cfg.RedisPasswd,
		CAFile:         cfg.RedisCAFile,
		Mode:           cfg.RedisAdapterMode,
		KeyPrefix:      cfg.RedisKeyPrefix,
		RequestTimeout: cfg.RedisRequestTimeout,
		Logger:         logger.With("component", "redis"),
		Registerer:     reg,
	})
	if err != nil {
		return nil, err
	}
	b := c.Broker(redis.BrokerOptions{
		Buffer:       cfg.RedisPublishBuffer,
		FetchTimeout: cfg.RedisRequestTimeout,
		SocketsLimit: cfg.AdminUI.SocketsLimit,
		Admin:        cfg.AdminUI.Enabled,
		Seed:         cfg.ResumeLogSize,
	})
	return &clusterLink{
		broker: b, directory: b, presence: c.Presence(), kind: "redis-" + c.Mode(), redis: c,
		checks:  []httpapi.Check{{Name: "redis", Fn: c.Ping}},
		replica: cfg.DatabaseURL == "",
	}, nil
}

// shutdown publishes what the broker has queued (until ctx ends), and
// takes this node out of the cluster's presence at once.
func (l *clusterLink) shutdown(ctx context.Context) {
	_ = l.broker.Close(ctx)
	if l.redis != nil {
		_ = l.redis.Presence().Leave(ctx, chat.GlobalRoom)
	}
}

// close releases the Redis connection.
func (l *clusterLink) close() {
	if l.redis != nil {
		_ = l.redis.Close()
	}
}
