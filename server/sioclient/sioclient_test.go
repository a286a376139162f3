package sioclient

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		frame string
		want  Kind
	}{
		{"", KindOther},
		{`0{"sid":"x"}`, KindOpen},
		{"1", KindClose},
		{"2", KindPing},
		{"3", KindPong},
		{"6", KindNoop},
		{"4", KindOther},
		{`40{"sid":"y"}`, KindConnect},
		{"41", KindDisconnect},
		{`42["message",{}]`, KindEvent},
		{`431[{}]`, KindAck},
		{`44{"message":"no"}`, KindConnectError},
		{`45-["x"]`, KindOther},
		{"x", KindOther},
	}
	for _, tt := range tests {
		if got := Classify([]byte(tt.frame)); got != tt.want {
			t.Errorf("Classify(%q) = %v, want %v", tt.frame, got, tt.want)
		}
	}
}

func TestEventName(t *testing.T) {
	tests := []struct {
		frame, want string
		ok          bool
	}{
		{`42["message",{"message":"hi"}]`, "message", true},
		{`42["presence",{"online":1}]`, "presence", true},
		{`4217["error",{}]`, "error", true},
		{`42["a\"b",1]`, `a\"b`, true},
		{`42[1,2]`, "", false},
		{`42["unterminated`, "", false},
		{`42`, "", false},
		{`43["message"]`, "", false},
		{`42/chat,["message"]`, "", false}, // another namespace
	}
	for _, tt := range tests {
		got := EventName([]byte(tt.frame))
		if (got != nil) != tt.ok || string(got) != tt.want {
			t.Errorf("EventName(%q) = %q, want %q (ok %v)", tt.frame, got, tt.want, tt.ok)
		}
	}
	if !IsEvent([]byte(`42["message",{}]`), "message") || IsEvent([]byte(`42["messages",{}]`), "message") {
		t.Error("IsEvent")
	}
}

