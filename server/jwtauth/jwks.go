package jwtauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"sync"
	"time"
)

// Why a JWKS cache of our own rather than MicahParks/keyfunc: the pinning
// this package promises (each key only the one algorithm of its type and
// curve, RSA keys of 2048 bits or more, "use" other than sig refused) is
// the part that matters, and it is in the conversion below either way; the
// rest is one bounded GET and a map under a mutex, which is smaller than
// keyfunc and its jwkset dependency, refreshes lazily (no goroutine to
// own), and lets the tests count fetches.

// jwks is the cache of a JWKS document's keys.
//
// A slow or failing identity provider must not hold the node: a token is
// never made to wait for a fetch it does not need. Keys older than
// JWKSRefresh are used while one fetch renews them in the background; only
// a verifier with no keys yet, or a token naming a key id it does not know
// (a rotation, at most one fetch per JWKSMinRefresh), waits, for one fetch
// shared by every caller and for no longer than its context. A failed
// fetch backs off (1 s, doubling, up to JWKSMinRefresh); until the keys
// can be had, a token that needs them is refused as unavailable, never
// unauthorized.
type jwks struct {
	o Options

	mu        sync.Mutex
	keys      map[string][]jwk // by kid ("" for keys without one)
	kids      []string         // the kids, in the document's order
	fetchedAt time.Time        // last fetch that succeeded
	triedAt   time.Time        // last fetch started
	failures  int              // fetches failed in a row
	retryAt   time.Time        // no fetch before (back-off)
	lastErr   error            // why the last fetch failed
	inflight  *fetchCall       // the fetch under way, shared
	fetches   int
}

// fetchCall is one fetch; done is closed when it ended.
type fetchCall struct{ done chan struct{} }

type jwk struct {
	alg string // the one algorithm this key verifies
	key any
}

func newJWKS(o Options) *jwks { return &jwks{o: o} }

// maxJWKSBytes bounds the JWKS document.
const maxJWKSBytes = 1 << 20

// jwksTimeout bounds one fetch, whatever the HTTP client's timeout.
const jwksTimeout = 5 * time.Second

// backoffBase is the wait after the first failed fetch; it doubles with
// each failure, up to JWKSMinRefresh.
const backoffBase = time.Second

// lookup returns the keys that may verify a token of alg with kid (every
// key of alg when kid is "").
func (j *jwks) lookup(ctx context.Context, kid, alg string) ([]any, error) {
	now := time.Now()
	j.mu.Lock()
	keys := j.find(kid, alg)
	var wait *fetchCall
	switch {
	case j.fetchedAt.IsZero():
		// No keys yet: every caller needs the fetch.
		wait = j.startLocked(now)
	case len(keys) == 0:
		// An unknown kid: a rotation, or a forged token. One fetch per
		// JWKSMinRefresh, shared; the one under way is waited for.
		wait = j.inflight
		if wait == nil && now.Sub(j.triedAt) >= j.o.JWKSMinRefresh {
			wait = j.startLocked(now)
		}
	case now.Sub(j.fetchedAt) > j.o.JWKSRefresh:
		j.startLocked(now) // renewed in the background; the keys known serve meanwhile
	}
	if wait == nil && len(keys) == 0 {
		err := j.unavailableLocked()
		j.mu.Unlock()
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("no %s key with kid %q", alg, kid)
	}
	j.mu.Unlock()
	if wait != nil {
		select {
		case <-wait.done:
		case <-ctx.Done():
			return nil, &keyFault{err: fmt.Errorf("the keys to verify tokens (AUTH_JWKS_URL) are not available: %w", ctx.Err())}
		}
		j.mu.Lock()
		keys = j.find(kid, alg)
		err := j.unavailableLocked()
		j.mu.Unlock()
		if len(keys) == 0 {
			if err != nil {
				return nil, err
			}
			return nil, fmt.Errorf("no %s key with kid %q", alg, kid)
		}
	}
	return keys, nil
}

// unavailableLocked is the fault of a token whose key is not known while
// the keys cannot be had (none fetched yet, or the last fetch failed: the
// key may be a new one); nil when the keys are current. j.mu is held.
func (j *jwks) unavailableLocked() error {
	if !j.fetchedAt.IsZero() && j.failures == 0 {
		return nil
	}
	err := j.lastErr
	if err == nil {
		err = errors.New("not fetched yet")
	}
	return &keyFault{err: fmt.Errorf("the keys to verify tokens (AUTH_JWKS_URL) are not available: %w", err)}
}

// startLocked starts a fetch, or returns the one under way; nil while
// failures back off. j.mu is held.
func (j *jwks) startLocked(now time.Time) *fetchCall {
	if j.inflight != nil {
		return j.inflight
	}
	if now.Before(j.retryAt) {
		return nil
	}
	call := &fetchCall{done: make(chan struct{})}
	j.inflight, j.triedAt = call, now
	// The fetch is its own: bounded by jwksTimeout, never by one caller's
	// context, since every caller shares it.
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), jwksTimeout)
		keys, kids, err := j.fetch(ctx)
		cancel()
		j.mu.Lock()
		j.fetches++
		j.inflight = nil
		if err != nil {
			j.failures++
			j.lastErr = err
			j.retryAt = time.Now().Add(backoff(j.failures, j.o.JWKSMinRefresh))
			j.o.Logger.Warn("the JWKS document could not be fetched; keeping the keys known", "url", j.o.JWKSURL,
				"err", err, "failures", j.failures, "retry_in", time.Until(j.retryAt).Round(time.Millisecond))
		} else {
			j.keys, j.kids, j.fetchedAt = keys, kids, time.Now()
			if kid, n := crowded(keys, j.o.MaxKeysPerToken); n > 0 {
				j.o.Logger.Warn("the JWKS document has more keys for one kid and algorithm than a token is tried against; the first ones are tried",
					"url", j.o.JWKSURL, "kid", kid, "keys", n, "tried", j.o.MaxKeysPerToken, "setting", "AUTH_MAX_KEYS_PER_TOKEN")
			}
			j.failures, j.lastErr, j.retryAt = 0, nil, time.Time{}
		}
		j.mu.Unlock()
		close(call.done)
	}()
	return call
}

