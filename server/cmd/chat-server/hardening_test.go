package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Issue 16, item 1: a message id is broadcast to everyone, so another
// client must not be able to take it over by sending it as its clientId.
// Only the same content under the same name is a retry (issue 27: from any
// connection, since a retry may come after a reconnect; it changes
// nothing); anything else is refused with client_id_taken, and neither
// broadcast nor stored.
func TestClientIDCannotBeTakenOver(t *testing.T) {
	p := start(t, "", "RATE_LIMIT_PER_SEC=0", "HISTORY_LIMIT=0")
	bob := dialSIO(t, p.URL, "websocket")
	mallory := dialSIO(t, p.URL, "websocket")

	const id = "0191d2c4-7b1e-7c3a-9f00-5a1b2c3d4e5f"
	original := `{"message":"the original","username":"bob","clientId":"` + id + `"}`
	if ack := bob.ack(original); ack["ok"] != true || ack["id"] != id {
		t.Fatalf("bob's ack = %v", ack)
	}
	if m := mallory.message(); m.ID != id || m.Message != "the original" {
		t.Fatalf("mallory received %+v", m)
	}
	// Bob's message without a clientId: its id is the server's, and is
	// broadcast too.
	plain := bob.ack(`{"message":"no client id","username":"bob"}`)
	serverID, _ := plain["id"].(string)
	if plain["ok"] != true || serverID == "" {
		t.Fatalf("bob's second ack = %v", plain)
	}
	if m := mallory.message(); m.ID != serverID {
		t.Fatalf("mallory received %+v, want id %s", m, serverID)
	}

	refused := func(who *sio, payload, what string) {
		t.Helper()
		ack := who.ack(payload)
		e, _ := ack["error"].(map[string]any)
		if ack["ok"] == true || e["code"] != "client_id_taken" {
			t.Fatalf("%s: ack = %v, want a refusal with client_id_taken", what, ack)
		}
		ev, _ := who.event("error").(map[string]any)
		if ev["code"] != "client_id_taken" {
			t.Fatalf("%s: error event %v, want client_id_taken", what, ev)
		}
	}
	refused(mallory, `{"message":"HIJACKED","username":"mallory","clientId":"`+id+`"}`, "another connection, other content")
	// The same content from another connection is taken for the sender's
	// retry: acknowledged with the first outcome, broadcast nothing.
	if ack := mallory.ack(original); ack["ok"] != true || ack["id"] != id {
		t.Fatalf("another connection, the same content: ack = %v, want the first outcome", ack)
	}
	refused(mallory, `{"message":"HIJACKED","username":"mallory","clientId":"`+serverID+`"}`, "another connection, a server-made id")
	refused(bob, `{"message":"edited","username":"bob","clientId":"`+id+`"}`, "the same connection, other text")
	refused(bob, `{"message":"the original","username":"bobby","clientId":"`+id+`"}`, "the same connection, another username")

	// The sender's own retry is still one: acknowledged with the first
	// outcome, broadcast nothing.
	if ack := bob.ack(original); ack["ok"] != true || ack["id"] != id {
		t.Fatalf("bob's retry: ack = %v", ack)
	}

	// Nothing of the above reached anyone: the next message both see is
	// this one.
	if ack := bob.ack(`{"message":"after","username":"bob"}`); ack["ok"] != true {
		t.Fatalf("ack = %v", ack)
	}
	for name, c := range map[string]*sio{"bob": bob, "mallory": mallory} {
		for {
			m := c.message()
			if m.Message == "after" {
				break
			}
			if m.ID == id || m.ID == serverID || strings.Contains(m.Message, "HIJACKED") {
				t.Fatalf("%s received %+v after the first broadcasts", name, m)
			}
		}
	}
	var page struct{ Messages []wire }
	p.getJSON(t, "/api/messages?limit=10", &page)
	got := map[string]string{}
	for _, m := range page.Messages {
		got[m.ID] = m.Message + " by " + m.Username
	}
	if got[id] != "the original by bob" || got[serverID] != "no client id by bob" || len(page.Messages) != 3 {
		t.Fatalf("stored %v", got)
	}
	if n := p.metric(t, `chat_messages_rejected_total{reason="client_id_taken"}`); n != 4 {
		t.Fatalf("client_id_taken counted %v times, want 4", n)
	}
}

