// Package socketio is the Socket.IO v4 edge of the chat server, on
// zishang520's Go Socket.IO (v3 module line): an unmodified socket.io-client
// 4.x app connects with long-polling, upgrades to WebSocket, emits
// `event:message` {message, username} and receives `message` events.
//
// On top of the original protocol it sends a newcomer the recent history
// (oldest first, no gap or duplicate at the seam with live messages),
// recovers a reconnecting client's missed messages without replaying
// history, counts who is online (`presence`), acknowledges a message with an
// acknowledgement callback once it is durable, and enforces every limit
// (payload, rate, connections, slow readers) with a clear `error` event.
// Every handler runs behind a recover: client input cannot stop the process.
package socketio

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	engine "github.com/zishang520/socket.io/servers/engine/v3"
	"github.com/zishang520/socket.io/servers/engine/v3/transports"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"

	"github.com/scalable-chat-go/server/chat"
)

// liveRoom holds the sockets that receive live messages: a socket joins it
// only after its history was written, so that history and live messages
// meet without a gap or a duplicate.
const liveRoom socket.Room = "chat:live"

// Options configure the edge. Zero fields take the documented defaults.
type Options struct {
	// History answers newcomers; required.
	History *chat.History
	// Presence counts the clients of the cluster (LocalPresence by default).
	Presence chat.Presence
	// Cluster builds the Socket.IO cluster adapter that links the nodes (the
	// Redis adapter); nil runs a single node. See clusterLink.
	Cluster socket.AdapterConstructor
	// ClusterBuffer bounds the messages waiting to be published to the
	// other nodes during a cluster outage (10,000); past it the oldest is
	// dropped, counted and logged.
	ClusterBuffer int
	// OnRemote, when set, is called with every message another node
	// broadcast, once (a node that keeps a replica of the history stores it).
	OnRemote func(chat.Message)

	// PingInterval and PingTimeout are Engine.IO's heartbeat (25 s, 20 s).
	PingInterval, PingTimeout time.Duration
	// CORSOrigins are the allowed origins; "*" (the default) allows any.
	// The same list is checked against the Origin of WebSocket upgrades.
	CORSOrigins []string
	// MaxHTTPBufferSize is the largest frame or polling request a client
	// may send (64 KiB); a larger one closes that connection.
	MaxHTTPBufferSize int64
	// RatePerSecond and RateBurst limit each connection's messages (20, 40).
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
	// HistoryLimit is how many messages a newcomer receives (50; -1: none).
	HistoryLimit int
	// RecoveryWindow is how long a disconnected client's session is kept
	// for connection-state recovery (2 minutes; -1: no recovery).
	RecoveryWindow time.Duration
	// PresenceInterval is the most often `presence` is sent (1 s).
	PresenceInterval time.Duration
	// WSWriteWindow is the longest a WebSocket frame waits so that frames
	// for the same client go out in one write (50 ms; -1: write at once).
	// A frame after a quiet period is written at once.
	WSWriteWindow time.Duration

	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

func (o *Options) defaults() {
	if o.Presence == nil {
		o.Presence = chat.LocalPresence{}
	}
	if o.PingInterval <= 0 {
		o.PingInterval = 25 * time.Second
	}
	if o.PingTimeout <= 0 {
		o.PingTimeout = 20 * time.Second
	}
	if len(o.CORSOrigins) == 0 {
		o.CORSOrigins = []string{"*"}
	}
	if o.MaxHTTPBufferSize <= 0 {
		o.MaxHTTPBufferSize = 64 << 10
	}
	if o.RatePerSecond == 0 {
		o.RatePerSecond = 20
	}
	if o.RateBurst <= 0 {
		o.RateBurst = 40
	}
	if o.SendQueueLimit <= 0 {
		o.SendQueueLimit = 1000
	}
	if o.HistoryLimit == 0 {
		o.HistoryLimit = 50
	}
	if o.RecoveryWindow == 0 {
		o.RecoveryWindow = 2 * time.Minute
	}
	if o.ClusterBuffer <= 0 {
		o.ClusterBuffer = 10_000
	}
	if o.PresenceInterval <= 0 {
		o.PresenceInterval = time.Second
	}
	if o.WSWriteWindow == 0 {
		o.WSWriteWindow = 50 * time.Millisecond
	} else if o.WSWriteWindow < 0 {
		o.WSWriteWindow = 0
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Accepter is the accept flow the edge hands client events to
// (*chat.Service).
type Accepter interface {
	Accept(payload any, durable func(chat.Message, error)) (chat.Message, error)
}

// Server is the Socket.IO edge. It is the chat.Fanout of its node.
type Server struct {
	o       Options
	io      *socket.Server
	handler http.Handler
	accept  Accepter
	m       *metrics
	log     *slog.Logger
	origins originPolicy

	// deliverMu orders live deliveries with newcomers joining the live
	// room, so that each newcomer's history meets the live stream exactly.
	deliverMu sync.Mutex

	connMu         sync.Mutex
	conns          map[socket.SocketId]*conn
	engineSessions map[string]string // Engine.IO session id -> client address
	perIP          map[string]int

	gates sync.Map // Engine.IO session id -> *connectGate

	cluster *clusterLink // nil on a single node
	main    *adapter     // the adapter of the clients' namespace

	frames *frameCache
	hub    *flushHub

	sessMu     sync.Mutex
	sessions   map[socket.PrivateSessionId]savedSession
	recoverMu  sync.Mutex
	recovering map[socket.SocketId]*recovering

	lastOnline int // the cluster's count at the last presence tick
	lastLocal  int // this node's count then
	// presenceDirty: this node's clients changed since the last tick.
	presenceDirty bool
	stop          chan struct{}
	stopped       chan struct{}
	closeOnce     sync.Once
}

// New builds the edge. Call SetAccepter before serving Handler.
func New(o Options) (*Server, error) {
	if o.History == nil {
		return nil, errors.New("socketio: Options.History is required")
	}
	o.defaults()
	origins, err := newOriginPolicy(o.CORSOrigins)
	if err != nil {
		return nil, err
	}
	s := &Server{
		o:              o,
		m:              newMetrics(o.Registerer),
		log:            o.Logger,
		origins:        origins,
		conns:          make(map[socket.SocketId]*conn),
		engineSessions: make(map[string]string),
		perIP:          make(map[string]int),
		lastOnline:     -1,
		frames:         newFrameCache(),
		hub:            newFlushHub(runtime.GOMAXPROCS(0), o.WSWriteWindow),
		sessions:       make(map[socket.PrivateSessionId]savedSession),
		recovering:     make(map[socket.SocketId]*recovering),
		stop:           make(chan struct{}),
		stopped:        make(chan struct{}),
	}

	opts := socket.DefaultServerOptions()
	opts.SetServeClient(false)
	opts.SetPath("/socket.io")
	opts.SetPingInterval(o.PingInterval)
	opts.SetPingTimeout(o.PingTimeout)
	opts.SetMaxHttpBufferSize(o.MaxHTTPBufferSize)
	opts.SetTransports(types.NewSet[transports.TransportCtor](engine.Polling, &wsBuilder{edge: s, hub: s.hub}))
	opts.SetCors(&types.Cors{
		Origin:         origins.corsValue(),
		AllowedHeaders: "*",
	})
	if o.RecoveryWindow > 0 {
		rec := socket.DefaultConnectionStateRecovery()
		rec.SetMaxDisconnectionDuration(o.RecoveryWindow.Milliseconds())
		rec.SetSkipMiddlewares(true)
		opts.SetConnectionStateRecovery(rec)
	}
	builder := &adapterBuilder{edge: s}
	opts.SetAdapter(builder)
	s.io = socket.NewServer(nil, opts)
	if o.Cluster != nil {
		if err := s.startCluster(builder); err != nil {
			return nil, err
		}
	}
	s.handler = s.io.ServeHandler(nil)
	s.io.Engine().On("connection", s.recover("engine connection", s.onEngineConnection))
	_ = s.io.On("connection", s.recover("connection", s.onConnection))
	go s.loop()
	return s, nil
}

// SetAccepter sets the accept flow client messages go to.
func (s *Server) SetAccepter(a Accepter) { s.accept = a }

// Handler serves the Socket.IO endpoint, /socket.io/.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// Connections returns how many sockets are connected to this node.
func (s *Server) Connections() int {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	return len(s.conns)
}

// Broadcast delivers m to every client of the cluster (chat.Fanout).
func (s *Server) Broadcast(m chat.Message) {
	s.deliverMu.Lock()
	defer s.deliverMu.Unlock()
	high := s.o.History.Observe(m)
	args := s.messageArgs(m, high)
	if err := s.io.To(liveRoom).Emit(args[0].(string), args[1:]...); err != nil {
		s.m.broadcastErrors.Inc()
		s.log.Error("broadcast failed", "id", m.ID, "err", err)
	} else {
		s.m.broadcast.Inc()
	}
	if s.cluster != nil {
		s.cluster.publish(m)
	}
}

// ClusterNodes is how many servers share the cluster channel (1 without a
// cluster).
func (s *Server) ClusterNodes() int64 {
	if s.cluster == nil {
		return 1
	}
	return s.cluster.nodes()
}

// Close disconnects every client and stops the edge. Clients with
// connection-state recovery reconnect to another node, or to this one when
// it comes back, and get what they missed.
func (s *Server) Close(ctx context.Context) error {
	s.closeOnce.Do(func() { close(s.stop) })
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.io.Close(nil)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("close the Socket.IO server: %w", ctx.Err())
	}
	<-s.stopped
	if s.cluster != nil {
		s.cluster.close(ctx)
	}
	s.hub.close()
	return nil
}

// recover wraps an event listener so that a panic is logged and counted,
// never fatal.
func (s *Server) recover(what string, fn func(args ...any)) func(args ...any) {
	return func(args ...any) {
		defer func() {
			if r := recover(); r != nil {
				s.m.panics.Inc()
				s.log.Error("handler panicked; the server keeps serving", "handler", what, "panic", fmt.Sprint(r))
			}
		}()
		fn(args...)
	}
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.URL.Path, "/socket.io/") && r.URL.Path != "/socket.io" {
		http.NotFound(w, r)
		return
	}
	if origin := r.Header.Get("Origin"); origin != "" && !s.origins.allows(origin) {
		s.m.refused.WithLabelValues("origin").Inc()
		writeEngineError(w, http.StatusForbidden, 4, "origin not allowed")
		return
	}
	q := r.URL.Query()
	if q.Get("sid") == "" {
		if code, msg := s.admitSession(s.clientAddr(r)); code != 0 {
			writeEngineError(w, code, 5, msg)
			return
		}
	} else if r.Method == http.MethodPost && r.ContentLength > s.o.MaxHTTPBufferSize {
		s.frameTooLarge("polling")
		s.closeSession(q.Get("sid"))
		writeEngineError(w, http.StatusRequestEntityTooLarge, 6, "payload too large")
		return
	}
	if websocket.IsWebSocketUpgrade(r) {
		w = &dropAfterHijack{w: w}
	}
	s.handler.ServeHTTP(w, r)
}

// frameTooLarge counts and logs a connection closed for a frame over
// MAX_HTTP_BUFFER_SIZE.
func (s *Server) frameTooLarge(transport string) {
	s.m.tooLarge.Inc()
	s.log.Info("closed a connection that sent a frame over MAX_HTTP_BUFFER_SIZE",
		"transport", transport, "limit", s.o.MaxHTTPBufferSize)
}

// writeEngineError answers a refused Engine.IO request as Engine.IO does:
// a JSON body {code, message}.
func writeEngineError(w http.ResponseWriter, status, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, `{"code":%d,"message":%q}`, code, msg)
}

// AllowsOrigin reports whether CORS_ORIGINS lets a browser page from origin
// talk to this server.
func (s *Server) AllowsOrigin(origin string) bool { return s.origins.allows(origin) }
