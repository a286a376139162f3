package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/scalable-chat-go/server/chat"
	"github.com/scalable-chat-go/server/kafka"
	"github.com/scalable-chat-go/server/sqlstore/pgtest"
	"github.com/scalable-chat-go/server/testkit"
)

// kafkaEnv is a database, a topic, a dead-letter topic and a consumer
// group of a test's own, on the shared PostgreSQL and Kafka.
type kafkaEnv struct {
	t                 *testing.T
	db                string
	brokers           []string
	topic, dlq, group string
}

func newKafkaEnv(t *testing.T) *kafkaEnv {
	t.Helper()
	b := testkit.Service(t, "KAFKA_BROKERS", "Kafka broker")
	var r [4]byte
	_, _ = rand.Read(r[:])
	name := regexp.MustCompile(`[^a-zA-Z0-9]+`).ReplaceAllString(t.Name(), "-") + "-" + hex.EncodeToString(r[:])
	return &kafkaEnv{t: t, db: pgtest.NewDatabase(t), brokers: strings.Split(b, ","),
		topic: "t-" + name, dlq: "t-" + name + ".DLQ", group: "g-" + name}
}

// env is a node's environment on k, then extra.
func (k *kafkaEnv) env(extra ...string) []string {
	return append([]string{
		"DATABASE_URL=" + k.db, "KAFKA_BROKERS=" + strings.Join(k.brokers, ","), "KAFKA_TOPIC=" + k.topic,
		"KAFKA_DLQ_TOPIC=" + k.dlq, "KAFKA_GROUP=" + k.group, "KAFKA_PARTITIONS=6", "KAFKA_RETRY_MAX=1s",
		"RATE_LIMIT_PER_SEC=0", "SEND_QUEUE_LIMIT=100000", "HISTORY_LIMIT=0",
	}, extra...)
}

// row is a stored message as PostgreSQL holds it.
type row struct {
	content, username string
	createdAt         time.Time
}

// rows returns every row of messages by id.
func (k *kafkaEnv) rows() map[string]row {
	k.t.Helper()
	out := map[string]row{}
	res, err := pgtest.Connect(k.t, k.db).Query(context.Background(), `SELECT id, content, username, created_at FROM messages`)
	if err != nil {
		k.t.Fatal(err)
	}
	defer res.Close()
	for res.Next() {
		var id string
		var r row
		if err := res.Scan(&id, &r.content, &r.username, &r.createdAt); err != nil {
			k.t.Fatal(err)
		}
		out[id] = r
	}
	if err := res.Err(); err != nil {
		k.t.Fatal(err)
	}
	return out
}

func (k *kafkaEnv) count() int {
	k.t.Helper()
	var n int
	if err := pgtest.Connect(k.t, k.db).QueryRow(context.Background(), `SELECT count(*) FROM messages`).Scan(&n); err != nil {
		k.t.Fatal(err)
	}
	return n
}

// waitCount waits until messages holds n rows, failing on more, or when
// within passes.
func (k *kafkaEnv) waitCount(n int, within time.Duration) {
	k.t.Helper()
	deadline := time.Now().Add(within)
	for {
		c := k.count()
		if c == n {
			return
		}
		if c > n {
			k.t.Fatalf("messages holds %d rows, want %d", c, n)
		}
		if time.Now().After(deadline) {
			k.t.Fatalf("messages holds %d rows after %v, want %d", c, within, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (k *kafkaEnv) saramaConfig() *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.Version = kafka.Version
	return cfg
}

// records returns every record of topic, by partition, in offset order.
func (k *kafkaEnv) records(topic string) map[int32][]*sarama.ConsumerMessage {
	k.t.Helper()
	client, err := sarama.NewClient(k.brokers, k.saramaConfig())
	if err != nil {
		k.t.Fatal(err)
	}
	defer client.Close()
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		k.t.Fatal(err)
	}
	defer consumer.Close()
	parts, err := client.Partitions(topic)
	if err != nil {
		k.t.Fatal(err)
	}
	out := map[int32][]*sarama.ConsumerMessage{}
	for _, p := range parts {
		hwm, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			k.t.Fatal(err)
		}
		if hwm == 0 {
			continue
		}
		pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			k.t.Fatal(err)
		}
		for len(out[p]) == 0 || out[p][len(out[p])-1].Offset < hwm-1 {
			select {
			case m := <-pc.Messages():
				out[p] = append(out[p], m)
			case err := <-pc.Errors():
				k.t.Fatalf("read %s/%d: %v", topic, p, err)
			case <-time.After(20 * time.Second):
				k.t.Fatalf("read %s/%d: %d records, none for 20 s, before the end offset %d", topic, p, len(out[p]), hwm)
			}
		}
		pc.Close()
	}
	return out
}

