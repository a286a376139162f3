package adminui

import (
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scalable-chat-go/server/chat"
	"github.com/scalable-chat-go/server/socketio/internal/engine"
)

// Admin UI sign-in limits.
//
// One WebSocket session could repeat `40/admin,{...}`, a guess at each
// answer, and three such sessions kept the one bcrypt check at a time busy:
// the real admin was told "another sign-in is being checked; retry" 12
// times out of 12, and the node spent a core on bcrypt (issue 29). Now:
//   - each client address (chat.ClientKey: an IPv6 address counts as its
//     /64) has one sign-in checked at a time, and from its third failure
//     in a row waits before its next: 1 s, doubling up to
//     Options.SignInBackoffMax.
//     An attempt refused so costs a map look-up, no bcrypt, is answered
//     up to a second later (a tarpit: a session gets one refusal a
//     second), and is told when to retry (connect_error data
//     {retryAfterMs});
//   - the check runs off the engine's workers (engine.Hello.Async) and
//     waits for the bcrypt slot (up to adminSignInWait) instead of being
//     refused at once: other addresses' attempts may delay the admin's,
//     they cannot refuse it;
//   - an address an IP ban keeps out of the chat is kept out of /admin.

// DefaultAdminSignInBackoffMax is the longest wait between two sign-in
// attempts of one address after failures.
const DefaultAdminSignInBackoffMax = 5 * time.Minute

// adminFreeFailures are the failures in a row of one address before it
// waits: a typo or two cost the admin nothing, and a guesser three guesses.
const adminFreeFailures = 3

// adminSignInWait is how long a sign-in waits for the bcrypt slot, and
// adminRefusalDelay the longest an attempt refused unchecked waits for its
// answer.
const (
	adminSignInWait   = 3 * time.Second
	adminRefusalDelay = time.Second
)

// signInAddrLimit bounds the addresses whose failures are remembered;
// past it those that may try again are forgotten, then every one (a flood
// of addresses gets a fresh start each, rather than locking anyone out).
const signInAddrLimit = 10_000

// signInGuard is the per-address state of Admin UI sign-ins.
type signInGuard struct {
	most    time.Duration
	results *prometheus.CounterVec

	mu    sync.Mutex
	addrs map[string]*signInState
}

type signInState struct {
	failures int
	next     time.Time // no attempt before
	busy     bool      // an attempt is being checked
}

func newSignInGuard(most time.Duration, reg prometheus.Registerer) *signInGuard {
	if most <= 0 {
		most = DefaultAdminSignInBackoffMax
	}
	g := &signInGuard{most: most, addrs: map[string]*signInState{},
		results: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chat_admin_signins_total",
			Help: "Admin UI sign-ins with a password, by result (ok, invalid, backoff: refused unchecked, busy: the check waited too long, banned).",
		}, []string{"result"}),
	}
	for _, r := range []string{"ok", "invalid", "backoff", "busy", "banned"} {
		g.results.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(g.results)
	}
	return g
}

// begin takes addr's turn to be checked; false and how long to wait when
// it has an attempt under way or is backing off.
func (g *signInGuard) begin(addr string, now time.Time) (bool, time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	st, ok := g.addrs[addr]
	if !ok {
		if len(g.addrs) >= signInAddrLimit {
			g.forget(now)
		}
		st = &signInState{}
		g.addrs[addr] = st
	}
	switch {
	case st.busy:
		return false, time.Second
	case now.Before(st.next):
		return false, st.next.Sub(now)
	}
	st.busy = true
	return true, 0
}

// end records the outcome of addr's attempt: a success forgets its
// failures, a failure doubles its wait, and neither (the check could not
// be made) leaves it as it was.
func (g *signInGuard) end(addr string, ok, failed bool, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	st := g.addrs[addr]
	if st == nil {
		return
	}
	st.busy = false
	switch {
	case ok:
		delete(g.addrs, addr)
	case failed:
		st.failures++
		if st.failures < adminFreeFailures {
			return
		}
		wait := time.Second
		for i := adminFreeFailures; i < st.failures && wait < g.most; i++ {
			wait *= 2
		}
		st.next = now.Add(min(wait, g.most))
	}
}

// forget drops the addresses that may try again; g.mu is held.
func (g *signInGuard) forget(now time.Time) {
	for addr, st := range g.addrs {
		if !st.busy && !now.Before(st.next) {
			delete(g.addrs, addr)
		}
	}
	if len(g.addrs) >= signInAddrLimit*3/4 {
		clear(g.addrs)
	}
}

// refuseBanned refuses /admin to an address an IP ban keeps out.
func (a *UI) refuseBanned(sock *engine.Socket) error {
	if a.d.Banned == nil {
		return nil
	}
	if data, banned := a.d.Banned(sock.Addr()); banned {
		a.guard.results.WithLabelValues("banned").Inc()
		return &engine.ConnectError{Message: chat.CodeBanned, Data: data}
	}
	return nil
}

// signIn checks the credentials of an Admin UI CONNECT, within the
// address's limits, off the engine's workers; ac is the socket's once it
// is in.
func (a *UI) signIn(sock *engine.Socket, h *engine.Hello, ac *adminConn) error {
	addr := chat.ClientKey(sock.Addr())
	if ok, wait := a.guard.begin(addr, time.Now()); !ok {
		a.guard.results.WithLabelValues("backoff").Inc()
		ms := max(wait.Milliseconds(), 1)
		refusal := &engine.ConnectError{
			Message: fmt.Sprintf("too many sign-in attempts from your address; retry in %d s", (ms+999)/1000),
			Data:    map[string]any{"retryAfterMs": ms},
		}
		// Answered a while later, off the workers (the session's next
		// packets wait meanwhile): a session that repeats its CONNECT at
		// each answer, or sends a stream of them, gets a refusal a second,
		// not thousands (which cost the node a core).
		return h.Async(func() error {
			time.Sleep(min(wait, adminRefusalDelay))
			return refusal
		})
	}
	user, _ := h.Auth["username"].(string)
	pass, _ := h.Auth["password"].(string)
	return h.Async(func() error {
		ok, busy := a.checkPassword(user, pass)
		a.guard.end(addr, ok, !ok && !busy, time.Now())
		switch {
		case busy:
			a.guard.results.WithLabelValues("busy").Inc()
			return &engine.ConnectError{Message: "another sign-in is being checked; retry"}
		case !ok:
			a.guard.results.WithLabelValues("invalid").Inc()
			a.log.Warn("Admin UI sign-in refused", "addr", sock.Addr())
			return &engine.ConnectError{Message: "invalid credentials"}
		}
		a.guard.results.WithLabelValues("ok").Inc()
		ac.session = a.newSession()
		sock.Data = ac
		return nil
	})
}
