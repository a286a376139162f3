//go:build outage

package main

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// These tests stop the shared Kafka or PostgreSQL of scripts/services for
// 20 s: built with the tag `outage` only, run one package at a time by
// scripts/test's outage stage, with nothing else using the services.

func services(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command("../../../scripts/services", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("scripts/services %v: %v\n%s", args, err, out)
	}
}

// restart starts a stopped service again. The services listen below
// Linux's ephemeral range (32768-60999), so no outgoing connection takes a
// stopped service's port as its own local port; a start that fails for
// another passing reason (a port still in TIME_WAIT) is tried again, up to
// five times, and the sockets on the service ports are logged.
func restart(t *testing.T, name string) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		out, err := exec.Command("../../../scripts/services", "start", name).CombinedOutput()
		if err == nil {
			return
		}
		if attempt == 5 {
			t.Fatalf("scripts/services start %s: %v\n%s", name, err, out)
		}
		ss, _ := exec.Command("ss", "-tanp").CombinedOutput()
		var holders []string
		for _, line := range strings.Split(string(ss), "\n") {
			if f := strings.Fields(line); len(f) > 3 && (strings.HasSuffix(f[3], ":"+servicePort(os.Getenv("KAFKA_BROKERS"))) || strings.HasSuffix(f[3], ":"+servicePort(os.Getenv("DATABASE_URL")))) {
				holders = append(holders, line)
			}
		}
		t.Logf("scripts/services start %s failed (attempt %d): %v; trying again in 1 s; sockets on the ports:\n%s",
			name, attempt, err, strings.Join(holders, "\n"))
		time.Sleep(time.Second)
	}
}

// servicePort is the port of a service address: host:port, a list of them
// or a URL.
func servicePort(addr string) string {
	if u, err := url.Parse(addr); err == nil && u.Host != "" {
		addr = u.Host
	}
	addr, _, _ = strings.Cut(addr, ",")
	if _, port, err := net.SplitHostPort(addr); err == nil {
		return port
	}
	return "(unknown)"
}

// listener records when each message text reached a client.
type listener struct {
	mu   sync.Mutex
	got  map[string]time.Time
	stop chan struct{}
	done chan struct{}
}

func listen(t *testing.T, c *sio) *listener {
	l := &listener{got: map[string]time.Time{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for {
			var f string
			select {
			case f = <-c.frames:
			case <-l.stop:
				return
			}
			if !strings.HasPrefix(f, `2["message",`) {
				continue
			}
			w := toWire(parseEvent(t, f))
			l.mu.Lock()
			if _, dup := l.got[w.Message]; dup {
				t.Errorf("%q delivered twice", w.Message)
			}
			l.got[w.Message] = time.Now()
			l.mu.Unlock()
		}
	}()
	t.Cleanup(func() { close(l.stop); <-l.done })
	return l
}

func (l *listener) at(text string) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	at, ok := l.got[text]
	return at, ok
}

type streamedMsg struct {
	text string
	at   time.Time
	ack  <-chan map[string]any
	// ackedAt is when the acknowledgement arrived; read it after ack.
	ackedAt *time.Time
}

// timedAck returns a channel with ack's answer and records when it came.
func timedAck(ack <-chan map[string]any, at *time.Time) <-chan map[string]any {
	out := make(chan map[string]any, 1)
	go func() {
		a := <-ack
		*at = time.Now()
		out <- a
	}()
	return out
}

// stream sends acknowledged messages from sender every 20 ms for 3 s, calls
// down, goes on for outage, calls up, goes on for 3 s more; during is
// called every 25 messages of the outage. It returns the messages, when
// the outage began, when up was called (the service may answer before up
// returns) and when up returned.
func stream(t *testing.T, sender *sio, prefix string, outage time.Duration, down, up func(), during func()) (msgs []streamedMsg, downAt, upCalledAt, upAt time.Time) {
	t.Helper()
	const pace, before, after = 20 * time.Millisecond, 3 * time.Second, 3 * time.Second
	startAt := time.Now()
	for i := 0; ; i++ {
		now := time.Now()
		if downAt.IsZero() && now.Sub(startAt) >= before {
			down()
			downAt = time.Now()
		}
		if !downAt.IsZero() && upAt.IsZero() && now.Sub(downAt) >= outage {
			upCalledAt = time.Now()
			up()
			upAt = time.Now()
		}
		if !upAt.IsZero() && now.Sub(upAt) >= after {
			return msgs, downAt, upCalledAt, upAt
		}
		text := fmt.Sprintf("%s %d", prefix, i)
		ackedAt := new(time.Time)
		msgs = append(msgs, streamedMsg{text: text, at: time.Now(), ackedAt: ackedAt,
			ack: timedAck(sender.emitAck(`{"message":"`+text+`","username":"steady"}`), ackedAt)})
		if !downAt.IsZero() && upAt.IsZero() && i%25 == 0 && during != nil {
			during()
		}
		time.Sleep(pace - time.Since(now))
	}
}

