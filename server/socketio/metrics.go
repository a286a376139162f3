package socketio

import (
	"github.com/prometheus/client_golang/prometheus"
)

// The edge's metrics: connections and what clients sent. Deliveries are
// the hub's (chat_deliveries_total...), the cluster link's the broker's
// (chat_cluster_*).
type metrics struct {
	connections    prometheus.Gauge
	connects       prometheus.Counter
	received       prometheus.Counter
	rejected       *prometheus.CounterVec
	connectRefused *prometheus.CounterVec
	tokenExpired   prometheus.Counter
	banDisconnects prometheus.Counter
	warmMisses     prometheus.Counter
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
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chat_messages_rejected_total", Help: "Client events refused, by error code.",
		}, []string{"reason"}),
		connectRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chat_connect_refused_total", Help: "Socket.IO CONNECTs refused, by reason (unauthorized, banned, unavailable).",
		}, []string{"reason"}),
		tokenExpired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_token_expired_total", Help: "Connections closed at their token's expiry.",
		}),
		banDisconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_ban_disconnects_total", Help: "Sockets disconnected by a ban.",
		}),
		warmMisses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_connect_rooms_unsubscribed_total", Help: "CONNECTs of verified users told they are connected before every room of theirs was subscribed to here (Redis slow or down): what other nodes published to those rooms right after may not have reached them.",
		}),
	}
	if r != nil {
		r.MustRegister(m.connections, m.connects, m.received, m.rejected, m.connectRefused, m.tokenExpired, m.banDisconnects, m.warmMisses)
	}
	return m
}
