package directlog

import "github.com/prometheus/client_golang/prometheus"

// metrics are the Log's own; the writes' (chat_store_*) are batchwriter's.
// The names shared with the Kafka producer (chat_log_refused_total,
// chat_messages_lost_total) mean the same there.
type metrics struct {
	depth   prometheus.Gauge
	refused prometheus.Counter
	lost    *prometheus.CounterVec
}

func newMetrics(r prometheus.Registerer) *metrics {
	m := &metrics{
		depth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "chat_log_queue_depth",
			Help: "Accepted messages waiting to be written to the store.",
		}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_log_refused_total",
			Help: "Messages refused at admission because the write buffer was full.",
		}),
		lost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chat_messages_lost_total",
			Help: "Accepted messages that could not be made durable, by reason.",
		}, []string{"reason"}),
	}
	if r != nil {
		r.MustRegister(m.depth, m.refused, m.lost)
	}
	return m
}
