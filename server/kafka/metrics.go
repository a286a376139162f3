package kafka

import "github.com/prometheus/client_golang/prometheus"

// producerMetrics are the Log's. The names shared with the direct writer
// (chat_log_refused_total, chat_messages_lost_total) mean the same there.
type producerMetrics struct {
	buffer   prometheus.Gauge
	acked    prometheus.Counter
	errors   prometheus.Counter
	restarts prometheus.Counter
	up       prometheus.Gauge
	refused  prometheus.Counter
	lost     *prometheus.CounterVec
}

func newProducerMetrics(r prometheus.Registerer) *producerMetrics {
	m := &producerMetrics{
		buffer: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "chat_kafka_producer_buffer",
			Help: "Accepted messages waiting for the broker's acknowledgement (PRODUCER_BUFFER bounds it).",
		}),
		acked: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_kafka_produced_total",
			Help: "Messages the broker acknowledged.",
		}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_kafka_produce_errors_total",
			Help: "Records the producer gave up on (each is sent again by a new producer), and failed producer starts.",
		}),
		restarts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_kafka_producer_restarts_total",
			Help: "Producers closed after an error and created again.",
		}),
		up: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "chat_kafka_producer_up",
			Help: "1 while the producer delivers, 0 while it cannot reach the broker.",
		}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_log_refused_total",
			Help: "Messages refused at admission because the producer buffer was full.",
		}),
		lost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chat_messages_lost_total",
			Help: "Accepted messages that could not be made durable, by reason.",
		}, []string{"reason"}),
	}
	if r != nil {
		r.MustRegister(m.buffer, m.acked, m.errors, m.restarts, m.up, m.refused, m.lost)
	}
	return m
}

// consumerMetrics are the consumer group's. The store-side names are the
// direct writer's, since with Kafka the consumer is what writes the store.
type consumerMetrics struct {
	lag        *prometheus.GaugeVec
	consumed   prometheus.Counter
	batchSize  prometheus.Histogram
	latency    prometheus.Histogram
	storeUp    prometheus.Gauge
	storeErrs  prometheus.Counter
	stored     prometheus.Counter
	dlq        *prometheus.CounterVec
	dlqErrors  prometheus.Counter
	groupErrs  prometheus.Counter
	rebalances prometheus.Counter
}

func newConsumerMetrics(r prometheus.Registerer) *consumerMetrics {
	m := &consumerMetrics{
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "chat_kafka_consumer_lag",
			Help: "Records in a partition this node consumes that are not yet written (high-water mark minus the next offset), as of the last batch.",
		}, []string{"topic", "partition"}),
		consumed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_kafka_consumed_total",
			Help: "Records consumed and handled (stored, or sent to the dead-letter topic).",
		}),
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
		storeUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "chat_store_up",
			Help: "1 while the last store write succeeded, 0 while writes fail.",
		}),
		storeErrs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_store_write_errors_total",
			Help: "Failed batch writes (each is retried).",
		}),
		stored: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_messages_stored_total",
			Help: "Messages committed to the store (a re-delivered message counts again; the store keeps it once).",
		}),
		dlq: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chat_kafka_dlq_total",
			Help: "Records sent to the dead-letter topic, by reason: undecodable, or rejected by the store.",
		}, []string{"reason"}),
		dlqErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_kafka_dlq_errors_total",
			Help: "Failed attempts to write to the dead-letter topic (each is retried).",
		}),
		groupErrs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_kafka_consumer_errors_total",
			Help: "Errors of the consumer group (connection, rebalance, offset commit).",
		}),
		rebalances: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_kafka_consumer_sessions_total",
			Help: "Consumer group sessions started (one per rebalance).",
		}),
	}
	m.storeUp.Set(1)
	m.dlq.WithLabelValues(dlqUndecodable)
	m.dlq.WithLabelValues(dlqRejected)
	if r != nil {
		r.MustRegister(m.lag, m.consumed, m.batchSize, m.latency, m.storeUp, m.storeErrs, m.stored, m.dlq, m.dlqErrors, m.groupErrs, m.rebalances)
	}
	return m
}

// Dead-letter reasons, as metric labels.
const (
	dlqUndecodable = "undecodable"
	dlqRejected    = "rejected"
)
