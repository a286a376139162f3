package batchwriter_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scalable-chat-go/server/batchwriter"
	"github.com/scalable-chat-go/server/chat"
	"github.com/scalable-chat-go/server/chat/chattest"
	"github.com/scalable-chat-go/server/testkit"
)

// store fails SaveBatch while down is set, refuses messages whose text is
// "refuse", and can hold an attempt until release is closed.
type store struct {
	chat.Store
	mu       sync.Mutex
	down     bool
	attempts int
	saved    []chat.Message
	hold     chan struct{} // when set, SaveBatch waits for it to close
}

func (s *store) SaveBatch(ctx context.Context, b []chat.Message) ([]chat.Rejected, error) {
	s.mu.Lock()
	s.attempts++
	down, hold := s.down, s.hold
	s.mu.Unlock()
	if hold != nil {
		<-hold
	}
	if down {
		return nil, errors.New("connection refused")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var rejected []chat.Rejected
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range b {
		if m.Text == "refuse" {
			rejected = append(rejected, chat.Rejected{Message: m, Reason: "bad data"})
			continue
		}
		s.saved = append(s.saved, m)
	}
	return rejected, nil
}

func (s *store) set(down bool) { s.mu.Lock(); s.down = down; s.mu.Unlock() }

func batch(texts ...string) []chat.Message {
	out := make([]chat.Message, len(texts))
	for i, text := range texts {
		out[i] = chattest.Msg(text, "u", i)
		out[i].Text = text
	}
	return out
}

func TestWriteRetriesUntilTheStoreIsBack(t *testing.T) {
	s := &store{down: true}
	reg := prometheus.NewRegistry()
	w := newWriter(t, s, batchwriter.Options{RetryMin: time.Millisecond, RetryMax: 4 * time.Millisecond, Registerer: reg})
	done := make(chan error, 1)
	go func() {
		rejected, err := w.Write(context.Background(), batch("a", "refuse", "b"))
		if err == nil && (len(rejected) != 1 || rejected[0].Message.Text != "refuse") {
			err = errors.New("rejected: want the one refused")
		}
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	err := w.Health()
	if err == nil || !strings.Contains(err.Error(), "writes failing since") || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("Health during the outage = %v", err)
	}
	if up := testkit.Gathered(t, reg, "chat_store_up"); up != 0 {
		t.Errorf("chat_store_up = %v during the outage", up)
	}
	s.set(false)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("Write still retrying 5 s after the store came back (%d attempts)", s.attempts)
	}
	if err := w.Health(); err != nil {
		t.Errorf("Health after the outage = %v", err)
	}
	if len(s.saved) != 2 {
		t.Errorf("saved %v, want a and b", s.saved)
	}
	for name, want := range map[string]float64{"chat_store_up": 1, "chat_messages_stored_total": 2} {
		if got := testkit.Gathered(t, reg, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if errs := testkit.Gathered(t, reg, "chat_store_write_errors_total"); errs < 2 {
		t.Errorf("chat_store_write_errors_total = %v after several failed attempts", errs)
	}
}

func TestWriteStopsWhenItsContextEnds(t *testing.T) {
	s := &store{down: true}
	w := newWriter(t, s, batchwriter.Options{RetryMin: time.Millisecond, RetryMax: time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if _, err := w.Write(ctx, batch("a")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Write = %v, want the context's error", err)
	}
}

// With FinishAttempts an attempt under way when the context ends is not
// cancelled: the batch it commits is reported stored.
func TestFinishAttemptsLetsAnAttemptEnd(t *testing.T) {
	for _, finish := range []bool{true, false} {
		s := &store{hold: make(chan struct{})}
		w := newWriter(t, s, batchwriter.Options{RetryMax: time.Second, FinishAttempts: finish})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { _, err := w.Write(ctx, batch("a")); done <- err }()
		time.Sleep(20 * time.Millisecond)
		cancel()
		close(s.hold)
		err := <-done
		if finish && (err != nil || len(s.saved) != 1) {
			t.Errorf("FinishAttempts: Write = %v, saved %d, want the attempt to end and store", err, len(s.saved))
		}
		if !finish && (!errors.Is(err, context.Canceled) || len(s.saved) != 0) {
			t.Errorf("without FinishAttempts: Write = %v, saved %d, want the attempt cancelled", err, len(s.saved))
		}
	}
}

func newWriter(t *testing.T, s chat.Store, o batchwriter.Options) *batchwriter.Writer {
	t.Helper()
	w, err := batchwriter.New(s, o)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// RetryMax is the configuration's to decide: New refuses options without
// one rather than pick its own.
func TestRetryMaxIsRequired(t *testing.T) {
	if _, err := batchwriter.New(&store{}, batchwriter.Options{}); err == nil || !strings.Contains(err.Error(), "DB_RETRY_MAX") {
		t.Fatalf("New without RetryMax = %v, want an error naming DB_RETRY_MAX", err)
	}
}
