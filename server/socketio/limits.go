package socketio

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	engine "github.com/zishang520/socket.io/servers/engine/v3"
)

// originPolicy is the CORS_ORIGINS list.
type originPolicy struct {
	any     bool
	allowed map[string]bool // normalised scheme://host[:port]
	list    []string
}

func newOriginPolicy(origins []string) (originPolicy, error) {
	p := originPolicy{allowed: map[string]bool{}}
	for _, o := range origins {
		o = strings.TrimSpace(o)
		switch {
		case o == "":
			continue
		case o == "*":
			p.any = true
			continue
		}
		n, err := normaliseOrigin(o)
		if err != nil {
			return p, fmt.Errorf("CORS_ORIGINS: %q is not an origin like https://chat.example.com: %w", o, err)
		}
		p.allowed[n] = true
		p.list = append(p.list, n)
	}
	if !p.any && len(p.allowed) == 0 {
		p.any = true
	}
	return p, nil
}

func normaliseOrigin(o string) (string, error) {
	u, err := url.Parse(o)
	if err != nil {
		return "", err
	}
	if u.Scheme == "" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return "", fmt.Errorf("want scheme://host[:port]")
	}
	return strings.ToLower(u.Scheme + "://" + u.Host), nil
}

func (p originPolicy) allows(origin string) bool {
	if p.any {
		return true
	}
	n, err := normaliseOrigin(origin)
	return err == nil && p.allowed[n]
}

// corsValue is the Origin option of the library's CORS middleware.
func (p originPolicy) corsValue() any {
	if p.any {
		return "*"
	}
	return p.list
}

// clientAddr is the address a request comes from: the first untrusted hop
// of X-Forwarded-For when the peer is a trusted proxy, the peer otherwise.
func (s *Server) clientAddr(r *http.Request) string {
	peer := hostOf(r.RemoteAddr)
	if len(s.o.TrustedProxies) == 0 || !s.trusted(peer) {
		return peer
	}
	// Every X-Forwarded-For line counts, in order: a proxy may append its
	// own line after one the client sent.
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop := strings.TrimSpace(hops[i])
		if hop == "" {
			continue
		}
		if _, err := netip.ParseAddr(hop); err != nil {
			return peer
		}
		if !s.trusted(hop) {
			return hop
		}
		peer = hop
	}
	return peer
}

func (s *Server) trusted(addr string) bool {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, p := range s.o.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func hostOf(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return hostport
}

// admitSession checks the connection limits for a new Engine.IO session
// from addr. It returns 0, or the HTTP status and reason of the refusal.
func (s *Server) admitSession(addr string) (int, string) {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	if s.o.MaxConnections > 0 && len(s.engineSessions) >= s.o.MaxConnections {
		s.m.refused.WithLabelValues("max_connections").Inc()
		return http.StatusServiceUnavailable, "this server is full (MAX_CONNECTIONS); try another or retry later"
	}
	if s.o.MaxConnectionsPerIP > 0 && s.perIP[addr] >= s.o.MaxConnectionsPerIP {
		s.m.refused.WithLabelValues("max_connections_per_ip").Inc()
		return http.StatusTooManyRequests, "too many connections from your address (MAX_CONNECTIONS_PER_IP)"
	}
	return 0, ""
}

// onEngineConnection counts an Engine.IO session until it closes.
func (s *Server) onEngineConnection(args ...any) {
	es, ok := args[0].(engine.Socket)
	if !ok {
		return
	}
	id := es.Id()
	s.installGate(es)
	addr := s.clientAddr(es.Request().Request())
	s.connMu.Lock()
	s.engineSessions[id] = addr
	s.perIP[addr]++
	s.connMu.Unlock()
	_ = es.Once("close", s.recover("engine close", func(...any) {
		s.connMu.Lock()
		if a, ok := s.engineSessions[id]; ok {
			delete(s.engineSessions, id)
			if s.perIP[a]--; s.perIP[a] <= 0 {
				delete(s.perIP, a)
			}
		}
		s.connMu.Unlock()
	}))
}

// closeSession closes the Engine.IO session id, if it is open.
func (s *Server) closeSession(id string) {
	if es, ok := s.io.Engine().Clients().Load(id); ok {
		es.Close(true)
	}
}
