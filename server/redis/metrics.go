package redis

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	up         prometheus.Gauge
	errors     prometheus.Counter
	dialErrors prometheus.Counter
	reconnects prometheus.Counter
	claims     *prometheus.CounterVec
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
		r.MustRegister(m.up, m.errors, m.dialErrors, m.reconnects, m.claims, m.streamResets)
	}
	return m
}
