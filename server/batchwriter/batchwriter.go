// Package batchwriter writes batches of messages (and tombstones) to a chat.Store, one
// transaction each, retrying a failed batch with exponential back-off until
// it is written or the caller stops it: the part that the direct Log
// (directlog) and the Kafka consumer group (kafka) share, with the health,
// the log lines and the metrics of the writes.
//
// Guarantees: a batch is written whole or retried whole (SaveBatch is
// idempotent by id, so a retry after an unclear failure stores nothing
// twice); Write returns only once the batch is committed, or when its
// context ends between attempts. While writes fail, Health says since when
// and why, chat_store_up is 0, and one line is logged when the outage
// starts and then one per doubling of the wait, and one when writes resume.
package batchwriter

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scalable-chat-go/server/chat"
)

// Batching is how a Log makes its batches and retries them: the settings
// that the direct writer and the Kafka consumer share. BatchSize, BatchWait
// and RetryMax are the caller's to give (the configuration owns their
// defaults); Check refuses a value out of range.
type Batching struct {
	// BatchSize is the most messages one transaction writes, at least 1
	// (BATCH_SIZE).
	BatchSize int
	// BatchWait is how long a batch may wait to fill; 0 writes what is there
	// at once (BATCH_WAIT).
	BatchWait time.Duration
	// RetryMax bounds the back-off between attempts while the store fails
	// (DB_RETRY_MAX); RetryMin is the first wait (default 100 ms, no
	// setting).
	RetryMin, RetryMax time.Duration
}

// Check returns an error for each value out of range, naming its setting
// (and who for), and sets RetryMin's default.
func (b *Batching) Check(who string) []error {
	var errs []error
	if b.BatchSize < 1 {
		errs = append(errs, fmt.Errorf("%s: BatchSize %d: want at least 1 (BATCH_SIZE)", who, b.BatchSize))
	}
	if b.BatchWait < 0 {
		errs = append(errs, fmt.Errorf("%s: BatchWait %v: want 0 or more (BATCH_WAIT)", who, b.BatchWait))
	}
	if b.RetryMax <= 0 {
		errs = append(errs, fmt.Errorf("%s: RetryMax %v: want a positive duration (DB_RETRY_MAX)", who, b.RetryMax))
	}
	if b.RetryMin <= 0 {
		b.RetryMin = min(100*time.Millisecond, max(b.RetryMax, time.Millisecond))
	}
	b.RetryMax = max(b.RetryMax, b.RetryMin)
	return errs
}

// Options configure a Writer: the retries of Batching (its BatchSize and
// BatchWait are the caller's own business), and defaults for the rest.
type Options struct {
	// RetryMax is required; see Batching.
	RetryMin, RetryMax time.Duration
	// AttemptTimeout bounds one attempt (default 30 s).
	AttemptTimeout time.Duration
	// FinishAttempts lets an attempt under way when Write's context ends
	// run to its end (within AttemptTimeout), so that a batch being
	// committed is not given up: the direct writer's choice at shutdown.
	// Otherwise the attempt is cancelled with the context (the consumer,
	// whose batch is consumed again by the next member).
	FinishAttempts bool
	Logger         *slog.Logger
	// Registerer receives the metrics; nil registers none.
	Registerer prometheus.Registerer
}

