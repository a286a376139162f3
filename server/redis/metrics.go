package redis

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	up          prometheus.Gauge
	errors      prometheus.Counter
	dialErrors  prometheus.Counter
	reconnects  prometheus.Counter
	badMessages prometheus.Counter
	claims      *prometheus.CounterVec
	// streamResets counts the times the stream lost entries a node had not
	// read (stream.go).
	streamResets prometheus.Counter
}

func newMetrics(r prometheus.Registerer) *metrics {
	m := &metrics{
		up: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "chat_redis_up", Help: "1 while the last connection attempt to Redis succeeded.",
		}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_redis_adapter_errors_total", Help: "Errors reported by the Socket.IO Redis adapter.",
		}),
		dialErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_redis_dial_errors_total", Help: "Failed connection attempts to Redis.",
		}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_redis_reconnects_total", Help: "Connections to Redis made again after failures.",
		}),
		badMessages: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_redis_bad_messages_total", Help: "Messages on the sharded channels that could not be decoded (dropped).",
		}),
		claims: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chat_client_id_claims_total",
			Help: "Client ids claimed in the cluster's memory, by result: new (first admission), known (a retry, or taken), error (Redis unreachable: the node went on with its own memory).",
		}, []string{"result"}),
		streamResets: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_stream_resets_total",
			Help: "Times this node found the stream no longer holding what follows the last entry it read (Redis restarted without persistence, or trimmed what it had not read): messages published then may not have reached its clients.",
		}),
	}
	m.up.Set(1)
	if r != nil {
		r.MustRegister(m.up, m.errors, m.dialErrors, m.reconnects, m.badMessages, m.claims, m.streamResets)
	}
	return m
}

// subMetrics are the sharded subscriptions' (subscriber).
type subMetrics struct {
	subscribed prometheus.Gauge
	missing    prometheus.Gauge
	lost       prometheus.Counter
	restored   prometheus.Counter
	refused    prometheus.Counter
	gap        prometheus.Histogram
	moves      prometheus.Counter
	masters    prometheus.Gauge
}

func newSubMetrics(r prometheus.Registerer) *subMetrics {
	m := &subMetrics{
		subscribed: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "chat_redis_subscriptions", Help: "Sharded Pub/Sub channels this node is subscribed to, as the nodes confirmed.",
		}),
		missing: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "chat_redis_subscriptions_missing", Help: "Sharded Pub/Sub channels this node wants but is not subscribed to yet, or not again since a loss.",
		}),
		lost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_redis_subscriptions_lost_total", Help: "Sharded subscriptions lost (a connection failed, a slot moved, a node went away); each is subscribed again.",
		}),
		restored: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_redis_subscriptions_restored_total", Help: "Sharded subscriptions made again after a loss.",
		}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_redis_subscribe_refused_total", Help: "SSUBSCRIBE commands a node refused (MOVED, CLUSTERDOWN...); each is retried.",
		}),
		gap: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "chat_redis_subscription_gap_seconds", Help: "How long a lost sharded subscription was missing, until it was made again.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2, 3, 4, 5, 7.5, 10, 20, 30, 60},
		}),
		moves: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_redis_cluster_slot_moves_total", Help: "This node's channels found served by another master of the Redis Cluster (a failover or a slot migration).",
		}),
		masters: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "chat_redis_cluster_masters", Help: "Masters serving slots in the Redis Cluster, as last read.",
		}),
	}
	if r != nil {
		r.MustRegister(m.subscribed, m.missing, m.lost, m.restored, m.refused, m.gap, m.moves, m.masters)
	}
	return m
}