// scripted is a WebSocket peer that plays the server's side of a
// handshake from a script, for the client's edge cases that the real
// servers produce only by chance.
func scripted(t *testing.T, connectAnswer []string, after func(c *websocket.Conn)) string {
	t.Helper()
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/socket.io/" || r.URL.Query().Get("EIO") != "4" || r.URL.Query().Get("transport") != "websocket" {
			http.Error(w, "bad handshake URL", http.StatusBadRequest)
			return
		}
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.WriteMessage(websocket.TextMessage, []byte(`0{"sid":"abc","pingInterval":25000,"pingTimeout":20000}`))
		if _, m, err := c.ReadMessage(); err != nil || string(m) != "40" {
			t.Errorf("namespace CONNECT: %q %v", m, err)
			return
		}
		for _, f := range connectAnswer {
			_ = c.WriteMessage(websocket.TextMessage, []byte(f))
		}
		if after != nil {
			after(c)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestDialKeepsEventsBeforeTheConnectAnswer(t *testing.T) {
	pong := make(chan string, 2)
	url := scripted(t, []string{`42["message",{"message":"early"}]`, "2", `42["presence",{"online":2}]`, `40{"sid":"s1"}`},
		func(c *websocket.Conn) {
			for i := 0; i < 2; i++ {
				_, m, err := c.ReadMessage()
				if err != nil {
					return
				}
				pong <- string(m)
			}
			_ = c.WriteMessage(websocket.TextMessage, []byte("2"))
			_ = c.WriteMessage(websocket.TextMessage, []byte(`42["message",{"message":"late"}]`))
			_, m, _ := c.ReadMessage()
			pong <- string(m)
		})
	var d Dialer
	c, early, err := d.Dial(context.Background(), url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.SID != "abc" {
		t.Errorf("sid %q", c.SID)
	}
	if len(early) != 2 || string(early[0]) != `42["message",{"message":"early"}]` || string(early[1]) != `42["presence",{"online":2}]` {
		t.Errorf("early frames %q", early)
	}
	if got := <-pong; got != "3" {
		t.Errorf("the ping during the handshake was answered %q", got)
	}
	if err := c.Write([]byte(`42["event:message",{}]`)); err != nil {
		t.Fatal(err)
	}
	if got := <-pong; got != `42["event:message",{}]` {
		t.Errorf("server got %q", got)
	}
	frames := make(chan string, 4)
	go func() {
		_ = c.Serve(func(f []byte) { frames <- string(f) })
		close(frames)
	}()
	if got := <-frames; got != `42["message",{"message":"late"}]` {
		t.Errorf("Serve handed %q", got)
	}
	if got := <-pong; got != "3" {
		t.Errorf("Serve answered a ping with %q", got)
	}
}

func TestDialRefused(t *testing.T) {
	var d Dialer
	url := scripted(t, []string{`44{"message":"not authorized"}`}, nil)
	if _, _, err := d.Dial(context.Background(), url, nil); !errors.Is(err, ErrConnectRefused) {
		t.Fatalf("got %v, want ErrConnectRefused", err)
	}
	closed := scripted(t, []string{"1"}, nil)
	if _, _, err := d.Dial(context.Background(), closed, nil); err == nil || !strings.Contains(err.Error(), "closed during the handshake") {
		t.Fatalf("got %v", err)
	}
	d.HandshakeTimeout = 200 * time.Millisecond
	silent := scripted(t, nil, func(*websocket.Conn) { time.Sleep(time.Second) })
	start := time.Now()
	if _, _, err := d.Dial(context.Background(), silent, nil); err == nil || time.Since(start) > 900*time.Millisecond {
		t.Fatalf("a silent server: %v after %s", err, time.Since(start))
	}
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	if _, _, err := d.Dial(context.Background(), srv.URL, nil); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("no Socket.IO there: %v", err)
	}
}

// Long-polling: the handshake by GET and POST, several packets in one
// answer, a noop passed over, and Engine.IO's close packet ending Serve.
func TestDialPolling(t *testing.T) {
	var mu sync.Mutex
	var posts []string
	answers := make(chan string, 4)
	answers <- `40{"sid":"ns"}`
	answers <- "6\x1e" + `42["message",{"message":"polled"}]` + "\x1e1"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if r.URL.Path != "/socket.io/" || q.Get("EIO") != "4" || q.Get("transport") != "polling" {
			http.Error(w, "bad URL", http.StatusBadRequest)
			return
		}
		if q.Get("sid") == "" {
			_, _ = w.Write([]byte(`0{"sid":"eio","pingInterval":25000,"pingTimeout":20000}`))
			return
		}
		if r.Method == http.MethodPost {
			b, _ := io.ReadAll(r.Body)
			mu.Lock()
			posts = append(posts, string(b))
			mu.Unlock()
			_, _ = w.Write([]byte("ok"))
			return
		}
		select {
		case a := <-answers:
			_, _ = w.Write([]byte(a))
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	var d Dialer
	c, early, err := d.DialPolling(context.Background(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if c.SID != "eio" || len(early) != 0 {
		t.Fatalf("sid %q, early %q", c.SID, early)
	}
	var got []string
	err = c.Serve(func(f []byte) { got = append(got, string(f)) })
	if !errors.Is(err, io.EOF) || len(got) != 1 || got[0] != `42["message",{"message":"polled"}]` {
		t.Fatalf("Serve = %v after %q, want one event then io.EOF", err, got)
	}
	_ = c.Close()
	mu.Lock()
	defer mu.Unlock()
	if len(posts) != 2 || posts[0] != "40" || posts[1] != "1" {
		t.Fatalf("posted %q, want the namespace CONNECT and the close packet", posts)
	}
}

func TestDialAuthSendsTheAuthInTheConnect(t *testing.T) {
	got := make(chan string, 1)
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.WriteMessage(websocket.TextMessage, []byte(`0{"sid":"abc"}`))
		_, m, _ := c.ReadMessage()
		got <- string(m)
		_ = c.WriteMessage(websocket.TextMessage, []byte(`40{"sid":"s1","pid":"p1"}`))
		_, _, _ = c.ReadMessage()
	}))
	defer srv.Close()
	var d Dialer
	c, _, err := d.DialAuth(context.Background(), srv.URL, nil, []byte(`{"username":"u1"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if m := <-got; m != `40{"username":"u1"}` {
		t.Fatalf("CONNECT %q", m)
	}
	if c.PID != "p1" {
		t.Fatalf("PID %q, want the answer's p1", c.PID)
	}
}
