// Package directlog is the chat Log that writes accepted messages straight
// to a Store, in batches, from one background writer: the engine of a node
// that runs without Kafka.
//
// Guarantees: admission is bounded (Options.Buffer messages; past that
// Append refuses with chat.ErrUnavailable); every admitted message is
// written once per successful commit and its done callback fires after the
// commit; while the store is down the writer retries the same batch with
// exponential back-off (batchwriter), keeping order, and reports the outage
// through Health and metrics; Close drains what was admitted, until its
// context ends, and counts and logs what it could not write.
package directlog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scalable-chat-go/server/batchwriter"
	"github.com/scalable-chat-go/server/chat"
)

// Options configure a Log. Buffer and the Batching are the caller's to
// give: the configuration owns their defaults (the settings named), and New
// refuses a value out of range.
type Options struct {
	// Buffer is how many admitted messages may wait for the store, at least
	// 1 (WRITE_BUFFER).
	Buffer int
	// Batching: batches of at most BatchSize, waiting up to BatchWait to
	// fill (under load they fill sooner), retried while the store is down.
	batchwriter.Batching
	// OnStored, when set, is called with each committed batch, from the
	// writer goroutine, before the done callbacks.
	OnStored func([]chat.Message)
	Logger   *slog.Logger
	// Registerer receives the metrics; nil registers none.
	Registerer prometheus.Registerer
}

func (o *Options) check() error {
	errs := o.Batching.Check("directlog")
	if o.Buffer < 1 {
		errs = append(errs, fmt.Errorf("directlog: Buffer %d: want at least 1 (WRITE_BUFFER)", o.Buffer))
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return errors.Join(errs...)
}

type item struct {
	m    chat.Message
	done func(error)
}

// Log is a chat.Log over a chat.Store.
type Log struct {
	o      Options
	m      *metrics
	writer *batchwriter.Writer

	mu      sync.Mutex
	queue   []item
	closed  bool
	wake    chan struct{} // a message was queued, or Close was called
	stopped chan struct{} // the writer has returned
	// abort ends when Close gave up waiting: fail what is left.
	abort    context.Context
	abortNow context.CancelFunc

	dels *tombstones // deletions.go
}

// New starts a Log writing to store. It fails on options out of range.
func New(store chat.Store, o Options) (*Log, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	writer, err := batchwriter.New(store, batchwriter.Options{
		RetryMin: o.RetryMin, RetryMax: o.RetryMax, FinishAttempts: true, Logger: o.Logger, Registerer: o.Registerer,
	})
	if err != nil {
		return nil, err
	}
	l := &Log{
		o:       o,
		m:       newMetrics(o.Registerer),
		writer:  writer,
		wake:    make(chan struct{}, 1),
		stopped: make(chan struct{}),
	}
	l.abort, l.abortNow = context.WithCancel(context.Background())
	l.dels = newTombstones(l)
	go l.run()
	return l, nil
}

// Append admits m; see chat.Log.
func (l *Log) Append(m chat.Message, done func(error)) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return fmt.Errorf("append to a closed log: %w", chat.ErrUnavailable)
	}
	if len(l.queue) >= l.o.Buffer {
		l.mu.Unlock()
		l.m.refused.Inc()
		return fmt.Errorf("write buffer full (%d messages): %w", l.o.Buffer, chat.ErrUnavailable)
	}
	l.queue = append(l.queue, item{m: m, done: done})
	n := len(l.queue)
	l.mu.Unlock()
	l.m.depth.Set(float64(n))
	// The writer waits for a first message, then for a full batch or its
	// deadline: only those two wake it. A wake for every message would
	// cost a goroutine switch each, to find the batch not yet full.
	if n == 1 || n == l.o.BatchSize {
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
	return nil
}

// Health returns nil while the store takes writes, or since when and why
// writes fail.
func (l *Log) Health() error { return l.writer.Health() }

