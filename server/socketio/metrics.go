package socketio

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/scalable-chat-go/server/chat"
)

type metrics struct {
	connections     prometheus.Gauge
	connects        prometheus.Counter
	received        prometheus.Counter
	broadcast       prometheus.Counter
	broadcastErrors prometheus.Counter
	rejected        *prometheus.CounterVec
	events          *prometheus.CounterVec
	connectRefused  *prometheus.CounterVec
	tokenExpired    prometheus.Counter
	banDisconnects  prometheus.Counter

	clusterReceived      prometheus.Counter
	clusterPublished     prometheus.Counter
	clusterPublishErrors prometheus.Counter
	clusterDropped       prometheus.Counter
	clusterQueue         prometheus.Gauge

	deliveries   *prometheus.CounterVec
	adminDropped prometheus.Counter
	joinGaps     prometheus.Counter
}

func newMetrics(r prometheus.Registerer) *metrics {
	m := &metrics{
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "chat_connections", Help: "Sockets connected to this node.",
		}),
		connects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_connects_total", Help: "Sockets that connected to this node.",
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
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chat_events_broadcast_total", Help: "Events other than messages this node broadcast, by event.",
		}, []string{"event"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chat_messages_rejected_total", Help: "Client events refused, by error code.",
		}, []string{"reason"}),
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
	m.deliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "chat_deliveries_total", Help: "Events queued for this node's clients by broadcasts (one per recipient), by event.",
	}, []string{"event"})
	m.adminDropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "chat_admin_events_dropped_total", Help: "Admin UI events not published to the other nodes (queue full or Redis down).",
	})
	m.joinGaps = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "chat_join_gaps_total", Help: "Newcomers whose history took so long to read that more messages were delivered meanwhile than HISTORY_RING_SIZE holds: they may have missed some.",
	})
	m.connectRefused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "chat_connect_refused_total", Help: "Socket.IO CONNECTs refused, by reason (unauthorized, banned, unavailable).",
	}, []string{"reason"})
	m.tokenExpired = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "chat_token_expired_total", Help: "Connections closed at their token's expiry.",
	})
	m.banDisconnects = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "chat_ban_disconnects_total", Help: "Sockets disconnected by a ban.",
	})
	if r != nil {
		r.MustRegister(m.deliveries, m.adminDropped, m.joinGaps, m.connectRefused, m.tokenExpired, m.banDisconnects)
		r.MustRegister(m.clusterReceived, m.clusterPublished, m.clusterPublishErrors, m.clusterDropped, m.clusterQueue)
		r.MustRegister(m.connections, m.connects, m.received, m.broadcast, m.broadcastErrors, m.events, m.rejected)
	}
	return m
}

// deliveryLabel is the event label of chat_deliveries_total: the chat's
// own events by name, any other (relayed from another server) as "other",
// so the label set stays small.
func deliveryLabel(event string) string {
	switch event {
	case chat.EventMessage, chat.EventTyping, chat.EventPresence, chat.EventPresenceJoin, chat.EventPresenceLeave:
		return event
	}
	return "other"
}
