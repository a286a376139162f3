package socketio

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/scalable-chat-go/server/socketio/adminui"
)

func TestOriginPolicy(t *testing.T) {
	for _, bad := range [][]string{
		{"chat.example.com"},                      // no scheme
		{"https://"},                              // no host
		{"https://chat.example.com/app"},          // a path
		{"https://chat.example.com/?x=1"},         // a query
		{"https://ok.example.com", "http://[::1"}, // one bad among good ones
	} {
		_, err := newOriginPolicy(bad)
		if err == nil || !strings.Contains(err.Error(), "CORS_ORIGINS") {
			t.Errorf("newOriginPolicy(%q) = %v, want an error naming CORS_ORIGINS", bad, err)
		}
	}
	for _, tt := range []struct {
		origins       []string
		origin        string
		allows, lists bool
	}{
		{nil, "https://any.example.com", true, false},
		{[]string{" ", ""}, "https://any.example.com", true, false},
		{[]string{"*"}, "https://any.example.com", true, false},
		{[]string{"*", "https://chat.example.com"}, "https://chat.example.com", true, true},
		{[]string{"https://Chat.Example.com/"}, "https://chat.example.com", true, true},
		{[]string{"https://chat.example.com"}, "HTTPS://CHAT.EXAMPLE.COM", true, true},
		{[]string{"https://chat.example.com"}, "http://chat.example.com", false, false},
		{[]string{"https://chat.example.com"}, "https://chat.example.com:8443", false, false},
		{[]string{"https://chat.example.com:8443"}, "https://chat.example.com:8443", true, true},
		{[]string{"https://chat.example.com"}, "null", false, false},
		{[]string{"https://chat.example.com"}, "", false, false},
	} {
		p, err := newOriginPolicy(tt.origins)
		if err != nil {
			t.Fatalf("newOriginPolicy(%q): %v", tt.origins, err)
		}
		if got := p.allows(tt.origin); got != tt.allows {
			t.Errorf("%q allows %q = %v, want %v", tt.origins, tt.origin, got, tt.allows)
		}
		if got := p.lists(tt.origin); got != tt.lists {
			t.Errorf("%q lists %q = %v, want %v", tt.origins, tt.origin, got, tt.lists)
		}
	}
}

// poll makes a long-polling handshake from origin and returns its status
// and CORS headers.
func poll(t *testing.T, url, origin string) (int, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url+"/socket.io/?EIO=4&transport=polling", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Origin", origin)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode, res.Header
}

// The edge serves only the origins CORS_ORIGINS lists, and lets the Admin
// UI's credentialed requests through from those it names.
func TestCORS(t *testing.T) {
	listed := "https://chat.example.com"
	e := startEdge(t, setup{Options: Options{CORSOrigins: []string{listed}, Admin: &adminui.Options{}}})
	if !e.AllowsOrigin(listed) || e.AllowsOrigin("https://evil.example.com") {
		t.Fatal("AllowsOrigin does not follow CORS_ORIGINS")
	}
	if code, _ := poll(t, e.url, "https://evil.example.com"); code != http.StatusForbidden {
		t.Fatalf("a handshake from another origin: %d, want 403", code)
	}
	code, h := poll(t, e.url, listed)
	if code != http.StatusOK || h.Get("Access-Control-Allow-Origin") != listed || h.Get("Access-Control-Allow-Credentials") != "true" {
		t.Fatalf("a handshake from the listed origin: %d %v", code, h)
	}
	// A WebSocket handshake's Origin is checked too.
	if _, res, err := wsDial(e.url, http.Header{"Origin": {"https://evil.example.com"}}); err == nil || res == nil || res.StatusCode != http.StatusForbidden {
		t.Fatalf("a WebSocket handshake from another origin: %v", err)
	}

	open := startEdge(t, setup{Options: Options{CORSOrigins: []string{"*"}, Admin: &adminui.Options{}}})
	code, h = poll(t, open.url, listed)
	if code != http.StatusOK || h.Get("Access-Control-Allow-Origin") != "*" || h.Get("Access-Control-Allow-Credentials") != "" {
		t.Fatalf("a handshake with CORS_ORIGINS=*: %d %v", code, h)
	}
}

func TestClientAddr(t *testing.T) {
	s := &Server{o: Options{TrustedProxies: []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128"),
	}}}
	for _, tt := range []struct {
		name   string
		remote string
		xff    []string
		want   string
	}{
		{"untrusted peer", "203.0.113.9:5000", []string{"198.51.100.1"}, "203.0.113.9"},
		{"trusted peer, no header", "10.1.2.3:5000", nil, "10.1.2.3"},
		{"one hop", "10.1.2.3:5000", []string{"198.51.100.1"}, "198.51.100.1"},
		{"the first untrusted hop from the right", "10.1.2.3:5000", []string{"192.0.2.7, 198.51.100.1, 10.9.9.9"}, "198.51.100.1"},
		{"every line counts", "10.1.2.3:5000", []string{"192.0.2.7", "198.51.100.1"}, "198.51.100.1"},
		{"all trusted", "10.1.2.3:5000", []string{"10.0.0.1, 10.0.0.2"}, "10.0.0.1"},
		{"junk stops the walk", "10.1.2.3:5000", []string{"192.0.2.7, not-an-ip"}, "10.1.2.3"},
		{"empty hops skipped", "10.1.2.3:5000", []string{"198.51.100.1, , "}, "198.51.100.1"},
		{"IPv6 proxy", "[::1]:5000", []string{"2001:db8::1"}, "2001:db8::1"},
		{"an IPv4-mapped hop is unmapped to match", "[::ffff:10.0.0.5]:5000", []string{"198.51.100.1"}, "198.51.100.1"},
		{"no port", "203.0.113.9", nil, "203.0.113.9"},
	} {
		r := httptest.NewRequest(http.MethodGet, "/socket.io/", nil)
		r.RemoteAddr = tt.remote
		for _, v := range tt.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		if got := s.ClientAddr(r); got != tt.want {
			t.Errorf("%s: ClientAddr = %q, want %q", tt.name, got, tt.want)
		}
	}
	// Without trusted proxies the header is never read.
	none := &Server{}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = "10.1.2.3:5000"
	r.Header.Set("X-Forwarded-For", "198.51.100.1")
	if got := none.ClientAddr(r); got != "10.1.2.3" {
		t.Fatalf("ClientAddr without TRUSTED_PROXIES = %q", got)
	}
}
