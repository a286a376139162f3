package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scalable-chat-go/server/chat"
)

// trustStore is a Store and BanStore in memory.
type trustStore struct {
	emptyStore
	mu   sync.Mutex
	msgs map[string]chat.Message
	dels map[string]chat.Deletion
	bans map[string]chat.Ban
}

func (s *trustStore) Find(_ context.Context, id string) (chat.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m, ok := s.msgs[id]; ok {
		return m, nil
	}
	return chat.Message{}, chat.ErrNotFound
}
func (s *trustStore) SaveDeletions(_ context.Context, ds []chat.Deletion) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range ds {
		if _, ok := s.dels[d.ID]; !ok {
			s.dels[d.ID] = d
		}
	}
	return nil
}
func (s *trustStore) SaveBan(_ context.Context, b chat.Ban) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bans[b.ID] = b
	return nil
}
func (s *trustStore) LiftBan(_ context.Context, id string, at time.Time) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.bans[id]
	delete(s.bans, id)
	return ok && b.Active(at), nil
}
func (s *trustStore) ActiveBans(context.Context, time.Time) ([]chat.Ban, error) { return nil, nil }

// trustLog makes tombstones durable at once.
type trustLog struct{ s *trustStore }

func (l trustLog) Append(chat.Message, func(error)) error { return nil }
func (l trustLog) Delete(d chat.Deletion, done func(error)) error {
	done(l.s.SaveDeletions(context.Background(), []chat.Deletion{d}))
	return nil
}
func (l trustLog) Close(context.Context) error { return nil }

type noFanout struct{}

func (noFanout) Broadcast(string, chat.Event) {}

// tokens is a Verifier over a table.
type tokens map[string]*chat.User

func (t tokens) Verify(_ context.Context, tok string) (*chat.User, error) {
	if u, ok := t[tok]; ok {
		return u, nil
	}
	return nil, fmt.Errorf("%w: unknown token", chat.ErrUnauthorized)
}

// guests signs tokens that tk verifies: "tok-<id>-<n>" for the nth token
// of guest <id>.
type guests struct {
	mu sync.Mutex
	n  int
	tk tokens
}

func (g *guests) SignGuest(name, id string, since, until, now time.Time) (string, string, time.Time, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if id == "" {
		g.n++
		id = fmt.Sprintf("guest:%d", g.n)
	}
	if since.IsZero() {
		since = now
	}
	tok := "tok-" + id
	if g.tk != nil {
		tok = fmt.Sprintf("tok-%s-%d", id, len(g.tk))
		g.tk[tok] = &chat.User{ID: id, Name: name, Guest: true, GuestSince: since, ExpiresAt: until}
	}
	return tok, id, until, nil
}

func newTrustAPI(t *testing.T) (*httptest.Server, *trustStore, tokens) {
	t.Helper()
	st := &trustStore{msgs: map[string]chat.Message{"m1": {ID: "m1", Text: "x"}}, dels: map[string]chat.Deletion{}, bans: map[string]chat.Ban{}}
	h := chat.NewHistory(st, 10)
	mod := chat.NewModeration(chat.ModerationOptions{Log: trustLog{st}, Fanout: noFanout{}, History: h, Bans: st})
	tk := tokens{
		"mod":   {ID: "m-1", Name: "Mod", Roles: []string{"moderator"}},
		"plain": {ID: "u-1", Name: "Plain"},
	}
	g := &guests{}
	api := New(Options{History: h, Trust: TrustOptions{
		AuthMode: chat.AuthRequired, Verifier: tk, AdminToken: strings.Repeat("a", 32), Moderation: mod,
		Guests: g, GuestTTL: time.Hour,
	}, AllowOrigin: func(origin string) bool { return origin == "http://web.example" }})
	// A guest's token verifies as its guest user.
	tk["tok-guest:1"] = &chat.User{ID: "guest:1", Name: "Zoë", Guest: true}
	mux := http.NewServeMux()
	api.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, st, tk
}

func call(t *testing.T, srv *httptest.Server, method, path, bearer, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	req.Header.Set("Origin", "http://web.example")
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	code, out, _ := do(t, req)
	return code, out
}

// do sends req and returns the status, the JSON body and the headers.
func do(t *testing.T, req *http.Request) (int, map[string]any, http.Header) {
	t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(res.Body).Decode(&out)
	return res.StatusCode, out, res.Header
}