// committed returns the group's committed offset of topic's partition p
// (-1 when none).
func (k *kafkaEnv) committed(p int32) int64 {
	k.t.Helper()
	admin, err := sarama.NewClusterAdmin(k.brokers, k.saramaConfig())
	if err != nil {
		k.t.Fatal(err)
	}
	defer admin.Close()
	res, err := admin.ListConsumerGroupOffsets(k.group, map[string][]int32{k.topic: {p}})
	if err != nil {
		k.t.Fatal(err)
	}
	b := res.GetBlock(k.topic, p)
	if b == nil {
		return -1
	}
	return b.Offset
}

// client is a test's Socket.IO client that records every message event.
type client struct {
	c *sio
	// seen are the message events received, by id.
	mu   sync.Mutex
	seen map[string]wire
}

func newClient(t *testing.T, url string) *client {
	cl := &client{c: dialSIO(t, url, "websocket"), seen: map[string]wire{}}
	return cl
}

// drain reads message events until n distinct ids were seen or within
// passes.
func (cl *client) drain(n int, within time.Duration) {
	cl.c.t.Helper()
	deadline := time.After(within)
	for {
		cl.mu.Lock()
		have := len(cl.seen)
		cl.mu.Unlock()
		if have >= n {
			return
		}
		var f string
		if len(cl.c.early) > 0 {
			f, cl.c.early = cl.c.early[0], cl.c.early[1:]
		} else {
			select {
			case f = <-cl.c.frames:
			case <-deadline:
				cl.c.t.Fatalf("received %d of %d messages within %v", have, n, within)
			}
		}
		if !strings.HasPrefix(f, `2["message",`) {
			continue
		}
		ev := parseEvent(cl.c.t, f)
		w := toWire(ev)
		cl.mu.Lock()
		cl.seen[w.ID] = w
		cl.mu.Unlock()
	}
}

func parseEvent(t *testing.T, f string) any {
	t.Helper()
	var ev []any
	if err := json.Unmarshal([]byte(f[1:]), &ev); err != nil || len(ev) < 2 {
		t.Fatalf("bad packet %q: %v", f, err)
	}
	return ev[1]
}

// sendAll emits the texts as username with acknowledgements, and returns
// the acknowledged ids by text.
func sendAll(t *testing.T, c *sio, username string, texts []string) map[string]string {
	t.Helper()
	acks := make([]<-chan map[string]any, len(texts))
	for i, text := range texts {
		acks[i] = c.emitAck(fmt.Sprintf(`{"message":%s,"username":%s}`, jsonString(text), jsonString(username)))
	}
	ids := make(map[string]string, len(texts))
	for i, ch := range acks {
		select {
		case a := <-ch:
			if a["ok"] != true {
				t.Fatalf("%q: ack %v", texts[i], a)
			}
			ids[texts[i]], _ = a["id"].(string)
		case <-time.After(60 * time.Second):
			t.Fatalf("%q: no acknowledgement within 60 s", texts[i])
		}
	}
	return ids
}