func (o *Options) defaults() error {
	if o.RetryMax <= 0 {
		return fmt.Errorf("batchwriter: RetryMax %v: want a positive duration (DB_RETRY_MAX)", o.RetryMax)
	}
	if o.RetryMin <= 0 {
		o.RetryMin = min(100*time.Millisecond, o.RetryMax)
	}
	o.RetryMax = max(o.RetryMax, o.RetryMin)
	if o.AttemptTimeout <= 0 {
		o.AttemptTimeout = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return nil
}

// Writer writes batches to one store. Write may be called from several
// goroutines (the consumer writes one partition's batches from each); the
// health is the last attempt's, whichever goroutine made it.
type Writer struct {
	store chat.Store
	o     Options
	m     *metrics

	mu    sync.Mutex
	err   error     // the last attempt's error, nil once one succeeded
	since time.Time // when attempts started to fail
}

// New returns a Writer on store and registers its metrics; it fails on
// options without a RetryMax.
func New(store chat.Store, o Options) (*Writer, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	return &Writer{store: store, o: o, m: newMetrics(o.Registerer)}, nil
}

// Write stores msgs in one transaction, retrying with back-off while the
// store fails, and returns what the store refused for its data (see
// chat.Store). It returns ctx's error, and stores nothing more, when ctx
// ends first.
func (w *Writer) Write(ctx context.Context, msgs []chat.Message) ([]chat.Rejected, error) {
	return w.WriteWith(ctx, msgs, nil)
}

// WriteWith is Write, then the tombstones dels in a second transaction,
// retried together: a tombstone hides its message whichever of the two is
// stored first (chat.Store), so they need not share one, and saving msgs
// again after the tombstones failed stores nothing twice.
func (w *Writer) WriteWith(ctx context.Context, msgs []chat.Message, dels []chat.Deletion) ([]chat.Rejected, error) {
	if len(msgs) == 0 && len(dels) == 0 {
		return nil, nil
	}
	backoff := w.o.RetryMin
	for attempt := 1; ; attempt++ {
		actx := ctx
		if w.o.FinishAttempts {
			actx = context.WithoutCancel(ctx)
		}
		actx, cancel := context.WithTimeout(actx, w.o.AttemptTimeout)
		start := time.Now()
		var rejected []chat.Rejected
		var err error
		if len(msgs) > 0 {
			rejected, err = w.store.SaveBatch(actx, msgs)
		}
		if err == nil && len(dels) > 0 {
			err = w.store.SaveDeletions(actx, dels)
		}
		cancel()
		w.m.latency.Observe(time.Since(start).Seconds())
		if err == nil {
			w.recovered()
			if len(msgs) > 0 {
				w.m.batchSize.Observe(float64(len(msgs)))
				w.m.stored.Add(float64(len(msgs) - len(rejected)))
			}
			return rejected, nil
		}
		if ctx.Err() != nil && !w.o.FinishAttempts {
			return nil, ctx.Err()
		}
		w.m.errors.Inc()
		w.failing(err, attempt, backoff, len(msgs)+len(dels))
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
		backoff = min(2*backoff, w.o.RetryMax)
	}
}

// Health returns nil while the store takes writes, or since when and why
// writes fail.
func (w *Writer) Health() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return fmt.Errorf("writes failing since %s: %w", w.since.UTC().Format(time.RFC3339), w.err)
	}
	return nil
}

func (w *Writer) failing(err error, attempt int, backoff time.Duration, n int) {
	w.mu.Lock()
	first := w.err == nil
	if first {
		w.since = time.Now()
	}
	w.err = err
	w.mu.Unlock()
	w.m.up.Set(0)
	// One line when the outage starts, then one per doubling of the wait.
	if first || backoff < w.o.RetryMax {
		w.o.Logger.Warn("store write failed; retrying the batch", "batch", n, "attempt", attempt, "retry_in", backoff, "err", err)
	}
}

func (w *Writer) recovered() {
	w.mu.Lock()
	was, since := w.err, w.since
	w.err, w.since = nil, time.Time{}
	w.mu.Unlock()
	w.m.up.Set(1)
	if was != nil {
		w.o.Logger.Info("store writes resumed", "down_for", time.Since(since).Round(time.Millisecond))
	}
}

// metrics are the writes'. With Kafka the consumer is what writes the
// store, so the names are the same whichever Log runs.
type metrics struct {
	batchSize prometheus.Histogram
	latency   prometheus.Histogram
	up        prometheus.Gauge
	errors    prometheus.Counter
	stored    prometheus.Counter
}

func newMetrics(r prometheus.Registerer) *metrics {
	m := &metrics{
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "chat_store_batch_size",
			Help:    "Messages written per store transaction.",
			Buckets: []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000},
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "chat_store_write_seconds",
			Help:    "Time to write one batch to the store, failed attempts included.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		up: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "chat_store_up",
			Help: "1 while the last store write succeeded, 0 while writes fail.",
		}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_store_write_errors_total",
			Help: "Failed batch writes (each is retried).",
		}),
		stored: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_messages_stored_total",
			Help: "Messages committed to the store (with Kafka a re-delivered message counts again; the store keeps it once).",
		}),
	}
	m.up.Set(1)
	if r != nil {
		r.MustRegister(m.batchSize, m.latency, m.up, m.errors, m.stored)
	}
	return m
}
