package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/scalable-chat-go/server/chat"
	"github.com/scalable-chat-go/server/chat/chattest"
	"github.com/scalable-chat-go/server/kafka"
	"github.com/scalable-chat-go/server/testkit"
)

// countingLog counts what was admitted, so that the contract's read-back
// waits for the consumer to store that many.
type countingLog struct {
	*kafka.Log
	n atomic.Int64
}

func (c *countingLog) Append(m chat.Message, done func(error)) error {
	err := c.Log.Append(m, done)
	if err == nil {
		c.n.Add(1)
	}
	return err
}

// TestLogContract runs the Log contract on the producer, with "durable"
// meaning acknowledged by the broker and then stored by the consumer.
func TestLogContract(t *testing.T) {
	chattest.TestLog(t, func(t *testing.T) (chat.Log, func() []chat.Message) {
		p := newPipeline(t, newStore(t), pipelineOptions{})
		cl := &countingLog{Log: p.log}
		return cl, func() []chat.Message {
			rows := waitRows(t, p.store, int(cl.n.Load()), 30*time.Second)
			// The broker holds each record once: no producer retry
			// duplicated one.
			if recs := readTopic(t, p.conn.Brokers, p.topic); len(recs) != int(cl.n.Load()) {
				t.Errorf("the topic holds %d records for %d messages", len(recs), cl.n.Load())
			}
			return rows
		}
	})
}

func TestRecordFormatAndTopicCreation(t *testing.T) {
	p := newPipeline(t, newStore(t), pipelineOptions{partitions: 4, noConsumer: true})
	msgs := []chat.Message{
		{ID: "0191d2c4-7b1e-7c3a-9f00-5a1b2c3d4e5f", Text: "héllo 👋\nline", Username: "Zoë", CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 6_000_000, time.UTC)},
		{ID: "0191d2c4-7b1e-7c3a-9f00-5a1b2c3d4e60", Text: "second", Username: "", CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 7_000_000, time.UTC)},
	}
	done := make(chan error, len(msgs))
	for _, m := range msgs {
		if err := p.log.Append(m, func(err error) { done <- err }); err != nil {
			t.Fatal(err)
		}
	}
	for range msgs {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("a message not acknowledged 30 s after it was appended")
		}
	}
	recs := readTopic(t, p.conn.Brokers, p.topic)
	if len(recs) != 2 {
		t.Fatalf("%d records, want 2", len(recs))
	}
	byKey := map[string]*sarama.ConsumerMessage{}
	for _, r := range recs {
		byKey[string(r.Key)] = r
	}
	for _, m := range msgs {
		r := byKey[m.ID]
		if r == nil {
			t.Fatalf("no record with key %s", m.ID)
		}
		if string(r.Value) != m.Text {
			t.Errorf("value %q, want the text %q", r.Value, m.Text)
		}
		id, _ := header(r, "id")
		user, hasUser := header(r, "username")
		created, _ := header(r, "created-at")
		if id != m.ID || user != m.Username || !hasUser || created != m.CreatedAt.Format("2006-01-02T15:04:05.000Z07:00") {
			t.Errorf("headers id=%q username=%q created-at=%q for %+v", id, user, created, m)
		}
		if !r.Timestamp.Equal(m.CreatedAt) {
			t.Errorf("record time %v, want the message's %v", r.Timestamp, m.CreatedAt)
		}
	}
	parts, err := newClient(t, p.conn.Brokers).Partitions(p.topic)
	if err != nil || len(parts) != 4 {
		t.Fatalf("topic %s has partitions %v (%v), want 4 (KAFKA_PARTITIONS)", p.topic, parts, err)
	}
	if got := testkit.Gathered(t, p.reg, "chat_kafka_produced_total"); got != 2 {
		t.Errorf("chat_kafka_produced_total = %v", got)
	}
}

