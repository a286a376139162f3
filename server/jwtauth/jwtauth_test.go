package jwtauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/scalable-chat-go/server/chat"
)

// keys are made at test time: no private key is ever committed.
type testKeys struct {
	secret []byte
	rsa    *rsa.PrivateKey
	ec     *ecdsa.PrivateKey
	ed     ed25519.PrivateKey
}

func newKeys(t testing.TB) *testKeys {
	t.Helper()
	k := &testKeys{secret: []byte(strings.Repeat("s", 32))}
	var err error
	if k.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	if k.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	if _, k.ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
		t.Fatal(err)
	}
	return k
}

func enc(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// jwksDoc is the document of k's public keys.
func (k *testKeys) jwksDoc() []byte {
	pad := func(b []byte) []byte { return append(make([]byte, 32-len(b)), b...) }
	ecx, ecy := k.ec.X.Bytes(), k.ec.Y.Bytes()
	doc := map[string]any{"keys": []map[string]any{
		{"kty": "RSA", "kid": "rsa-1", "use": "sig", "alg": "RS256", "n": enc(k.rsa.N.Bytes()), "e": enc(big.NewInt(int64(k.rsa.E)).Bytes())},
		{"kty": "EC", "kid": "ec-1", "crv": "P-256", "x": enc(pad(ecx)), "y": enc(pad(ecy))},
		{"kty": "OKP", "kid": "ed-1", "crv": "Ed25519", "x": enc(k.ed.Public().(ed25519.PublicKey))},
		{"kty": "oct", "kid": "hmac", "k": enc(k.secret)},                                  // never a JWKS key
		{"kty": "RSA", "kid": "enc", "use": "enc", "n": enc(k.rsa.N.Bytes()), "e": "AQAB"}, // not for signatures
	}}
	b, _ := json.Marshal(doc)
	return b
}

func serveJWKS(t testing.TB, k *testKeys) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(k.jwksDoc())
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func claims(sub string, exp time.Time) jwt.MapClaims {
	return jwt.MapClaims{"sub": sub, "exp": exp.Unix(), "iat": time.Now().Unix()}
}

func sign(t testing.TB, m jwt.SigningMethod, kid string, c jwt.MapClaims, key any) string {
	t.Helper()
	header := map[string]any{}
	if kid != "" {
		header["kid"] = kid
	}
	return signWith(t, m, header, c, key)
}

// signWith signs c with these header parameters added.
func signWith(t testing.TB, m jwt.SigningMethod, header map[string]any, c jwt.MapClaims, key any) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	for k, v := range header {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestVerify(t *testing.T) {
	k := newKeys(t)
	srv, _ := serveJWKS(t, k)
	v, err := New(Options{Secret: k.secret, JWKSURL: srv.URL, Issuer: "https://id.example", Audience: "chat", Limits: chat.Limits{MaxMessageLength: 10, MaxUsernameLength: 8}})
	if err != nil {
		t.Fatal(err)
	}
	soon := time.Now().Add(time.Hour)
	base := func() jwt.MapClaims {
		c := claims("auth0|42", soon)
		c["iss"], c["aud"] = "https://id.example", []string{"chat", "other"}
		return c
	}
	with := func(kv ...any) jwt.MapClaims {
		c := base()
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(c, kv[i].(string))
			} else {
				c[kv[i].(string)] = kv[i+1]
			}
		}
		return c
	}
	rsaPub, _ := x509.MarshalPKIXPublicKey(&k.rsa.PublicKey)
	rsaPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: rsaPub})
	otherRSA, _ := rsa.GenerateKey(rand.Reader, 2048)

	ok := []struct {
		name, token, wantName string
		roles                 []string
	}{
		{"HS256 with the name claim", sign(t, jwt.SigningMethodHS256, "", with("name", "Zoë", "roles", []string{"moderator"}), k.secret), "Zoë", []string{"moderator"}},
		{"RS256 from the JWKS", sign(t, jwt.SigningMethodRS256, "rsa-1", with("preferred_username", "ada"), k.rsa), "ada", nil},
		{"ES256 from the JWKS", sign(t, jwt.SigningMethodES256, "ec-1", base(), k.ec), "auth0|42", nil},
		{"EdDSA from the JWKS", sign(t, jwt.SigningMethodEdDSA, "ed-1", with("name", "  ad\u200bmin  "), k.ed), "admin", nil},
		{"EdDSA without a kid", sign(t, jwt.SigningMethodEdDSA, "", with("roles", "admin"), k.ed), "auth0|42", []string{"admin"}},
		{"a long name is cut to the limit", sign(t, jwt.SigningMethodHS256, "", with("name", "abcdefghijkl"), k.secret), "abcdefgh", nil},
		{"expired within the clock skew", sign(t, jwt.SigningMethodHS256, "", with("exp", time.Now().Add(-10*time.Second).Unix()), k.secret), "auth0|42", nil},
	}
	for _, tt := range ok {
		t.Run(tt.name, func(t *testing.T) {
			u, err := v.Verify(context.Background(), tt.token)
			if err != nil {
				t.Fatal(err)
			}
			if u.ID != "auth0|42" || u.Name != tt.wantName || strings.Join(u.Roles, ",") != strings.Join(tt.roles, ",") || u.ExpiresAt.IsZero() {
				t.Fatalf("user %+v", u)
			}
		})
	}
	none := func() string {
		s, _ := jwt.NewWithClaims(jwt.SigningMethodNone, base()).SignedString(jwt.UnsafeAllowNoneSignatureType)
		return s
	}()
	refused := []struct{ name, token, reason string }{
		{"alg none", none, "not valid"},
		{"HS256 signed with the RSA public key (alg confusion)", sign(t, jwt.SigningMethodHS256, "rsa-1", base(), rsaPEM), "signature"},
		{"RS256 signed by another key", sign(t, jwt.SigningMethodRS256, "rsa-1", base(), otherRSA), "signature"},
		{"RS384 (not pinned)", sign(t, jwt.SigningMethodRS384, "rsa-1", base(), k.rsa), "not valid"},
		{"ES256 header on the RSA kid", sign(t, jwt.SigningMethodES256, "rsa-1", base(), k.ec), "cannot be verified"},
		{"the encryption key", sign(t, jwt.SigningMethodRS256, "enc", base(), k.rsa), "cannot be verified"},
		{"expired", sign(t, jwt.SigningMethodHS256, "", with("exp", time.Now().Add(-time.Minute).Unix()), k.secret), "expired"},
		{"not yet valid", sign(t, jwt.SigningMethodHS256, "", with("nbf", time.Now().Add(time.Minute).Unix()), k.secret), "not valid yet"},
		{"no exp", sign(t, jwt.SigningMethodHS256, "", with("exp", nil), k.secret), "no expiry"},
		// With AUTH_ISSUER and AUTH_AUDIENCE set, the reason names the claim
		// that is missing (it said "no expiry" for both).
		{"no iss", sign(t, jwt.SigningMethodHS256, "", with("iss", nil), k.secret), "no issuer (iss)"},
		{"no aud", sign(t, jwt.SigningMethodHS256, "", with("aud", nil), k.secret), "no audience (aud)"},
		{"no iss, no aud", sign(t, jwt.SigningMethodHS256, "", with("iss", nil, "aud", nil), k.secret), "no issuer (iss), no audience (aud)"},
		{"no exp, no aud", sign(t, jwt.SigningMethodHS256, "", with("exp", nil, "aud", nil), k.secret), "no expiry (exp), no audience (aud)"},
		{"no sub", sign(t, jwt.SigningMethodHS256, "", with("sub", nil), k.secret), "subject"},
		{"another issuer", sign(t, jwt.SigningMethodHS256, "", with("iss", "https://evil.example"), k.secret), "issuer"},
		{"another audience", sign(t, jwt.SigningMethodHS256, "", with("aud", "else"), k.secret), "audience"},
		{"the wrong secret", sign(t, jwt.SigningMethodHS256, "", base(), []byte(strings.Repeat("x", 32))), "signature"},
		// Hardening (issue 29): each was accepted before.
		{"a crit header", signWith(t, jwt.SigningMethodHS256, map[string]any{"crit": []string{"exp"}}, base(), k.secret), "crit"},
		{"exp as a string", sign(t, jwt.SigningMethodHS256, "", with("exp", fmt.Sprint(soon.Unix())), k.secret), "exp is not a number"},
		{"nbf as a string", sign(t, jwt.SigningMethodHS256, "", with("nbf", "0"), k.secret), "nbf is not a number"},
		{"a control character in sub", sign(t, jwt.SigningMethodHS256, "", with("sub", "auth0|42\nadmin"), k.secret), "control characters"},
		{"a JWKS token claiming guest", sign(t, jwt.SigningMethodRS256, "rsa-1", with("guest", true), k.rsa), "guest"},
		{"a JWKS token in the guests' id space", sign(t, jwt.SigningMethodEdDSA, "ed-1", with("sub", "guest:0191d2c4"), k.ed), "guest"},
		{"a secret's token in the guests' id space", sign(t, jwt.SigningMethodHS256, "", with("sub", "guest:0191d2c4"), k.secret), "guest"},
		{"a guest token outside the guests' id space", sign(t, jwt.SigningMethodHS256, "", with("guest", true), k.secret), "guest"},
		{"garbage", "not.a.jwt", "not a JWT"},
		{"empty", "", "no token"},
		{"too long", strings.Repeat("a", MaxTokenLength+1), "longer"},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			u, err := v.Verify(context.Background(), tt.token)
			if !errors.Is(err, chat.ErrUnauthorized) || u != nil {
				t.Fatalf("Verify = %+v, %v; want unauthorized", u, err)
			}
			if !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("reason %q, want one saying %q", err, tt.reason)
			}
		})
	}
}

