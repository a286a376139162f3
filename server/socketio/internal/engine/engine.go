package engine

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Handler receives a server's Socket.IO traffic. The engine calls it for
// one socket at a time, in the order of the client's packets, from a
// bounded pool of worker goroutines: a call may block briefly (a store
// read), but every call that blocks holds a worker. A CONNECT whose
// decision may wait on the outside (a token's keys, a password hash) is
// decided off the pool: see Hello.Async.
type Handler interface {
	// Connect decides on a client's CONNECT to a namespace (s.Namespace()).
	// It returns nil to accept, or an error to refuse: the client's
	// connect_error then carries a *ConnectError's Message and Data (any
	// other error: "Invalid namespace" for a namespace other than "/", the
	// error's text otherwise). When h.Resumable, calling h.Recover()
	// resumes the client's earlier socket (same id; socket.recovered is
	// true on the client).
	Connect(s *Socket, h *Hello) error
	// Ready is called once the CONNECT answer is queued: what it sends
	// follows the answer.
	Ready(s *Socket)
	// Event is an event of the client: its name and arguments (decoded
	// JSON: map[string]any, []any, string, float64, bool, nil; []byte for
	// binary attachments). ack is nil unless the client asked for an
	// acknowledgement; it may be called once, from any goroutine, later.
	Event(s *Socket, name string, args []any, ack Ack)
	// Disconnect is the socket's last call: it is gone for reason (as
	// Socket.IO names them: "transport close", "transport error", "ping
	// timeout", "parse error", "client namespace disconnect", "server
	// namespace disconnect", "forced close", "server shutting down").
	Disconnect(s *Socket, reason string)
}

// MessageHandler receives raw Engine.IO messages instead of the Socket.IO
// layer: the engine is then a bare Engine.IO server (the conformance tests
// of the Engine.IO protocol use it). data is the message without its type
// byte; it belongs to the callee.
type MessageHandler func(s *Session, data []byte, binary bool)

// Ack answers a client's acknowledgement request with args.
type Ack func(args ...any)

// ConnectError refuses a CONNECT: the client's connect_error has Message as
// its message and Data as its data.
type ConnectError struct {
	Message string
	Data    any
}

func (e *ConnectError) Error() string { return e.Message }

// ErrInvalidNamespace refuses a CONNECT to a namespace the server does not
// serve, as Node's server does.
var ErrInvalidNamespace = &ConnectError{Message: "Invalid namespace"}

