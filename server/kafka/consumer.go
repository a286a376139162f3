package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/scalable-chat-go/server/batchwriter"
	"github.com/scalable-chat-go/server/chat"
)

// ConsumerOptions configure a Consumer. Everything but RetryMin, AfterCommit,
// Logger and Registerer is the caller's to give: the configuration owns the
// defaults (the settings named below), and NewConsumer refuses a value out
// of range.
type ConsumerOptions struct {
	Connection
	// Topic is read (KAFKA_TOPIC); DLQTopic, another topic, receives what
	// cannot be stored (KAFKA_DLQ_TOPIC). Both are created with Partitions
	// partitions, at least 1, when missing (KAFKA_PARTITIONS).
	Topic, DLQTopic string
	Partitions      int32
	// Group is the consumer group (KAFKA_GROUP). A new group starts from
	// the oldest record.
	Group string
	// Batching: batches of at most BatchSize records of a partition,
	// waiting up to BatchWait to fill, retried while the store is down.
	batchwriter.Batching
	// BrokerRetryMax bounds the back-off while the broker is away
	// (KAFKA_RETRY_MAX); its first wait is Batching's RetryMin.
	BrokerRetryMax time.Duration
	// AfterCommit, when set, is called after each batch is committed to the
	// store and before its offsets are marked. It is a test hook: the fault
	// tests stop the process there.
	AfterCommit func(Committed)
	Logger      *slog.Logger
	// Registerer receives the metrics; nil registers none.
	Registerer prometheus.Registerer
}

// Committed describes a batch committed to the store whose offsets are not
// marked yet.
type Committed struct {
	Topic                   string
	Partition               int32
	FirstOffset, LastOffset int64
	// Records is the batch's record count; Stored how many messages it
	// gave the store (records that failed to decode and duplicates within
	// the batch excluded); Rejected how many of those the store refused.
	Records, Stored, Rejected int
}

func (o *ConsumerOptions) check() error {
	errs := o.Batching.Check("kafka")
	for _, t := range []struct{ name, v string }{{"KAFKA_TOPIC", o.Topic}, {"KAFKA_DLQ_TOPIC", o.DLQTopic}} {
		if !ValidTopic(t.v) {
			errs = append(errs, fmt.Errorf("kafka topic %q: not a valid topic name (%s)", t.v, t.name))
		}
	}
	if o.Topic == o.DLQTopic {
		errs = append(errs, fmt.Errorf("the dead-letter topic must differ from the topic %q", o.Topic))
	}
	if o.Partitions < 1 {
		errs = append(errs, fmt.Errorf("kafka: Partitions %d: want at least 1 (KAFKA_PARTITIONS)", o.Partitions))
	}
	if o.Group == "" {
		errs = append(errs, errors.New("kafka: no consumer group (KAFKA_GROUP)"))
	}
	if o.BrokerRetryMax <= 0 {
		errs = append(errs, fmt.Errorf("kafka: BrokerRetryMax %v: want a positive duration (KAFKA_RETRY_MAX)", o.BrokerRetryMax))
	}
	o.BrokerRetryMax = max(o.BrokerRetryMax, o.RetryMin)
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return errors.Join(errs...)
}

// Consumer is a consumer group member that writes the topic into a Store;
// see the package documentation for its guarantees.
type Consumer struct {
	writer *batchwriter.Writer
	o      ConsumerOptions
	cfg    *sarama.Config
	dlqCfg *sarama.Config
	m      *consumerMetrics

	cancel  context.CancelFunc
	stopped chan struct{}

	dlqMu sync.Mutex
	dlq   sarama.SyncProducer

	healthMu  sync.Mutex
	kafkaH    health
	inSession bool
}