// A token is tried against MaxKeysPerToken keys at most: a key set with
// many keys under one kid (or of one algorithm, for a token without a kid)
// cannot make a forged token cost a check per key. Before: ~700 RSA keys
// under one kid cost ~93 ms of CPU per forged CONNECT.
func TestKeysTriedPerTokenAreBounded(t *testing.T) {
	k := newKeys(t)
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey := func(pub *rsa.PublicKey) map[string]any {
		return map[string]any{"kty": "RSA", "kid": "many", "n": enc(pub.N.Bytes()), "e": enc(big.NewInt(int64(pub.E)).Bytes())}
	}
	var keys []map[string]any
	for range 50 {
		keys = append(keys, rsaKey(&other.PublicKey))
	}
	keys = append(keys, rsaKey(&k.rsa.PublicKey))
	doc, _ := json.Marshal(map[string]any{"keys": keys})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(doc) }))
	defer srv.Close()
	v, err := New(Options{JWKSURL: srv.URL, MaxKeysPerToken: 4})
	if err != nil {
		t.Fatal(err)
	}
	for _, kid := range []string{"many", ""} {
		tok := sign(t, jwt.SigningMethodRS256, kid, claims("a", time.Now().Add(time.Hour)), k.rsa)
		if _, err := v.Verify(context.Background(), tok); !errors.Is(err, chat.ErrUnauthorized) {
			t.Fatalf("kid %q: the 51st key verified the token: %v", kid, err)
		}
		keys, err := v.jwks.lookup(context.Background(), kid, "RS256")
		if err != nil || len(keys) != 4 {
			t.Fatalf("kid %q: %d keys tried, want 4 (%v)", kid, len(keys), err)
		}
	}
}

