package directlog

import (
	"context"
	"fmt"
	"sync"

	"github.com/scalable-chat-go/server/chat"
)

// tombstones writes deletions to the store beside the message writer: a
// tombstone hides its message whether it is stored before or after it
// (chat.Store), so it needs no place in the messages' order. They are few:
// each batch is what waited while the last one was written.
type tombstones struct {
	o *Options
	l *Log

	mu      sync.Mutex
	queue   []delItem
	closed  bool
	wake    chan struct{}
	stopped chan struct{}
	// abort ends when Close gave up waiting.
	abort    context.Context
	abortNow context.CancelFunc
}

type delItem struct {
	d    chat.Deletion
	done func(error)
}

func newTombstones(l *Log) *tombstones {
	t := &tombstones{o: &l.o, l: l, wake: make(chan struct{}, 1), stopped: make(chan struct{})}
	t.abort, t.abortNow = context.WithCancel(context.Background())
	go t.run()
	return t
}

// Delete admits d; see chat.Log. It shares the Buffer bound with messages.
func (l *Log) Delete(d chat.Deletion, done func(error)) error {
	t := l.dels
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return fmt.Errorf("delete through a closed log: %w", chat.ErrUnavailable)
	}
	if len(t.queue) >= t.o.Buffer {
		return fmt.Errorf("write buffer full (%d tombstones): %w", t.o.Buffer, chat.ErrUnavailable)
	}
	t.queue = append(t.queue, delItem{d: d, done: done})
	select {
	case t.wake <- struct{}{}:
	default:
	}
	return nil
}

func (t *tombstones) run() {
	defer close(t.stopped)
	for {
		t.mu.Lock()
		batch, closed := t.queue, t.closed
		t.queue = nil
		t.mu.Unlock()
		if len(batch) == 0 {
			if closed {
				return
			}
			<-t.wake
			continue
		}
		if !t.write(batch) {
			t.fail(batch, fmt.Errorf("%w: shutdown timeout: %d tombstones were not stored", chat.ErrLost, len(batch)))
			return
		}
	}
}

// write stores batch through the Log's writer (its retries, health and
// metrics); false when Close gave up first.
func (t *tombstones) write(batch []delItem) bool {
	ds := make([]chat.Deletion, len(batch))
	for i, it := range batch {
		ds[i] = it.d
	}
	if _, err := t.l.writer.WriteWith(t.abort, nil, ds); err != nil {
		return false
	}
	for _, it := range batch {
		it.done(nil)
	}
	return true
}

func (t *tombstones) fail(batch []delItem, err error) {
	t.o.Logger.Error("deletions lost", "count", len(batch), "err", err)
	for _, it := range batch {
		it.done(err)
	}
}

// close stops admission and waits for what was admitted, until ctx ends;
// then it fails the rest.
func (t *tombstones) close(ctx context.Context) {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	select {
	case t.wake <- struct{}{}:
	default:
	}
	select {
	case <-t.stopped:
		return
	case <-ctx.Done():
	}
	t.abortNow()
	<-t.stopped
	t.mu.Lock()
	left := t.queue
	t.queue = nil
	t.mu.Unlock()
	if len(left) > 0 {
		t.fail(left, fmt.Errorf("%w: shutdown timeout: %d tombstones were not stored", chat.ErrLost, len(left)))
	}
}
