package socketio

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/scalable-chat-go/server/chat"
	"github.com/scalable-chat-go/server/socketio/internal/engine"
)

// Identity at the edge.
//
// The edge only verifies: a client's token comes in its CONNECT auth
// ({token}, socket.io-client's auth option) or, for clients that are not
// browsers, as Authorization: Bearer on the request that opened the
// session; Options.Verifier checks it, and what it names (a chat.User) is
// the socket's for its life. AUTH_MODE decides what happens without one:
// off reads no token at all (the original protocol), optional lets the
// client chat anonymously (its messages say verified: false), required
// refuses the CONNECT. An invalid or expired token is refused in every
// mode but off: connect_error "unauthorized" with data {code, reason}. At
// the token's expiry the socket's connection is closed; the client
// reconnects (with a fresh token, when its auth is a function).

// verifyTimeout bounds the token check of one CONNECT (a JWKS fetch).
const verifyTimeout = 5 * time.Second

// refusal is the data of a refused CONNECT, or of an `error` event.
type refusal struct {
	Code   string `json:"code"`
	Reason string `json:"reason"`
	Until  string `json:"until,omitempty"`
}

func refuse(message, code, reason string) *engine.ConnectError {
	return &engine.ConnectError{Message: message, Data: refusal{Code: code, Reason: reason}}
}

// authenticate verifies the client of a CONNECT and checks it against the
// bans; c.user and c.name are set when it is accepted.
func (s *Server) authenticate(c *conn, sock *engine.Socket, h *engine.Hello) error {
	if s.authOn() {
		token := bearer(h.Auth, sock.Authorization())
		switch {
		case token == "" && s.o.AuthMode == chat.AuthRequired:
			s.m.connectRefused.WithLabelValues(chat.CodeUnauthorized).Inc()
			return refuse(chat.CodeUnauthorized, chat.CodeUnauthorized, "a token is required: connect with auth {token}, or Authorization: Bearer")
		case token != "":
			ctx, cancel := context.WithTimeout(context.Background(), verifyTimeout)
			u, err := s.o.Verifier.Verify(ctx, token)
			cancel()
			if err != nil {
				if !errors.Is(err, chat.ErrUnauthorized) {
					// The verifier logs why the keys cannot be had (once a
					// fetch): a line per CONNECT would let forged tokens
					// flood the log.
					s.log.Debug("a token could not be verified", "err", err)
					s.m.connectRefused.WithLabelValues(chat.CodeUnavailable).Inc()
					return refuse(chat.CodeUnavailable, chat.CodeUnavailable, "the server cannot verify tokens right now; try again shortly")
				}
				s.m.connectRefused.WithLabelValues(chat.CodeUnauthorized).Inc()
				return refuse(chat.CodeUnauthorized, chat.CodeUnauthorized, strings.TrimPrefix(err.Error(), chat.ErrUnauthorized.Error()+": "))
			}
			c.user = u
			c.name = u.Name
		}
	}
	if b, banned := s.banned(c, ""); banned {
		s.m.connectRefused.WithLabelValues(chat.CodeBanned).Inc()
		return &engine.ConnectError{Message: chat.CodeBanned, Data: bannedData(b)}
	}
	return s.refuseHeldConnectName(c)
}

// decidesLater reports whether a CONNECT's answer may wait on something
// outside the process: a token, whose keys may have to be fetched from a
// JWKS that is slow or hangs, or an anonymous name to look up among the
// guests' (names.go). Such a CONNECT is decided off the engine's workers
// (engine.Hello.Async), which every session of the node shares: forged
// tokens against a hanging JWKS stalled them all (issue 29).
func (s *Server) decidesLater(sock *engine.Socket, h *engine.Hello) bool {
	return (s.authOn() && bearer(h.Auth, sock.Authorization()) != "") || (s.o.Names != nil && s.anonymousName(sock, h) != "")
}

func (s *Server) authOn() bool {
	return s.o.Verifier != nil && (s.o.AuthMode == chat.AuthOptional || s.o.AuthMode == chat.AuthRequired)
}

// bearer is the token of a CONNECT: auth.token, else the handshake's
// Authorization: Bearer header.
func bearer(auth map[string]any, authorization string) string {
	if t, ok := auth["token"].(string); ok && t != "" {
		return t
	}
	if scheme, t, ok := strings.Cut(authorization, " "); ok && strings.EqualFold(scheme, "Bearer") {
		return strings.TrimSpace(t)
	}
	return ""
}

// expireTokens closes the connections whose token expired (they reconnect,
// with a fresh token or to be refused).
func (s *Server) expireTokens() {
	if !s.authOn() {
		return
	}
	now := time.Now()
	for _, c := range s.snapshot() {
		if c.user == nil || c.user.ExpiresAt.IsZero() || now.Before(c.user.ExpiresAt) {
			continue
		}
		s.m.tokenExpired.Inc()
		s.emitError(c, &errorEvent{Code: "token_expired", Reason: "your token expired; reconnect with a fresh one"})
		c.sock.Close()
	}
}

// userID is the verified user id of c, or "".
func (c *conn) userID() string {
	if c.user == nil {
		return ""
	}
	return c.user.ID
}

// ClientAddr is the client address of r as the edge counts it (the first
// untrusted hop of X-Forwarded-For behind TRUSTED_PROXIES).
func (s *Server) ClientAddr(r *http.Request) string { return s.clientAddr(r) }
