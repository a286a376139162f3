// Package socketio is the Socket.IO v4 edge of the chat server: an
// unmodified socket.io-client 4.x app connects with long-polling, upgrades
// to WebSocket, emits `event:message` {message, username} and receives
// `message` events.
//
// The sessions themselves (Engine.IO v4 and Socket.IO v5: polling,
// WebSocket, the upgrade, heartbeats, limits) are the engine unit's
// (internal/engine); the rooms, their history, presence and typing are the
// hub's (package hub). This package turns a client's packets into calls of
// the chat: it checks who the client is (auth.go) and every limit (payload,
// rate, typing, bans), hands messages to the accept flow (chat.Service),
// which broadcasts through the hub, joins each socket to the global room
// (history on CONNECT, connection-state recovery), acknowledges a message
// with an acknowledgement callback once it is durable, and answers a bad
// event with a clear `error` event. Every handler runs behind a recover:
// client input cannot stop the process. The Socket.IO Admin UI's namespace
// is the adminui package's, behind this package's router.
//
//	engine ──packets──▶ Server (decode, limits, auth) ──▶ chat.Service ──▶ Log
//	   ▲                   │ join, leave, typing               │ Broadcast(room, e)
//	   └── frames ──── hub.Hub ◀──────────────────────────────┘
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

	"github.com/scalable-chat-go/server/chat"
	"github.com/scalable-chat-go/server/hub"
	"github.com/scalable-chat-go/server/socketio/adminui"
	"github.com/scalable-chat-go/server/socketio/internal/engine"
)

