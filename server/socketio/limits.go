package socketio

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
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

// lists reports whether origin is one CORS_ORIGINS names (not through
// "*").
func (p originPolicy) lists(origin string) bool {
	n, err := normaliseOrigin(origin)
	return err == nil && p.allowed[n]
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
