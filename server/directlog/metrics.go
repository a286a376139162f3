package directlog

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	batchSize prometheus.Histogram
	latency   prometheus.Histogram
	depth     prometheus.Gauge
	up        prometheus.Gauge
	errors    prometheus.Counter
	stored    prometheus.Counter
	refused   prometheus.Counter
	lost      *prometheus.CounterVec
}

func newMetrics(r prometheus.Registerer) *metrics {
	m := &metrics{
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "chat_store_batch_size",
			Help:    "Messages written per store transaction.",
			Buckets: []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000},
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "chat_store_write_seconds",
			Help:    "Time to write one batch to the store, failed attempts included.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		depth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "chat_log_queue_depth",
			Help: "Accepted messages waiting to be written to the store.",
		}),
		up: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "chat_store_up",
			Help: "1 while the last store write succeeded, 0 while writes fail.",
		}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_store_write_errors_total",
			Help: "Failed batch writes (each is retried).",
		}),
		stored: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_messages_stored_total",
			Help: "Messages committed to the store.",
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
	m.up.Set(1)
	if r != nil {
		r.MustRegister(m.batchSize, m.latency, m.depth, m.up, m.errors, m.stored, m.refused, m.lost)
	}
	return m
}
