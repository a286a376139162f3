// Package jwtauth verifies the bearer tokens of the chat's clients (JSON
// Web Tokens, through github.com/golang-jwt/jwt/v5) and signs the tokens
// of its guest sign-in: the chat.Verifier of the edge and the HTTP API.
//
// Keys and algorithms are pinned: a shared secret (AUTH_JWT_SECRET) verifies
// HS256 only; the keys of a JWKS document (AUTH_JWKS_URL) verify RS256 (RSA
// keys of at least 2048 bits), ES256 (P-256 keys) or EdDSA (Ed25519 keys),
// each key only the algorithm of its type (and of its "alg" member, when it
// has one). "none" and every other algorithm are refused, so is a token
// whose header names an algorithm its key was not made for. A token must
// have a subject and an expiry; iss and aud are checked when AUTH_ISSUER
// and AUTH_AUDIENCE are set; times may be off by ClockSkew (AUTH_CLOCK_SKEW,
// 30 s by default) and no more.
//
// The JWKS document is fetched when first needed, then again every
// JWKSRefresh (5 minutes), in the background while the keys known still
// serve, and at most every JWKSMinRefresh (10 s) when a token names a key
// id it does not know (a key rotation). Callers that need a fetch share
// the one under way and wait for it no longer than their context; a failed
// fetch keeps the keys it had and backs off (1 s, doubling up to
// JWKSMinRefresh); a token whose key cannot be had is a fault of the
// verifier (unavailable), not of the token. The fetch is bounded (5 s,
// 1 MB).
package jwtauth

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/scalable-chat-go/server/chat"
)

// Options configure a Verifier. Zero fields take their defaults.
type Options struct {
	// Secret verifies (and signs, for guests) HS256 tokens
	// (AUTH_JWT_SECRET); nil: none.
	Secret []byte
	// JWKSURL is where the public keys of RS256, ES256 and EdDSA tokens
	// are fetched from (AUTH_JWKS_URL); "": none.
	JWKSURL string
	// Issuer and Audience, when set, must be the token's iss and among its
	// aud (AUTH_ISSUER, AUTH_AUDIENCE).
	Issuer, Audience string
	// ClockSkew is how far the token's times may be off (AUTH_CLOCK_SKEW,
	// default 30 s).
	ClockSkew time.Duration
	// Limits cut the token's name to the username limit.
	Limits chat.Limits
	// MaxKeysPerToken is the most keys one token is tried against
	// (AUTH_MAX_KEYS_PER_TOKEN, default 4): those of its kid and algorithm,
	// or of its algorithm when it names no kid, first in the document's
	// order.
	MaxKeysPerToken int
	// JWKSRefresh and JWKSMinRefresh: see the package documentation.
	JWKSRefresh, JWKSMinRefresh time.Duration
	// HTTPClient fetches the JWKS document (a client with a 5 s timeout
	// when nil).
	HTTPClient *http.Client
	Logger     *slog.Logger
}

// DefaultClockSkew is how far a token's exp, nbf and iat may be off.
const DefaultClockSkew = 30 * time.Second

// DefaultMaxKeysPerToken is the most keys one token is tried against: a
// key set has one key per kid and algorithm, or a few during a rotation.
const DefaultMaxKeysPerToken = 4

// MaxTokenLength bounds what is parsed at all: a token is a few hundred
// bytes; a longer string is refused before any decoding.
const MaxTokenLength = 8 << 10

// Verifier is a chat.Verifier of JWTs.
type Verifier struct {
	o       Options
	methods []string
	parser  *jwt.Parser
	jwks    *jwks
}

var _ chat.Verifier = (*Verifier)(nil)

// New returns a Verifier; at least one of Secret and JWKSURL is needed.
func New(o Options) (*Verifier, error) {
	if len(o.Secret) == 0 && o.JWKSURL == "" {
		return nil, errors.New("jwtauth: neither a secret nor a JWKS URL")
	}
	if o.ClockSkew <= 0 {
		o.ClockSkew = DefaultClockSkew
	}
	if o.Limits == (chat.Limits{}) {
		o.Limits = chat.DefaultLimits()
	}
	if o.MaxKeysPerToken <= 0 {
		o.MaxKeysPerToken = DefaultMaxKeysPerToken
	}
	if o.JWKSRefresh <= 0 {
		o.JWKSRefresh = 5 * time.Minute
	}
	if o.JWKSMinRefresh <= 0 {
		o.JWKSMinRefresh = 10 * time.Second
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 5 * time.Second}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	v := &Verifier{o: o}
	if len(o.Secret) > 0 {
		v.methods = append(v.methods, jwt.SigningMethodHS256.Alg())
	}
	if o.JWKSURL != "" {
		v.methods = append(v.methods, jwt.SigningMethodRS256.Alg(), jwt.SigningMethodES256.Alg(), jwt.SigningMethodEdDSA.Alg())
		v.jwks = newJWKS(o)
	}
	popts := []jwt.ParserOption{
		jwt.WithValidMethods(v.methods),
		jwt.WithLeeway(o.ClockSkew),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
	}
	if o.Issuer != "" {
		popts = append(popts, jwt.WithIssuer(o.Issuer))
	}
	if o.Audience != "" {
		popts = append(popts, jwt.WithAudience(o.Audience))
	}
	v.parser = jwt.NewParser(popts...)
	return v, nil
}