// pollingHandshake opens an Engine.IO polling session and returns its id.
func pollingHandshake(t *testing.T, p *proc) string {
	t.Helper()
	res, err := http.Get(p.URL + "/socket.io/?EIO=4&transport=polling")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	var open struct{ Sid string }
	if res.StatusCode != 200 || len(body) == 0 || json.Unmarshal(body[1:], &open) != nil || open.Sid == "" {
		t.Fatalf("polling handshake: %d %q", res.StatusCode, body)
	}
	return open.Sid
}

// dialFrom opens a TCP connection to p from the loopback address local
// (any of 127.0.0.0/8), so that a test can be several clients.
func dialFrom(t *testing.T, p *proc, local string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", strings.TrimPrefix(p.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// clientFrom is an HTTP client whose connections come from local, one per
// request (no keep-alive, so that it holds nothing between requests).
func clientFrom(local string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
}

// metricWith reads one sample of p's /metrics through c.
func metricWith(t *testing.T, c *http.Client, p *proc, name string) float64 {
	t.Helper()
	res, err := c.Get(p.URL + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			v, _ := strconv.ParseFloat(rest, 64)
			return v
		}
	}
	t.Fatalf("/metrics has no %s", name)
	return 0
}

// waitUntil is eventually with what was seen last in its failure: check
// returns whether the wait is over, and what it saw.
func waitUntil(t *testing.T, d time.Duration, what string, check func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, saw := check()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; last seen: %s", d, what, saw)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// metricReaches waits until a sample of p's /metrics, read through c, is
// want.
func metricReaches(t *testing.T, c *http.Client, p *proc, name string, want float64, d time.Duration, what string) {
	t.Helper()
	waitUntil(t, d, what, func() (bool, string) {
		v := metricWith(t, c, p, name)
		return v == want, fmt.Sprintf("%s %v, want %v", name, v, want)
	})
}

// answersHTTP sends a keep-alive GET /healthz on c and reports whether a
// 200 came back within d (false when the server closed or reset c).
func answersHTTP(c net.Conn, br *bufio.Reader, d time.Duration) bool {
	_ = c.SetDeadline(time.Now().Add(d))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: chat\r\n\r\n"); err != nil {
		return false
	}
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode == 200
}

