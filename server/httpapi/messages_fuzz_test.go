package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/scalable-chat-go/server/chat"
)

// fuzzStore is a chat.Store over a slice, in process: what the history
// handler reads, without a database.
type fuzzStore struct{ msgs []chat.Message }

func (s *fuzzStore) SaveBatch(_ context.Context, b []chat.Message) ([]chat.Rejected, error) {
	s.msgs = append(s.msgs, b...)
	return nil, nil
}

func (s *fuzzStore) Recent(_ context.Context, _ string, limit int, before *chat.Cursor) ([]chat.Message, error) {
	var out []chat.Message
	for _, m := range newestFirst(s.msgs) {
		if before != nil && !m.Before(chat.Message{CreatedAt: before.CreatedAt, ID: before.ID}) {
			continue
		}
		if len(out) == limit {
			break
		}
		out = append(out, m)
	}
	return out, nil
}

func (s *fuzzStore) Find(_ context.Context, id string) (chat.Message, error) {
	for _, m := range s.msgs {
		if m.ID == id {
			return m, nil
		}
	}
	return chat.Message{}, chat.ErrNotFound
}

func (s *fuzzStore) Ping(context.Context) error                           { return nil }
func (s *fuzzStore) SaveDeletions(context.Context, []chat.Deletion) error { return nil }
func (s *fuzzStore) Close() error                                         { return nil }

func newestFirst(ms []chat.Message) []chat.Message {
	out := slices.Clone(ms)
	slices.SortFunc(out, func(a, b chat.Message) int {
		switch {
		case b.Before(a):
			return -1
		case a.Before(b):
			return 1
		}
		return 0
	})
	return out
}

// The history FuzzMessages pages through: fuzzMessages messages, two in
// each millisecond (so ties are broken by id); the store holds the oldest
// fuzzStored, the ring (fuzzRing long) the newest fuzzRing, so the newest
// are in the ring only (the store's lag) and some in both.
const (
	fuzzMessages = 30
	fuzzStored   = 25
	fuzzRing     = 10
	fuzzMaxPage  = 20
)

func fuzzMessage(i int) chat.Message {
	return chat.Message{
		ID:        uuid.NewSHA1(uuid.NameSpaceOID, []byte(strconv.Itoa(i))).String(),
		Text:      fmt.Sprintf("message %d", i),
		Username:  "u",
		CreatedAt: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i/2) * time.Millisecond),
	}
}

// fuzzAPI returns the API over that history, the ring delivered in the
// order that shuffle picks (0: in time order; else a permutation, as when
// messages of several nodes arrive out of their time order), and every
// message, newest first.
func fuzzAPI(shuffle uint64) (*http.ServeMux, []chat.Message) {
	all := make([]chat.Message, fuzzMessages)
	for i := range all {
		all[i] = fuzzMessage(i)
	}
	store := &fuzzStore{msgs: slices.Clone(all[:fuzzStored])}
	h := chat.NewHistory(store, fuzzRing)
	ring := slices.Clone(all[fuzzMessages-fuzzRing:])
	for i := len(ring) - 1; i > 0 && shuffle != 0; i-- {
		shuffle = shuffle*6364136223846793005 + 1442695040888963407
		j := int((shuffle >> 33) % uint64(i+1))
		ring[i], ring[j] = ring[j], ring[i]
	}
	for _, m := range ring {
		h.Observe(m)
	}
	mux := http.NewServeMux()
	New(Options{History: h, MaxPage: fuzzMaxPage}).Register(mux)
	return mux, newestFirst(all)
}

type fuzzPage struct {
	Messages   []chat.Wire `json:"messages"`
	NextBefore *string     `json:"nextBefore"`
	Error      *apiError   `json:"error"`
}

