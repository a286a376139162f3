package kafka

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/scalable-chat-go/server/chat"
)

// LogOptions configure a Log. Topic, Partitions, Buffer, Compression and
// RetryMax are the caller's to give: the configuration owns their defaults
// (the settings named below), and NewLog refuses a value out of range.
type LogOptions struct {
	Connection
	// Topic receives the messages (KAFKA_TOPIC). It is created with
	// Partitions partitions, at least 1 (KAFKA_PARTITIONS), when missing.
	Topic      string
	Partitions int32
	// Buffer is how many admitted messages may wait for the broker's
	// acknowledgement, at least 1 (PRODUCER_BUFFER); past it Append
	// refuses.
	Buffer int
	// Compression is the record batches' codec: none, gzip, snappy, lz4 or
	// zstd (KAFKA_COMPRESSION; gzip is the codec every client reads,
	// kafkajs included).
	Compression string
	// RetryMax bounds the back-off between attempts to create the producer
	// again while the broker is away (KAFKA_RETRY_MAX); RetryMin is the
	// first wait (default 100 ms, no setting).
	RetryMin, RetryMax time.Duration
	Logger             *slog.Logger
	// Registerer receives the metrics; nil registers none.
	Registerer prometheus.Registerer
}

func (o *LogOptions) check() error {
	var errs []error
	if !ValidTopic(o.Topic) {
		errs = append(errs, fmt.Errorf("kafka topic %q: not a valid topic name (KAFKA_TOPIC)", o.Topic))
	}
	if o.Partitions < 1 {
		errs = append(errs, fmt.Errorf("kafka: Partitions %d: want at least 1 (KAFKA_PARTITIONS)", o.Partitions))
	}
	if o.Buffer < 1 {
		errs = append(errs, fmt.Errorf("kafka: Buffer %d: want at least 1 (PRODUCER_BUFFER)", o.Buffer))
	}
	if _, ok := Compressions[o.Compression]; !ok {
		errs = append(errs, fmt.Errorf("kafka compression %q: want none, gzip, snappy, lz4 or zstd (KAFKA_COMPRESSION)", o.Compression))
	}
	if o.RetryMax <= 0 {
		errs = append(errs, fmt.Errorf("kafka: RetryMax %v: want a positive duration (KAFKA_RETRY_MAX)", o.RetryMax))
	}
	if o.RetryMin <= 0 {
		o.RetryMin = 100 * time.Millisecond
	}
	o.RetryMax = max(o.RetryMax, o.RetryMin)
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return errors.Join(errs...)
}

// Compressions are the codecs LogOptions.Compression accepts.
var Compressions = map[string]sarama.CompressionCodec{
	"none":   sarama.CompressionNone,
	"gzip":   sarama.CompressionGZIP,
	"snappy": sarama.CompressionSnappy,
	"lz4":    sarama.CompressionLZ4,
	"zstd":   sarama.CompressionZSTD,
}

// drainTimeout bounds the wait for a closing producer to hand back every
// record it holds. sarama answers each record within its retries; this only
// guards against a producer that never does (then its records are sent
// again by the next one).
const drainTimeout = 2 * time.Minute

// item is an admitted message until its done callback has fired.
type item struct {
	seq  uint64
	m    chat.Message
	del  *chat.Deletion // a tombstone's record instead of m's
	done func(error)
}

// record is it's record.
func (it *item) record(topic string) *sarama.ProducerMessage {
	if it.del != nil {
		return deletionRecord(topic, *it.del)
	}
	return newRecord(topic, it.m)
}

// Log is a chat.Log that produces each message to Kafka; see the package
// documentation for its guarantees.
type Log struct {
	o   LogOptions
	cfg *sarama.Config
	m   *producerMetrics

	mu       sync.Mutex
	incoming []*item // admitted, not yet taken by the runner
	pending  int     // admitted, done not yet called
	seq      uint64
	closed   bool
	client   sarama.Client // the current producer's, for Ping

	// lostOnClose counts what the runner failed when Close gave up; read
	// by Close after the runner stopped.
	lostOnClose int
	// everUp is set by the runner once a producer started.
	everUp bool

	wake      chan struct{} // something was admitted, or Close was called
	abort     chan struct{} // Close gave up waiting: fail what is left
	abortOnce sync.Once
	stopped   chan struct{} // the runner returned
	bg        sync.WaitGroup

	healthMu sync.Mutex
	h        health
}