// TestKafkaThreeNodes10000Messages: three nodes on one topic, one database
// and one Redis (the full cluster), nine clients over Socket.IO, 10,000
// acknowledged messages: every client gets every message, the topic holds
// each once (only the accepting node produces; no node produces or stores
// what it receives from the others), and PostgreSQL ends with exactly
// 10,000 rows with the usernames, texts and times the clients saw.
func TestKafkaThreeNodes10000Messages(t *testing.T) {
	t.Parallel()
	k := newKafkaEnv(t)
	env := k.env("REDIS_URL="+redisURL(t), "REDIS_KEY_PREFIX="+prefix(t))
	first := start(t, "", env...)
	nodes := []*proc{first}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := launch(t, "", env...)
			p.awaitReady()
			mu.Lock()
			nodes = append(nodes, p)
			mu.Unlock()
		}()
	}
	wg.Wait()
	for _, p := range nodes {
		p.awaitServers(3)
	}

	const total, perNode = 10_000, 3
	clients := make([]*client, 0, len(nodes)*perNode)
	for _, n := range nodes {
		for range perNode {
			clients = append(clients, newClient(t, n.URL))
		}
	}
	start := time.Now()
	ids := make([]map[string]string, len(clients))
	for i, cl := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var texts []string
			for j := i; j < total; j += len(clients) {
				texts = append(texts, fmt.Sprintf("message %05d from client %d ✓", j, i))
			}
			ids[i] = sendAll(t, cl.c, fmt.Sprintf("user-%d", i), texts)
		}()
	}
	wg.Wait()
	acked := time.Since(start)
	k.waitCount(total, 90*time.Second)
	stored := time.Since(start)
	// Every client sees every message, from every node (Redis fan-out).
	for _, cl := range clients {
		cl.drain(total, 60*time.Second)
	}
	time.Sleep(time.Second) // nothing arrives late
	rows := k.rows()
	if len(rows) != total {
		t.Fatalf("%d rows, want %d", len(rows), total)
	}
	seen := map[string]wire{}
	for _, cl := range clients {
		cl.mu.Lock()
		for id, w := range cl.seen {
			seen[id] = w
		}
		cl.mu.Unlock()
	}
	for i, byText := range ids {
		for text, id := range byText {
			r, ok := rows[id]
			if !ok {
				t.Fatalf("acknowledged %q (id %s) is not stored", text, id)
			}
			if r.content != text || r.username != fmt.Sprintf("user-%d", i) {
				t.Fatalf("row %s = %+v, want %q by user-%d", id, r, text, i)
			}
			if w, ok := seen[id]; ok {
				if w.CreatedAt != r.createdAt.UTC().Format(chat.TimeLayout) {
					t.Fatalf("row %s created_at %v, broadcast with createdAt %s", id, r.createdAt, w.CreatedAt)
				}
			}
		}
	}
	if len(seen) != total {
		t.Fatalf("the clients saw %d distinct messages, want %d", len(seen), total)
	}
	recs := k.records(k.topic)
	n, keys := 0, map[string]bool{}
	for _, rs := range recs {
		n += len(rs)
		for _, r := range rs {
			keys[string(r.Key)] = true
		}
	}
	if n != total || len(keys) != total {
		t.Fatalf("the topic holds %d records with %d keys for %d messages: each must be produced once", n, len(keys), total)
	}
	t.Logf("10,000 messages over 3 nodes: all acknowledged (broker) in %v, all in PostgreSQL in %v", acked.Round(time.Millisecond), stored.Round(time.Millisecond))

	// Readiness names kafka and the database; the metrics are there.
	var ready struct {
		Checks map[string]struct{ Status, Error string }
	}
	first.getJSON(t, "/readyz", &ready)
	if ready.Checks["kafka"].Status != "ok" || ready.Checks["database"].Status != "ok" {
		t.Errorf("/readyz checks %+v, want kafka and database ok", ready.Checks)
	}
	var batches float64
	for _, p := range nodes {
		m := metrics(t, p)
		for _, name := range []string{"chat_kafka_consumer_lag{", "chat_store_batch_size_bucket", "chat_store_write_seconds_bucket",
			`chat_kafka_dlq_total{reason="rejected"} 0`, `chat_kafka_dlq_total{reason="undecodable"} 0`,
			"chat_kafka_producer_buffer 0", "chat_kafka_produce_errors_total 0", "chat_kafka_produced_total"} {
			if !strings.Contains(m, name) {
				t.Errorf("%s: /metrics has no %s", p.URL, name)
			}
		}
		batches += metricValue(m, "chat_store_batch_size_count")
	}
	t.Logf("%v batches written (mean %.0f messages a batch)", batches, total/batches)
	// History reads the store: node 1 pages through all 10,000 messages,
	// those the other nodes accepted included (its ring holds only its own,
	// and at most HISTORY_RING_SIZE).
	listed := map[string]bool{}
	before := ""
	for range total/200 + 2 {
		var page struct {
			Messages   []wire
			NextBefore *string
		}
		first.getJSON(t, "/api/messages?limit=200&before="+before, &page)
		for _, m := range page.Messages {
			listed[m.ID] = true
		}
		if page.NextBefore == nil {
			break
		}
		before = *page.NextBefore
	}
	if len(listed) != total {
		t.Errorf("the history API of node 1 lists %d messages, want %d", len(listed), total)
	}
}

