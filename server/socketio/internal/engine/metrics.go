package engine

import "github.com/prometheus/client_golang/prometheus"

// metrics are the engine's; their names are the chat server's (the engine
// is its unit).
type metrics struct {
	sessions       prometheus.Gauge
	refused        *prometheus.CounterVec
	tooLarge       prometheus.Counter
	slowClients    prometheus.Counter
	panics         prometheus.Counter
	wsWrites       prometheus.Counter
	protocolErrors prometheus.Counter
	bodyErrors     prometheus.Counter
	readPauses     prometheus.Counter
	upgrades       prometheus.Counter
	recovered      prometheus.Counter
	deciding       prometheus.Gauge
}

func newMetrics(r prometheus.Registerer) *metrics {
	m := &metrics{
		sessions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "chat_engine_sessions", Help: "Engine.IO sessions open on this node.",
		}),
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
		protocolErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_protocol_errors_total", Help: "Connections closed for breaking the Engine.IO, Socket.IO or WebSocket protocol.",
		}),
		bodyErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_polling_body_errors_total", Help: "Polling requests whose body could not be read in time (HTTP_BODY_TIMEOUT) or was cut.",
		}),
		readPauses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_ws_read_pauses_total", Help: "Times reading a WebSocket paused because its messages waited for the workers.",
		}),
		upgrades: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_upgrades_total", Help: "Sessions upgraded from long-polling to WebSocket.",
		}),
		recovered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_connections_recovered_total", Help: "Reconnections whose state (id, missed messages) was recovered.",
		}),
		deciding: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "chat_connects_deciding", Help: "CONNECTs being decided off the worker pool (a token being verified).",
		}),
	}
	if r != nil {
		r.MustRegister(m.sessions, m.refused, m.tooLarge, m.slowClients, m.panics, m.wsWrites,
			m.protocolErrors, m.bodyErrors, m.readPauses, m.upgrades, m.recovered, m.deciding)
	}
	return m
}