// NewConsumer starts a consumer group member writing to store. It returns
// at once: it joins the group in the background, retrying while the broker
// is away. It fails only on a bad configuration.
func NewConsumer(store chat.Store, o ConsumerOptions) (*Consumer, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	cfg, err := o.Connection.config()
	if err != nil {
		return nil, err
	}
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Offsets.AutoCommit.Enable = true
	cfg.Consumer.Offsets.AutoCommit.Interval = time.Second
	cfg.Consumer.Return.Errors = true
	cfg.ChannelBufferSize = max(256, o.BatchSize)
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("kafka consumer configuration: %w", err)
	}
	dlqCfg, err := o.Connection.config()
	if err != nil {
		return nil, err
	}
	dlqCfg.Producer.Idempotent = true
	dlqCfg.Producer.RequiredAcks = sarama.WaitForAll
	dlqCfg.Net.MaxOpenRequests = 1
	dlqCfg.Producer.Return.Successes = true
	dlqCfg.Producer.Return.Errors = true
	if err := dlqCfg.Validate(); err != nil {
		return nil, fmt.Errorf("kafka dead-letter producer configuration: %w", err)
	}
	writer, err := batchwriter.New(store, batchwriter.Options{
		RetryMin: o.RetryMin, RetryMax: o.RetryMax, Logger: o.Logger, Registerer: o.Registerer,
	})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Consumer{
		writer:  writer,
		o:       o,
		cfg:     cfg,
		dlqCfg:  dlqCfg,
		m:       newConsumerMetrics(o.Registerer),
		cancel:  cancel,
		stopped: make(chan struct{}),
	}
	c.kafkaH = health{since: time.Now(), err: errors.New("joining the consumer group")}
	go c.run(ctx)
	return c, nil
}

// Close leaves the group, after the batches being written are written and
// their offsets committed, or when ctx ends. What was not committed is
// consumed again by the group's next member: nothing is lost.
func (c *Consumer) Close(ctx context.Context) error {
	c.cancel()
	select {
	case <-c.stopped:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("leave Kafka consumer group %s: %w", c.o.Group, ctx.Err())
	}
}

// StoreHealth returns nil while batches are written, or since when and why
// writes fail.
func (c *Consumer) StoreHealth() error { return c.writer.Health() }

// KafkaHealth returns nil while the consumer is in a group session, or why
// it is not.
func (c *Consumer) KafkaHealth() error {
	c.healthMu.Lock()
	defer c.healthMu.Unlock()
	if c.kafkaH.err != nil && !c.inSession {
		return fmt.Errorf("consumer group %s not consuming since %s: %w", c.o.Group, c.kafkaH.since.UTC().Format(time.RFC3339), c.kafkaH.err)
	}
	return nil
}

// run joins the group and consumes until ctx ends, starting again after
// every rebalance or error.
func (c *Consumer) run(ctx context.Context) {
	defer close(c.stopped)
	var group sarama.ConsumerGroup
	var errsDone chan struct{}
	backoff := c.o.RetryMin
	for ctx.Err() == nil {
		if group == nil {
			g, err := c.join(ctx)
			if err != nil {
				c.kafkaFailing(err, backoff)
				if !sleep(ctx, backoff) {
					break
				}
				backoff = min(2*backoff, c.o.BrokerRetryMax)
				continue
			}
			group = g
			errsDone = make(chan struct{})
			go func() {
				defer close(errsDone)
				for err := range g.Errors() {
					c.m.groupErrs.Inc()
					c.o.Logger.Warn("Kafka consumer group error", "group", c.o.Group, "err", err)
				}
			}()
		}
		err := group.Consume(ctx, []string{c.o.Topic}, handler{c})
		c.setInSession(false)
		switch {
		case ctx.Err() != nil:
		case errors.Is(err, sarama.ErrClosedConsumerGroup):
			group = nil
		case err != nil:
			c.m.groupErrs.Inc()
			c.kafkaFailing(err, backoff)
			if !sleep(ctx, backoff) {
				break
			}
			backoff = min(2*backoff, c.o.BrokerRetryMax)
		default:
			backoff = c.o.RetryMin
		}
	}
	if group != nil {
		if err := group.Close(); err != nil {
			c.o.Logger.Warn("leaving the Kafka consumer group", "group", c.o.Group, "err", err)
		}
		<-errsDone
	}
	c.dlqMu.Lock()
	if c.dlq != nil {
		_ = c.dlq.Close()
		c.dlq = nil
	}
	c.dlqMu.Unlock()
}

