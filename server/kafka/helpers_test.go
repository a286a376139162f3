package kafka_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/scalable-chat-go/server/batchwriter"
	"github.com/scalable-chat-go/server/chat"
	"github.com/scalable-chat-go/server/kafka"
	"github.com/scalable-chat-go/server/sqlstore"
	"github.com/scalable-chat-go/server/sqlstore/pgtest"
	"github.com/scalable-chat-go/server/testkit"
)

// brokers returns KAFKA_BROKERS, or fails the test: these tests need the
// real broker that scripts/services starts.
func brokers(t testing.TB) []string {
	t.Helper()
	return strings.Split(testkit.Service(t, "KAFKA_BROKERS", "Kafka broker"), ",")
}

var unsafe = regexp.MustCompile(`[^a-zA-Z0-9]+`)

// unique returns a topic or group name of its own for t.
func unique(t testing.TB, prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := unsafe.ReplaceAllString(t.Name(), "-")
	if len(name) > 60 {
		name = name[:60]
	}
	return prefix + "-" + name + "-" + hex.EncodeToString(b[:])
}

// newStore returns an empty PostgreSQL store for t, in a database of its
// own on DATABASE_URL's server.
func newStore(t testing.TB) chat.Store {
	t.Helper()
	s, err := sqlstore.OpenPostgres(context.Background(), pgtest.NewDatabase(t), sqlstore.PostgresOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// logOptions are the producer's options in these tests: the configuration's
// defaults (the package takes none), but 3 partitions and a 1 s back-off.
func logOptions(conn kafka.Connection, topic string) kafka.LogOptions {
	return kafka.LogOptions{Connection: conn, Topic: topic, Partitions: 3, Buffer: 100_000, Compression: "gzip", RetryMax: time.Second}
}

// consumerOptions are the consumer's options in these tests, as
// logOptions: batches wait 20 ms, back-offs 1 s at the most.
func consumerOptions(conn kafka.Connection, topic, group string) kafka.ConsumerOptions {
	return kafka.ConsumerOptions{Connection: conn, Topic: topic, DLQTopic: topic + ".DLQ", Partitions: 3, Group: group,
		Batching:       batchwriter.Batching{BatchSize: 1000, BatchWait: 20 * time.Millisecond, RetryMax: time.Second},
		BrokerRetryMax: time.Second}
}

// pipeline is a producer and a consumer on a topic of their own.
type pipeline struct {
	topic, dlq, group string
	conn              kafka.Connection
	log               *kafka.Log
	consumer          *kafka.Consumer
	store             chat.Store
	reg               *prometheus.Registry
}

type pipelineOptions struct {
	partitions int32
	buffer     int
	batchSize  int
	noConsumer bool
}

func newPipeline(t testing.TB, store chat.Store, po pipelineOptions) *pipeline {
	t.Helper()
	if po.partitions == 0 {
		po.partitions = 3
	}
	p := &pipeline{
		topic: unique(t, "t"),
		group: unique(t, "g"),
		conn:  kafka.Connection{Brokers: brokers(t)},
		store: store,
		reg:   prometheus.NewRegistry(),
	}
	p.dlq = p.topic + ".DLQ"
	lo := logOptions(p.conn, p.topic)
	lo.Partitions, lo.Registerer = po.partitions, p.reg
	if po.buffer > 0 {
		lo.Buffer = po.buffer
	}
	l, err := kafka.NewLog(lo)
	if err != nil {
		t.Fatal(err)
	}
	p.log = l
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = l.Close(ctx)
	})
	if !po.noConsumer {
		p.consumer = p.startConsumer(t, p.group, po.batchSize, nil)
	}
	return p
}

func (p *pipeline) startConsumer(t testing.TB, group string, batchSize int, reg prometheus.Registerer) *kafka.Consumer {
	t.Helper()
	if reg == nil {
		reg = p.reg
	}
	co := consumerOptions(p.conn, p.topic, group)
	co.Registerer = reg
	if batchSize > 0 {
		co.BatchSize = batchSize
	}
	c, err := kafka.NewConsumer(p.store, co)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := c.Close(ctx); err != nil {
			t.Errorf("consumer Close: %v", err)
		}
	})
	return c
}

