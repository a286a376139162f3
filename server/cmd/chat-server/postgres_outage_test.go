package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scalable-chat-go/server/sqlstore/pgtest"
)

// tcpProxy forwards 127.0.0.1:port to a target address until cut: then it
// resets every connection and refuses new ones, as a PostgreSQL server
// that is gone does, until restore.
type tcpProxy struct {
	t      *testing.T
	target string
	addr   string
	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]bool
	wg     sync.WaitGroup
}

func newTCPProxy(t *testing.T, target string) *tcpProxy {
	p := &tcpProxy{t: t, target: target, conns: map[net.Conn]bool{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(func() { p.cut(); p.wg.Wait() })
	return p
}

func (p *tcpProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				_ = c.Close()
				continue
			}
			p.mu.Lock()
			if p.ln != ln {
				// Cut while this connection was being set up: it must
				// not outlive the cut (a check passing during an outage).
				p.mu.Unlock()
				for _, conn := range []net.Conn{c, up} {
					if tc, ok := conn.(*net.TCPConn); ok {
						_ = tc.SetLinger(0)
					}
					_ = conn.Close()
				}
				continue
			}
			p.conns[c], p.conns[up] = true, true
			p.mu.Unlock()
			for _, pair := range [][2]net.Conn{{c, up}, {up, c}} {
				p.wg.Add(1)
				go func() {
					defer p.wg.Done()
					_, _ = io.Copy(pair[0], pair[1])
					_ = pair[0].Close()
					_ = pair[1].Close()
				}()
			}
		}
	}()
}

// cut closes the listener and resets every open connection.
func (p *tcpProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		_ = p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		_ = c.Close()
	}
	clear(p.conns)
}

// restore listens again on the same address.
func (p *tcpProxy) restore() {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatalf("proxy: listen again on %s: %v", p.addr, err)
	}
	p.serve(ln)
}

// PostgreSQL unreachable for 15 s under a stream of acknowledged messages:
// the node keeps admitting and broadcasting, holds the acknowledgements,
// shows the outage in /readyz and /metrics, and once PostgreSQL is back
// stores every acknowledged message exactly once.
//
// The outage is made by a TCP proxy between this one server and
// PostgreSQL, cut for 15 s (open connections reset, new ones refused), not
// by stopping PostgreSQL: the PostgreSQL of scripts/services is shared by
// every test package running in parallel with this one (and by other
// worktrees on a development machine), which a real stop would fail. The
// variant that really stops PostgreSQL (scripts/services stop/start) is
// TestOutagePostgresStopped15s, built with the tag `outage` and run alone by
// the outage stage of scripts/test.
func TestPostgresDownFor15s(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	u, err := url.Parse(db)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newTCPProxy(t, u.Host)
	u.Host = proxy.addr
	runOutage(t, db, u.String(), proxy.cut, proxy.restore)
}

// runOutage runs a server on serverURL (the database db, perhaps through a
// proxy), sends acknowledged messages at a steady pace, calls down after
// 3 s and up 15 s later, and checks what the node shows and stores.
func runOutage(t *testing.T, db, serverURL string, down, up func()) {
	p := start(t, "", "DATABASE_URL="+serverURL, "RATE_LIMIT_PER_SEC=0", "DB_RETRY_MAX=1s", "BATCH_WAIT=20ms")
	sender := dialSIO(t, p.URL, "websocket")
	const pace, before, outage, after = 20 * time.Millisecond, 3 * time.Second, 15 * time.Second, 3 * time.Second
	type sent struct {
		text string
		at   time.Time
		ack  <-chan map[string]any
	}
	var msgs []sent
	var downAt, upAt time.Time
	var sawDown, sawMetric bool
	var earlyAcks int
	startAt := time.Now()
	for i := 0; ; i++ {
		now := time.Now()
		if downAt.IsZero() && now.Sub(startAt) >= before {
			down()
			downAt = time.Now()
		}
		if !downAt.IsZero() && upAt.IsZero() && now.Sub(downAt) >= outage {
			// Nothing sent since the outage began may be acknowledged yet.
			for i := range msgs {
				if msgs[i].at.After(downAt) {
					select {
					case a := <-msgs[i].ack:
						earlyAcks++
						ch := make(chan map[string]any, 1)
						ch <- a
						msgs[i].ack = ch
					default:
					}
				}
			}
			up()
			upAt = time.Now()
		}
		if !upAt.IsZero() && now.Sub(upAt) >= after {
			break
		}
		text := fmt.Sprintf("outage %d", i)
		msgs = append(msgs, sent{text: text, at: now, ack: sender.emitAck(`{"message":"` + text + `","username":"steady"}`)})
		if !downAt.IsZero() && upAt.IsZero() && i%25 == 0 {
			var ready struct {
				Checks map[string]struct{ Status, Error string }
			}
			if code := p.getJSON(t, "/readyz", &ready); code != 200 {
				t.Fatalf("/readyz %d during the outage: the node must stay ready", code)
			}
			sawDown = sawDown || ready.Checks["store"].Status == "down"
			sawMetric = sawMetric || strings.Contains(metrics(t, p), "chat_store_up 0")
		}
		time.Sleep(pace - time.Since(now))
	}
	if earlyAcks > 0 {
		t.Errorf("%d messages sent while PostgreSQL was down were acknowledged before it came back", earlyAcks)
	}
	if !sawDown || !sawMetric {
		t.Errorf("during the outage /readyz showed the store down: %v; chat_store_up 0: %v", sawDown, sawMetric)
	}
	var outageMsgs int
	for i, m := range msgs {
		select {
		case a := <-m.ack:
			if a["ok"] != true {
				t.Fatalf("message %d: ack %v", i, a)
			}
		case <-time.After(60 * time.Second):
			t.Fatalf("message %d (sent %v after the start) not acknowledged 60 s after the outage", i, m.at.Sub(startAt))
		}
		if m.at.After(downAt) && m.at.Before(upAt) {
			outageMsgs++
		}
	}
	p.awaitCheck("store", "ok", 10*time.Second, func() (bool, string) {
		up := p.metric(t, "chat_store_up")
		return up == 1, fmt.Sprintf("chat_store_up %v", up)
	})
	if outageMsgs < 200 {
		t.Errorf("only %d messages were sent during the outage", outageMsgs)
	}

	counts := map[string]int{}
	rows, err := pgtest.Connect(t, db).Query(context.Background(), `SELECT content, count(*) FROM messages GROUP BY content`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var text string
		var n int
		if err := rows.Scan(&text, &n); err != nil {
			t.Fatal(err)
		}
		counts[text] = n
	}
	for _, m := range msgs {
		if counts[m.text] != 1 {
			t.Errorf("acknowledged %q is stored %d times", m.text, counts[m.text])
		}
	}
	if len(counts) != len(msgs) {
		t.Errorf("stored %d distinct messages, sent %d", len(counts), len(msgs))
	}
	t.Logf("%d messages sent (%d during the %v outage), every one acknowledged and stored once", len(msgs), outageMsgs, outage)
}

func metrics(t *testing.T, p *proc) string {
	t.Helper()
	res, err := http.Get(p.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}
