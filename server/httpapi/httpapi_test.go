package httpapi

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scalable-chat-go/server/chat"
)

// emptyStore is a Store with no messages.
type emptyStore struct{}

func (emptyStore) SaveBatch(context.Context, []chat.Message) ([]chat.Rejected, error) {
	return nil, nil
}
func (emptyStore) Recent(context.Context, string, int, *chat.Cursor) ([]chat.Message, error) {
	return nil, nil
}
func (emptyStore) Find(context.Context, string) (chat.Message, error) {
	return chat.Message{}, chat.ErrNotFound
}
func (emptyStore) Ping(context.Context) error                           { return nil }
func (emptyStore) SaveDeletions(context.Context, []chat.Deletion) error { return nil }
func (emptyStore) Close() error                                         { return nil }

// Every response of the API carries the security headers, errors and
// preflights included.
func TestEveryResponseCarriesTheSecurityHeaders(t *testing.T) {
	api := New(Options{History: chat.NewHistory(emptyStore{}, 10), Gatherer: prometheus.NewRegistry()})
	api.SetReady()
	mux := http.NewServeMux()
	api.Register(mux)
	want := map[string]string{
		"X-Content-Type-Options":  "nosniff",
		"Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
		"X-Frame-Options":         "DENY",
	}
	for _, tc := range []struct {
		method, path string
		code         int
	}{
		{"GET", "/healthz", 200},
		{"GET", "/readyz", 200},
		{"GET", "/metrics", 200},
		{"GET", "/api/messages", 200},
		{"GET", "/api/messages?limit=0", 400},
		{"GET", "/api/messages?before=nope", 404},
		{"OPTIONS", "/api/messages", 204},
	} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(tc.method, tc.path, nil)
		req.Header.Set("Origin", "https://chat.example")
		mux.ServeHTTP(rec, req)
		if rec.Code != tc.code {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, rec.Code, tc.code)
		}
		for k, v := range want {
			if got := rec.Header().Get(k); got != v {
				t.Errorf("%s %s: %s = %q, want %q", tc.method, tc.path, k, got, v)
			}
		}
	}
}