// backoff is the wait after n failed fetches in a row.
func backoff(n int, most time.Duration) time.Duration {
	d := backoffBase
	for i := 1; i < n && d < most; i++ {
		d *= 2
	}
	return min(d, max(most, backoffBase))
}

// find returns the keys for kid and alg, MaxKeysPerToken at most, first
// in the document's order; j.mu is held.
func (j *jwks) find(kid, alg string) []any {
	var out []any
	add := func(ks []jwk) {
		for _, k := range ks {
			if k.alg == alg && len(out) < j.o.MaxKeysPerToken {
				out = append(out, k.key)
			}
		}
	}
	if kid != "" {
		add(j.keys[kid])
		return out
	}
	for _, id := range j.kids {
		add(j.keys[id])
	}
	return out
}

func (j *jwks) fetch(ctx context.Context) (map[string][]jwk, []string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.o.JWKSURL, nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	res, err := j.o.HTTPClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("GET %s: %s", j.o.JWKSURL, res.Status)
	}
	body, err := io.ReadAll(io.LimitReader(res.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", j.o.JWKSURL, err)
	}
	if len(body) > maxJWKSBytes {
		return nil, nil, fmt.Errorf("%s is larger than %d bytes", j.o.JWKSURL, maxJWKSBytes)
	}
	return parseJWKS(body)
}

// rawJWK is a member of a JWKS document's keys.
type rawJWK struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	Crv string `json:"crv"`
	N   string `json:"n"`
	E   string `json:"e"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// crowded returns a kid with more than most keys of one algorithm, and
// how many; 0 when there is none.
func crowded(keys map[string][]jwk, most int) (string, int) {
	for kid, ks := range keys {
		per := map[string]int{}
		for _, k := range ks {
			if per[k.alg]++; per[k.alg] > most {
				return kid, len(ks)
			}
		}
	}
	return "", 0
}

// parseJWKS reads a JWKS document: the keys this package can use, each
// pinned to the algorithm of its type (the others are left out), by kid,
// and the kids in the document's order.
func parseJWKS(b []byte) (map[string][]jwk, []string, error) {
	var doc struct {
		Keys []rawJWK `json:"keys"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, nil, fmt.Errorf("not a JWKS document: %w", err)
	}
	keys := map[string][]jwk{}
	var kids []string
	for _, r := range doc.Keys {
		k, err := r.key()
		if err != nil {
			continue
		}
		if _, seen := keys[r.Kid]; !seen {
			kids = append(kids, r.Kid)
		}
		keys[r.Kid] = append(keys[r.Kid], k)
	}
	if len(keys) == 0 {
		return nil, nil, errors.New("the JWKS document has no RS256, ES256 or EdDSA signing key")
	}
	return keys, kids, nil
}

func (r rawJWK) key() (jwk, error) {
	if r.Use != "" && r.Use != "sig" {
		return jwk{}, errors.New("not a signing key")
	}
	pin := func(alg string) error {
		if r.Alg != "" && r.Alg != alg {
			return fmt.Errorf("a %s key for %s", r.Kty, r.Alg)
		}
		return nil
	}
	switch r.Kty {
	case "RSA":
		if err := pin("RS256"); err != nil {
			return jwk{}, err
		}
		n, err1 := b64int(r.N)
		e, err2 := b64int(r.E)
		if err1 != nil || err2 != nil || n.BitLen() < 2048 || n.BitLen() > 8192 || !e.IsInt64() || e.Int64() < 3 || e.Int64() > 1<<31 {
			return jwk{}, errors.New("not an RSA key of 2048 to 8192 bits")
		}
		return jwk{alg: "RS256", key: &rsa.PublicKey{N: n, E: int(e.Int64())}}, nil
	case "EC":
		if err := pin("ES256"); err != nil {
			return jwk{}, err
		}
		if r.Crv != "P-256" {
			return jwk{}, errors.New("not a P-256 key")
		}
		x, err1 := b64(r.X)
		y, err2 := b64(r.Y)
		if err1 != nil || err2 != nil || len(x) != 32 || len(y) != 32 {
			return jwk{}, errors.New("not a P-256 point")
		}
		// Go's own check that the point is on the curve.
		raw := append([]byte{4}, append(x, y...)...)
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), raw)
		if err != nil {
			return jwk{}, err
		}
		return jwk{alg: "ES256", key: pub}, nil
	case "OKP":
		if err := pin("EdDSA"); err != nil {
			return jwk{}, err
		}
		x, err := b64(r.X)
		if r.Crv != "Ed25519" || err != nil || len(x) != ed25519.PublicKeySize {
			return jwk{}, errors.New("not an Ed25519 key")
		}
		return jwk{alg: "EdDSA", key: ed25519.PublicKey(x)}, nil
	}
	return jwk{}, fmt.Errorf("key type %q", r.Kty)
}

func b64(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

func b64int(s string) (*big.Int, error) {
	b, err := b64(s)
	if err != nil || len(b) == 0 {
		return nil, errors.New("not a base64url integer")
	}
	return new(big.Int).SetBytes(b), nil
}

// Fetches is how many times the JWKS document was fetched (for tests).
func (v *Verifier) Fetches() int {
	if v.jwks == nil {
		return 0
	}
	v.jwks.mu.Lock()
	defer v.jwks.mu.Unlock()
	return v.jwks.fetches
}
