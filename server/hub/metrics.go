package hub

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/scalable-chat-go/server/chat"
)

type metrics struct {
	deliveries      *prometheus.CounterVec
	broadcast       prometheus.Counter
	broadcastErrors prometheus.Counter
	events          *prometheus.CounterVec
	joinGaps        prometheus.Counter
	resumeGaps      *prometheus.CounterVec
	resumed         prometheus.Counter
	early           prometheus.Counter
	panics          prometheus.Counter
	unknownRoom     prometheus.Counter
}

func newMetrics(r prometheus.Registerer) *metrics {
	m := &metrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chat_deliveries_total", Help: "Events queued for this node's clients by broadcasts (one per recipient), by event.",
		}, []string{"event"}),
		broadcast: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_messages_broadcast_total", Help: "Messages delivered to this node's clients (accepted here, or by another node).",
		}),
		broadcastErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_broadcast_errors_total", Help: "Broadcasts that failed.",
		}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chat_events_broadcast_total", Help: "Events other than messages this node broadcast, by event.",
		}, []string{"event"}),
		joinGaps: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_join_gaps_total", Help: "Newcomers whose history took so long to read that more messages were delivered meanwhile than HISTORY_RING_SIZE (ROOM_HISTORY_RING_SIZE in other rooms) holds: they may have missed some.",
		}),
		resumeGaps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chat_resume_gaps_total",
			Help: "Clients that came back (streams mode) from a place this node could not resume exactly, by reason: log (older than RESUME_LOG_SIZE messages, or the log was lost), early (more early deliveries than their offset lists). They got the latest history page: they may have missed messages or seen some again.",
		}, []string{"reason"}),
		resumed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_resumed_total", Help: "Clients that came back (streams mode) and were sent exactly what they missed.",
		}),
		early: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_early_deliveries_total", Help: "This node's own messages it delivered before they came back from the cluster's log (Redis slow or down; streams mode).",
		}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_hub_panics_total", Help: "Panics recovered in the hub's presence and typing loop (each is a bug).",
		}),
		unknownRoom: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_unknown_room_events_total", Help: "Events and joins for a room that does not exist on this node, dropped.",
		}),
	}
	if r != nil {
		r.MustRegister(m.deliveries, m.broadcast, m.broadcastErrors, m.events, m.joinGaps, m.resumeGaps, m.resumed, m.early, m.panics, m.unknownRoom)
	}
	return m
}

// deliveryLabel is the event label of the hub's metrics: the chat's own
// events by name, any other (relayed from another server) as "other", so
// the label set stays small.
func deliveryLabel(event string) string {
	switch event {
	case chat.EventMessage, chat.EventTyping, chat.EventPresence, chat.EventPresenceJoin, chat.EventPresenceLeave,
		chat.EventMessageDeleted:
		return event
	}
	return "other"
}
