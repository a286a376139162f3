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

// consumerMetrics are the consumer group's; the writes' (chat_store_*)
// are batchwriter's, as with the direct writer.
type consumerMetrics struct {
	lag        *prometheus.GaugeVec
	consumed   prometheus.Counter
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
	m.dlq.WithLabelValues(dlqUndecodable)
	m.dlq.WithLabelValues(dlqRejected)
	if r != nil {
		r.MustRegister(m.lag, m.consumed, m.dlq, m.dlqErrors, m.groupErrs, m.rebalances)
	}
	return m
}

// Dead-letter reasons, as metric labels.
const (
	dlqUndecodable = "undecodable"
	dlqRejected    = "rejected"
)