// metricValue returns the value of a sample line "name value" in a
// Prometheus exposition, or 0.
func metricValue(exposition, name string) float64 {
	for _, line := range strings.Split(exposition, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

var hookLine = regexp.MustCompile(`fault hook: killing the process.* partition=(\d+) first_offset=(\d+) last_offset=(\d+) records=(\d+)`)

// TestKafkaCrashAfterCommitBeforeMark: the consuming node, a build with the
// tag faulthooks, kills itself (KAFKA_TEST_CRASH_AFTER_COMMIT) right after
// a batch is committed to
// PostgreSQL and before its offsets are marked. The test shows the kill
// landed in that window (the batch's rows are stored, the group's offset is
// before the batch), then restarts the node: the batch is consumed again and
// the table still holds exactly 10,000 rows.
func TestKafkaCrashAfterCommitBeforeMark(t *testing.T) {
	t.Parallel()
	k := newKafkaEnv(t)
	front := start(t, "", k.env("KAFKA_CONSUMER=off")...)
	consumer := startBinary(t, faultBinary(t), "", k.env("KAFKA_TEST_CRASH_AFTER_COMMIT=3", "BATCH_SIZE=500", "BATCH_WAIT=100ms")...)

	const total = 10_000
	c := dialSIO(t, front.URL, "websocket")
	var texts []string
	for i := range total {
		texts = append(texts, fmt.Sprintf("crash test %05d", i))
	}
	ids := sendAll(t, c, "survivor", texts)

	select {
	case <-consumer.exited:
	case <-time.After(60 * time.Second):
		t.Fatalf("the consuming node did not kill itself:\n%s", consumer.logs.String())
	}
	if ws, ok := consumer.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the node ended with %v, want SIGKILL from the hook", consumer.cmd.ProcessState)
	}
	m := hookLine.FindStringSubmatch(consumer.logs.String())
	if m == nil {
		t.Fatalf("no fault hook line in the log:\n%s", consumer.logs.String())
	}
	part, _ := strconv.Atoi(m[1])
	firstOff, _ := strconv.ParseInt(m[2], 10, 64)
	lastOff, _ := strconv.ParseInt(m[3], 10, 64)

	// After the commit: every record of the batch is in PostgreSQL.
	recs := k.records(k.topic)[int32(part)]
	rows := k.rows()
	var inBatch int
	for _, r := range recs {
		if r.Offset < firstOff || r.Offset > lastOff {
			continue
		}
		inBatch++
		if _, ok := rows[string(r.Key)]; !ok {
			t.Fatalf("record %d/%d of the killed batch is not stored: the kill came before the commit", part, r.Offset)
		}
	}
	if inBatch == 0 || inBatch != int(lastOff-firstOff+1) {
		t.Fatalf("batch %d..%d of partition %d: %d records found", firstOff, lastOff, part, inBatch)
	}
	// Before the mark: the group's committed offset does not cover it.
	before := k.committed(int32(part))
	if before > firstOff {
		t.Fatalf("committed offset %d of partition %d passes the killed batch's first offset %d: the kill came after the mark",
			before, part, firstOff)
	}
	storedAtKill := len(rows)
	t.Logf("killed after committing partition %d offsets %d..%d (%d records) with offset %d committed; %d rows stored then",
		part, firstOff, lastOff, inBatch, before, storedAtKill)

	// The restarted node consumes the batch again and stores nothing twice.
	start(t, "", k.env("BATCH_SIZE=500")...)
	k.waitCount(total, 90*time.Second)
	time.Sleep(time.Second)
	final := k.rows()
	if len(final) != total {
		t.Fatalf("%d rows after the restart, want %d", len(final), total)
	}
	for text, id := range ids {
		if r, ok := final[id]; !ok || r.content != text || r.username != "survivor" {
			t.Fatalf("acknowledged %q (id %s): row %+v, stored %v", text, id, r, ok)
		}
	}
	testkit.Until(t, 10*time.Second, fmt.Sprintf("the group to commit partition %d past the killed batch's last offset %d", part, lastOff), func() (bool, string) {
		off := k.committed(int32(part))
		return off > lastOff, fmt.Sprintf("committed offset %d", off)
	})
}

// TestKafkaSIGTERMDeliversEveryAcceptedMessage: on SIGTERM a node waits for
// the broker to acknowledge everything it accepted (best-effort messages
// too) before it exits 0; another node then stores each once.
func TestKafkaSIGTERMDeliversEveryAcceptedMessage(t *testing.T) {
	t.Parallel()
	k := newKafkaEnv(t)
	p := start(t, "", k.env("KAFKA_CONSUMER=off")...)
	watcher := dialSIO(t, p.URL, "websocket")
	sender := dialSIO(t, p.URL, "websocket")
	const n = 2000
	for i := range n {
		sender.emit(fmt.Sprintf(`{"message":"best %d","username":"b"}`, i))
	}
	for watcher.message().Message != fmt.Sprintf("best %d", n-1) {
	}
	if code := p.stop(); code != 0 {
		t.Fatalf("exit code %d\n%s", code, p.logs.String())
	}
	if strings.Contains(p.logs.String(), "not delivered") {
		t.Fatalf("the node reports undelivered messages:\n%s", p.logs.String())
	}
	start(t, "", k.env()...)
	k.waitCount(n, 60*time.Second)
	texts := map[string]bool{}
	for _, r := range k.rows() {
		texts[r.content] = true
	}
	for i := range n {
		if !texts[fmt.Sprintf("best %d", i)] {
			t.Fatalf("accepted message %d is not stored", i)
		}
	}
}

// What stops a Kafka node's start says what is wrong; a Kafka password
// never shows in the log or in /readyz.
func TestKafkaStartErrors(t *testing.T) {
	t.Parallel()
	broker := testkit.Service(t, "KAFKA_BROKERS", "Kafka broker")
	notPEM := t.TempDir() + "/ca.pem"
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		env  []string
		code int
		want string
	}{
		{"no database", []string{"KAFKA_BROKERS=" + broker}, 1, "KAFKA_BROKERS needs DATABASE_URL"},
		{"missing CA file", []string{"KAFKA_BROKERS=" + broker, "KAFKA_CA_FILE=/no/such/ca.pem"}, 2, `KAFKA_CA_FILE="/no/such/ca.pem": want the path of a readable file`},
		{"CA file without a certificate", []string{"KAFKA_BROKERS=" + broker, "KAFKA_CA_FILE=" + notPEM, "DATABASE_URL=" + pgtest.NewDatabase(t)}, 1, "holds no PEM certificate"},
		{"same topic twice", []string{"KAFKA_BROKERS=" + broker, "KAFKA_DLQ_TOPIC=MESSAGES"}, 2, "KAFKA_DLQ_TOPIC"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, out := runServer(t, tc.env...)
			if code != tc.code || !strings.Contains(out, tc.want) {
				t.Fatalf("exit code %d, want %d, with %q:\n%s", code, tc.code, tc.want, out)
			}
		})
	}
	t.Run("a SASL password the broker refuses", func(t *testing.T) {
		t.Parallel()
		k := newKafkaEnv(t)
		const secret = "Kafka-Secret-Pw-123"
		p := start(t, "", k.env("KAFKA_PASSWD="+secret)...)
		var ready struct {
			Checks map[string]struct{ Status, Error string }
		}
		testkit.Until(t, 10*time.Second, "kafka down in /readyz", func() (bool, string) {
			p.getJSON(t, "/readyz", &ready)
			return ready.Checks["kafka"].Status == "down", fmt.Sprintf("/readyz %+v", ready)
		})
		time.Sleep(500 * time.Millisecond)
		body := fmt.Sprint(ready)
		if strings.Contains(p.logs.String(), secret) || strings.Contains(body, secret) {
			t.Fatalf("the password shows:\n%s\n%s", body, p.logs.String())
		}
		if !strings.Contains(p.logs.String(), "sasl=true") || !strings.Contains(p.logs.String(), "clear text") {
			t.Errorf("the log does not say SASL is on without TLS:\n%s", p.logs.String())
		}
	})
}