// The JWKS document is fetched once, kept, and fetched again for an
// unknown kid (a rotation) no more than once per JWKSMinRefresh.
func TestJWKSCache(t *testing.T) {
	k := newKeys(t)
	srv, hits := serveJWKS(t, k)
	v, err := New(Options{JWKSURL: srv.URL, JWKSMinRefresh: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	tok := sign(t, jwt.SigningMethodRS256, "rsa-1", claims("a", time.Now().Add(time.Hour)), k.rsa)
	for range 5 {
		if _, err := v.Verify(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
	}
	unknown := sign(t, jwt.SigningMethodRS256, "rotated", claims("a", time.Now().Add(time.Hour)), k.rsa)
	for range 3 {
		if _, err := v.Verify(context.Background(), unknown); !errors.Is(err, chat.ErrUnauthorized) {
			t.Fatalf("unknown kid: %v", err)
		}
	}
	if n := hits.Load(); n != 1 {
		t.Fatalf("%d fetches, want 1", n)
	}
	// An HS256 token is refused by a verifier without a secret.
	if _, err := v.Verify(context.Background(), sign(t, jwt.SigningMethodHS256, "", claims("a", time.Now().Add(time.Hour)), k.secret)); !errors.Is(err, chat.ErrUnauthorized) {
		t.Fatalf("HS256 without a secret: %v", err)
	}
	// A JWKS that cannot be fetched is the verifier's fault, not the token's.
	dead, _ := New(Options{JWKSURL: "http://127.0.0.1:1/jwks.json"})
	if _, err := dead.Verify(context.Background(), tok); err == nil || errors.Is(err, chat.ErrUnauthorized) {
		t.Fatalf("unreachable JWKS: %v, want a fault that is not unauthorized", err)
	}
}

func TestGuestTokens(t *testing.T) {
	k := newKeys(t)
	v, _ := New(Options{Secret: k.secret, Issuer: "chat", Audience: "web"})
	now := time.Now()
	tok, sub, exp, err := v.SignGuest("Zoë", "", time.Time{}, now.Add(time.Hour), now)
	if err != nil {
		t.Fatal(err)
	}
	u, err := v.Verify(context.Background(), tok)
	if err != nil || u.ID != sub || !strings.HasPrefix(sub, "guest:") || u.Name != "Zoë" || !u.Guest || !u.ExpiresAt.Equal(exp) ||
		u.GuestSince.Unix() != now.Unix() {
		t.Fatalf("guest %+v %v", u, err)
	}
	// A renewal keeps the subject and when the session began.
	began := now.Add(-time.Minute)
	tok2, sub2, _, _ := v.SignGuest("Zoë", sub, began, now.Add(time.Hour), now)
	if u2, err := v.Verify(context.Background(), tok2); err != nil || sub2 != sub || u2.ID != sub || u2.GuestSince.Unix() != began.Unix() {
		t.Fatalf("renewed %+v %v", u2, err)
	}
	// Roles in a guest token count for nothing.
	c := claims("guest:x", now.Add(time.Hour))
	c["guest"], c["roles"], c["iss"], c["aud"] = true, []string{"admin"}, "chat", "web"
	if u, err := v.Verify(context.Background(), sign(t, jwt.SigningMethodHS256, "", c, k.secret)); err != nil || u.IsModerator() {
		t.Fatalf("a guest with roles: %+v %v", u, err)
	}
	jv, _ := New(Options{JWKSURL: "http://127.0.0.1:1/"})
	if _, _, _, err := jv.SignGuest("x", "", time.Time{}, now.Add(time.Hour), now); err == nil {
		t.Fatal("signed without a secret")
	}
}