// TestOriginalRecordsAndDeadLetters feeds the consumer what other producers
// write: records in the original server's format, a NUL byte the database
// refuses, records that cannot be decoded; each bad one goes to the
// dead-letter topic with its reason, and the partition goes on.
func TestOriginalRecordsAndDeadLetters(t *testing.T) {
	store := newStore(t)
	p := newPipeline(t, store, pipelineOptions{partitions: 1, noConsumer: true})
	if err := kafka.EnsureTopics(context.Background(), p.conn, 1, p.topic); err != nil {
		t.Fatal(err)
	}
	ms := time.Date(2026, 5, 6, 7, 8, 9, 10_000_000, time.UTC).UnixMilli()
	orig := func(text string, ms int64) *sarama.ProducerMessage {
		return &sarama.ProducerMessage{Topic: p.topic, Key: sarama.StringEncoder("message-" + strconv.FormatInt(ms, 10)), Value: sarama.StringEncoder(text)}
	}
	produceRaw(t, p.conn.Brokers,
		orig("from the original", ms), // offset 0: stored, username ""
		orig("nul \x00 byte", ms+1),   // 1: the store refuses it
		&sarama.ProducerMessage{Topic: p.topic, Value: sarama.ByteEncoder{0xff, 0xfe}}, // 2: not UTF-8
		&sarama.ProducerMessage{Topic: p.topic, Value: sarama.StringEncoder("x"), Headers: []sarama.RecordHeader{
			{Key: []byte("id"), Value: []byte("abc")}, {Key: []byte("created-at"), Value: []byte("soon")}}}, // 3: bad time
		orig("after the bad ones", ms+2), // 4: stored: the partition did not stall
	)
	p.consumer = p.startConsumer(t, p.group, 0, nil)
	rows := waitRows(t, store, 2, 30*time.Second)
	want := map[string]chat.Message{
		kafka.OriginalID(p.topic, 0, 0): {Text: "from the original", CreatedAt: time.UnixMilli(ms).UTC()},
		kafka.OriginalID(p.topic, 0, 4): {Text: "after the bad ones", CreatedAt: time.UnixMilli(ms + 2).UTC()},
	}
	for _, r := range rows {
		w, ok := want[r.ID]
		if !ok {
			t.Errorf("unexpected row %+v", r)
			continue
		}
		if r.Text != w.Text || r.Username != "" || !r.CreatedAt.Equal(w.CreatedAt) {
			t.Errorf("row %+v, want %+v with username \"\"", r, w)
		}
	}
	var dead []*sarama.ConsumerMessage
	deadline := time.Now().Add(20 * time.Second)
	for len(dead) < 3 && time.Now().Before(deadline) {
		dead = readTopic(t, p.conn.Brokers, p.dlq)
		time.Sleep(100 * time.Millisecond)
	}
	if len(dead) != 3 {
		t.Fatalf("%d dead letters, want 3", len(dead))
	}
	reasons := map[string]string{}
	for _, d := range dead {
		src, _ := header(d, kafka.HeaderDLQSource)
		reason, _ := header(d, kafka.HeaderDLQReason)
		reasons[src] = reason
	}
	for off, want := range map[int]string{1: "the store refused it", 2: "not valid UTF-8", 3: "not an RFC 3339 time"} {
		src := fmt.Sprintf("%s/0/%d", p.topic, off)
		if !strings.Contains(reasons[src], want) {
			t.Errorf("dead letter %s: reason %q, want it to say %q", src, reasons[src], want)
		}
	}
	for _, d := range dead {
		if src, _ := header(d, kafka.HeaderDLQSource); src == p.topic+"/0/1" && string(d.Value) != "nul \x00 byte" {
			t.Errorf("the dead letter changed the value: %q", d.Value)
		}
	}
	testkit.Until(t, 10*time.Second, "chat_kafka_dlq_total rejected 1, undecodable 2", func() (bool, string) {
		rejected := testkit.Gathered(t, p.reg, "chat_kafka_dlq_total", "reason", "rejected")
		undecodable := testkit.Gathered(t, p.reg, "chat_kafka_dlq_total", "reason", "undecodable")
		return rejected == 1 && undecodable == 2, fmt.Sprintf("rejected %v, undecodable %v", rejected, undecodable)
	})
}

// TestRedeliveryStoresNothingTwice reads the same records again (a new
// group starts from the oldest) into the same store, with one message in
// the topic twice, as a producer that lost an acknowledgement writes it.
//
// It waits for the second group's committed offsets to reach the end of
// every partition, not for a count of consumed records: delivery is at
// least once, so a rebalance or a record written twice makes the count
// pass any number given in advance.
func TestRedeliveryStoresNothingTwice(t *testing.T) {
	store := newStore(t)
	p := newPipeline(t, store, pipelineOptions{})
	appendN(t, p.log, "r", 500)
	rows := waitRows(t, store, 500, 30*time.Second)
	again := rows[0]
	again.Text = "sent again with the same id"
	produceRaw(t, p.conn.Brokers, record(p.topic, again))
	end := topicEnd(t, p.conn.Brokers, p.topic)

	reg := prometheus.NewRegistry()
	group := unique(t, "g2")
	p.startConsumer(t, group, 0, reg)
	waitCommitted(t, p.conn.Brokers, group, p.topic, end, 60*time.Second, func() string {
		return fmt.Sprintf("chat_kafka_consumed_total %v", testkit.Gathered(t, reg, "chat_kafka_consumed_total"))
	})
	records := 0
	for _, n := range end {
		records += int(n)
	}
	if got := testkit.Gathered(t, reg, "chat_kafka_consumed_total"); got < float64(records) {
		t.Errorf("the second group consumed %v records, the topic holds %d", got, records)
	}
	after := allRows(t, store)
	ids := map[string]chat.Message{}
	for _, r := range after {
		ids[r.ID] = r
	}
	if len(after) != 500 || len(ids) != 500 {
		t.Fatalf("%d rows (%d ids) after a second delivery of %d records, want 500", len(after), len(ids), records)
	}
	if got := ids[again.ID].Text; got != rows[0].Text {
		t.Errorf("the row of %s holds %q after its record came again, want the first %q", again.ID, got, rows[0].Text)
	}
}

