package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scalable-chat-go/server/chat"
	"github.com/scalable-chat-go/server/config"
	"github.com/scalable-chat-go/server/httpapi"
	"github.com/scalable-chat-go/server/inmem"
	"github.com/scalable-chat-go/server/redis"
)

// clusterLink is what links this node to the others: the broker (and its
// directory of sockets) and presence, through Redis with REDIS_URL (one
// server) or REDIS_CLUSTER_NODES (a Redis Cluster), in memory for a node
// alone.
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
	if cfg.RedisURL == "" && len(cfg.RedisClusterNodes) == 0 {
		b := inmem.NewBus().Broker(inmem.BrokerOptions{Logger: logger.With("component", "broker")})
		return &clusterLink{broker: b, directory: b, presence: chat.LocalPresence{}, kind: "memory"}, nil
	}
	c, err := redis.Open(redis.Options{
		URL:            cfg.RedisURL,
		ClusterNodes:   cfg.RedisClusterNodes,
		Password:       cfg.RedisPasswd,
		CAFile:         cfg.RedisCAFile,
		Mode:           cfg.RedisAdapterMode,
		Subscription:   cfg.RedisSubscriptionMode,
		KeyPrefix:      cfg.RedisKeyPrefix,
		RequestTimeout: cfg.RedisRequestTimeout,
		// Views are rewritten every other sync or so: a TTL shorter than
		// a few PRESENCE_INTERVALs would let live nodes drop out.
		PresenceTTL: max(5*time.Second, 4*cfg.PresenceInterval),
		Logger:      logger.With("component", "redis"),
		Registerer:  reg,
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
		// redis: the server, or every master of the cluster, answers;
		// redis-subscriptions: no sharded subscription is missing.
		checks:  []httpapi.Check{{Name: "redis", Fn: c.Ping}, {Name: "redis-subscriptions", Fn: c.CheckSubscriptions}},
		replica: cfg.DatabaseURL == "",
	}, nil
}

// details are the link's facts for /readyz.
func (l *clusterLink) details() map[string]any {
	out := map[string]any{"fanout": l.kind, "servers": l.broker.Nodes()}
	if l.redis != nil {
		out["redis"] = l.redis.Status()
	}
	return out
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