// Issue 16, item 3: idle keep-alive connections of one address are bounded
// by HTTP_MAX_CONNS_PER_IP at the listener and closed after
// HTTP_IDLE_TIMEOUT; other addresses are served all along.
func TestIdleConnectionsOfOneAddressAreBounded(t *testing.T) {
	const limit, over = 20, 10
	p := start(t, "", fmt.Sprintf("HTTP_MAX_CONNS_PER_IP=%d", limit), "MAX_CONNECTIONS_PER_IP=10", "HTTP_IDLE_TIMEOUT=2s")
	other := clientFrom("127.0.0.2")
	http.DefaultClient.CloseIdleConnections() // the readiness probe's
	metricReaches(t, other, p, "chat_http_connections", 1, 5*time.Second, "only the scrape's own connection open")

	type held struct {
		c  net.Conn
		br *bufio.Reader
	}
	var idle []held
	for i := range limit {
		c := dialFrom(t, p, "127.0.0.1")
		br := bufio.NewReader(c)
		if !answersHTTP(c, br, 5*time.Second) {
			t.Fatalf("connection %d of %d (within the limit) was not served", i+1, limit)
		}
		idle = append(idle, held{c, br})
	}
	for i := range over {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.1")}, Timeout: 5 * time.Second}
		c, err := d.Dial("tcp", strings.TrimPrefix(p.URL, "http://"))
		if err != nil {
			continue // reset while connecting: refused too
		}
		defer c.Close()
		if answersHTTP(c, bufio.NewReader(c), 3*time.Second) {
			t.Fatalf("connection %d past HTTP_MAX_CONNS_PER_IP=%d was served", i+1, limit)
		}
	}
	if res, err := other.Get(p.URL + "/healthz"); err != nil || res.StatusCode != 200 {
		t.Fatalf("/healthz from another address while one holds %d idle connections: %v", limit, err)
	} else {
		res.Body.Close()
	}
	if n := metricWith(t, other, p, "chat_http_connections_refused_total"); n != over {
		t.Fatalf("chat_http_connections_refused_total = %v, want %d", n, over)
	}

	// Past HTTP_IDLE_TIMEOUT the server closed every idle one.
	for i, h := range idle {
		_ = h.c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := h.br.ReadByte(); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("idle connection %d still open 5 s after HTTP_IDLE_TIMEOUT=2s (%v)", i+1, err)
		}
	}
	metricReaches(t, other, p, "chat_http_connections", 1, 5*time.Second, "the idle connections' slots given back")
	c := dialFrom(t, p, "127.0.0.1")
	if !answersHTTP(c, bufio.NewReader(c), 5*time.Second) {
		t.Fatal("the address is not served again once its connections closed")
	}
	c.Close()

	// A WebSocket connection leaves the count when the session layer takes
	// it over after the handshake: it is a session then.
	var ws []*sio
	for range 3 {
		ws = append(ws, dialSIO(t, p.URL, "websocket"))
	}
	metricReaches(t, other, p, "chat_http_connections", 1, 5*time.Second, "the WebSocket connections handed to the session layer")
	for _, c := range ws {
		c.close()
	}
}

// Issue 16, item 3: a request body that trickles in is cut after
// HTTP_BODY_TIMEOUT (it was held until it ended: 100 s at 1 byte/s for a
// 100-byte polling POST), while a long-poll GET, which has no body, is
// still held as long as the heartbeat says.
func TestTricklingBodyIsCut(t *testing.T) {
	p := start(t, "", "HTTP_BODY_TIMEOUT=1s", "PING_INTERVAL=3s", "PING_TIMEOUT=5s")
	sid := pollingHandshake(t, p)
	c := dialFrom(t, p, "127.0.0.1")
	if _, err := fmt.Fprintf(c, "POST /socket.io/?EIO=4&transport=polling&sid=%s HTTP/1.1\r\nHost: chat\r\n"+
		"Content-Type: text/plain;charset=UTF-8\r\nContent-Length: 100\r\n\r\n", sid); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() { // one byte every 200 ms: 20 s for the whole body
		for range 100 {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			if _, err := c.Write([]byte("4")); err != nil {
				return
			}
		}
	}()
	began := time.Now()
	_ = c.SetReadDeadline(time.Now().Add(6 * time.Second))
	_, err := io.Copy(io.Discard, c) // a response, if any, then the close
	if took := time.Since(began); errors.Is(err, os.ErrDeadlineExceeded) || took > 5*time.Second {
		t.Fatalf("a body trickling at 5 bytes/s was held %v with HTTP_BODY_TIMEOUT=1s (%v)", took.Round(time.Millisecond), err)
	} else {
		t.Logf("the trickling POST was cut after %v", took.Round(time.Millisecond))
	}

	// A long-poll GET outlives HTTP_BODY_TIMEOUT: it ends with the ping.
	sid = pollingHandshake(t, p)
	began = time.Now()
	res, err := http.Get(p.URL + "/socket.io/?EIO=4&transport=polling&sid=" + sid)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if took := time.Since(began); res.StatusCode != 200 || string(body) != "2" || took < 2*time.Second {
		t.Fatalf("long-poll: %d %q after %v; want the ping (2) after PING_INTERVAL=3s", res.StatusCode, body, took)
	}
}