func TestModerationEndpoints(t *testing.T) {
	srv, st, _ := newTrustAPI(t)
	admin := strings.Repeat("a", 32)
	if code, body := call(t, srv, "GET", "/api/config", "", ""); code != 200 || body["auth"] != "required" || body["guest"] != true {
		t.Fatalf("config %d %v", code, body)
	}
	for _, tt := range []struct {
		method, path, bearer, body string
		want                       int
	}{
		{"DELETE", "/api/messages/m1", "", "", 401},
		{"DELETE", "/api/messages/m1", "forged", "", 401},
		{"DELETE", "/api/messages/m1", strings.Repeat("a", 31), "", 401},
		{"DELETE", "/api/messages/m1", "plain", "", 403},
		{"DELETE", "/api/messages/nope", "mod", "", 404},
		{"DELETE", "/api/messages/m1", "mod", "", 204},
		{"DELETE", "/api/messages/m1", admin, "", 204}, // idempotent
		{"GET", "/api/bans", "plain", "", 403},
		{"POST", "/api/bans", "mod", `{}`, 400},
		{"POST", "/api/bans", "mod", `{"ip":"300.1.1.1"}`, 400},
		{"POST", "/api/bans", "mod", `{"userId":"u-1","durationSec":-1}`, 400},
		{"POST", "/api/bans", "mod", `not json`, 400},
		{"DELETE", "/api/bans/nope", admin, "", 404},
	} {
		if code, body := call(t, srv, tt.method, tt.path, tt.bearer, tt.body); code != tt.want {
			t.Errorf("%s %s as %q: %d %v, want %d", tt.method, tt.path, tt.bearer, code, body, tt.want)
		}
	}
	if d, ok := st.dels["m1"]; !ok || d.By != "m-1" {
		t.Fatalf("tombstone %+v", st.dels)
	}
	code, ban := call(t, srv, "POST", "/api/bans", admin, `{"username":"Mallory","durationSec":60,"reason":"spam"}`)
	if code != 201 || ban["id"] == "" || ban["username"] != "Mallory" || ban["by"] != AdminID || ban["until"] == nil {
		t.Fatalf("ban %d %v", code, ban)
	}
	if code, list := call(t, srv, "GET", "/api/bans", "mod", ""); code != 200 || len(list["bans"].([]any)) != 1 {
		t.Fatalf("bans %d %v", code, list)
	}
	// A banned name cannot sign in as a guest.
	if code, body := call(t, srv, "POST", "/api/session", "", `{"username":"mallory"}`); code != 403 || body["error"].(map[string]any)["code"] != "banned" {
		t.Fatalf("a banned guest: %d %v", code, body)
	}
	if code, _ := call(t, srv, "DELETE", "/api/bans/"+ban["id"].(string), "mod", ""); code != 204 {
		t.Fatalf("lift %d", code)
	}
	if code, _ := call(t, srv, "DELETE", "/api/bans/"+ban["id"].(string), "mod", ""); code != 404 {
		t.Fatalf("lift twice %d", code)
	}
}

func TestGuestSession(t *testing.T) {
	srv, _, _ := newTrustAPI(t)
	code, s := call(t, srv, "POST", "/api/session", "", `{"username":" Zoë "}`)
	if code != 200 || s["token"] != "tok-guest:1" || s["userId"] != "guest:1" || s["username"] != "Zoë" || s["expiresAt"] == nil {
		t.Fatalf("session %d %v", code, s)
	}
	// Another session may not take the name while it is held, in any case.
	if code, body := call(t, srv, "POST", "/api/session", "", `{"username":"zoë"}`); code != 409 {
		t.Fatalf("a held name: %d %v", code, body)
	}
	// The holder renews with its token and keeps its id.
	if code, body := call(t, srv, "POST", "/api/session", "tok-guest:1", `{"username":"Zoë"}`); code != 200 || body["userId"] != "guest:1" {
		t.Fatalf("renewal %d %v", code, body)
	}
	for _, bad := range []string{`{"username":""}`, `{"username":"` + strings.Repeat("x", 65) + `"}`, `[]`} {
		if code, _ := call(t, srv, "POST", "/api/session", "", bad); code != 400 {
			t.Errorf("%s: %d, want 400", bad, code)
		}
	}
	// The browser's preflight.
	req, _ := http.NewRequest("OPTIONS", srv.URL+"/api/session", nil)
	req.Header.Set("Origin", "http://web.example")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 204 || res.Header.Get("Access-Control-Allow-Origin") != "http://web.example" ||
		!strings.Contains(res.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Fatalf("preflight %d %v", res.StatusCode, res.Header)
	}
}