// TestOutageKafkaStopped20s: the broker is stopped for 20 s in the middle
// of a stream. Live chat goes on (every message is broadcast at once), the
// acknowledgements wait for the broker, /readyz names kafka down, a node
// whose PRODUCER_BUFFER fills refuses with `unavailable` and broadcasts
// nothing it refused, and after the broker returns every acknowledged
// message is in PostgreSQL once.
func TestOutageKafkaStopped20s(t *testing.T) {
	k := newKafkaEnv(t)
	t.Cleanup(func() { _ = exec.Command("../../../scripts/services", "start", "kafka").Run() })
	node := start(t, "", k.env()...)
	small := start(t, "", k.env("PRODUCER_BUFFER=50", "KAFKA_CONSUMER=off")...)
	sender := dialSIO(t, node.URL, "websocket")
	live := listen(t, dialSIO(t, node.URL, "websocket"))
	smallSender := dialSIO(t, small.URL, "websocket")
	smallLive := listen(t, dialSIO(t, small.URL, "websocket"))

	var sawDown, sawMetric, filled bool
	var smallAcks []<-chan map[string]any
	var smallTexts []string
	during := func() {
		var ready struct {
			Checks map[string]struct{ Status, Error string }
		}
		if code := node.getJSON(t, "/readyz", &ready); code != 200 {
			t.Fatalf("/readyz %d during the broker outage: the node must stay ready", code)
		}
		sawDown = sawDown || ready.Checks["kafka"].Status == "down"
		m := metrics(t, node)
		sawMetric = sawMetric || (strings.Contains(m, "chat_kafka_producer_up 0") && metricValue(m, "chat_kafka_producer_buffer") > 0)
		if !filled {
			// Past its buffer of 50 the small node refuses.
			filled = true
			for i := range 60 {
				text := fmt.Sprintf("small %d", i)
				smallTexts = append(smallTexts, text)
				smallAcks = append(smallAcks, smallSender.emitAck(`{"message":"`+text+`","username":"small"}`))
			}
		}
	}
	msgs, downAt, restartAt, upAt := stream(t, sender, "kafka outage", 20*time.Second,
		func() { services(t, "stop", "kafka") }, func() { restart(t, "kafka") }, during)
	if !sawDown || !sawMetric {
		t.Errorf("during the outage /readyz showed kafka down: %v; chat_kafka_producer_up 0 with a buffer: %v", sawDown, sawMetric)
	}

	var outageMsgs, lateBroadcasts, earlyAcks int
	var lastOutageAck time.Time
	acked := map[string]bool{}
	for i, m := range msgs {
		select {
		case a := <-m.ack:
			if a["ok"] != true {
				t.Fatalf("message %d: ack %v", i, a)
			}
			acked[m.text] = true
			if m.at.After(downAt.Add(time.Second)) && m.at.Before(upAt) {
				// The broker may answer before scripts/services says it
				// does, but not before it was started again.
				if m.ackedAt.Before(restartAt) {
					earlyAcks++
				}
				if m.ackedAt.After(lastOutageAck) {
					lastOutageAck = *m.ackedAt
				}
			}
		case <-time.After(90 * time.Second):
			t.Fatalf("%q (sent %v after the outage began) not acknowledged 90 s after the broker returned", m.text, m.at.Sub(downAt))
		}
		if m.at.After(downAt.Add(time.Second)) && m.at.Before(upAt) {
			outageMsgs++
			// Live chat went on: broadcast while the broker was away.
			if at, ok := live.at(m.text); !ok || at.After(upAt) {
				lateBroadcasts++
			}
		}
	}
	if earlyAcks > 0 {
		t.Errorf("%d messages sent while the broker was down were acknowledged before it came back", earlyAcks)
	}
	if outageMsgs < 500 {
		t.Errorf("only %d messages were sent during the outage", outageMsgs)
	}
	if lateBroadcasts > 0 {
		t.Errorf("%d messages sent during the outage were not broadcast before the broker returned", lateBroadcasts)
	}

	// The small node: 50 admitted and broadcast, 10 refused and not.
	var refused int
	for i, ch := range smallAcks {
		select {
		case a := <-ch:
			switch {
			case a["ok"] == true:
				acked[smallTexts[i]] = true
			case fmt.Sprint(a["error"].(map[string]any)["code"]) == "unavailable":
				refused++
				if _, ok := smallLive.at(smallTexts[i]); ok {
					t.Errorf("refused %q was broadcast", smallTexts[i])
				}
			default:
				t.Errorf("%q: ack %v", smallTexts[i], a)
			}
		case <-time.After(90 * time.Second):
			t.Fatalf("%q: no acknowledgement", smallTexts[i])
		}
	}
	if refused != 10 {
		t.Errorf("the node with PRODUCER_BUFFER=50 refused %d of 60 during the outage, want 10", refused)
	}
	if m := metrics(t, small); metricValue(m, "chat_log_refused_total") != 10 {
		t.Errorf("chat_log_refused_total = %v, want 10", metricValue(m, "chat_log_refused_total"))
	}

	k.waitCount(len(acked), 90*time.Second)
	rows := k.rows()
	for id, r := range rows {
		if !acked[r.content] {
			t.Errorf("row %s %q was not acknowledged", id, r.content)
		}
		delete(acked, r.content)
	}
	if len(acked) > 0 {
		t.Errorf("%d acknowledged messages are not stored", len(acked))
	}
	n, keys := 0, map[string]bool{}
	for _, rs := range k.records(k.topic) {
		n += len(rs)
		for _, r := range rs {
			keys[string(r.Key)] = true
		}
	}
	node.awaitCheck("kafka", "ok", 20*time.Second, nil)
	m := metrics(t, node)
	t.Logf("%d messages (%d during the 20 s broker outage), %d rows, each once; the topic holds %d records for %d ids "+
		"(records sent again by a new producer after a lost acknowledgement: %d); producer restarts %v; the last message of "+
		"the outage acknowledged %v after the broker was started again (it took %v to answer scripts/services)",
		len(msgs), outageMsgs, len(rows), n, len(keys), n-len(keys), metricValue(m, "chat_kafka_producer_restarts_total"),
		lastOutageAck.Sub(restartAt).Round(time.Millisecond), upAt.Sub(restartAt).Round(time.Millisecond))
}

