package socketio

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/scalable-chat-go/server/chat"
)

// connectError is the message, code and reason of a CONNECT_ERROR.
func connectError(t *testing.T, got map[string]any) (message, code, reason string) {
	t.Helper()
	data, _ := got["data"].(map[string]any)
	return str(got, "message"), str(data, "code"), str(data, "reason")
}

// A CONNECT without a token is refused in required mode; an invalid
// token in any mode but off; a verifier that fails says unavailable.
func TestAuthRefusals(t *testing.T) {
	v := fakeVerifier{users: map[string]*chat.User{"good": {ID: "u1", Name: "Val"}}}
	required := startEdge(t, setup{Options: Options{AuthMode: chat.AuthRequired, Verifier: v}})
	optional := startEdge(t, setup{Options: Options{AuthMode: chat.AuthOptional, Verifier: v}})
	broken := startEdge(t, setup{Options: Options{AuthMode: chat.AuthOptional,
		Verifier: fakeVerifier{err: errors.New("JWKS fetch: connection refused")}}})
	for _, tt := range []struct {
		name               string
		e                  *tedge
		auth               any
		header             http.Header
		code, reasonPrefix string
	}{
		{"no token, required", required, nil, nil, chat.CodeUnauthorized, "a token is required"},
		{"empty token, required", required, map[string]any{"token": ""}, nil, chat.CodeUnauthorized, "a token is required"},
		{"bad token, required", required, map[string]any{"token": "bad"}, nil, chat.CodeUnauthorized, "token signature is invalid"},
		{"bad token, optional", optional, map[string]any{"token": "bad"}, nil, chat.CodeUnauthorized, "token signature is invalid"},
		{"bad bearer, optional", optional, nil, http.Header{"Authorization": {"Bearer bad"}}, chat.CodeUnauthorized, "token signature is invalid"},
		{"verifier down", broken, map[string]any{"token": "any"}, nil, chat.CodeUnavailable, "the server cannot verify tokens"},
	} {
		got := refusedConnect(t, dial(t, tt.e.url, tt.header), "/", tt.auth)
		message, code, reason := connectError(t, got)
		if message != tt.code || code != tt.code || len(reason) < len(tt.reasonPrefix) || reason[:len(tt.reasonPrefix)] != tt.reasonPrefix {
			t.Errorf("%s: %v, want %s with a reason starting %q", tt.name, got, tt.code, tt.reasonPrefix)
		}
	}
	if n := required.metric("chat_connect_refused_total", "reason", chat.CodeUnauthorized); n != 3 {
		t.Errorf("chat_connect_refused_total{reason=unauthorized} = %v, want 3", n)
	}
	if n := broken.metric("chat_connect_refused_total", "reason", chat.CodeUnavailable); n != 1 {
		t.Errorf("chat_connect_refused_total{reason=unavailable} = %v, want 1", n)
	}
	// Without a token, optional mode lets a client in anonymously; its
	// messages say so.
	anon, _ := optional.join(map[string]any{"username": "anon"})
	anon.send("anon", "who am I")
	if m, _ := anon.message(); m["verified"] != false || str(m, "userId") != "" {
		t.Fatalf("an anonymous message with auth on: %v, want verified: false", m)
	}
}

// A verified user's messages carry its name and id, whatever the payload
// says; the token may come as Authorization: Bearer.
func TestVerifiedUser(t *testing.T) {
	v := fakeVerifier{users: map[string]*chat.User{"good": {ID: "u1", Name: "Val"}}}
	e := startEdge(t, setup{Options: Options{AuthMode: chat.AuthRequired, Verifier: v}})
	byAuth, _ := e.join(map[string]any{"token": "good", "username": "impostor"})
	byHeader := dial(t, e.url, http.Header{"Authorization": {"bearer  good "}})
	byHeader.join(nil)
	for _, sender := range []*client{byAuth, byHeader} {
		sender.send("impostor", "it is me")
		for _, c := range []*client{byAuth, byHeader} {
			m, _ := c.message()
			if str(m, "username") != "Val" || str(m, "userId") != "u1" || m["verified"] != true {
				t.Fatalf("a verified user's message: %v, want Val, u1, verified", m)
			}
		}
	}
}

// With AUTH_MODE off no token is read, not even a bad one.
func TestAuthOff(t *testing.T) {
	e := startEdge(t, setup{Options: Options{AuthMode: chat.AuthOff, Verifier: fakeVerifier{}}})
	c, _ := e.join(map[string]any{"token": "bad", "username": "free"})
	c.send("free", "no auth")
	if m, _ := c.message(); str(m, "username") != "free" {
		t.Fatalf("message %v", m)
	}
}

// expiring verifies the token "short" as a user whose token expires ttl
// after it was verified.
type expiring struct {
	fakeVerifier
	ttl time.Duration
}

func (v expiring) Verify(ctx context.Context, token string) (*chat.User, error) {
	u, err := v.fakeVerifier.Verify(ctx, token)
	if err != nil || token != "short" {
		return u, err
	}
	short := *u
	short.ExpiresAt = time.Now().Add(v.ttl)
	return &short, nil
}

// At its token's expiry a socket is told token_expired and its connection
// closed; a socket whose token has no expiry stays.
func TestTokenExpiry(t *testing.T) {
	v := expiring{fakeVerifier{users: map[string]*chat.User{
		"short":   {ID: "u1", Name: "Short"},
		"forever": {ID: "u2", Name: "Ever"},
	}}, 300 * time.Millisecond}
	e := startEdge(t, setup{Options: Options{AuthMode: chat.AuthOptional, Verifier: v, SweepInterval: 20 * time.Millisecond}})
	short, _ := e.join(map[string]any{"token": "short"})
	ever, _ := e.join(map[string]any{"token": "forever"})
	anon, _ := e.join(nil)
	if ev := short.event("error"); str(ev, "code") != "token_expired" {
		t.Fatalf("error event %v, want token_expired", ev)
	}
	short.gone()
	if n := e.metric("chat_token_expired_total"); n != 1 {
		t.Fatalf("chat_token_expired_total = %v, want 1", n)
	}
	for _, c := range []*client{ever, anon} {
		c.send("", "still here")
		c.quiet("/", "error", 0)
	}
}