// NewLog starts a Log. It returns at once: the topic is created and the
// producer connected in the background, retrying while the broker is
// away, and messages are admitted meanwhile. It fails only on a bad
// configuration.
func NewLog(o LogOptions) (*Log, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	codec := Compressions[o.Compression]
	cfg, err := o.Connection.config()
	if err != nil {
		return nil, err
	}
	cfg.Producer.Idempotent = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Net.MaxOpenRequests = 1
	cfg.Producer.Retry.Max = 5
	cfg.Producer.Retry.Backoff = 200 * time.Millisecond
	cfg.Producer.Return.Successes = true
	cfg.Producer.Return.Errors = true
	cfg.Producer.Compression = codec
	cfg.Producer.Timeout = 10 * time.Second
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("kafka producer configuration: %w", err)
	}
	l := &Log{
		o:       o,
		cfg:     cfg,
		m:       newProducerMetrics(o.Registerer),
		wake:    make(chan struct{}, 1),
		abort:   make(chan struct{}),
		stopped: make(chan struct{}),
	}
	l.h = health{since: time.Now(), err: errors.New("connecting")}
	go l.run()
	return l, nil
}

// Append admits m; see chat.Log. done fires when the broker acknowledged m.
func (l *Log) Append(m chat.Message, done func(error)) error {
	return l.admit(&item{m: m, done: done})
}

// Delete admits d's record (see deletionRecord) like a message: in the
// same order and buffer, done firing when the broker acknowledged it.
func (l *Log) Delete(d chat.Deletion, done func(error)) error {
	return l.admit(&item{m: chat.Message{ID: d.ID}, del: &d, done: done})
}

func (l *Log) admit(it *item) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return fmt.Errorf("append to a closed log: %w", chat.ErrUnavailable)
	}
	if l.pending >= l.o.Buffer {
		l.mu.Unlock()
		l.m.refused.Inc()
		return fmt.Errorf("producer buffer full (%d messages waiting for Kafka): %w", l.o.Buffer, chat.ErrUnavailable)
	}
	l.seq++
	it.seq = l.seq
	l.incoming = append(l.incoming, it)
	l.pending++
	n := l.pending
	l.mu.Unlock()
	l.m.buffer.Set(float64(n))
	l.poke()
	return nil
}

func (l *Log) poke() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// Pending returns how many admitted messages wait for the broker.
func (l *Log) Pending() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.pending
}

