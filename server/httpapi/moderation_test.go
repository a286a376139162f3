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

type guests struct{ n int }

func (g *guests) SignGuest(name, id string, ttl time.Duration, now time.Time) (string, string, time.Time, error) {
	if id == "" {
		g.n++
		id = fmt.Sprintf("guest:%d", g.n)
	}
	return "tok-" + id, id, now.Add(ttl), nil
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
	}})
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
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(res.Body).Decode(&out)
	return res.StatusCode, out
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