// Close stops admission, waits until every admitted message is written or
// ctx ends, and fails (counts, logs) what is left.
func (l *Log) Close(ctx context.Context) error {
	defer l.dels.close(ctx)
	l.mu.Lock()
	already := l.closed
	l.closed = true
	l.mu.Unlock()
	if !already {
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
	select {
	case <-l.stopped:
		return nil
	case <-ctx.Done():
	}
	l.abortNow()
	<-l.stopped
	l.mu.Lock()
	left := l.queue
	l.queue = nil
	l.mu.Unlock()
	if len(left) == 0 {
		return nil
	}
	err := fmt.Errorf("%w: shutdown timeout: %d accepted messages were not stored", chat.ErrLost, len(left))
	l.fail(left, "shutdown", err)
	return err
}

// run is the writer: it takes batches off the queue and stores them.
func (l *Log) run() {
	defer close(l.stopped)
	for {
		batch, closing := l.next()
		if len(batch) == 0 {
			if closing {
				return
			}
			continue
		}
		if !l.write(batch) {
			// Aborted: put the batch back for Close to fail.
			l.mu.Lock()
			l.queue = append(batch, l.queue...)
			l.mu.Unlock()
			return
		}
	}
}

// next waits for the first message, then up to BatchWait for the batch to
// fill, and takes it off the queue. closing reports that Close was called.
func (l *Log) next() (batch []item, closing bool) {
	for {
		l.mu.Lock()
		n, closing := len(l.queue), l.closed
		l.mu.Unlock()
		if n > 0 || closing {
			break
		}
		<-l.wake
	}
	deadline := time.NewTimer(l.o.BatchWait)
	defer deadline.Stop()
	for {
		l.mu.Lock()
		n, closing := len(l.queue), l.closed
		l.mu.Unlock()
		if n >= l.o.BatchSize || closing {
			break
		}
		select {
		case <-l.wake:
			continue
		case <-deadline.C:
		}
		break
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	n := min(len(l.queue), l.o.BatchSize)
	batch = make([]item, n)
	copy(batch, l.queue)
	// Shift rather than reslice, so the queue's array does not keep every
	// message ever written alive.
	rest := copy(l.queue, l.queue[n:])
	clear(l.queue[rest:])
	l.queue = l.queue[:rest]
	l.m.depth.Set(float64(rest))
	return batch, l.closed
}

// write stores batch, retrying with back-off while the store is down. It
// returns false when Close gave up waiting before the batch was stored.
func (l *Log) write(batch []item) bool {
	msgs := make([]chat.Message, len(batch))
	for i, it := range batch {
		msgs[i] = it.m
	}
	rejected, err := l.writer.Write(l.abort, msgs)
	if err != nil {
		return false
	}
	l.finish(batch, rejected)
	return true
}

func (l *Log) finish(batch []item, rejected []chat.Rejected) {
	bad := make(map[string]string, len(rejected))
	for _, r := range rejected {
		bad[r.Message.ID] = r.Reason
	}
	if l.o.OnStored != nil {
		stored := make([]chat.Message, 0, len(batch)-len(bad))
		for _, it := range batch {
			if _, refused := bad[it.m.ID]; !refused {
				stored = append(stored, it.m)
			}
		}
		l.o.OnStored(stored)
	}
	for _, it := range batch {
		if reason, refused := bad[it.m.ID]; refused {
			l.m.lost.WithLabelValues("rejected").Inc()
			l.o.Logger.Error("store refused a message; it is not stored", "id", it.m.ID, "reason", reason)
			it.done(fmt.Errorf("%w: the store refused it: %s", chat.ErrLost, reason))
			continue
		}
		it.done(nil)
	}
}

func (l *Log) fail(items []item, reason string, err error) {
	l.m.lost.WithLabelValues(reason).Add(float64(len(items)))
	l.o.Logger.Error("accepted messages lost", "count", len(items), "reason", reason, "err", err)
	for _, it := range items {
		it.done(err)
	}
}