// Ping returns nil while the producer can deliver: it has a connection and
// the broker answers a metadata request within ctx. Otherwise it says what
// fails, since when, and how many messages wait.
func (l *Log) Ping(ctx context.Context) error {
	l.healthMu.Lock()
	h := l.h
	l.healthMu.Unlock()
	if h.err != nil {
		return fmt.Errorf("cannot deliver to Kafka since %s (%d messages waiting): %w",
			h.since.UTC().Format(time.RFC3339), l.Pending(), h.err)
	}
	l.mu.Lock()
	client := l.client
	l.mu.Unlock()
	if client == nil {
		return errors.New("no producer yet")
	}
	res := make(chan error, 1)
	go func() { res <- client.RefreshMetadata(l.o.Topic) }()
	select {
	case err := <-res:
		if err != nil {
			return fmt.Errorf("kafka metadata: %w", err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("kafka metadata: %w", ctx.Err())
	}
}

// Close stops admission and waits, until ctx ends, for the broker to
// acknowledge every admitted message; it fails, counts and logs the rest.
func (l *Log) Close(ctx context.Context) error {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	l.poke()
	var err error
	select {
	case <-l.stopped:
	case <-ctx.Done():
		l.abortOnce.Do(func() { close(l.abort) })
		<-l.stopped
		if lost := l.lostOnClose; lost > 0 {
			err = fmt.Errorf("%w: shutdown timeout: %d accepted messages were not acknowledged by Kafka", chat.ErrLost, lost)
		}
	}
	// Old producers still handing back records, or a connection attempt
	// to a broker that does not answer: give them a moment of what is left
	// of ctx, then leave them to end on their own within sarama's timeouts
	// (no record of ours is in them any more).
	bgDone := make(chan struct{})
	go func() { l.bg.Wait(); close(bgDone) }()
	linger := time.NewTimer(2 * time.Second)
	defer linger.Stop()
	select {
	case <-bgDone:
	case <-ctx.Done():
	case <-linger.C:
	}
	return err
}

// run owns the producers: it creates one, feeds it, collects its answers,
// and when it fails closes it and starts again with what is unacknowledged.
func (l *Log) run() {
	defer close(l.stopped)
	var unsent []*item
	backoff := l.o.RetryMin
	topicReady := false
	attempt := 0
	for {
		if l.aborted() {
			l.failAll(unsent)
			return
		}
		if l.finished(unsent) {
			return
		}
		attempt++
		client, p, err := l.startProducer(unsent, !topicReady)
		if client != nil || errors.Is(err, errNoProducer) {
			topicReady = true
		}
		if errors.Is(err, errGaveUp) {
			continue // the loop's start fails or finishes what is left
		}
		if err != nil {
			l.m.errors.Inc()
			l.down(err, attempt, backoff)
			select {
			case <-time.After(backoff):
			case <-l.abort:
			case <-l.wake: // Close: the loop's start sees whether anything is left
			}
			backoff = min(2*backoff, l.o.RetryMax)
			continue
		}
		backoff = l.o.RetryMin
		attempt = 0
		l.mu.Lock()
		l.client = client
		l.mu.Unlock()
		unsent = l.session(client, p, unsent)
	}
}

// errGaveUp is startProducer's answer when Close gave up waiting, or when
// the Log was closed with nothing left to send.
var errGaveUp = errors.New("stopped waiting for the producer")

// errNoProducer wraps a failure to start the producer once the topic
// exists.
var errNoProducer = errors.New("the Kafka producer did not start")

// startProducer creates the topic when ensure is set, then the producer,
// aside, so that Close need not wait for a broker that does not answer
// (sarama's dial and read timeouts): when Close gives up, or leaves
// nothing to send, the attempt is left to end on its own, and what it made
// is closed.
func (l *Log) startProducer(unsent []*item, ensure bool) (sarama.Client, sarama.AsyncProducer, error) {
	type result struct {
		c   sarama.Client
		p   sarama.AsyncProducer
		err error
	}
	ch := make(chan result, 1)
	l.bg.Add(1)
	go func() {
		defer l.bg.Done()
		if ensure {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			err := EnsureTopics(ctx, l.o.Connection, l.o.Partitions, l.o.Topic)
			cancel()
			if err != nil {
				ch <- result{err: err}
				return
			}
		}
		c, p, err := l.newProducer()
		if err != nil {
			err = fmt.Errorf("%w: %w", errNoProducer, err)
		}
		ch <- result{c, p, err}
	}()
	leave := func() {
		l.bg.Add(1)
		go func() {
			defer l.bg.Done()
			if r := <-ch; r.err == nil {
				_ = r.p.Close()
				_ = r.c.Close()
			}
		}()
	}
	for {
		select {
		case r := <-ch:
			return r.c, r.p, r.err
		case <-l.abort:
			leave()
			return nil, nil, errGaveUp
		case <-l.wake:
			if l.finished(unsent) {
				leave()
				return nil, nil, errGaveUp
			}
		}
	}
}

func (l *Log) newProducer() (sarama.Client, sarama.AsyncProducer, error) {
	client, err := sarama.NewClient(l.o.Brokers, l.cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to Kafka %v: %w", l.o.Brokers, err)
	}
	p, err := sarama.NewAsyncProducerFromClient(client)
	if err != nil {
		_ = client.Close()
		return nil, nil, fmt.Errorf("start the Kafka producer: %w", err)
	}
	return client, p, nil
}

// session feeds p, in order, with unsent and then with what is admitted,
// and settles each record p answers for. It returns when p failed (after
// collecting every answer p still had, so that nothing is in two producers
// at once), with the records to send again, oldest first; or when the Log
// is closed and drained, or aborted.
func (l *Log) session(client sarama.Client, p sarama.AsyncProducer, unsent []*item) []*item {
	succ, errs := p.Successes(), p.Errors()
	inflight := make(map[uint64]*item)
	var failed []*item
	var firstErr error
	broken := false
	var drainDeadline <-chan time.Time
	var next *sarama.ProducerMessage // the record of unsent[0]
	up := false
	resent := len(unsent)

	for {
		if !broken {
			unsent = l.take(unsent)
			if !up {
				// The producer exists: the broker answered its id request.
				up = true
				l.up(resent)
			}
		}
		if broken && succ == nil && errs == nil {
			// Every record p held is answered for: start again.
			_ = client.Close()
			l.restarting(firstErr, len(failed), len(unsent))
			slices.SortFunc(failed, bySeq)
			return append(failed, unsent...)
		}
		if !broken && len(unsent) == 0 && len(inflight) == 0 && l.closing() {
			l.mu.Lock()
			l.client = nil
			l.mu.Unlock()
			if err := p.Close(); err != nil {
				l.o.Logger.Warn("closing the Kafka producer", "err", err)
			}
			_ = client.Close()
			return nil
		}
		var in chan<- *sarama.ProducerMessage
		if !broken && len(unsent) > 0 {
			if next == nil {
				next = unsent[0].record(l.o.Topic)
				next.Metadata = unsent[0]
			}
			in = p.Input()
		}
		select {
		case in <- next:
			it := unsent[0]
			inflight[it.seq] = it
			unsent[0] = nil
			unsent = unsent[1:]
			next = nil
		case s, ok := <-succ:
			if !ok {
				succ = nil
				continue
			}
			it := s.Metadata.(*item)
			if _, mine := inflight[it.seq]; !mine {
				continue
			}
			delete(inflight, it.seq)
			l.settle(it, nil)
		case e, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			it := e.Msg.Metadata.(*item)
			if _, mine := inflight[it.seq]; !mine {
				continue
			}
			delete(inflight, it.seq)
			l.m.errors.Inc()
			if permanent(e.Err) {
				l.m.lost.WithLabelValues("rejected").Inc()
				l.o.Logger.Error("Kafka refused a message; it is not stored", "id", it.m.ID, "err", e.Err)
				l.settle(it, fmt.Errorf("%w: Kafka refused it: %v", chat.ErrLost, e.Err))
			} else {
				failed = append(failed, it)
			}
			if !broken {
				// Any error may leave sarama's idempotent sequence state
				// behind: close this producer, collect what it still
				// holds, and start a new one.
				broken, firstErr = true, e.Err
				p.AsyncClose()
				drainDeadline = time.After(drainTimeout)
				l.mu.Lock()
				l.client = nil
				l.mu.Unlock()
			}
		case <-drainDeadline:
			l.o.Logger.Error("a closing Kafka producer did not answer for its records; sending them again with a new one",
				"records", len(inflight), "waited", drainTimeout)
			for _, it := range inflight {
				failed = append(failed, it)
			}
			l.discard(client, succ, errs)
			l.restarting(errors.New("the closing producer did not answer for its records"), len(failed), len(unsent))
			slices.SortFunc(failed, bySeq)
			return append(failed, unsent...)
		case <-l.wake:
		case <-l.abort:
			if !broken {
				p.AsyncClose()
			}
			l.discard(client, succ, errs)
			rest := append(failed, unsent...)
			for _, it := range inflight {
				rest = append(rest, it)
			}
			slices.SortFunc(rest, bySeq)
			l.failAll(rest)
			return nil
		}
	}
}

func bySeq(a, b *item) int { return cmp.Compare(a.seq, b.seq) }

// discard drains an abandoned producer's channels, then closes its client.
func (l *Log) discard(client sarama.Client, succ <-chan *sarama.ProducerMessage, errs <-chan *sarama.ProducerError) {
	l.bg.Add(1)
	go func() {
		defer l.bg.Done()
		for succ != nil || errs != nil {
			select {
			case _, ok := <-succ:
				if !ok {
					succ = nil
				}
			case _, ok := <-errs:
				if !ok {
					errs = nil
				}
			}
		}
		_ = client.Close()
	}()
}

// take appends what was admitted since the last call to unsent.
func (l *Log) take(unsent []*item) []*item {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.incoming) == 0 {
		return unsent
	}
	unsent = append(unsent, l.incoming...)
	l.incoming = nil
	return unsent
}

func (l *Log) settle(it *item, err error) {
	if err == nil {
		l.m.acked.Inc()
	}
	it.done(err)
	l.mu.Lock()
	l.pending--
	n := l.pending
	l.mu.Unlock()
	l.m.buffer.Set(float64(n))
}

func (l *Log) closing() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

// finished reports that the Log is closed and every message settled.
func (l *Log) finished(unsent []*item) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed && l.pending == 0 && len(unsent) == 0
}

