package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/scalable-chat-go/server/chat"
	"github.com/scalable-chat-go/server/sqlstore"
	"github.com/scalable-chat-go/server/testkit"
)

// A Socket.IO client drives the real server over each transport.
func TestEachTransport(t *testing.T) {
	for _, transport := range []string{"websocket", "polling"} {
		t.Run(transport, func(t *testing.T) {
			p := start(t, "")
			a, b := dialSIO(t, p.URL, transport), dialSIO(t, p.URL, transport)
			text := "over " + transport
			ack := a.ack(`{"message":` + jsonString(text) + `,"username":"gopher"}`)
			if ack["ok"] != true || ack["id"] == "" {
				t.Fatalf("ack = %v", ack)
			}
			m := b.message()
			if m.Message != text || m.Username != "gopher" || m.ID != ack["id"] || !strings.HasSuffix(m.CreatedAt, "Z") {
				t.Fatalf("received %+v for ack %v", m, ack)
			}
			if mine := a.message(); mine != m {
				t.Fatalf("the sender got %+v, the other %+v", mine, m)
			}
		})
	}
}

// Regression tests for faults of the library's v2.5.0 line: a two-byte
// packet ("42") stopped the server; WebSocket bursts lost and reordered
// broadcast messages.
func TestRawFrameRegressions(t *testing.T) {
	p := start(t, "", "RATE_LIMIT_PER_SEC=0")
	receiver := dialSIO(t, p.URL, "websocket")

	rogue := dialSIO(t, p.URL, "websocket")
	_ = rogue.send("2") // with the Engine.IO type: the two bytes "42"
	select {
	case <-rogue.closed:
	case <-time.After(5 * time.Second):
		t.Fatal("a client sending a bare \"42\" was not closed")
	}

	sender := dialSIO(t, p.URL, "websocket")
	const n = 2000
	for i := range n {
		sender.emit(fmt.Sprintf(`{"message":"burst %d","username":"raw"}`, i))
	}
	seen := map[string]bool{}
	for i := range n {
		m := receiver.message()
		if want := fmt.Sprintf("burst %d", i); m.Message != want {
			t.Fatalf("message %d is %q, want %q (lost or reordered)", i, m.Message, want)
		}
		if seen[m.ID] {
			t.Fatalf("duplicate %s", m.ID)
		}
		seen[m.ID] = true
	}
	if res, err := http.Get(p.URL + "/healthz"); err != nil || res.StatusCode != 200 {
		t.Fatalf("server stopped serving: %v", err)
	}
}