// TestOutagePostgresStopped20sWithKafka: PostgreSQL is stopped for 20 s in
// the middle of a stream. The broker keeps acknowledging (live chat and
// acknowledgements go on), the consumers pause, /readyz names the database
// down, and after PostgreSQL returns every message is stored once.
func TestOutagePostgresStopped20sWithKafka(t *testing.T) {
	k := newKafkaEnv(t)
	t.Cleanup(func() { _ = exec.Command("../../../scripts/services", "start", "postgres").Run() })
	nodes := []*proc{
		start(t, "", k.env("DB_RETRY_MAX=2s")...),
		start(t, "", k.env("DB_RETRY_MAX=2s")...),
	}
	sender := dialSIO(t, nodes[0].URL, "websocket")
	var sawDown, sawMetric bool
	during := func() {
		for _, p := range nodes {
			var ready struct {
				Checks map[string]struct{ Status, Error string }
			}
			if code := p.getJSON(t, "/readyz", &ready); code != 200 {
				t.Fatalf("/readyz %d during the database outage: the node must stay ready", code)
			}
			sawDown = sawDown || ready.Checks["database"].Status == "down"
			sawMetric = sawMetric || strings.Contains(metrics(t, p), "chat_store_up 0")
		}
	}
	msgs, downAt, _, upAt := stream(t, sender, "db outage", 20*time.Second,
		func() { services(t, "stop", "postgres") }, func() { restart(t, "postgres") }, during)
	if !sawDown || !sawMetric {
		t.Errorf("during the outage /readyz showed the database down: %v; chat_store_up 0: %v", sawDown, sawMetric)
	}
	var outageMsgs int
	acked := map[string]bool{}
	for i, m := range msgs {
		select {
		case a := <-m.ack:
			if a["ok"] != true {
				t.Fatalf("message %d: ack %v", i, a)
			}
			acked[m.text] = true
		case <-time.After(30 * time.Second):
			t.Fatalf("%q not acknowledged", m.text)
		}
		if m.at.After(downAt) && m.at.Before(upAt) {
			outageMsgs++
		}
	}
	k.waitCount(len(msgs), 90*time.Second)
	caughtUp := time.Since(upAt)
	time.Sleep(time.Second)
	rows := k.rows()
	if len(rows) != len(msgs) {
		t.Fatalf("%d rows for %d messages", len(rows), len(msgs))
	}
	for _, r := range rows {
		delete(acked, r.content)
	}
	if len(acked) > 0 {
		t.Fatalf("%d acknowledged messages are not stored", len(acked))
	}
	for _, p := range nodes {
		if m := metrics(t, p); !strings.Contains(m, "chat_store_up 1") {
			t.Errorf("%s: chat_store_up is not 1 after the outage", p.URL)
		}
	}
	t.Logf("%d messages (%d during the 20 s database outage), all acknowledged by the broker, %d rows, each once; "+
		"PostgreSQL caught up %v after it returned", len(msgs), outageMsgs, len(rows), caughtUp.Round(time.Millisecond))
}
