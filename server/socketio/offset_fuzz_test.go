package socketio

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/scalable-chat-go/server/chat"
)

type noStore struct{}

func (noStore) SaveBatch(context.Context, []chat.Message) ([]chat.Rejected, error) { return nil, nil }
func (noStore) SaveDeletions(context.Context, []chat.Deletion) error               { return nil }
func (noStore) Recent(context.Context, string, int, *chat.Cursor) ([]chat.Message, error) {
	return nil, nil
}
func (noStore) Find(context.Context, string) (chat.Message, error) {
	return chat.Message{}, chat.ErrNotFound
}
func (noStore) Ping(context.Context) error { return nil }
func (noStore) Close() error               { return nil }

// FuzzRecoveryOffset hands the recovery path what a reconnecting client
// sends in its CONNECT auth ({pid, offset}: any values): resumeOffset keeps
// only a string offset of at most two ids, parseOffset never gives an
// empty high-water id for a non-empty last id, an offset makeOffset wrote
// reads back as it was written, and the history ring resumes only after
// an id it holds.
func FuzzRecoveryOffset(f *testing.F) {
	const a, b = "0190f7b2-8c1e-7000-8000-000000000001", "0190f7b2-8c1e-7000-8000-000000000002"
	for _, s := range []string{a, a + "~" + b, "~", a + "~", "~" + b, "x~y~z", strings.Repeat("a", 64) + "~" + strings.Repeat("b", 65), "", "\x00~\xff"} {
		f.Add(s, "pid", true, false)
	}
	f.Add("5", "", false, true)
	h := chat.NewHistory(noStore{}, 4)
	base := time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)
	for i, id := range []string{a, b} {
		h.Observe(chat.Message{ID: id, Text: "x", CreatedAt: base.Add(time.Duration(i) * time.Millisecond)})
	}
	f.Fuzz(func(t *testing.T, offset, pid string, withPID, offsetNotString bool) {
		auth := map[string]any{"offset": offset}
		if offsetNotString {
			auth["offset"] = len(offset)
		}
		if withPID {
			auth["pid"] = pid
		}
		got := resumeOffset(auth)
		switch {
		case !withPID || offsetNotString:
			if got != "" {
				t.Fatalf("resumeOffset(%v) = %q, want none", auth, got)
			}
		case len(offset) > maxOffsetLength:
			if got != "" {
				t.Fatalf("an offset of %d bytes was kept", len(offset))
			}
		case got != offset:
			t.Fatalf("resumeOffset(%v) = %q", auth, got)
		}
		last, high := parseOffset(offset)
		if last != "" && high == "" {
			t.Fatalf("parseOffset(%q) = %q, %q: an empty high-water id", offset, last, high)
		}
		if strings.Contains(last, offsetSep) {
			t.Fatalf("parseOffset(%q): the last id %q holds the separator", offset, last)
		}
		if last != "" && !strings.Contains(high, offsetSep) {
			if l2, h2 := parseOffset(makeOffset(last, high)); l2 != last || h2 != high {
				t.Fatalf("makeOffset(%q, %q) reads back as %q, %q", last, high, l2, h2)
			}
		}
		if _, found := h.Since(last); found != (last == a || last == b) {
			t.Fatalf("Since(%q) found %v", last, found)
		}
		_, _ = h.Cursor(context.Background(), high)
	})
}