func TestRestartKeepsHistory(t *testing.T) {
	dir := t.TempDir()
	p := start(t, dir)
	a := dialSIO(t, p.URL, "websocket")
	for i := range 3 {
		if ack := a.ack(fmt.Sprintf(`{"message":"kept %d","username":"r"}`, i)); ack["ok"] != true {
			t.Fatalf("ack %v", ack)
		}
	}
	a.close()
	if code := p.stop(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	p = start(t, dir)
	b := dialSIO(t, p.URL, "polling")
	for i := range 3 {
		if m := b.message(); m.Message != fmt.Sprintf("kept %d", i) || m.Username != "r" {
			t.Fatalf("history[%d] = %+v", i, m)
		}
	}
}

// Every accepted message is stored before the process exits on SIGTERM:
// acknowledged ones and best-effort ones alike.
func TestSIGTERMStoresEveryAcceptedMessage(t *testing.T) {
	dir := t.TempDir()
	p := start(t, dir, "RATE_LIMIT_PER_SEC=0", "BATCH_WAIT=200ms")
	watcher := dialSIO(t, p.URL, "websocket")
	acked := dialSIO(t, p.URL, "websocket")
	const nAcked, nBest = 200, 1000
	var acks []<-chan map[string]any
	for i := range nAcked {
		acks = append(acks, acked.emitAck(fmt.Sprintf(`{"message":"acked %d","username":"a"}`, i)))
	}
	sender := dialSIO(t, p.URL, "websocket")
	for i := range nBest {
		sender.emit(fmt.Sprintf(`{"message":"best %d","username":"b"}`, i))
	}
	// Wait until the last best-effort message was broadcast (accepted), and
	// every acknowledgement came back; then stop at once.
	for watcher.message().Message != fmt.Sprintf("best %d", nBest-1) {
	}
	for i, ch := range acks {
		select {
		case a := <-ch:
			if a["ok"] != true {
				t.Fatalf("ack %d: %v", i, a)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("ack %d missing", i)
		}
	}
	if code := p.stop(); code != 0 {
		t.Fatalf("exit code %d\n%s", code, p.logs.String())
	}
	store, err := sqlstore.OpenSQLite(context.Background(), filepath.Join(dir, "chat.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	all, err := store.Recent(context.Background(), chat.GlobalRoom, 10_000, nil)
	if err != nil {
		t.Fatal(err)
	}
	texts := map[string]int{}
	for _, m := range all {
		texts[m.Text]++
	}
	for i := range nAcked {
		if texts[fmt.Sprintf("acked %d", i)] != 1 {
			t.Fatalf("acknowledged message %d stored %d times", i, texts[fmt.Sprintf("acked %d", i)])
		}
	}
	for i := range nBest {
		if texts[fmt.Sprintf("best %d", i)] != 1 {
			t.Fatalf("accepted message %d stored %d times", i, texts[fmt.Sprintf("best %d", i)])
		}
	}
}

// A polling client that stops polling lets packets pile up for it; past
// SEND_QUEUE_LIMIT the server disconnects it, and the others keep going.
func TestSlowClientIsDisconnected(t *testing.T) {
	p := start(t, "", "SEND_QUEUE_LIMIT=50", "RATE_LIMIT_PER_SEC=0", "HISTORY_LIMIT=0")
	// Handshake and namespace connect over polling, then never poll again.
	res, err := http.Get(p.URL + "/socket.io/?EIO=4&transport=polling")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	sid := strings.SplitN(strings.SplitN(string(body), `"sid":"`, 2)[1], `"`, 2)[0]
	poll := p.URL + "/socket.io/?EIO=4&transport=polling&sid=" + sid
	if res, err := http.Post(poll, "text/plain", strings.NewReader("40")); err != nil || res.StatusCode != 200 {
		t.Fatalf("namespace connect: %v %v", err, res)
	}
	if res, err := http.Get(poll); err != nil || res.StatusCode != 200 {
		t.Fatalf("first poll: %v", err)
	}
	other := dialSIO(t, p.URL, "websocket")
	sender := dialSIO(t, p.URL, "websocket")
	// A steady pace: a client that keeps up never holds more than a few.
	for i := range 200 {
		sender.emit(fmt.Sprintf(`{"message":"m %d","username":"s"}`, i))
		if m := other.message(); m.Message != fmt.Sprintf("m %d", i) {
			t.Fatalf("other client got %q at %d", m.Message, i)
		}
	}
	testkit.Until(t, 5*time.Second, "chat_slow_client_disconnects_total 1", func() (bool, string) {
		n := p.metric(t, "chat_slow_client_disconnects_total")
		return n == 1, fmt.Sprintf("chat_slow_client_disconnects_total %v", n)
	})
	res, err = http.Get(poll)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode == 200 && !strings.Contains(string(body), "1") {
		t.Fatalf("the slow client's session is still open: %d %q", res.StatusCode, body)
	}
}

func TestHealthReadinessMetricsAndHistoryAPI(t *testing.T) {
	p := start(t, "", "RATE_LIMIT_PER_SEC=0")
	var health map[string]any
	if code := p.getJSON(t, "/healthz", &health); code != 200 {
		t.Fatalf("/healthz %d", code)
	}
	var ready struct {
		Status string
		Checks map[string]struct{ Status string }
	}
	if code := p.getJSON(t, "/readyz", &ready); code != 200 || ready.Status != "ready" || ready.Checks["store"].Status != "ok" {
		t.Fatalf("/readyz %d %+v", code, ready)
	}
	a := dialSIO(t, p.URL, "websocket")
	var ids []string
	for i := range 5 {
		ack := a.ack(fmt.Sprintf(`{"message":"page %d","username":"api"}`, i))
		ids = append(ids, ack["id"].(string))
	}
	var page struct {
		Messages   []wire
		NextBefore *string
	}
	if code := p.getJSON(t, "/api/messages?limit=2", &page); code != 200 || len(page.Messages) != 2 ||
		page.Messages[0].ID != ids[4] || page.Messages[1].ID != ids[3] || page.NextBefore == nil || *page.NextBefore != ids[3] {
		t.Fatalf("first page %d %+v", code, page)
	}
	if code := p.getJSON(t, "/api/messages?limit=10&before="+ids[3], &page); code != 200 || len(page.Messages) != 3 || page.Messages[0].ID != ids[2] || page.NextBefore != nil {
		t.Fatalf("second page %d %+v", code, page)
	}
	var bad map[string]map[string]string
	for path, want := range map[string]int{"/api/messages?limit=0": 400, "/api/messages?limit=x": 400, "/api/messages?limit=100000": 400, "/api/messages?before=nope": 404} {
		if code := p.getJSON(t, path, &bad); code != want || bad["error"]["code"] == "" {
			t.Errorf("%s: %d %v, want %d with an error code", path, code, bad, want)
		}
	}
	b := metrics(t, p)
	for _, name := range []string{"chat_connections 1", "chat_messages_received_total 5", "chat_messages_broadcast_total 5",
		"chat_store_batch_size_count", "chat_store_write_seconds_bucket", "chat_slow_client_disconnects_total 0", "go_goroutines"} {
		if !strings.Contains(b, name) {
			t.Errorf("/metrics lacks %q", name)
		}
	}
}

func TestReadinessDuringShutdown(t *testing.T) {
	p := start(t, "", "SHUTDOWN_TIMEOUT=5s")
	// Hold a long-poll open so that shutdown has something to drain.
	res, err := http.Get(p.URL + "/socket.io/?EIO=4&transport=polling")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	p.signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		t.Fatalf("no exit 10 s after SIGTERM:\n%s", p.logs.String())
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if !strings.Contains(p.logs.String(), "shutting down") || !strings.Contains(p.logs.String(), "stopped") {
		t.Fatalf("shutdown not logged:\n%s", p.logs.String())
	}
}

func TestBadConfigurationStopsTheStartWithAClearMessage(t *testing.T) {
	cmd := exec.Command(binary)
	cmd.Env = []string{"PORT=eighty", "PING_TIMEOUT=soon", "DATA_DIR=" + t.TempDir()}
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !asExit(err, &exit) || exit.ExitCode() != 2 {
		t.Fatalf("err %v, want exit code 2", err)
	}
	for _, want := range []string{`PORT="eighty"`, `PING_TIMEOUT="soon"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %s:\n%s", want, out)
		}
	}
}

func TestPortInUseIsReported(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cmd := exec.Command(binary)
	cmd.Env = []string{"HOST=127.0.0.1", fmt.Sprintf("PORT=%d", l.Addr().(*net.TCPAddr).Port), "DATA_DIR=" + t.TempDir()}
	out, _ := cmd.CombinedOutput()
	if !strings.Contains(string(out), "address already in use") {
		t.Fatalf("output: %s", out)
	}
}

func asExit(err error, target **exec.ExitError) bool {
	e, ok := err.(*exec.ExitError)
	if ok {
		*target = e
	}
	return ok
}

// Regression test of the library's connect race (see socketio's
// connectGate): clients that emit the moment their CONNECT is answered must
// all be served, none disconnected.
func TestEmitAtOnceAfterConnect(t *testing.T) {
	p := start(t, "", "RATE_LIMIT_PER_SEC=0", "HISTORY_LIMIT=0")
	const clients = 60
	var wg sync.WaitGroup
	errs := make(chan string, clients)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			transport := []string{"websocket", "polling"}[i%2]
			c := dialSIO(t, p.URL, transport)
			select {
			case a := <-c.emitAck(fmt.Sprintf(`{"message":"at once %d","username":"x"}`, i)):
				if a["ok"] != true {
					errs <- fmt.Sprintf("client %d: %v", i, a)
				}
			case <-c.closed:
				errs <- fmt.Sprintf("client %d (%s) was disconnected", i, transport)
			case <-time.After(15 * time.Second):
				errs <- fmt.Sprintf("client %d (%s): no acknowledgement", i, transport)
			}
			c.close()
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// A WebSocket client that stops reading fills its socket buffers, then its
// queue on the server; past SEND_QUEUE_LIMIT it is disconnected while the
// others keep their pace.
func TestSlowWebSocketClientIsDisconnected(t *testing.T) {
	p := start(t, "", "SEND_QUEUE_LIMIT=50", "RATE_LIMIT_PER_SEC=0", "HISTORY_LIMIT=0", "MAX_MESSAGE_LENGTH=4000")
	// The stalled client: a tiny receive buffer, and nobody reads it after
	// its namespace connect.
	netDialer := &net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	wsDialer := &websocket.Dialer{NetDialContext: netDialer.DialContext}
	stalled, _, err := wsDialer.Dial("ws"+strings.TrimPrefix(p.URL, "http")+"/socket.io/?EIO=4&transport=websocket", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	if err := stalled.WriteMessage(websocket.TextMessage, []byte("40")); err != nil {
		t.Fatal(err)
	}
	for {
		_, f, err := stalled.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(string(f), "40{") {
			break
		}
	}
	other := dialSIO(t, p.URL, "websocket")
	sender := dialSIO(t, p.URL, "websocket")
	text := strings.Repeat("x", 3000)
	for i := 0; i < 3000; i += 20 {
		for j := i; j < i+20; j++ {
			sender.emit(fmt.Sprintf(`{"message":"%s %d","username":"s"}`, text, j))
		}
		for j := i; j < i+20; j++ {
			if m := other.message(); !strings.HasSuffix(m.Message, fmt.Sprintf(" %d", j)) {
				t.Fatalf("the other client got %q at %d", m.Message[len(m.Message)-8:], j)
			}
		}
		if i%200 == 0 && p.metric(t, "chat_slow_client_disconnects_total") == 1 {
			return
		}
	}
	t.Fatal("the stalled client was never disconnected")
}

// MAX_CONNECTIONS_PER_IP counts the client's address: X-Forwarded-For's
// when the peer is one of TRUSTED_PROXIES, the peer's otherwise.
func TestConnectionsPerAddressBehindATrustedProxy(t *testing.T) {
	handshake := func(p *proc, xff ...string) int {
		req, _ := http.NewRequest(http.MethodGet, p.URL+"/socket.io/?EIO=4&transport=polling", nil)
		for _, line := range xff {
			req.Header.Add("X-Forwarded-For", line)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	trusted := start(t, "", "MAX_CONNECTIONS_PER_IP=1", "TRUSTED_PROXIES=127.0.0.0/8")
	if a, b := handshake(trusted, "203.0.113.1"), handshake(trusted, "203.0.113.2"); a != 200 || b != 200 {
		t.Fatalf("two clients behind the proxy: %d %d, want 200 200", a, b)
	}
	if c := handshake(trusted, "198.51.100.9, 203.0.113.1"); c != http.StatusTooManyRequests {
		t.Fatalf("a second session of 203.0.113.1 (last untrusted hop): %d, want 429", c)
	}
	// A line the client forged comes first; the proxy appended its own.
	if c := handshake(trusted, "203.0.113.7", "203.0.113.2"); c != http.StatusTooManyRequests {
		t.Fatalf("a second session of 203.0.113.2 behind a forged first line: %d, want 429", c)
	}
	direct := start(t, "", "MAX_CONNECTIONS_PER_IP=1")
	if a, b := handshake(direct, "203.0.113.1"), handshake(direct, "203.0.113.2"); a != 200 || b != http.StatusTooManyRequests {
		t.Fatalf("X-Forwarded-For from an untrusted peer must be ignored: %d %d, want 200 429", a, b)
	}
}

// Settings come from a .env file in the working directory when the
// environment does not set them.
func TestDotEnvFile(t *testing.T) {
	dir := t.TempDir()
	port := testkit.FreePort(t)
	env := fmt.Sprintf("PORT=%d\nHOST=127.0.0.1\nDATA_DIR=%s\nHISTORY_LIMIT=7\n", port, filepath.Join(dir, "data"))
	if err := os.WriteFile(filepath.Join(dir, ".env"), []byte(env), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	logs := &testkit.Output{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	testkit.Until(t, 20*time.Second, "the server on the .env's port", func() (bool, string) {
		res, err := http.Get(url + "/readyz")
		if err != nil {
			return false, fmt.Sprintf("GET /readyz: %v; server log:\n%s", err, logs.String())
		}
		res.Body.Close()
		return res.StatusCode == 200, fmt.Sprintf("GET /readyz: %s", res.Status)
	})
	if _, err := os.Stat(filepath.Join(dir, "data", "chat.db")); err != nil {
		t.Fatalf("DATA_DIR from .env not used: %v\n%s", err, logs.String())
	}
	// The ready line may follow the first answer by a moment.
	testkit.Until(t, 5*time.Second, "the start-up log names the .env file read", func() (bool, string) {
		return strings.Contains(logs.String(), ".env"), logs.String()
	})
}

// The production build holds no fault hook: KAFKA_TEST_CRASH_AFTER_COMMIT
// is compiled only into builds with the tag faulthooks (the crash tests').
func TestNoFaultHookInTheProductionBuild(t *testing.T) {
	for _, bin := range []string{binary, plainBinary} {
		b, err := os.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte("KAFKA_TEST_CRASH_AFTER_COMMIT")) {
			t.Errorf("%s contains KAFKA_TEST_CRASH_AFTER_COMMIT", filepath.Base(bin))
		}
	}
	b, err := os.ReadFile(faultBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte("KAFKA_TEST_CRASH_AFTER_COMMIT")) {
		t.Error("the faulthooks build lacks the hook: the check above proves nothing")
	}
}