// TestKafkaNewcomerGetsEveryMessageAfterItsConnect: a client told it is
// connected gets every message accepted after that, even when reading its
// history takes long enough for more than HISTORY_LIMIT messages to be
// broadcast meanwhile (here the messages table is locked; a Kafka node
// broadcasts what the broker acknowledged without waiting for the store).
// Before, it got only the newest HISTORY_LIMIT of them, missing the rest.
func TestKafkaNewcomerGetsEveryMessageAfterItsConnect(t *testing.T) {
	t.Parallel()
	k := newKafkaEnv(t)
	p := start(t, "", k.env("HISTORY_LIMIT=5")...)
	sender := dialSIO(t, p.URL, "websocket")
	var before, after []string
	for i := range 10 {
		before = append(before, fmt.Sprintf("before %d", i))
	}
	for i := range 20 {
		after = append(after, fmt.Sprintf("after %d", i))
	}
	sendAll(t, sender, "s", before)
	k.waitCount(len(before), 60*time.Second)

	ctx := context.Background()
	db := pgtest.Connect(t, k.db)
	tx, err := db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `LOCK TABLE messages IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	newcomer := dialSIO(t, p.URL, "websocket")
	// Its history read waits for the lock (nothing else reads the table now).
	watch := pgtest.Connect(t, k.db)
	deadline := time.Now().Add(10 * time.Second)
	for {
		var waiting int
		if err := watch.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the newcomer's history read never waited for the lock")
		}
		time.Sleep(20 * time.Millisecond)
	}
	sendAll(t, sender, "s", after)
	for sender.message().Message != after[len(after)-1] {
		// the broadcast is done when the sender got the last one
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	want := append(append([]string(nil), before[5:]...), after...)
	for i, w := range want {
		if got := newcomer.message().Message; got != w {
			t.Fatalf("message %d: %q, want %q (history %q, then every message since its connect %q)", i, got, w, before[5:], after)
		}
	}
}

// TestKafkaDeletionThroughTheLog: a moderator's deletion is a Kafka record
// like a message. With the consumer behind (off, then started on another
// node), it applies the message and then its deletion in the topic's
// order, so the message never comes back: not in PostgreSQL's visible
// history, not in /api/messages, not in a newcomer's history. The
// accepting node's clients hear message:deleted at once; a second DELETE
// is 204 again (idempotent), an unknown id 404.
func TestKafkaDeletionThroughTheLog(t *testing.T) {
	t.Parallel()
	k := newKafkaEnv(t)
	admin := strings.Repeat("ab", 20)
	p := start(t, "", k.env("ADMIN_TOKEN="+admin, "KAFKA_CONSUMER=off", "HISTORY_LIMIT=50")...)
	watcher := dialSIO(t, p.URL, "websocket")
	sender := dialSIO(t, p.URL, "websocket")
	ids := sendAll(t, sender, "s", []string{"keep 1", "gone", "keep 2"})

	del := func(on *proc, id string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodDelete, on.URL+"/api/messages/"+id, nil)
		req.Header.Set("Authorization", "Bearer "+admin)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if code := del(p, ids["gone"]); code != http.StatusNoContent {
		t.Fatalf("DELETE: %d, want 204", code)
	}
	if d, _ := watcher.event("message:deleted").(map[string]any); d["id"] != ids["gone"] {
		t.Fatalf("message:deleted %v, want id %s", d, ids["gone"])
	}
	if k.count() != 0 {
		t.Fatal("a row was stored with the consumer off")
	}

	// The consumer catches up on another node: the message, then its
	// tombstone.
	q := start(t, "", k.env("ADMIN_TOKEN="+admin, "HISTORY_LIMIT=50")...)
	db := pgtest.Connect(t, k.db)
	deadline := time.Now().Add(60 * time.Second)
	for {
		var rows, tombstones int
		if err := db.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM messages), (SELECT count(*) FROM message_deletions WHERE id = $1)`, ids["gone"]).Scan(&rows, &tombstones); err != nil {
			t.Fatal(err)
		}
		if rows == 3 && tombstones == 1 { // the deleted message's row stays, hidden
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 60 s: %d rows, %d tombstones for the deleted message", rows, tombstones)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var page struct{ Messages []wire }
	if code := q.getJSON(t, "/api/messages?limit=200", &page); code != 200 || len(page.Messages) != 2 ||
		page.Messages[0].Message != "keep 2" || page.Messages[1].Message != "keep 1" {
		t.Fatalf("/api/messages %d %+v, want keep 2 and keep 1", code, page)
	}
	newcomer := dialSIO(t, q.URL, "websocket")
	for _, want := range []string{"keep 1", "keep 2"} {
		if got := newcomer.message().Message; got != want {
			t.Fatalf("a newcomer's history: %q, want %q", got, want)
		}
	}
	dialSIO(t, q.URL, "websocket").emit(`{"message":"after","username":"s"}`)
	if got := newcomer.message().Message; got != "after" {
		t.Fatalf("after its history the newcomer got %q, want the next live message", got)
	}
	if code := del(q, ids["gone"]); code != http.StatusNoContent {
		t.Fatalf("a second DELETE: %d, want 204", code)
	}
	if code := del(q, "0191d2c4-7b1e-7c3a-9f00-5a1b2c3d4e5f"); code != http.StatusNotFound {
		t.Fatalf("DELETE of an unknown id: %d, want 404", code)
	}
}
