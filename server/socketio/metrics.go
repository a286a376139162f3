package socketio

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	connections     prometheus.Gauge
	connects        prometheus.Counter
	recovered       prometheus.Counter
	received        prometheus.Counter
	broadcast       prometheus.Counter
	broadcastErrors prometheus.Counter
	rejected        *prometheus.CounterVec
	refused         *prometheus.CounterVec
	tooLarge        prometheus.Counter
	slowClients     prometheus.Counter
	panics          prometheus.Counter
	wsWrites        prometheus.Counter

	clusterReceived      prometheus.Counter
	clusterPublished     prometheus.Counter
	clusterPublishErrors prometheus.Counter
	clusterDropped       prometheus.Counter
	clusterQueue         prometheus.Gauge
}

func newMetrics(r prometheus.Registerer) *metrics {
	m := &metrics{
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "chat_connections", Help: "Sockets connected to this node.",
		}),
		connects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_connects_total", Help: "Sockets that connected to this node.",
		}),
		recovered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_connections_recovered_total", Help: "Reconnections whose state (rooms, missed messages) was recovered.",
		}),
		received: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_messages_received_total", Help: "event:message events received from clients of this node.",
		}),
		broadcast: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_messages_broadcast_total", Help: "Messages this node accepted and broadcast.",
		}),
		broadcastErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_broadcast_errors_total", Help: "Broadcasts that failed.",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chat_messages_rejected_total", Help: "Client events refused, by error code.",
		}, []string{"reason"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chat_connections_refused_total", Help: "Connection attempts refused, by limit.",
		}, []string{"reason"}),
		tooLarge: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_frames_too_large_total", Help: "Connections closed for a frame over MAX_HTTP_BUFFER_SIZE.",
		}),
		slowClients: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_slow_client_disconnects_total", Help: "Clients disconnected because their send queue passed SEND_QUEUE_LIMIT.",
		}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_handler_panics_total", Help: "Handler panics recovered (each is a bug).",
		}),
		wsWrites: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_ws_writes_total", Help: "WebSocket write system calls (each carries one or more frames).",
		}),
	}
	m.clusterReceived = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "chat_cluster_received_total", Help: "Broadcasts received from other nodes.",
	})
	m.clusterPublished = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "chat_cluster_published_total", Help: "Messages published to the other nodes.",
	})
	m.clusterPublishErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "chat_cluster_publish_errors_total", Help: "Failed publications to the cluster (each is retried).",
	})
	m.clusterDropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "chat_cluster_dropped_total", Help: "Messages that could not be published to the other nodes.",
	})
	m.clusterQueue = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "chat_cluster_publish_queue", Help: "Messages waiting to be published to the other nodes.",
	})
	if r != nil {
		r.MustRegister(m.clusterReceived, m.clusterPublished, m.clusterPublishErrors, m.clusterDropped, m.clusterQueue)
		r.MustRegister(m.connections, m.connects, m.recovered, m.received, m.broadcast, m.broadcastErrors,
			m.rejected, m.refused, m.tooLarge, m.slowClients, m.panics, m.wsWrites)
	}
	return m
}