func (c *Consumer) join(ctx context.Context) (sarama.ConsumerGroup, error) {
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := EnsureTopics(tctx, c.o.Connection, c.o.Partitions, c.o.Topic, c.o.DLQTopic); err != nil {
		return nil, err
	}
	g, err := sarama.NewConsumerGroup(c.o.Brokers, c.o.Group, c.cfg)
	if err != nil {
		return nil, fmt.Errorf("join Kafka consumer group %s: %w", c.o.Group, err)
	}
	return g, nil
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// handler is the sarama.ConsumerGroupHandler: one ConsumeClaim goroutine
// per partition of the session.
type handler struct{ c *Consumer }

func (h handler) Setup(s sarama.ConsumerGroupSession) error {
	h.c.m.rebalances.Inc()
	h.c.setInSession(true)
	h.c.o.Logger.Info("Kafka consumer group session", "group", h.c.o.Group, "member", s.MemberID(),
		"generation", s.GenerationID(), "partitions", s.Claims()[h.c.o.Topic])
	return nil
}

func (h handler) Cleanup(s sarama.ConsumerGroupSession) error {
	for topic, parts := range s.Claims() {
		for _, p := range parts {
			h.c.m.lag.DeleteLabelValues(topic, strconv.Itoa(int(p)))
		}
	}
	return nil
}

func (h handler) ConsumeClaim(s sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	ctx := s.Context()
	if from := claim.InitialOffset(); from >= 0 {
		h.c.m.lag.WithLabelValues(claim.Topic(), strconv.Itoa(int(claim.Partition()))).
			Set(float64(max(0, claim.HighWaterMarkOffset()-from)))
	}
	for {
		batch, more := h.c.collect(ctx, claim.Messages())
		if len(batch) > 0 && ctx.Err() == nil {
			if !h.c.handle(ctx, s, claim, batch) {
				return nil
			}
		}
		if !more {
			return nil
		}
	}
}

// collect waits for a record, then up to BatchWait for up to BatchSize.
// more is false when the claim ended (the batch is then dropped by the
// caller if the session ended: its records are consumed again).
func (c *Consumer) collect(ctx context.Context, msgs <-chan *sarama.ConsumerMessage) (batch []*sarama.ConsumerMessage, more bool) {
	select {
	case r, ok := <-msgs:
		if !ok {
			return nil, false
		}
		batch = append(batch, r)
	case <-ctx.Done():
		return nil, false
	}
	if c.o.BatchWait == 0 {
		for len(batch) < c.o.BatchSize {
			select {
			case r, ok := <-msgs:
				if !ok {
					return batch, false
				}
				batch = append(batch, r)
			default:
				return batch, true
			}
		}
		return batch, true
	}
	timer := time.NewTimer(c.o.BatchWait)
	defer timer.Stop()
	for len(batch) < c.o.BatchSize {
		select {
		case r, ok := <-msgs:
			if !ok {
				return batch, false
			}
			batch = append(batch, r)
		case <-timer.C:
			return batch, true
		case <-ctx.Done():
			return batch, false
		}
	}
	return batch, true
}

// deadLetter is a record for the dead-letter topic.
type deadLetter struct {
	r      *sarama.ConsumerMessage
	kind   string // dlqUndecodable or dlqRejected
	reason string
}

// handle writes one batch of a partition: decode, store in one
// transaction (retrying while the store is down), send what cannot be
// stored to the dead-letter topic, and only then mark the offsets. It
// returns false when the session ended first (nothing is marked; the
// records are consumed again).
func (c *Consumer) handle(ctx context.Context, s sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim, batch []*sarama.ConsumerMessage) bool {
	msgs := make([]chat.Message, 0, len(batch))
	byID := make(map[string]*sarama.ConsumerMessage, len(batch))
	var dead []deadLetter
	var dels []chat.Deletion
	for _, r := range batch {
		m, del, err := decodeRecord(r)
		if err != nil {
			dead = append(dead, deadLetter{r: r, kind: dlqUndecodable, reason: err.Error()})
			continue
		}
		if del != nil {
			dels = append(dels, *del)
			continue
		}
		if _, dup := byID[m.ID]; dup {
			// The same message twice in a batch (a producer sent it again
			// after losing its acknowledgement): the store keeps one.
			continue
		}
		byID[m.ID] = r
		msgs = append(msgs, m)
	}
	rejected, err := c.writer.WriteWith(ctx, msgs, dels)
	if err != nil {
		return false
	}
	for _, rj := range rejected {
		if r := byID[rj.Message.ID]; r != nil {
			dead = append(dead, deadLetter{r: r, kind: dlqRejected, reason: "the store refused it: " + rj.Reason})
		}
	}
	first, last := batch[0], batch[len(batch)-1]
	if c.o.AfterCommit != nil {
		c.o.AfterCommit(Committed{
			Topic: claim.Topic(), Partition: claim.Partition(), FirstOffset: first.Offset, LastOffset: last.Offset,
			Records: len(batch), Stored: len(msgs), Rejected: len(rejected),
		})
	}
	if len(dead) > 0 && !c.deadLetters(ctx, dead) {
		return false
	}
	s.MarkMessage(last, "")
	c.m.consumed.Add(float64(len(batch)))
	c.m.lag.WithLabelValues(claim.Topic(), strconv.Itoa(int(claim.Partition()))).
		Set(float64(max(0, claim.HighWaterMarkOffset()-last.Offset-1)))
	return true
}

// deadLetters writes dead to the dead-letter topic, retrying with back-off
// while the broker fails. It returns false when ctx ended first.
func (c *Consumer) deadLetters(ctx context.Context, dead []deadLetter) bool {
	backoff := c.o.RetryMin
	for attempt := 1; ; attempt++ {
		err := c.sendDead(dead)
		if err == nil {
			for _, d := range dead {
				c.m.dlq.WithLabelValues(d.kind).Inc()
				c.o.Logger.Warn("record sent to the dead-letter topic", "dlq", c.o.DLQTopic,
					"source", fmt.Sprintf("%s/%d/%d", d.r.Topic, d.r.Partition, d.r.Offset), "kind", d.kind, "reason", d.reason)
			}
			return true
		}
		c.m.dlqErrors.Inc()
		if attempt == 1 || backoff < c.o.BrokerRetryMax {
			c.o.Logger.Warn("writing to the dead-letter topic failed; retrying", "dlq", c.o.DLQTopic, "records", len(dead),
				"attempt", attempt, "retry_in", backoff, "err", err)
		}
		if !sleep(ctx, backoff) {
			return false
		}
		backoff = min(2*backoff, c.o.BrokerRetryMax)
	}
}

func (c *Consumer) sendDead(dead []deadLetter) error {
	c.dlqMu.Lock()
	defer c.dlqMu.Unlock()
	if c.dlq == nil {
		p, err := sarama.NewSyncProducer(c.o.Brokers, c.dlqCfg)
		if err != nil {
			return fmt.Errorf("start the dead-letter producer: %w", err)
		}
		c.dlq = p
	}
	recs := make([]*sarama.ProducerMessage, len(dead))
	for i, d := range dead {
		recs[i] = dlqRecord(c.o.DLQTopic, d.r, d.reason)
	}
	if err := c.dlq.SendMessages(recs); err != nil {
		// Start afresh next time: sarama's idempotent state may be stale.
		_ = c.dlq.Close()
		c.dlq = nil
		return fmt.Errorf("produce %d records to %s: %w", len(recs), c.o.DLQTopic, err)
	}
	return nil
}

func (c *Consumer) setInSession(in bool) {
	c.healthMu.Lock()
	c.inSession = in
	if in {
		c.kafkaH = health{}
	}
	c.healthMu.Unlock()
}

func (c *Consumer) kafkaFailing(err error, backoff time.Duration) {
	c.healthMu.Lock()
	first := c.kafkaH.err == nil
	if first {
		c.kafkaH.since = time.Now()
	}
	c.kafkaH.err = err
	c.healthMu.Unlock()
	if first || backoff < c.o.BrokerRetryMax {
		c.o.Logger.Warn("Kafka consumer group not consuming; retrying", "group", c.o.Group, "retry_in", backoff, "err", err)
	}
}