// Options configure the edge. Values are taken as given: the
// configuration decides the defaults (0 turns a limit off where a field
// says so).
type Options struct {
	// Hub holds this node's connections by room; required.
	Hub *hub.Hub
	// Accepter is the accept flow messages go to (*chat.Service); required.
	Accepter Accepter
	// Moderation, when set, enforces bans and serves event:delete
	// (moderation.go).
	Moderation *chat.Moderation
	// Rooms serves the room events (rooms.go); without it every room
	// event is refused as unavailable.
	Rooms *chat.RoomService
	// Directory reaches the other nodes' sockets, for the Admin UI; nil on
	// a node alone.
	Directory chat.Directory
	// ClientIDsWait: a message with a clientId waits for the cluster to
	// claim it (a Redis round trip), so it is handled on a worker.
	ClientIDsWait bool

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
	// RecoveryWindow is how long a disconnected client's session is kept
	// for connection-state recovery (0: no recovery). It must be the
	// Encoder's (NewEncoder): messages carry their recovery offset only
	// with it.
	RecoveryWindow time.Duration
	// SweepInterval is how often the sockets whose token expired, or that a
	// ban in force keeps out, are closed.
	SweepInterval time.Duration
	// TypingRatePerSecond limits each connection's typing events (bursts
	// of twice it).
	TypingRatePerSecond float64
	// Limits are the message limits; a name a client gives outside a
	// message is checked against them too.
	Limits chat.Limits
	// Admin, when set, serves the Socket.IO Admin UI's namespace (package
	// adminui).
	Admin *adminui.Options

	// AuthMode and Verifier: who clients are (auth.go). Without a
	// Verifier, or with AuthOff, no token is read.
	AuthMode chat.AuthMode
	Verifier chat.Verifier
	// Names, when set, are the guest names of the cluster: with
	// AuthOptional an anonymous CONNECT may not give one a live guest
	// holds (names.go).
	Names chat.NameClaims

	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Accepter is the accept flow the edge hands client events to
// (*chat.Service).
type Accepter interface {
	Accept(from chat.Sender, payload any, durable func(chat.Message, error)) (chat.Message, error)
}

// Server is the Socket.IO edge.
type Server struct {
	o       Options
	hub     *hub.Hub
	accept  Accepter
	eng     *engine.Engine
	m       *metrics
	log     *slog.Logger
	origins originPolicy
	admin   *adminui.UI // nil unless the Admin UI is on

	connMu sync.Mutex
	conns  map[*conn]struct{}
	// heldNames are the folded names of the verified users online, which
	// an anonymous client may not give (names.go).
	heldNames map[string]struct{}

	stop      chan struct{}
	stopped   chan struct{}
	closeOnce sync.Once
	closeErr  error // the result of Close
}

var (
	_ engine.Handler        = (*Server)(nil)
	_ chat.DirectoryHandler = (*Server)(nil)
)

// New builds the edge and starts its sessions' engine; serve Handler.
func New(o Options) (*Server, error) {
	switch {
	case o.Hub == nil:
		return nil, errors.New("socketio: Options.Hub is required")
	case o.Accepter == nil:
		return nil, errors.New("socketio: Options.Accepter is required")
	case o.SweepInterval <= 0:
		return nil, errors.New("socketio: Options.SweepInterval must be positive")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Limits == (chat.Limits{}) {
		o.Limits = chat.DefaultLimits()
	}
	if o.Rooms == nil {
		o.Rooms = chat.NewRoomService(chat.RoomServiceOptions{Unavailable: "this server has no rooms"})
	}
	origins, err := newOriginPolicy(o.CORSOrigins)
	if err != nil {
		return nil, err
	}
	s := &Server{
		o:       o,
		hub:     o.Hub,
		accept:  o.Accepter,
		m:       newMetrics(o.Registerer),
		log:     o.Logger,
		origins: origins,
		conns:   make(map[*conn]struct{}),
		stop:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	var allow func(string) bool
	if !origins.any {
		allow = origins.allows
	}
	var handler engine.Handler = s
	if o.Admin != nil {
		s.admin = adminui.New(*o.Admin, adminui.Deps{Chat: chatNamespace{s}, Directory: o.Directory,
			Guard: s.guard, Banned: s.addrBanned, Logger: o.Logger, Registerer: o.Registerer})
		handler = router{s}
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
		Handler:            handler,
		Inline:             s.inline,
		Logger:             o.Logger,
		Registerer:         o.Registerer,
	})
	if err != nil {
		return nil, err
	}
	if o.Moderation != nil {
		o.Moderation.Watch(func(b chat.Ban) { go s.guard("ban", func() { s.kick(b) }) })
	}
	go s.loop()
	if s.admin != nil {
		s.admin.Start()
	}
	return s, nil
}

// guard runs fn, recovering (and logging, counting) a panic.
func (s *Server) guard(what string, fn func()) { s.eng.Guard(what, fn) }

// Handler serves the Socket.IO endpoint, /socket.io/.
func (s *Server) Handler() http.Handler {
	if s.admin != nil {
		return adminui.WithCredentials(s.eng, s.origins.lists)
	}
	return s.eng
}

// Connections returns how many sockets are connected to this node.
func (s *Server) Connections() int {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	return len(s.conns)
}

// snapshot returns the connected sockets.
func (s *Server) snapshot() []*conn {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	out := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		out = append(out, c)
	}
	return out
}

// loop closes, once a SweepInterval, the sockets whose token expired and
// those a ban in force keeps out, and indexes the names of the verified
// users online (names.go).
func (s *Server) loop() {
	defer close(s.stopped)
	t := time.NewTicker(s.o.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		s.guard("token expiry", s.expireTokens)
		s.guard("bans", s.enforceBans)
		s.guard("held names", s.refreshHeldNames)
	}
}

// Close disconnects every client and stops the edge, after every event a
// client sent before was handled. Clients with connection-state recovery
// reconnect to another node, or to this one when it comes back, and get
// what they missed. A second call returns the first one's result.
func (s *Server) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		close(s.stop)
		<-s.stopped
		if s.admin != nil {
			s.admin.Close()
		}
		if err := s.eng.Close(ctx); err != nil {
			s.closeErr = fmt.Errorf("close the Socket.IO sessions: %w", err)
		}
	})
	return s.closeErr
}

func (s *Server) limits() chat.Limits { return s.o.Limits }

// AllowsOrigin reports whether CORS_ORIGINS lets a browser page from origin
// talk to this server.
func (s *Server) AllowsOrigin(origin string) bool { return s.origins.allows(origin) }
