// Package socketio is the Socket.IO v4 edge of the chat server: an
// unmodified socket.io-client 4.x app connects with long-polling, upgrades
// to WebSocket, emits `event:message` {message, username} and receives
// `message` events.
//
// The sessions themselves (Engine.IO v4 and Socket.IO v5: polling,
// WebSocket, the upgrade, heartbeats, limits) are the engine unit's
// (internal/engine); this package is the chat on top of it. On top of the
// original protocol it sends a newcomer the recent history (oldest first,
// no gap or duplicate at the seam with live messages), recovers a
// reconnecting client's missed messages without replaying history, counts
// who is online (`presence`), acknowledges a message with an
// acknowledgement callback once it is durable, and enforces every limit
// (payload, rate, connections, slow readers) with a clear `error` event.
// Every handler runs behind a recover: client input cannot stop the process.
//
// With a cluster adapter (Redis), every event is published to the other
// nodes in the wire format of Node's @socket.io/redis-adapter (see
// clusterLink), and their events are delivered here.
package socketio

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/scalable-chat-go/server/chat"
	"github.com/scalable-chat-go/server/socketio/internal/engine"
)

// Options configure the edge. Values are taken as given: the
// configuration decides the defaults (0 turns a limit off where a field
// says so).
type Options struct {
	// History answers newcomers; required.
	History *chat.History
	// Presence counts the clients of the cluster (LocalPresence when nil).
	Presence chat.Presence
	// Cluster builds the Socket.IO cluster adapter that links the nodes (the
	// Redis adapter); nil runs a single node. See clusterLink.
	Cluster socket.AdapterConstructor
	// ClusterBuffer bounds the events waiting to be published to the other
	// nodes during a cluster outage; past it the oldest is dropped, counted
	// and logged.
	ClusterBuffer int
	// OnRemote, when set, is called with every message another node
	// broadcast, once (a node that keeps a replica of the history stores it).
	OnRemote func(chat.Message)

	// PingInterval and PingTimeout are Engine.IO's heartbeat.
	PingInterval, PingTimeout time.Duration
	// ConnectTimeout closes a session that connected no namespace in time.
	ConnectTimeout time.Duration
	// CORSOrigins are the allowed origins; "*" (or none) allows any. The
	// same list is checked against the Origin of WebSocket handshakes.
	CORSOrigins []string
	// MaxHTTPBufferSize is the largest WebSocket message or polling request
	// a client may send; a larger one closes that connection.
	MaxHTTPBufferSize int64
	// BodyTimeout is the longest a polling request body may take to arrive.
	BodyTimeout time.Duration
	// RatePerSecond and RateBurst limit each connection's events (0: no
	// limit).
	RatePerSecond float64
	RateBurst     int
	// MaxConnections and MaxConnectionsPerIP bound the Engine.IO sessions
	// of this node, and of one client address (0: no limit).
	MaxConnections, MaxConnectionsPerIP int
	// TrustedProxies are the peers whose X-Forwarded-For is believed.
	TrustedProxies []netip.Prefix
	// SendQueueLimit is how many outgoing packets may wait for one client;
	// past it the client is disconnected (it reconnects and catches up).
	SendQueueLimit int
	// HistoryLimit is how many messages a newcomer receives (0: none).
	HistoryLimit int
	// RecoveryWindow is how long a disconnected client's session is kept
	// for connection-state recovery (0: no recovery).
	RecoveryWindow time.Duration
	// PresenceInterval is the most often `presence` is sent.
	PresenceInterval time.Duration
	// PresenceListLimit is the most users `presence` lists; above it only
	// the count is sent.
	PresenceListLimit int
	// TypingRatePerSecond limits each connection's typing events (bursts
	// of twice it); TypingTimeout ends a typing not renewed within it.
	TypingRatePerSecond float64
	TypingTimeout       time.Duration
	// Limits are the message limits; a name a client gives outside a
	// message is checked against them too.
	Limits chat.Limits
	// Admin, when set, serves the Socket.IO Admin UI's namespace (see
	// admin.go).
	Admin *AdminOptions

	// AuthMode and Verifier: who clients are (auth.go). Without a
	// Verifier, or with AuthOff, no token is read.
	AuthMode chat.AuthMode
	Verifier chat.Verifier
	// Names, when set, are the guest names of the cluster: with
	// AuthOptional an anonymous CONNECT may not give one a live guest
	// holds (names.go).
	Names chat.NameClaims
	// Moderation, when set, enforces bans and serves event:delete
	// (moderation.go).
	Moderation *chat.Moderation
	// OnRemoteDeletion, when set, is called with every deletion another
	// node broadcast, once (a node that keeps a replica stores it).
	OnRemoteDeletion func(chat.Deletion)

	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Accepter is the accept flow the edge hands client events to
// (*chat.Service).
type Accepter interface {
	Accept(from chat.Sender, payload any, durable func(chat.Message, error)) (chat.Message, error)
}

// Server is the Socket.IO edge. It is the chat.Fanout of its node.
type Server struct {
	o       Options
	eng     *engine.Engine
	accept  Accepter
	m       *metrics
	log     *slog.Logger
	origins originPolicy

	// deliverMu orders live deliveries with sockets joining the live set,
	// so that each newcomer's history (or recovered messages) meets the
	// live stream exactly.
	deliverMu sync.Mutex
	live      []*conn

	connMu sync.Mutex
	conns  map[*conn]struct{}
	// lastView is the cluster's view at the last presence tick and
	// lastOnline its count (-1 before the first), lastLocal this node's
	// count then; presenceDirty: this node's clients changed since.
	lastView              chat.PresenceView
	lastOnline, lastLocal int
	presenceDirty         bool
	// heldNames are the folded names of the verified users online, which
	// an anonymous client may not give (names.go).
	heldNames map[string]struct{}

	cluster *clusterLink // nil on a single node
	admin   *adminUI     // nil unless the Admin UI is on

	stop      chan struct{}
	stopped   chan struct{}
	closeOnce sync.Once
}

var _ chat.Fanout = (*Server)(nil)
var _ engine.Handler = (*Server)(nil)

// New builds the edge. Call SetAccepter before serving Handler.
func New(o Options) (*Server, error) {
	if o.History == nil {
		return nil, errors.New("socketio: Options.History is required")
	}
	if o.Presence == nil {
		o.Presence = chat.LocalPresence{}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.PresenceInterval <= 0 || o.TypingTimeout <= 0 {
		return nil, errors.New("socketio: Options.PresenceInterval and TypingTimeout must be positive")
	}
	if o.Limits == (chat.Limits{}) {
		o.Limits = chat.DefaultLimits()
	}
	origins, err := newOriginPolicy(o.CORSOrigins)
	if err != nil {
		return nil, err
	}
	s := &Server{
		o:          o,
		m:          newMetrics(o.Registerer),
		log:        o.Logger,
		origins:    origins,
		conns:      make(map[*conn]struct{}),
		lastOnline: -1,
		stop:       make(chan struct{}),
		stopped:    make(chan struct{}),
	}
	var allow func(string) bool
	if !origins.any {
		allow = origins.allows
	}
	if o.Admin != nil {
		s.admin = newAdminUI(s, *o.Admin)
	}
	s.eng, err = engine.New(engine.Options{
		Path:               "/socket.io/",
		PingInterval:       o.PingInterval,
		PingTimeout:        o.PingTimeout,
		ConnectTimeout:     o.ConnectTimeout,
		MaxPayload:         o.MaxHTTPBufferSize,
		BodyTimeout:        o.BodyTimeout,
		SendQueueLimit:     o.SendQueueLimit,
		RecoveryWindow:     o.RecoveryWindow,
		MaxSessions:        o.MaxConnections,
		MaxSessionsPerAddr: o.MaxConnectionsPerIP,
		AllowOrigin:        allow,
		ClientAddr:         s.clientAddr,
		Handler:            s.handler(),
		Logger:             o.Logger,
		Registerer:         o.Registerer,
	})
	if err != nil {
		return nil, err
	}
	if o.Cluster != nil {
		if err := s.startCluster(); err != nil {
			_ = s.eng.Close(context.Background())
			return nil, err
		}
	}
	go s.loop()
	if s.admin != nil {
		s.admin.start()
	}
	return s, nil
}

// SetAccepter sets the accept flow client messages go to.
func (s *Server) SetAccepter(a Accepter) { s.accept = a }

// Handler serves the Socket.IO endpoint, /socket.io/.
func (s *Server) Handler() http.Handler {
	if s.admin != nil {
		return s.admin.withCredentials(s.eng)
	}
	return s.eng
}

// Connections returns how many sockets are connected to this node.
func (s *Server) Connections() int {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	return len(s.conns)
}

// Broadcast delivers e to every client of the cluster (chat.Fanout): to
// this node's clients first, then, through a background queue, to the
// other nodes'.
func (s *Server) Broadcast(e chat.Event) {
	s.deliverMu.Lock()
	defer s.deliverMu.Unlock()
	s.deliverLocked(e)
	if s.cluster != nil {
		s.cluster.publish(e)
	}
}

// deliverLocked delivers e to this node's live clients; deliverMu is held.
func (s *Server) deliverLocked(e chat.Event) {
	if chat.IsInternal(e.Name) {
		s.onInternal(e, false)
		return
	}
	if e.Deletion != nil {
		s.o.History.Forget(e.Deletion.ID)
	}
	high := ""
	if e.IsMessage() {
		if s.o.History.Deleted(e.Message.ID) {
			return // deleted while it was on its way here
		}
		high = s.o.History.Observe(e.Message)
	}
	f, err := s.frameOf(e, high)
	if err != nil {
		s.m.broadcastErrors.Inc()
		s.log.Error("an event could not be encoded; it is not delivered", "event", e.Name, "err", err)
		return
	}
	n := 0
	for _, c := range s.live {
		if e.Except == "" || c.sock.ID() != e.Except {
			c.sock.Send(f)
			n++
		}
	}
	s.m.deliveries.WithLabelValues(deliveryLabel(e.Name)).Add(float64(n))
	if e.IsMessage() {
		s.m.broadcast.Inc()
	} else {
		s.m.events.WithLabelValues(e.Name).Inc()
	}
}

// frameOf encodes e once for all its recipients. high is the high-water
// id of a message (see chat.Delivery); "" when it is sent in order.
func (s *Server) frameOf(e chat.Event, high string) (*engine.Frame, error) {
	if e.IsMessage() {
		return engine.EventFrame(e.Name, s.messageArgs(e.Message, high)...)
	}
	return engine.EventFrame(e.Name, e.Data)
}

// messageArgs are the arguments of a `message` event for m: the wire
// message, then, with recovery on, its recovery offset (clients ignore the
// extra argument; socket.io-client keeps it as its offset and sends it back
// when it reconnects).
func (s *Server) messageArgs(m chat.Message, high string) []any {
	if s.o.RecoveryWindow > 0 {
		return []any{m.WireFor(s.o.AuthMode), makeOffset(m.ID, high)}
	}
	return []any{m.WireFor(s.o.AuthMode)}
}

// ClusterNodes is how many servers share the cluster channel (1 without a
// cluster).
func (s *Server) ClusterNodes() int64 {
	if s.cluster == nil {
		return 1
	}
	return s.cluster.nodes()
}

// Close disconnects every client and stops the edge, after every event a
// client sent before was handled. Clients with connection-state recovery
// reconnect to another node, or to this one when it comes back, and get
// what they missed.
func (s *Server) Close(ctx context.Context) error {
	s.closeOnce.Do(func() { close(s.stop) })
	<-s.stopped
	if s.admin != nil {
		s.admin.close()
	}
	err := s.eng.Close(ctx)
	if s.cluster != nil {
		s.cluster.close(ctx)
	}
	if err != nil {
		return fmt.Errorf("close the Socket.IO sessions: %w", err)
	}
	return nil
}

func (s *Server) limits() chat.Limits { return s.o.Limits }

// AllowsOrigin reports whether CORS_ORIGINS lets a browser page from origin
// talk to this server.
func (s *Server) AllowsOrigin(origin string) bool { return s.origins.allows(origin) }