// Claims are the claims the chat reads.
type Claims struct {
	jwt.RegisteredClaims
	Name              string `json:"name,omitempty"`
	PreferredUsername string `json:"preferred_username,omitempty"`
	Roles             Roles  `json:"roles,omitempty"`
	// Guest marks a token of the server's own guest sign-in, and
	// GuestSince when its session began (renewals keep it).
	Guest      bool             `json:"guest,omitempty"`
	GuestSince *jwt.NumericDate `json:"guest_since,omitempty"`
}

// UnmarshalJSON reads the claims, refusing times that are not JSON
// numbers: the library takes "exp": "1700000000" as a NumericDate, and
// RFC 7519 wants a number.
func (c *Claims) UnmarshalJSON(b []byte) error {
	var times struct {
		Exp json.RawMessage `json:"exp"`
		Nbf json.RawMessage `json:"nbf"`
		Iat json.RawMessage `json:"iat"`
	}
	if err := json.Unmarshal(b, &times); err != nil {
		return err
	}
	for _, t := range []struct {
		name string
		raw  json.RawMessage
	}{{"exp", times.Exp}, {"nbf", times.Nbf}, {"iat", times.Iat}} {
		if len(t.raw) > 0 && string(t.raw) != "null" && t.raw[0] != '-' && (t.raw[0] < '0' || t.raw[0] > '9') {
			return refusal("the token's " + t.name + " is not a number of seconds (NumericDate)")
		}
	}
	type plain Claims
	return json.Unmarshal(b, (*plain)(c))
}

// refusal is a token refused for a reason of this package's own, told to
// the client as it is.
type refusal string

func (r refusal) Error() string { return string(r) }

// Roles is the roles claim: an array of strings, or one string (some
// issuers write a single role so).
type Roles []string

// UnmarshalJSON reads an array of strings or a string; anything else is no
// role.
func (r *Roles) UnmarshalJSON(b []byte) error {
	var list []string
	if err := json.Unmarshal(b, &list); err == nil {
		*r = list
		return nil
	}
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*r = strings.Fields(one)
		return nil
	}
	*r = nil
	return nil
}

// maxSubject bounds the subject: a user id, not a document.
const maxSubject = 256

// Verify checks token and returns its user; errors wrap
// chat.ErrUnauthorized (see chat.Verifier).
func (v *Verifier) Verify(ctx context.Context, token string) (*chat.User, error) {
	if token == "" {
		return nil, fmt.Errorf("%w: no token", chat.ErrUnauthorized)
	}
	if len(token) > MaxTokenLength {
		return nil, fmt.Errorf("%w: the token is longer than %d bytes", chat.ErrUnauthorized, MaxTokenLength)
	}
	var claims Claims
	tok, err := v.parser.ParseWithClaims(token, &claims, func(t *jwt.Token) (any, error) { return v.key(ctx, t) })
	if err != nil {
		var fault *keyFault
		if errors.As(err, &fault) {
			return nil, fault.err
		}
		var r refusal
		if errors.As(err, &r) {
			return nil, fmt.Errorf("%w: %s", chat.ErrUnauthorized, r)
		}
		if errors.Is(err, jwt.ErrTokenRequiredClaimMissing) {
			return nil, fmt.Errorf("%w: %s", chat.ErrUnauthorized, v.missing(&claims))
		}
		return nil, fmt.Errorf("%w: %s", chat.ErrUnauthorized, reason(err))
	}
	sub := claims.Subject
	if sub == "" || len(sub) > maxSubject {
		return nil, fmt.Errorf("%w: the token has no subject (sub), or one longer than %d bytes", chat.ErrUnauthorized, maxSubject)
	}
	if !utf8.ValidString(sub) || strings.ContainsFunc(sub, unicode.IsControl) {
		return nil, fmt.Errorf("%w: the token's subject (sub) has control characters or is not UTF-8", chat.ErrUnauthorized)
	}
	if err := guestSpace(tok, &claims); err != nil {
		return nil, fmt.Errorf("%w: %s", chat.ErrUnauthorized, err)
	}
	name := ""
	for _, n := range []string{claims.Name, claims.PreferredUsername, sub} {
		if name = chat.DisplayName(n, v.o.Limits); name != "" {
			break
		}
	}
	u := &chat.User{ID: sub, Name: name, Guest: claims.Guest}
	if claims.Guest {
		// A token signed before guest_since was: its session is as old as
		// its token.
		if claims.GuestSince != nil {
			u.GuestSince = claims.GuestSince.UTC()
		} else if claims.IssuedAt != nil {
			u.GuestSince = claims.IssuedAt.UTC()
		}
	}
	if claims.ExpiresAt != nil {
		u.ExpiresAt = claims.ExpiresAt.UTC()
	}
	if !claims.Guest { // a guest is never a moderator
		for _, r := range claims.Roles {
			if len(r) <= 64 && len(u.Roles) < 32 {
				u.Roles = append(u.Roles, r)
			}
		}
	}
	return u, nil
}

