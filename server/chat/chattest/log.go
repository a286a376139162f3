package chattest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scalable-chat-go/server/chat"
)

// TestLog runs the Log contract against logs made by open, which also
// returns a function reading back every message the log made durable (for
// example from its store), in any order.
func TestLog(t *testing.T, open func(t *testing.T) (chat.Log, func() []chat.Message)) {
	t.Run("EveryAdmittedMessageBecomesDurableOnce", func(t *testing.T) {
		l, stored := open(t)
		const senders, each = 5, 200
		var wg sync.WaitGroup
		var calls, failures atomic.Int64
		all := make(chan struct{}, senders*each)
		for s := range senders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					m := Msg(fmt.Sprintf("s%d-%03d", s, i), fmt.Sprintf("from %d #%d", s, i), s*1000+i)
					err := l.Append(m, func(err error) {
						if calls.Add(1) > senders*each {
							t.Errorf("done called more often than messages appended")
						}
						if err != nil {
							failures.Add(1)
						}
						all <- struct{}{}
					})
					if err != nil {
						t.Errorf("Append: %v", err)
						all <- struct{}{}
					}
				}
			}()
		}
		wg.Wait()
		waitN(t, all, senders*each, 30*time.Second)
		if failures.Load() > 0 {
			t.Fatalf("%d messages failed", failures.Load())
		}
		got := stored()
		counts := map[string]int{}
		for _, m := range got {
			counts[m.ID]++
		}
		if len(counts) != senders*each {
			t.Fatalf("%d distinct messages durable, want %d", len(counts), senders*each)
		}
		for id, n := range counts {
			if n != 1 {
				t.Fatalf("message %s stored %d times", id, n)
			}
		}
		for _, m := range got {
			if m.Username != "user-"+m.ID {
				t.Fatalf("message %s has username %q", m.ID, m.Username)
			}
		}
		closeLog(t, l)
	})

	t.Run("CloseDrainsAdmittedMessages", func(t *testing.T) {
		l, stored := open(t)
		var done atomic.Int64
		for i := range 300 {
			if err := l.Append(Msg(fmt.Sprintf("d%03d", i), "drain", i), func(err error) {
				if err == nil {
					done.Add(1)
				}
			}); err != nil {
				t.Fatalf("Append: %v", err)
			}
		}
		closeLog(t, l)
		if done.Load() != 300 {
			t.Fatalf("%d of 300 reported durable when Close returned", done.Load())
		}
		if n := len(stored()); n != 300 {
			t.Fatalf("%d of 300 stored after Close", n)
		}
	})

	t.Run("AppendAfterCloseIsUnavailable", func(t *testing.T) {
		l, _ := open(t)
		closeLog(t, l)
		err := l.Append(Msg("late", "too late", 1), func(error) { t.Error("done called for a refused message") })
		if !errors.Is(err, chat.ErrUnavailable) {
			t.Fatalf("Append after Close = %v, want ErrUnavailable", err)
		}
	})
}

func closeLog(t *testing.T, l chat.Log) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := l.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func waitN(t *testing.T, ch <-chan struct{}, n int, d time.Duration) {
	t.Helper()
	deadline := time.After(d)
	for i := 0; i < n; i++ {
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("only %d of %d done callbacks within %v", i, n, d)
		}
	}
}
