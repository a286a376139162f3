package jwtauth

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"

	"github.com/scalable-chat-go/server/chat"
)

// FuzzVerify hands the verifier what a client can put in its CONNECT auth
// or its Authorization header: any string, from seeds that are valid
// tokens of each algorithm, forged ones (alg none, alg confusion, a kid of
// another key type) and broken ones. It must never panic; a refusal wraps
// chat.ErrUnauthorized; a token it accepts names a subject and a clean
// name within the limits, and is refused once its signature changes.
func FuzzVerify(f *testing.F) {
	k := newKeys(f)
	srv, _ := serveJWKS(f, k)
	limits := chat.Limits{MaxMessageLength: 100, MaxUsernameLength: 16}
	v, err := New(Options{Secret: k.secret, JWKSURL: srv.URL, Audience: "chat", Limits: limits, JWKSMinRefresh: time.Hour})
	if err != nil {
		f.Fatal(err)
	}
	exp := time.Now().Add(24 * time.Hour)
	c := func(kv ...any) jwt.MapClaims {
		m := claims("user-1", exp)
		m["aud"] = "chat"
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, c()).SignedString(jwt.UnsafeAllowNoneSignatureType)
	for _, s := range []string{
		sign(f, jwt.SigningMethodHS256, "", c("name", "Zoë", "roles", []string{"moderator"}), k.secret),
		sign(f, jwt.SigningMethodRS256, "rsa-1", c("preferred_username", "ada"), k.rsa),
		sign(f, jwt.SigningMethodES256, "ec-1", c(), k.ec),
		sign(f, jwt.SigningMethodEdDSA, "ed-1", c("name", strings.Repeat("ü", 40)), k.ed),
		sign(f, jwt.SigningMethodEdDSA, "", c("roles", "admin moderator"), k.ed),
		sign(f, jwt.SigningMethodHS256, "rsa-1", c(), []byte("-----BEGIN PUBLIC KEY-----")),
		sign(f, jwt.SigningMethodES256, "rsa-1", c(), k.ec),
		sign(f, jwt.SigningMethodHS256, "", c("exp", "tomorrow", "sub", 42), k.secret),
		none,
		"eyJhbGciOiJIUzI1NiJ9.e30.",
		"...",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, token string) {
		u, err := v.Verify(context.Background(), token)
		if err != nil {
			if u != nil {
				t.Fatal("a refusal with a user")
			}
			if !errors.Is(err, chat.ErrUnauthorized) {
				t.Fatalf("refused with %v, not as unauthorized", err)
			}
			return
		}
		if u.ID == "" || len(u.ID) > maxSubject || u.Name == "" || utf8.RuneCountInString(u.Name) > limits.MaxUsernameLength ||
			!utf8.ValidString(u.Name) || u.ExpiresAt.IsZero() {
			t.Fatalf("accepted %q as %+v", token, u)
		}
		if got, _ := chat.CleanName(u.Name, limits); got != u.Name {
			t.Fatalf("the name %q is not clean (%q)", u.Name, got)
		}
		// Another signature: refused. (The first character of the
		// signature carries six bits of it, so changing it changes the
		// signature.)
		dot := strings.LastIndexByte(token, '.')
		if dot < 0 || dot == len(token)-1 {
			t.Fatalf("accepted a token without a signature: %q", token)
		}
		b := []byte(token)
		if b[dot+1] == 'A' {
			b[dot+1] = 'B'
		} else {
			b[dot+1] = 'A'
		}
		if _, err := v.Verify(context.Background(), string(b)); err == nil {
			t.Fatalf("accepted %q with another signature %q", token, b)
		}
	})
}