// guestPrefix starts the subject of every guest token (SignGuest).
const guestPrefix = "guest:"

// guestSpace keeps the guests' id space to the guest sign-in: guest: true
// only in a token signed with the secret (the one that signs guests), and
// a subject "guest:..." only with it, so that no token of the identity
// provider (nor one of another bearer of the secret) names a guest's user
// id, or renews a guest's name.
func guestSpace(t *jwt.Token, c *Claims) error {
	isGuestID := strings.HasPrefix(c.Subject, guestPrefix)
	switch {
	case c.Guest && t.Method.Alg() != jwt.SigningMethodHS256.Alg():
		return refusal("guest tokens are this server's own (HS256); a token from AUTH_JWKS_URL may not claim guest")
	case c.Guest != isGuestID:
		return refusal("the subjects guest:... are this server's guests' and only theirs")
	}
	return nil
}

// keyFault is a key look-up that failed for the verifier's own reason (the
// JWKS document cannot be fetched), not the token's.
type keyFault struct{ err error }

func (k *keyFault) Error() string { return k.err.Error() }

// key returns the key that may verify t: the secret for HS256, else the
// JWKS keys of t's algorithm (and key id).
func (v *Verifier) key(ctx context.Context, t *jwt.Token) (any, error) {
	if _, ok := t.Header["crit"]; ok {
		// RFC 7515 4.1.11: extensions the recipient must understand, and
		// this one understands none.
		return nil, refusal("the token has critical header parameters (crit) this server does not understand")
	}
	alg := t.Method.Alg()
	if alg == jwt.SigningMethodHS256.Alg() {
		if len(v.o.Secret) == 0 {
			return nil, errors.New("HS256 is not accepted")
		}
		return v.o.Secret, nil
	}
	if v.jwks == nil {
		return nil, fmt.Errorf("%s is not accepted", alg)
	}
	kid, _ := t.Header["kid"].(string)
	keys, err := v.jwks.lookup(ctx, kid, alg)
	if err != nil {
		return nil, err
	}
	if len(keys) == 1 {
		return keys[0], nil
	}
	set := jwt.VerificationKeySet{}
	for _, k := range keys {
		set.Keys = append(set.Keys, k)
	}
	return set, nil
}

// reason is what a client is told about a refused token: which check
// failed, without the library's wording of internals.
func reason(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return "the token has expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "the token is not valid yet"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "the token is from another issuer"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "the token is for another audience"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "the token's signature is not valid"
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return "the token cannot be verified with any key of this server"
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "the token is not a JWT"
	}
	return "the token is not valid"
}

// missing names the claims a token must have and c lacks: exp always,
// iss and aud when AUTH_ISSUER and AUTH_AUDIENCE are set. The library
// reports each as ErrTokenRequiredClaimMissing, without saying which.
func (v *Verifier) missing(c *Claims) string {
	var lack []string
	if c.ExpiresAt == nil {
		lack = append(lack, "no expiry (exp)")
	}
	if v.o.Issuer != "" && c.Issuer == "" {
		lack = append(lack, "no issuer (iss)")
	}
	if v.o.Audience != "" && len(c.Audience) == 0 {
		lack = append(lack, "no audience (aud)")
	}
	if len(lack) == 0 {
		return "the token lacks a required claim"
	}
	return "the token has " + strings.Join(lack, ", ")
}

// CanSign reports whether the verifier has a secret to sign guest tokens
// with.
func (v *Verifier) CanSign() bool { return len(v.o.Secret) > 0 }

// SignGuest signs a guest token for name (HS256, with the secret): sub
// "guest:<id>" (id a new random one when "", else kept: a renewal), the
// name, guest_since since (now when zero: a new session), iss and aud when
// set, iat now and exp until (to the second).
func (v *Verifier) SignGuest(name, id string, since, until, now time.Time) (token, sub string, exp time.Time, err error) {
	if !v.CanSign() {
		return "", "", time.Time{}, errors.New("jwtauth: no secret to sign with")
	}
	if id == "" {
		id = guestPrefix + uuid.NewString()
	}
	if since.IsZero() {
		since = now
	}
	exp = until.Truncate(time.Second)
	c := Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   id,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(exp),
			ID:        randomID(),
		},
		Name:       name,
		Guest:      true,
		GuestSince: jwt.NewNumericDate(since),
	}
	if v.o.Issuer != "" {
		c.Issuer = v.o.Issuer
	}
	if v.o.Audience != "" {
		c.Audience = jwt.ClaimStrings{v.o.Audience}
	}
	token, err = jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(v.o.Secret)
	if err != nil {
		return "", "", time.Time{}, fmt.Errorf("sign a guest token: %w", err)
	}
	return token, id, exp, nil
}

func randomID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%x", b)
}