// Options configure an Engine. Zero fields take the documented defaults.
type Options struct {
	// Path is where the engine is served ("/socket.io/").
	Path string
	// PingInterval and PingTimeout are the heartbeat (25 s, 20 s): the
	// server pings every PingInterval and closes a session whose pong has
	// not come PingTimeout after its ping.
	PingInterval, PingTimeout time.Duration
	// ConnectTimeout closes a session that connected no namespace within it
	// (45 s, as Node's connectTimeout).
	ConnectTimeout time.Duration
	// UpgradeTimeout bounds an upgrade from long-polling to WebSocket: a
	// probe that has not finished within it is closed (10 s).
	UpgradeTimeout time.Duration
	// MaxPayload is the largest WebSocket message or polling request body a
	// client may send (1,000,000 bytes, Node's maxHttpBufferSize); a larger
	// one closes the session.
	MaxPayload int64
	// BodyTimeout is the longest a polling POST body may take to arrive
	// (10 s); a slower one closes the session.
	BodyTimeout time.Duration
	// SendQueueLimit is how many packets may wait for one client (1000):
	// above it for a second, or past ten times it at once, the session is
	// closed (the client reconnects and catches up).
	SendQueueLimit int
	// InboxLimit is how many received messages of one WebSocket may wait for
	// a worker (256); past it the engine stops reading that connection until
	// they are handled (TCP then slows the client down).
	InboxLimit int
	// RecoveryWindow keeps a disconnected socket's id for Socket.IO's
	// connection-state recovery this long (0: no recovery; CONNECT answers
	// then carry no pid).
	RecoveryWindow time.Duration
	// MaxSessions and MaxSessionsPerAddr bound the sessions of the engine
	// and of one client address (0: no limit). A slot is reserved before
	// the session exists, so parallel handshakes cannot overshoot.
	MaxSessions, MaxSessionsPerAddr int
	// AllowOrigin tells whether a browser page from origin may connect (its
	// Origin header, on polling and on WebSocket handshakes). nil allows
	// any origin and answers CORS requests with "*"; otherwise an allowed
	// origin is echoed.
	AllowOrigin func(origin string) bool
	// ClientAddr is the client address of a request, for the per-address
	// limit (default: the host of RemoteAddr).
	ClientAddr func(r *http.Request) string
	// Handler receives the Socket.IO traffic; required unless Messages is
	// set.
	Handler Handler
	// Messages, when set, makes a bare Engine.IO server (see
	// MessageHandler).
	Messages MessageHandler
	// Inline, when set, reports whether the Handler's Event for an event
	// of namespace nsp never waits (no I/O, no lock held long, little work): such an event
	// read from a WebSocket is handled on the loop that read it, when its
	// session has nothing else waiting, without handing it to a worker
	// (the switch cost more CPU than a small room's event on two cores).
	// Anything else is the workers', in order.
	Inline func(nsp, name string, args []any) bool
	// Workers is the size of the pool that runs Handler calls
	// (8 × GOMAXPROCS, at least 16).
	Workers int
	// Loops is how many event loops read WebSocket connections (GOMAXPROCS).
	Loops int

	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

func (o *Options) defaults() error {
	if o.Handler == nil && o.Messages == nil {
		return errors.New("engine: Options.Handler is required")
	}
	if o.Path == "" {
		o.Path = "/socket.io/"
	}
	if !strings.HasSuffix(o.Path, "/") {
		o.Path += "/"
	}
	setDefault(&o.PingInterval, 25*time.Second)
	setDefault(&o.PingTimeout, 20*time.Second)
	setDefault(&o.ConnectTimeout, 45*time.Second)
	setDefault(&o.UpgradeTimeout, 10*time.Second)
	setDefault(&o.BodyTimeout, 10*time.Second)
	setDefault(&o.MaxPayload, 1_000_000)
	setDefault(&o.SendQueueLimit, 1000)
	setDefault(&o.InboxLimit, 256)
	setDefault(&o.Workers, max(16, 8*runtime.GOMAXPROCS(0)))
	setDefault(&o.Loops, runtime.GOMAXPROCS(0))
	if o.RecoveryWindow < 0 {
		o.RecoveryWindow = 0
	}
	if o.ClientAddr == nil {
		o.ClientAddr = func(r *http.Request) string { return hostOf(r.RemoteAddr) }
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return nil
}

func setDefault[T int | int64 | time.Duration](v *T, d T) {
	if *v <= 0 {
		*v = d
	}
}

// Engine serves Engine.IO v4 sessions and, over them, Socket.IO v5
// sockets.
type Engine struct {
	o   Options
	m   *metrics
	log *slog.Logger

	mu       sync.Mutex
	sessions map[string]*Session
	perAddr  map[string]int
	reserved int
	closing  bool

	keptMu sync.Mutex
	kept   map[string]keptSocket // pid -> socket kept for recovery

	io      *ioSet
	wheel   *wheel
	workers *workerPool
	live    sync.WaitGroup // sessions whose last handler call is pending
}

// keptSocket is a disconnected socket kept for connection-state recovery.
type keptSocket struct {
	id string
	at time.Time
}

// New starts an Engine: its event loops, flushers, workers and timers.
// Close stops them.
func New(o Options) (*Engine, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	e := &Engine{
		o:        o,
		m:        newMetrics(o.Registerer),
		log:      o.Logger,
		sessions: make(map[string]*Session),
		perAddr:  make(map[string]int),
		kept:     make(map[string]keptSocket),
	}
	var err error
	if e.io, err = newIOSet(e, o.Loops); err != nil {
		return nil, err
	}
	e.workers = newWorkerPool(o.Workers)
	e.wheel = newWheel(e, wheelTick(o), max(o.PingInterval, o.PingTimeout, o.ConnectTimeout, o.UpgradeTimeout, o.RecoveryWindow))
	return e, nil
}

// wheelTick is the resolution of the timers: a twentieth of the shortest
// heartbeat period, between 5 ms and 500 ms.
func wheelTick(o Options) time.Duration {
	return min(max(min(o.PingInterval, o.PingTimeout)/20, 5*time.Millisecond), 500*time.Millisecond)
}

// Sessions is how many Engine.IO sessions are open.
func (e *Engine) Sessions() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.sessions)
}