// allRows returns every stored message.
func allRows(t testing.TB, s chat.Store) []chat.Message {
	t.Helper()
	rows, err := s.Recent(context.Background(), chat.GlobalRoom, 1_000_000, nil)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// waitRows waits until the store holds at least n messages, and returns
// them.
func waitRows(t testing.TB, s chat.Store, n int, within time.Duration) []chat.Message {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		rows := allRows(t, s)
		if len(rows) >= n {
			return rows
		}
		if time.Now().After(deadline) {
			t.Fatalf("the store holds %d messages after %v, want %d", len(rows), within, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// newClient is a sarama client of brokers, closed when t ends.
func newClient(t testing.TB, brokers []string) sarama.Client {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Version = kafka.Version
	client, err := sarama.NewClient(brokers, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	return client
}

// readTopic returns every record of topic, reading each partition from
// the oldest offset to its high-water mark.
func readTopic(t testing.TB, brokers []string, topic string) []*sarama.ConsumerMessage {
	t.Helper()
	client := newClient(t, brokers)
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	parts, err := client.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	var out []*sarama.ConsumerMessage
	for _, p := range parts {
		last := int64(-1)
		hwm, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			t.Fatal(err)
		}
		oldest, err := client.GetOffset(topic, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		if hwm <= oldest {
			continue
		}
		pc, err := consumer.ConsumePartition(topic, p, oldest)
		if err != nil {
			t.Fatal(err)
		}
		for {
			select {
			case m := <-pc.Messages():
				out = append(out, m)
				last = m.Offset
				if m.Offset >= hwm-1 {
					goto next
				}
			case err := <-pc.Errors():
				t.Fatalf("read %s/%d: %v", topic, p, err)
			case <-time.After(20 * time.Second):
				t.Fatalf("read %s/%d: nothing for 20 s after offset %d (from %d to the end offset %d)", topic, p, last, oldest, hwm)
			}
		}
	next:
		pc.Close()
	}
	return out
}

// produceRaw writes records as another producer would, and returns where
// they landed.
func produceRaw(t testing.TB, brokers []string, msgs ...*sarama.ProducerMessage) {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Version = kafka.Version
	cfg.Producer.Return.Successes = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	p, err := sarama.NewSyncProducer(brokers, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.SendMessages(msgs); err != nil {
		t.Fatal(err)
	}
}

// record is m as the Log writes it to topic.
func record(topic string, m chat.Message) *sarama.ProducerMessage { return kafka.NewRecord(topic, m) }

// topicEnd returns each partition's high-water mark: the offset the next
// record will get.
func topicEnd(t testing.TB, brokers []string, topic string) map[int32]int64 {
	t.Helper()
	client := newClient(t, brokers)
	parts, err := client.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	end := map[int32]int64{}
	for _, p := range parts {
		if end[p], err = client.GetOffset(topic, p, sarama.OffsetNewest); err != nil {
			t.Fatal(err)
		}
	}
	return end
}

// waitCommitted waits until group has committed, in every partition of
// topic, the offset end gives: it has stored every record before it. When it
// gives up it says where each partition stands, and what more() adds.
func waitCommitted(t testing.TB, brokers []string, group, topic string, end map[int32]int64, within time.Duration, more func() string) {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Version = kafka.Version
	admin, err := sarama.NewClusterAdmin(brokers, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	parts := make([]int32, 0, len(end))
	for p := range end {
		parts = append(parts, p)
	}
	slices.Sort(parts)
	testkit.Until(t, within, fmt.Sprintf("group %s to commit %s up to %v", group, topic, end), func() (bool, string) {
		res, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{topic: parts})
		if err != nil {
			return false, fmt.Sprintf("listing the group's offsets: %v; %s", err, more())
		}
		done := true
		var at []string
		for _, p := range parts {
			off := int64(-1)
			if b := res.GetBlock(topic, p); b != nil {
				off = b.Offset
			}
			done = done && off >= end[p]
			at = append(at, fmt.Sprintf("%d: %d/%d", p, off, end[p]))
		}
		return done, fmt.Sprintf("committed (partition: offset/end) %s; %s", strings.Join(at, ", "), more())
	})
}

func header(r *sarama.ConsumerMessage, key string) (string, bool) {
	for _, h := range r.Headers {
		if string(h.Key) == key {
			return string(h.Value), true
		}
	}
	return "", false
}