// TestRebalanceLosesNothing adds and removes group members while records
// flow: every message is stored once.
func TestRebalanceLosesNothing(t *testing.T) {
	store := newStore(t)
	p := newPipeline(t, store, pipelineOptions{batchSize: 50})
	const n = 3000
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range n {
			m := chattest.Msg(fmt.Sprintf("rb-%05d", i), "rebalance", i)
			for p.log.Append(m, func(error) {}) != nil {
				time.Sleep(time.Millisecond)
			}
			if i%100 == 0 {
				time.Sleep(20 * time.Millisecond)
			}
		}
	}()
	second := p.startConsumer(t, p.group, 50, prometheus.NewRegistry())
	time.Sleep(time.Second)
	third := p.startConsumer(t, p.group, 50, prometheus.NewRegistry())
	time.Sleep(time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := second.Close(ctx); err != nil {
		t.Fatal(err)
	}
	_ = third
	wg.Wait()
	rows := waitRows(t, store, n, 60*time.Second)
	if len(rows) != n {
		t.Fatalf("%d rows, want %d", len(rows), n)
	}
}

// TestBufferFullRefusesAndCloseCountsWhatIsLeft runs the producer against
// an address where no broker listens: nothing is acknowledged, so the
// buffer fills, admission refuses, and Close gives up at its deadline.
func TestBufferFullRefusesAndCloseCountsWhatIsLeft(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	reg := prometheus.NewRegistry()
	lo := logOptions(kafka.Connection{Brokers: []string{addr}}, "unreachable")
	lo.Buffer, lo.Registerer = 10, reg
	l, err := kafka.NewLog(lo)
	if err != nil {
		t.Fatal(err)
	}
	var lost atomic.Int64
	for i := range 10 {
		if err := l.Append(chattest.Msg(fmt.Sprint(i), "x", i), func(err error) {
			if errors.Is(err, chat.ErrLost) {
				lost.Add(1)
			}
		}); err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
	}
	if err := l.Append(chattest.Msg("11", "x", 11), func(error) { t.Error("done called for a refused message") }); !errors.Is(err, chat.ErrUnavailable) {
		t.Fatalf("Append past the buffer = %v, want ErrUnavailable", err)
	}
	if err := l.Ping(context.Background()); err == nil {
		t.Error("Ping = nil without a broker")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	err = l.Close(ctx)
	if !errors.Is(err, chat.ErrLost) || !strings.Contains(err.Error(), "10 accepted messages") {
		t.Fatalf("Close = %v, want ErrLost counting 10", err)
	}
	if lost.Load() != 10 {
		t.Fatalf("%d done callbacks with ErrLost, want 10", lost.Load())
	}
	if got := testkit.Gathered(t, reg, "chat_messages_lost_total", "reason", "shutdown"); got != 10 {
		t.Errorf("chat_messages_lost_total{reason=shutdown} = %v", got)
	}
	if got := testkit.Gathered(t, reg, "chat_log_refused_total"); got != 1 {
		t.Errorf("chat_log_refused_total = %v", got)
	}
}

func appendN(t *testing.T, l chat.Log, prefix string, n int) {
	t.Helper()
	done := make(chan error, n)
	for i := range n {
		if err := l.Append(chattest.Msg(fmt.Sprintf("%s-%05d", prefix, i), "text", i), func(err error) { done <- err }); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%d of %d acknowledgements, then none for 30 s", i, n)
		}
	}
}

// TestCloseDoesNotWaitForABrokerThatNeverAnswers: against an address that
// accepts connections and never answers (sarama would wait out its read
// timeout), Close with nothing admitted returns at once, and Close with
// messages admitted returns when its context ends.
func TestCloseDoesNotWaitForABrokerThatNeverAnswers(t *testing.T) {
	silent := testkit.Silent(t)
	open := func() *kafka.Log {
		l, err := kafka.NewLog(logOptions(kafka.Connection{Brokers: []string{silent}}, "silent"))
		if err != nil {
			t.Fatal(err)
		}
		return l
	}

	l := open()
	time.Sleep(200 * time.Millisecond) // the producer is trying to connect
	start := time.Now()
	if err := l.Close(context.Background()); err != nil {
		t.Fatalf("Close with nothing admitted: %v", err)
	}
	// At most the 2 s Close gives a connection attempt to end, not
	// sarama's 30 s read timeout.
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("Close with nothing admitted took %v", took)
	}

	l = open()
	if err := l.Append(chattest.Msg("x", "x", 1), func(error) {}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start = time.Now()
	if err := l.Close(ctx); !errors.Is(err, chat.ErrLost) {
		t.Fatalf("Close = %v, want ErrLost", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("Close with a message admitted took %v past a 500 ms deadline", took)
	}
}
