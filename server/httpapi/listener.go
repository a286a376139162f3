package httpapi

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ConnLimiter is the server's listener: it counts the open TCP connections
// of each client address as they are accepted, before any TLS or HTTP is
// read, and closes at once (with a reset, so that nothing lingers) a
// connection past HTTP_MAX_CONNS_PER_IP. Idle keep-alive connections,
// requests whose headers or bodies trickle in and long-polls all count
// the same, so one address cannot take the descriptors that every client
// needs.
//
// A connection counts until the net.Conn this listener handed out is
// closed. The session layer takes a WebSocket's descriptor over after the
// handshake (it duplicates it and closes the net.Conn), so from then on
// that connection counts as a session, against MAX_CONNECTIONS_PER_IP,
// and no longer here. The address is the TCP peer's: connections from
// TRUSTED_PROXIES are not counted (a proxy carries many clients;
// MAX_CONNECTIONS_PER_IP counts them by X-Forwarded-For).
type ConnLimiter struct {
	*net.TCPListener
	max     int // 0: no limit, only the count
	trusted []netip.Prefix
	log     *slog.Logger

	mu   sync.Mutex
	open map[netip.Addr]int

	conns    prometheus.Gauge
	refused  prometheus.Counter
	loggedAt atomic.Int64 // unix nanoseconds of the last refusal logged
}

// NewConnLimiter returns ln limited to max open connections per client
// address (HTTP_MAX_CONNS_PER_IP; 0: no limit, only the count), those of
// the trusted proxies not counted.
func NewConnLimiter(ln *net.TCPListener, max int, trusted []netip.Prefix, reg prometheus.Registerer, log *slog.Logger) *ConnLimiter {
	l := &ConnLimiter{
		TCPListener: ln,
		max:         max,
		trusted:     trusted,
		log:         log,
		open:        make(map[netip.Addr]int),
		conns: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "chat_http_connections", Help: "Open TCP connections to the HTTP port (WebSocket connections included).",
		}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_http_connections_refused_total", Help: "TCP connections closed at once because their address had HTTP_MAX_CONNS_PER_IP open.",
		}),
	}
	reg.MustRegister(l.conns, l.refused)
	return l
}

// Accept returns the next connection within the limit.
func (l *ConnLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.AcceptTCP()
		if err != nil {
			return nil, err
		}
		addr := c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap()
		if l.max > 0 && !l.isTrusted(addr) {
			l.mu.Lock()
			if l.open[addr] >= l.max {
				l.mu.Unlock()
				l.refuse(c, addr)
				continue
			}
			l.open[addr]++
			l.mu.Unlock()
		} else {
			addr = netip.Addr{} // not counted per address
		}
		l.conns.Inc()
		return &countedConn{TCPConn: c, release: func() { l.release(addr) }}, nil
	}
}

func (l *ConnLimiter) isTrusted(a netip.Addr) bool {
	for _, p := range l.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (l *ConnLimiter) refuse(c *net.TCPConn, addr netip.Addr) {
	_ = c.SetLinger(0)
	_ = c.Close()
	l.refused.Inc()
	now := time.Now().UnixNano()
	if last := l.loggedAt.Load(); now-last >= int64(time.Second) && l.loggedAt.CompareAndSwap(last, now) {
		l.log.Warn("refusing connections: the address has HTTP_MAX_CONNS_PER_IP open (logged at most once a second)",
			"addr", addr.String(), "limit", l.max)
	}
}

func (l *ConnLimiter) release(addr netip.Addr) {
	l.conns.Dec()
	if !addr.IsValid() {
		return
	}
	l.mu.Lock()
	if l.open[addr]--; l.open[addr] <= 0 {
		delete(l.open, addr)
	}
	l.mu.Unlock()
}

// countedConn is an accepted connection that gives its slot back when it
// is closed. It embeds the *net.TCPConn so that the methods beyond net.Conn
// stay (SyscallConn for the WebSocket writer, ReadFrom, CloseWrite).
type countedConn struct {
	*net.TCPConn
	once    sync.Once
	release func()
}

func (c *countedConn) Close() error {
	err := c.TCPConn.Close()
	c.once.Do(c.release)
	return err
}

// BodyDeadline bounds how long a request's body may take to arrive
// (HTTP_BODY_TIMEOUT): a request with a body gets a read deadline on its
// connection when its handler starts, lifted once the body has been read
// to its end. A body still arriving past it fails the handler's read
// with a timeout, and the connection is closed. Requests without a body
// (long-poll GETs, WebSocket upgrades) are not bounded here: their wait is
// the session layer's (the heartbeat). http.Server.ReadTimeout cannot do
// this: it would bound the whole request and cut the held long-polls.
func BodyDeadline(d time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			rc := http.NewResponseController(w)
			if rc.SetReadDeadline(time.Now().Add(d)) == nil {
				r.Body = &deadlineBody{ReadCloser: r.Body, rc: rc}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// deadlineBody lifts its connection's read deadline at the end of the body,
// so that a handler that holds the request afterwards is not cut (net/http
// reads the connection in the background then, to notice a client that
// leaves).
type deadlineBody struct {
	io.ReadCloser
	rc     *http.ResponseController
	lifted bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && !b.lifted {
		b.lifted = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}