// A client whose connection dropped before its acknowledgement came, and
// whose session connection-state recovery restores, is the same sender:
// its retry is acknowledged with the first outcome and not broadcast again.
func TestRetryAfterRecoveryIsTheSameSender(t *testing.T) {
	p := start(t, "", "RATE_LIMIT_PER_SEC=0", "HISTORY_LIMIT=0")
	url := "ws" + strings.TrimPrefix(p.URL, "http") + "/socket.io/?EIO=4&transport=websocket"
	// connect opens a WebSocket, joins "/" with auth, and returns the
	// connection and the CONNECT answer.
	connect := func(auth string) (*websocket.Conn, map[string]any) {
		t.Helper()
		c, _, err := websocket.DefaultDialer.Dial(url, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, _, err := c.ReadMessage(); err != nil { // the open packet
			t.Fatal(err)
		}
		if err := c.WriteMessage(websocket.TextMessage, []byte("40"+auth)); err != nil {
			t.Fatal(err)
		}
		for {
			_, f, err := c.ReadMessage()
			if err != nil {
				t.Fatal(err)
			}
			if s, ok := strings.CutPrefix(string(f), "40"); ok {
				var answer map[string]any
				if err := json.Unmarshal([]byte(s), &answer); err != nil {
					t.Fatalf("CONNECT answered %q", f)
				}
				return c, answer
			}
		}
	}
	// until reads packets until one starts with prefix, and returns it.
	until := func(c *websocket.Conn, prefix string) string {
		t.Helper()
		for {
			_, f, err := c.ReadMessage()
			if err != nil {
				t.Fatalf("waiting for %s: %v", prefix, err)
			}
			if string(f) == "2" {
				_ = c.WriteMessage(websocket.TextMessage, []byte("3"))
			}
			if strings.HasPrefix(string(f), prefix) {
				return string(f)
			}
		}
	}
	watcher := dialSIO(t, p.URL, "websocket")

	const id = "0191d2c4-7b1e-7c3a-9f00-5a1b2c3d4e5f"
	msg := `{"message":"sent before the drop","username":"rita","clientId":"` + id + `"}`
	first, hello := connect("")
	if err := first.WriteMessage(websocket.TextMessage, []byte(`421["event:message",`+msg+`]`)); err != nil {
		t.Fatal(err)
	}
	var ev []any
	if err := json.Unmarshal([]byte(until(first, `42["message",`)[2:]), &ev); err != nil || len(ev) < 3 {
		t.Fatalf("message event %v (%v)", ev, err)
	}
	first.Close() // dropped before reading its acknowledgement
	// A real client reconnects after its reconnection delay, by when the
	// server has seen the drop and kept the session for recovery; a CONNECT
	// that overtakes the drop is a new session (as in Node). chat_connections
	// falls after the session is kept, so wait for it: only the watcher.
	metricReaches(t, http.DefaultClient, p, "chat_connections", 1, 10*time.Second, "the server saw the first connection drop")

	auth, _ := json.Marshal(map[string]any{"pid": hello["pid"], "offset": ev[2]})
	again, answer := connect(string(auth))
	if answer["sid"] != hello["sid"] {
		t.Fatalf("not recovered: sid %v, then %v", hello["sid"], answer["sid"])
	}
	if err := again.WriteMessage(websocket.TextMessage, []byte(`422["event:message",`+msg+`]`)); err != nil {
		t.Fatal(err)
	}
	ack := until(again, "432")
	if !strings.Contains(ack, `"ok":true`) || !strings.Contains(ack, id) {
		t.Fatalf("the retry after recovery: %s, want {ok: true, id: %s}", ack, id)
	}
	watcher.ack(`{"message":"next","username":"w"}`)
	if m := watcher.message(); m.ID != id {
		t.Fatalf("watcher got %+v first", m)
	}
	if m := watcher.message(); m.Message != "next" {
		t.Fatalf("the retry was broadcast again: %+v", m)
	}
}
