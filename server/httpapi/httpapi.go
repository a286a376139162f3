// Package httpapi serves the chat server's plain HTTP endpoints: liveness
// (/healthz), readiness (/readyz), Prometheus metrics (/metrics) and the
// message history (/api/messages).
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/scalable-chat-go/server/chat"
)

// Check is one dependency /readyz reports on. Fn returns nil while the
// dependency works.
type Check struct {
	Name string
	Fn   func(ctx context.Context) error
}

// Options configure the API.
type Options struct {
	History *chat.History
	Checks  []Check
	// Gatherer serves /metrics (prometheus.DefaultGatherer when nil).
	Gatherer prometheus.Gatherer
	// MaxPage is the largest limit /api/messages accepts (API_MAX_PAGE, 200).
	MaxPage int
	// AllowOrigin tells whether a browser origin may read /api/messages.
	AllowOrigin func(origin string) bool
	// Details, when set, adds facts about the node to /readyz's body.
	Details func() map[string]any
	// Presence, when set, serves GET /api/presence: who is online.
	Presence func() chat.PresenceView
	// Trust configures identity and moderation (moderation.go).
	Trust TrustOptions
	// Rooms serves the rooms endpoints (rooms.go).
	Rooms RoomsOptions
	// ClientAddr is a request's client address (the edge's, which believes
	// TRUSTED_PROXIES); the peer's address when nil.
	ClientAddr func(r *http.Request) string
	// NoMetrics leaves /metrics out of Register: it is served apart
	// (METRICS_ADDR) by MetricsHandler.
	NoMetrics bool
}

// API serves the endpoints. Its readiness starts as "starting".
type API struct {
	o     Options
	state atomic.Value // "starting", "ready", "draining"
	// signIns limits guest sign-ins per client address.
	signIns *chat.AddrLimiter
}

// New returns the API.
func New(o Options) *API {
	if o.Gatherer == nil {
		o.Gatherer = prometheus.DefaultGatherer
	}
	if o.MaxPage <= 0 {
		o.MaxPage = 200
	}
	if o.AllowOrigin == nil {
		o.AllowOrigin = func(string) bool { return true }
	}
	if o.ClientAddr == nil {
		o.ClientAddr = func(r *http.Request) string {
			if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
				return h
			}
			return r.RemoteAddr
		}
	}
	if o.Trust.Names == nil {
		o.Trust.Names = &chat.LocalNameClaims{}
	}
	if o.Trust.GuestTTL <= 0 {
		o.Trust.GuestTTL = time.Hour
	}
	if o.Trust.Limits == (chat.Limits{}) {
		o.Trust.Limits = chat.DefaultLimits()
	}
	if o.Trust.Logger == nil {
		o.Trust.Logger = slog.Default()
	}
	if o.Trust.GuestMaxLifetime <= 0 {
		o.Trust.GuestMaxLifetime = 24 * time.Hour
	}
	if o.Trust.Now == nil {
		o.Trust.Now = time.Now
	}
	a := &API{o: o}
	if n := o.Trust.GuestSignInsPerMinute; n > 0 {
		a.signIns = chat.NewAddrLimiter(float64(n)/60, n, maxLimitedAddrs)
	}
	a.state.Store("starting")
	return a
}

// SetReady marks the node ready to take traffic.
func (a *API) SetReady() { a.state.Store("ready") }

// SetDraining marks the node as shutting down: /readyz answers 503.
func (a *API) SetDraining() { a.state.Store("draining") }

// Register adds the endpoints to mux, each behind SecureHeaders.
func (a *API) Register(mux *http.ServeMux) {
	mux.Handle("GET /healthz", SecureHeaders(http.HandlerFunc(a.healthz)))
	mux.Handle("GET /readyz", SecureHeaders(http.HandlerFunc(a.readyz)))
	if !a.o.NoMetrics {
		mux.Handle("GET /metrics", a.MetricsHandler())
	}
	mux.Handle("GET /api/messages", SecureHeaders(http.HandlerFunc(a.messages)))
	mux.Handle("OPTIONS /api/messages", SecureHeaders(http.HandlerFunc(a.messages)))
	if a.o.Presence != nil {
		mux.Handle("GET /api/presence", SecureHeaders(http.HandlerFunc(a.presence)))
		mux.Handle("OPTIONS /api/presence", SecureHeaders(http.HandlerFunc(a.presence)))
	}
	a.registerTrust(mux)
	a.registerRooms(mux)
}

// MetricsHandler serves the Prometheus metrics.
func (a *API) MetricsHandler() http.Handler {
	return SecureHeaders(promhttp.HandlerFor(a.o.Gatherer, promhttp.HandlerOpts{}))
}