func (l *Log) aborted() bool {
	select {
	case <-l.abort:
		return true
	default:
		return false
	}
}

// failAll fails items and everything admitted but not taken: Close gave up.
func (l *Log) failAll(items []*item) {
	items = l.take(items)
	if len(items) == 0 {
		return
	}
	err := fmt.Errorf("%w: shutdown timeout: not acknowledged by Kafka", chat.ErrLost)
	l.m.lost.WithLabelValues("shutdown").Add(float64(len(items)))
	l.o.Logger.Error("accepted messages not delivered to Kafka before the shutdown timeout", "count", len(items))
	l.lostOnClose += len(items)
	for _, it := range items {
		l.settle(it, err)
	}
}

func (l *Log) down(err error, attempt int, backoff time.Duration) {
	l.healthMu.Lock()
	first := l.h.err == nil
	if first {
		l.h.since = time.Now()
	}
	l.h.err = err
	l.healthMu.Unlock()
	l.m.up.Set(0)
	if first || backoff < l.o.RetryMax {
		l.o.Logger.Warn("Kafka producer cannot start; retrying", "attempt", attempt, "retry_in", backoff,
			"waiting", l.Pending(), "err", err)
	}
}

func (l *Log) up(resent int) {
	l.healthMu.Lock()
	was, since := l.h.err, l.h.since
	l.h = health{}
	l.healthMu.Unlock()
	l.m.up.Set(1)
	switch {
	case was != nil && l.everUp:
		l.o.Logger.Info("Kafka producer delivering again", "topic", l.o.Topic,
			"unavailable_for", time.Since(since).Round(time.Millisecond), "sending_again", resent)
	case !l.everUp:
		l.o.Logger.Info("Kafka producer connected", "topic", l.o.Topic, "waiting", resent)
	}
	l.everUp = true
}

func (l *Log) restarting(err error, failed, unsent int) {
	l.m.restarts.Inc()
	l.healthMu.Lock()
	if l.h.err == nil {
		l.h.since = time.Now()
	}
	l.h.err = err
	l.healthMu.Unlock()
	l.m.up.Set(0)
	l.o.Logger.Warn("Kafka producer failed; starting a new one and sending the unacknowledged records again",
		"unacknowledged", failed+unsent, "err", err)
}

// permanent reports whether a produce error is about the record itself, so
// that sending it again cannot succeed.
func permanent(err error) bool {
	return errors.Is(err, sarama.ErrMessageSizeTooLarge) || errors.Is(err, sarama.ErrInvalidMessage) ||
		errors.Is(err, sarama.ErrInvalidRecord)
}