// Close closes every session ("server shutting down"), waits until the
// handler has seen every socket's Disconnect, or ctx ends, and stops the
// engine. New requests are refused from the start.
func (e *Engine) Close(ctx context.Context) error {
	e.mu.Lock()
	e.closing = true
	all := make([]*Session, 0, len(e.sessions))
	for _, s := range e.sessions {
		all = append(all, s)
	}
	e.mu.Unlock()
	for _, s := range all {
		s.close("server shutting down", closeGoingAway)
	}
	done := make(chan struct{})
	go func() {
		e.live.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("engine close: %w", ctx.Err())
	}
	e.wheel.stop()
	e.workers.stop()
	e.io.close()
	return err
}

// Guard runs fn, and logs and counts a panic instead of letting it through.
func (e *Engine) Guard(what string, fn func()) {
	defer func() {
		if r := recover(); r != nil {
			e.m.panics.Inc()
			buf := make([]byte, 4096)
			buf = buf[:runtime.Stack(buf, false)]
			e.log.Error("handler panicked; the server keeps serving", "handler", what, "panic", fmt.Sprint(r), "stack", string(buf))
		}
	}()
	fn()
}

// reserve takes a session slot for addr, or says why not (an HTTP status
// and an Engine.IO error).
func (e *Engine) reserve(addr string) (status, code int, msg string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case e.closing:
		return http.StatusServiceUnavailable, 5, "the server is shutting down"
	case e.o.MaxSessions > 0 && e.reserved >= e.o.MaxSessions:
		e.m.refused.WithLabelValues("max_connections").Inc()
		return http.StatusServiceUnavailable, 5, "this server is full (MAX_CONNECTIONS); try another or retry later"
	case e.o.MaxSessionsPerAddr > 0 && e.perAddr[addr] >= e.o.MaxSessionsPerAddr:
		e.m.refused.WithLabelValues("max_connections_per_ip").Inc()
		return http.StatusTooManyRequests, 5, "too many connections from your address (MAX_CONNECTIONS_PER_IP)"
	}
	e.reserved++
	e.perAddr[addr]++
	return 0, 0, ""
}

// release gives a slot back.
func (e *Engine) release(addr string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.reserved--
	if e.perAddr[addr]--; e.perAddr[addr] <= 0 {
		delete(e.perAddr, addr)
	}
}

// register makes s reachable by its id; false when the engine is closing.
func (e *Engine) register(s *Session) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closing {
		return false
	}
	e.sessions[s.id] = s
	e.live.Add(1) // Done when the worker has handled its close
	e.m.sessions.Set(float64(len(e.sessions)))
	return true
}

func (e *Engine) unregister(s *Session) {
	e.mu.Lock()
	if e.sessions[s.id] == s {
		delete(e.sessions, s.id)
	}
	e.m.sessions.Set(float64(len(e.sessions)))
	e.mu.Unlock()
}

func (e *Engine) lookup(sid string) *Session {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.sessions[sid]
}

// keep remembers a disconnected socket for recovery.
func (e *Engine) keep(pid, id string) {
	if e.o.RecoveryWindow <= 0 || pid == "" {
		return
	}
	e.keptMu.Lock()
	e.kept[pid] = keptSocket{id: id, at: time.Now()}
	e.keptMu.Unlock()
}

// takeKept returns and forgets the socket kept for pid, if it is within the
// recovery window.
func (e *Engine) takeKept(pid string) (keptSocket, bool) {
	e.keptMu.Lock()
	defer e.keptMu.Unlock()
	k, ok := e.kept[pid]
	if ok {
		delete(e.kept, pid)
	}
	return k, ok && time.Since(k.at) <= e.o.RecoveryWindow
}

// sweepKept forgets the kept sockets past the recovery window.
func (e *Engine) sweepKept(now time.Time) {
	e.keptMu.Lock()
	for pid, k := range e.kept {
		if now.Sub(k.at) > e.o.RecoveryWindow {
			delete(e.kept, pid)
		}
	}
	e.keptMu.Unlock()
}

// newID returns a random id of 20 URL-safe characters, as Node's engine
// makes them.
func newID() string {
	var b [15]byte
	_, _ = rand.Read(b[:])
	return base64.URLEncoding.EncodeToString(b[:])
}

func hostOf(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return hostport
}