// FuzzMessages feeds GET /api/messages any query string: limit and before
// as a client may write them (signs, spaces, repeats, escapes, long ids,
// unknown ids), over a history whose newest messages are only in the ring,
// delivered in any order.
//
// Every answer must be JSON with the status the documentation gives: 400
// invalid_limit unless limit is absent or a whole number from 1 to the
// maximum page, 400 invalid_before for a before longer than an id, 404
// unknown_before for an id no message has, else 200 with exactly the
// newest limit messages strictly before the message named (no gap, no
// duplicate, newest first), and nextBefore set only on a full page.
func FuzzMessages(f *testing.F) {
	f.Add("limit=5&before="+fuzzMessage(12).ID, uint64(0))
	f.Fuzz(func(t *testing.T, rawQuery string, shuffle uint64) {
		mux, all := fuzzAPI(shuffle)
		res := fuzzGet(t, mux, rawQuery)

		q, _ := url.ParseQuery(rawQuery) // as the handler reads it: malformed pairs are dropped
		limit, before := 50, q.Get("before")
		wantStatus, wantCode := http.StatusOK, ""
		if v := q.Get("limit"); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 1 || n > fuzzMaxPage {
				wantStatus, wantCode = http.StatusBadRequest, "invalid_limit"
			}
			limit = int(n)
		}
		var cursor *chat.Message
		if before != "" && wantStatus == http.StatusOK {
			if len(before) > 64 {
				wantStatus, wantCode = http.StatusBadRequest, "invalid_before"
			} else if i := slices.IndexFunc(all, func(m chat.Message) bool { return m.ID == before }); i >= 0 {
				cursor = &all[i]
			} else {
				wantStatus, wantCode = http.StatusNotFound, "unknown_before"
			}
		}
		if res.status != wantStatus {
			t.Fatalf("?%s: HTTP %d %s, want %d", rawQuery, res.status, res.body, wantStatus)
		}
		if wantStatus != http.StatusOK {
			if res.page.Error == nil || res.page.Error.Code != wantCode || res.page.Error.Reason == "" || res.page.Messages != nil {
				t.Fatalf("?%s: body %s, want the error %s", rawQuery, res.body, wantCode)
			}
			return
		}
		want := all
		if cursor != nil {
			want = slices.DeleteFunc(slices.Clone(all), func(m chat.Message) bool { return !m.Before(*cursor) })
		}
		want = want[:min(limit, len(want))]
		checkFuzzPage(t, rawQuery, res, want, limit)

		// The next page goes on where this one stopped.
		if res.page.NextBefore != nil {
			next := fuzzGet(t, mux, url.Values{"limit": {strconv.Itoa(limit)}, "before": {*res.page.NextBefore}}.Encode())
			last := want[len(want)-1]
			rest := slices.DeleteFunc(slices.Clone(all), func(m chat.Message) bool { return !m.Before(last) })
			checkFuzzPage(t, "the next page of ?"+rawQuery, next, rest[:min(limit, len(rest))], limit)
		}
	})
}

type fuzzResponse struct {
	status int
	body   string
	page   fuzzPage
}

func fuzzGet(t *testing.T, mux *http.ServeMux, rawQuery string) fuzzResponse {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "/api/messages", nil)
	r.URL.RawQuery = rawQuery
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, r)
	res := fuzzResponse{status: w.Code, body: w.Body.String()}
	if ct := w.Header().Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Fatalf("?%s: Content-Type %q", rawQuery, ct)
	}
	if err := json.Unmarshal(w.Body.Bytes(), &res.page); err != nil {
		t.Fatalf("?%s: the body is not JSON: %v\n%s", rawQuery, err, res.body)
	}
	return res
}

// checkFuzzPage fails unless res is a 200 holding exactly want, with nextBefore
// the last id when the page is full.
func checkFuzzPage(t *testing.T, what string, res fuzzResponse, want []chat.Message, limit int) {
	t.Helper()
	if res.status != http.StatusOK {
		t.Fatalf("%s: HTTP %d %s", what, res.status, res.body)
	}
	got := make([]string, len(res.page.Messages))
	for i, m := range res.page.Messages {
		got[i] = m.ID
	}
	wantIDs := make([]string, len(want))
	for i, m := range want {
		wantIDs[i] = m.ID
		if i < len(res.page.Messages) && res.page.Messages[i] != m.Wire() {
			t.Fatalf("%s: message %d is %+v, want %+v", what, i, res.page.Messages[i], m.Wire())
		}
	}
	if !slices.Equal(got, wantIDs) {
		t.Fatalf("%s: page %v\nwant the newest %d before the cursor: %v", what, got, limit, wantIDs)
	}
	switch {
	case len(want) == limit && (res.page.NextBefore == nil || *res.page.NextBefore != want[len(want)-1].ID):
		t.Fatalf("%s: a full page with nextBefore %v", what, res.page.NextBefore)
	case len(want) < limit && res.page.NextBefore != nil:
		t.Fatalf("%s: a short page with nextBefore %q", what, *res.page.NextBefore)
	}
}