// SecureHeaders sets, on every response of next, the headers that keep a
// browser from reading it as anything but what it is:
// X-Content-Type-Options: nosniff (no content sniffing, so a JSON or
// text body never runs as a script or a page), a Content-Security-Policy
// that allows nothing (default-src 'none'; frame-ancestors 'none': no
// response is a page to render, none may be framed) and X-Frame-Options:
// DENY for browsers without frame-ancestors. next's writer goes through
// as it is (a WebSocket upgrade can still hijack it).
func SecureHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		h.Set("X-Frame-Options", "DENY")
		next.ServeHTTP(w, r)
	})
}

func (a *API) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

type checkResult struct {
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
}

// readyz answers 503 while the node starts or drains, and 200 otherwise,
// even when a dependency is down (a balancer must never drop every node at
// once): the body tells which dependencies are ok or down.
func (a *API) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	checks := make(map[string]checkResult, len(a.o.Checks))
	for _, c := range a.o.Checks {
		if err := c.Fn(ctx); err != nil {
			checks[c.Name] = checkResult{Status: "down", Error: err.Error()}
		} else {
			checks[c.Name] = checkResult{Status: "ok"}
		}
	}
	state := a.state.Load().(string)
	code := http.StatusOK
	if state != "ready" {
		code = http.StatusServiceUnavailable
	}
	body := map[string]any{"status": state, "checks": checks}
	if a.o.Details != nil {
		for k, v := range a.o.Details() {
			body[k] = v
		}
	}
	writeJSON(w, code, body)
}

type apiError struct {
	Code   string `json:"code"`
	Reason string `json:"reason"`
}

// messages pages through history, newest first:
// GET /api/messages?limit=50&before=<id from an earlier page>.
func (a *API) messages(w http.ResponseWriter, r *http.Request) {
	if a.cors(w, r) {
		return
	}
	a.page(w, r, a.o.History)
}

// page answers a page of history's messages: ?limit=50&before=<id>.
func (a *API) page(w http.ResponseWriter, r *http.Request, history *chat.History) {
	limit := 50
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > a.o.MaxPage {
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": apiError{"invalid_limit", "limit must be a whole number from 1 to " + strconv.Itoa(a.o.MaxPage)}})
			return
		}
		limit = n
	}
	before := r.URL.Query().Get("before")
	if len(before) > 64 {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": apiError{"invalid_before", "before must be a message id"}})
		return
	}
	page, err := history.Recent(r.Context(), limit, before)
	switch {
	case errors.Is(err, chat.ErrNotFound):
		writeJSON(w, http.StatusNotFound, map[string]any{"error": apiError{"unknown_before", "no message has the id given in before"}})
		return
	case err != nil:
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": apiError{"unavailable", "history cannot be read right now"}})
		return
	}
	out := make([]chat.Wire, len(page))
	for i, m := range page {
		out[i] = m.WireFor(a.o.Trust.AuthMode)
	}
	resp := map[string]any{"messages": out, "nextBefore": nil}
	if len(page) == limit {
		resp["nextBefore"] = page[len(page)-1].ID
	}
	writeJSON(w, http.StatusOK, resp)
}

// cors lets the allowed browser origins read a GET endpoint, and answers
// its preflight (true: the request is answered).
func (a *API) cors(w http.ResponseWriter, r *http.Request) bool {
	if origin := r.Header.Get("Origin"); origin != "" && a.o.AllowOrigin(origin) {
		w.Header().Set("Access-Control-Allow-Origin", origin)
		w.Header().Set("Vary", "Origin")
	}
	if r.Method == http.MethodOptions {
		w.Header().Set("Access-Control-Allow-Methods", "GET")
		w.Header().Set("Access-Control-Allow-Headers", "*")
		w.WriteHeader(http.StatusNoContent)
		return true
	}
	return false
}

type presenceUser struct {
	Name   string `json:"name"`
	UserID string `json:"userId,omitempty"`
	Since  string `json:"since"`
}

// presence answers who is online in the cluster, as the last presence
// event said: {online, users} (users absent above PRESENCE_LIST_LIMIT).
func (a *API) presence(w http.ResponseWriter, r *http.Request) {
	if a.cors(w, r) {
		return
	}
	v := a.o.Presence()
	body := map[string]any{"online": v.Online}
	if !v.Truncated {
		users := make([]presenceUser, 0, len(v.Users))
		for _, u := range v.Users {
			users = append(users, presenceUser{Name: u.Name, UserID: u.UserID, Since: u.Since.UTC().Format(chat.TimeLayout)})
		}
		body["users"] = users
	}
	writeJSON(w, http.StatusOK, body)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
