package directlog_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scalable-chat-go/server/batchwriter"
	"github.com/scalable-chat-go/server/chat"
	"github.com/scalable-chat-go/server/chat/chattest"
	"github.com/scalable-chat-go/server/directlog"
	"github.com/scalable-chat-go/server/sqlstore"
)

func openStore(t *testing.T) *sqlstore.Store {
	t.Helper()
	s, err := sqlstore.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "chat.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// newLog starts a Log on s with o, its zero sizes and RetryMax set to the
// tests' own values (the package takes no defaults for them).
func newLog(t *testing.T, s chat.Store, o directlog.Options) *directlog.Log {
	t.Helper()
	if o.Buffer == 0 {
		o.Buffer = 1000
	}
	if o.BatchSize == 0 {
		o.BatchSize = 100
	}
	if o.RetryMax == 0 {
		o.RetryMax = time.Second
	}
	l, err := directlog.New(s, o)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// Sizes and the longest back-off are the configuration's to decide: New
// refuses options without them rather than pick its own, and BatchWait 0
// means no wait (it meant 50 ms, so BATCH_WAIT=0 did not reach the Log).
func TestOptionsAreExplicit(t *testing.T) {
	_, err := directlog.New(openStore(t), directlog.Options{})
	for _, want := range []string{"WRITE_BUFFER", "BATCH_SIZE", "DB_RETRY_MAX"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("New with no options = %v, want it to name %s", err, want)
		}
	}
	s := openStore(t)
	l := newLog(t, s, directlog.Options{Batching: batchwriter.Batching{BatchSize: 1000}})
	defer l.Close(context.Background())
	done := make(chan error, 1)
	start := time.Now()
	if err := l.Append(chattest.Msg("at-once", "x", 1), func(err error) { done <- err }); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 40*time.Millisecond {
		t.Errorf("with BatchWait 0 a lone message was stored after %v, as if it waited for a batch", took)
	}
}

func readAll(t *testing.T, s chat.Store) []chat.Message {
	t.Helper()
	got, err := s.Recent(context.Background(), chat.GlobalRoom, 1_000_000, nil)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestLogContractOnSQLite(t *testing.T) {
	chattest.TestLog(t, func(t *testing.T) (chat.Log, func() []chat.Message) {
		s := openStore(t)
		l := newLog(t, s, directlog.Options{Batching: batchwriter.Batching{BatchWait: 5 * time.Millisecond}})
		t.Cleanup(func() { _ = l.Close(context.Background()) })
		return l, func() []chat.Message { return readAll(t, s) }
	})
}

// flaky is a store that fails while down is set, as a database outage does.
type flaky struct {
	chat.Store
	mu   sync.Mutex
	down bool
}

func (f *flaky) SaveBatch(ctx context.Context, b []chat.Message) ([]chat.Rejected, error) {
	f.mu.Lock()
	down := f.down
	f.mu.Unlock()
	if down {
		return nil, errors.New("connection refused")
	}
	return f.Store.SaveBatch(ctx, b)
}

func (f *flaky) set(down bool) { f.mu.Lock(); f.down = down; f.mu.Unlock() }

func TestOutageRetriesInOrderAndReportsHealth(t *testing.T) {
	s := openStore(t)
	f := &flaky{Store: s, down: true}
	l := newLog(t, f, directlog.Options{Batching: batchwriter.Batching{BatchWait: time.Millisecond, RetryMin: 5 * time.Millisecond, RetryMax: 20 * time.Millisecond}})
	done := make(chan error, 10)
	for i := range 10 {
		if err := l.Append(chattest.Msg(string(rune('a'+i)), "x", i), func(err error) { done <- err }); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if err := l.Health(); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Health still reported no error 5 s into a store outage")
		}
		time.Sleep(2 * time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("a message was settled (%v) while the store was down", err)
	case <-time.After(50 * time.Millisecond):
	}
	f.set(false)
	for i := range 10 {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("done(%v) after recovery", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%d of 10 messages stored 5 s after the store came back", i)
		}
	}
	if err := l.Health(); err != nil {
		t.Fatalf("Health still %v after recovery", err)
	}
	if n := len(readAll(t, s)); n != 10 {
		t.Fatalf("stored %d of 10", n)
	}
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestFullBufferRefusesAdmission(t *testing.T) {
	f := &flaky{Store: openStore(t), down: true}
	l := newLog(t, f, directlog.Options{Buffer: 3, Batching: batchwriter.Batching{BatchSize: 1, BatchWait: time.Millisecond, RetryMin: time.Hour, RetryMax: time.Hour}})
	admitted := 0
	var err error
	for i := range 10 {
		if err = l.Append(chattest.Msg(string(rune('a'+i)), "x", i), func(error) {}); err != nil {
			break
		}
		admitted++
	}
	if !errors.Is(err, chat.ErrUnavailable) {
		t.Fatalf("Append past the buffer = %v, want ErrUnavailable", err)
	}
	// One batch is with the writer, three wait in the buffer.
	if admitted < 3 || admitted > 4 {
		t.Fatalf("admitted %d with a buffer of 3", admitted)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := l.Close(ctx); !errors.Is(err, chat.ErrLost) {
		t.Fatalf("Close with the store down = %v, want a count of lost messages", err)
	}
}

func (f *flaky) SaveDeletions(ctx context.Context, d []chat.Deletion) error {
	f.mu.Lock()
	down := f.down
	f.mu.Unlock()
	if down {
		return errors.New("connection refused")
	}
	return f.Store.SaveDeletions(ctx, d)
}

// A deletion is durable once its tombstone is stored, through an outage,
// and its message is gone from the store's pages.
func TestDeletionThroughAnOutage(t *testing.T) {
	s := openStore(t)
	f := &flaky{Store: s}
	l := newLog(t, f, directlog.Options{Batching: batchwriter.Batching{BatchWait: time.Millisecond, RetryMin: 5 * time.Millisecond, RetryMax: 20 * time.Millisecond}})
	defer l.Close(context.Background())
	stored := make(chan error, 2)
	for _, id := range []string{"keep", "gone"} {
		if err := l.Append(chattest.Msg(id, "x", len(id)), func(err error) { stored <- err }); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if err := <-stored; err != nil {
			t.Fatal(err)
		}
	}
	f.set(true)
	done := make(chan error, 1)
	if err := l.Delete(chat.Deletion{ID: "gone", By: "mod", At: time.Now()}, func(err error) { done <- err }); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		t.Fatalf("durable during the outage: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	f.set(false)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the tombstone was not stored after the outage")
	}
	got, err := s.Recent(context.Background(), chat.GlobalRoom, 10, nil)
	if err != nil || len(got) != 1 || got[0].ID != "keep" {
		t.Fatalf("Recent = %+v %v, want only keep", got, err)
	}
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := l.Delete(chat.Deletion{ID: "keep"}, func(error) {}); !errors.Is(err, chat.ErrUnavailable) {
		t.Fatalf("Delete after Close = %v", err)
	}
}