// newGuestAPI serves guest sign-in with o's limits (and a fresh Verifier
// and signer). A request's client address is its X-Test-Addr header, so
// that one test speaks from several; browsers may call from
// http://web.example only.
func newGuestAPI(t *testing.T, o TrustOptions) *httptest.Server {
	t.Helper()
	tk := tokens{}
	o.AuthMode, o.Verifier, o.Guests = chat.AuthRequired, tk, &guests{tk: tk}
	if o.GuestTTL == 0 {
		o.GuestTTL = time.Hour
	}
	api := New(Options{History: chat.NewHistory(&trustStore{}, 10), Trust: o,
		AllowOrigin: func(origin string) bool { return origin == "http://web.example" },
		ClientAddr:  func(r *http.Request) string { return r.Header.Get("X-Test-Addr") },
	})
	mux := http.NewServeMux()
	api.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// signIn posts {username} to /api/session from addr (with bearer, when
// set) and returns the status, the body and the Retry-After header.
func signIn(t *testing.T, srv *httptest.Server, addr, name, bearer string) (int, map[string]any, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", srv.URL+"/api/session", strings.NewReader(`{"username":"`+name+`"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Test-Addr", addr)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	code, out, h := do(t, req)
	return code, out, h.Get("Retry-After")
}

func errorCode(body map[string]any) string {
	e, _ := body["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

// One address signs in AUTH_GUEST_SIGNINS_PER_MIN times a minute, an IPv6
// /64 counting as one address; others are not held back by it. Before:
// one keep-alive connection reserved ~2,700 names a second.
func TestGuestSignInsPerAddress(t *testing.T) {
	srv := newGuestAPI(t, TrustOptions{GuestSignInsPerMinute: 5})
	for _, addrs := range [][]string{
		{"192.0.2.1", "192.0.2.1", "192.0.2.1", "192.0.2.1", "192.0.2.1", "192.0.2.1"},
		{"2001:db8::1", "2001:db8::2", "2001:db8::3", "2001:db8::4", "2001:db8::5", "2001:db8::ffff"},
	} {
		for i, addr := range addrs {
			code, body, retry := signIn(t, srv, addr, fmt.Sprintf("n-%s-%d", strings.ReplaceAll(addr, ":", ""), i), "")
			if i < 5 && code != 200 {
				t.Fatalf("sign-in %d from %s: %d %v", i, addr, code, body)
			}
			if i == 5 && (code != 429 || errorCode(body) != chat.CodeRateLimited || retry == "") {
				t.Fatalf("sign-in %d from %s: %d %v, Retry-After %q; want 429 rate_limited", i, addr, code, body, retry)
			}
		}
	}
	if code, body, _ := signIn(t, srv, "198.51.100.1", "other", ""); code != 200 {
		t.Fatalf("another address: %d %v", code, body)
	}
}

// One address holds AUTH_GUEST_NAMES_PER_IP names at once; renewing one
// of them is no new name. Before: no limit.
func TestGuestNamesPerAddress(t *testing.T) {
	srv := newGuestAPI(t, TrustOptions{GuestNamesPerAddress: 3})
	var first map[string]any
	for i, name := range []string{"a", "b", "c"} {
		code, body, _ := signIn(t, srv, "192.0.2.1", name, "")
		if code != 200 {
			t.Fatalf("name %s: %d %v", name, code, body)
		}
		if i == 0 {
			first = body
		}
	}
	if code, body, _ := signIn(t, srv, "192.0.2.1", "d", ""); code != 429 || errorCode(body) != chat.CodeTooManyNames {
		t.Fatalf("a fourth name: %d %v; want 429 too_many_names", code, body)
	}
	if code, body, _ := signIn(t, srv, "192.0.2.1", "a", first["token"].(string)); code != 200 || body["userId"] != first["userId"] {
		t.Fatalf("a renewal at the limit: %d %v", code, body)
	}
	if code, body, _ := signIn(t, srv, "198.51.100.1", "d", ""); code != 200 {
		t.Fatalf("another address: %d %v", code, body)
	}
}

// A guest session is renewed until AUTH_GUEST_MAX_LIFETIME after its
// first sign-in (its token's expiry is cut to it), then it starts afresh
// with a new user id. Before: renewable for ever.
func TestGuestRenewalHasACeiling(t *testing.T) {
	t0 := time.Now().Add(-3 * time.Hour).Truncate(time.Second) // claims in the past end at once
	now := t0
	srv := newGuestAPI(t, TrustOptions{GuestTTL: time.Hour, GuestMaxLifetime: 90 * time.Minute, Now: func() time.Time { return now }})
	_, s1, _ := signIn(t, srv, "192.0.2.1", "Zoë", "")
	if s1["expiresAt"] != t0.Add(time.Hour).UTC().Format(chat.TimeLayout) {
		t.Fatalf("first session %v", s1)
	}
	now = t0.Add(40 * time.Minute)
	code, s2, _ := signIn(t, srv, "192.0.2.1", "Zoë", s1["token"].(string))
	if code != 200 || s2["userId"] != s1["userId"] || s2["expiresAt"] != t0.Add(90*time.Minute).UTC().Format(chat.TimeLayout) {
		t.Fatalf("a renewal near the ceiling: %d %v; want the same id until %v", code, s2, t0.Add(90*time.Minute))
	}
	now = t0.Add(90 * time.Minute)
	code, s3, _ := signIn(t, srv, "192.0.2.1", "Zoë", s2["token"].(string))
	if code != 200 || s3["userId"] == s1["userId"] || s3["expiresAt"] != now.Add(time.Hour).UTC().Format(chat.TimeLayout) {
		t.Fatalf("at the ceiling: %d %v; want a new session", code, s3)
	}
}

// A call that changes state comes from an allowed Origin (or none: not a
// browser) with a JSON body: a page elsewhere cannot make its visitors'
// browsers sign in, delete or ban with a simple (text/plain, form) POST
// that needs no preflight. Before: text/plain from a disallowed Origin
// was processed (200).
func TestStateChangingCallsNeedJSONAndAnAllowedOrigin(t *testing.T) {
	srv, _, _ := newTrustAPI(t)
	admin := strings.Repeat("a", 32)
	for _, tt := range []struct {
		method, path, origin, ctype, bearer, body string
		want                                      int
	}{
		{"POST", "/api/session", "http://evil.example", "text/plain", "", `{"username":"victim"}`, 403},
		{"POST", "/api/session", "http://evil.example", "application/json", "", `{"username":"victim"}`, 403},
		{"POST", "/api/session", "null", "application/json", "", `{"username":"victim"}`, 403},
		{"POST", "/api/session", "http://web.example", "text/plain", "", `{"username":"victim"}`, 415},
		{"POST", "/api/session", "http://web.example", "application/x-www-form-urlencoded", "", `{"username":"victim"}`, 415},
		{"POST", "/api/session", "", "", "", `{"username":"victim"}`, 415},
		{"POST", "/api/bans", "http://evil.example", "application/json", admin, `{"username":"x"}`, 403},
		{"DELETE", "/api/bans/nope", "http://evil.example", "", admin, "", 403},
		{"DELETE", "/api/messages/m1", "http://evil.example", "", admin, "", 403},
		{"POST", "/api/session", "http://web.example", "application/json; charset=utf-8", "", `{"username":"a"}`, 200},
		{"POST", "/api/session", "", "application/json", "", `{"username":"b"}`, 200},
		{"DELETE", "/api/bans/nope", "", "", admin, "", 404},
	} {
		req, _ := http.NewRequest(tt.method, srv.URL+tt.path, strings.NewReader(tt.body))
		for k, v := range map[string]string{"Origin": tt.origin, "Content-Type": tt.ctype} {
			if v != "" {
				req.Header.Set(k, v)
			}
		}
		if tt.bearer != "" {
			req.Header.Set("Authorization", "Bearer "+tt.bearer)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != tt.want {
			t.Errorf("%s %s from %q as %q: %d, want %d", tt.method, tt.path, tt.origin, tt.ctype, res.StatusCode, tt.want)
		}
	}
}
