package socketio

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/scalable-chat-go/server/chat"
	"github.com/scalable-chat-go/server/testkit"
)

// seed returns stored messages "stored 1".."stored n", an hour old, oldest
// first.
func seed(n int) []chat.Message {
	at := time.Now().Add(-time.Hour).UTC().Truncate(time.Millisecond)
	out := make([]chat.Message, 0, n)
	for i := 1; i <= n; i++ {
		out = append(out, chat.Message{ID: uuid.NewString(), Text: "stored " + string(rune('0'+i)), Username: "old",
			CreatedAt: at.Add(time.Duration(i) * time.Second)})
	}
	return out
}

// A newcomer gets the newest HistoryLimit messages, oldest first (stored
// ones and those this node broadcast), then who is online, then the live
// messages; with connection-state recovery each message carries its
// offset as a second argument.
func TestJoinHistoryThenLive(t *testing.T) {
	e := startEdge(t, setup{Options: Options{RecoveryWindow: time.Minute}, HistoryLimit: 4, Seed: seed(3)})
	ann, hello := e.join(map[string]any{"username": "ann"})
	if str(hello, "sid") == "" || str(hello, "pid") == "" {
		t.Fatalf("CONNECT answer %v: want sid and pid with recovery on", hello)
	}
	if got := ann.texts(3); !slices.Equal(got, []string{"stored 1", "stored 2", "stored 3"}) {
		t.Fatalf("ann's history: %q", got)
	}
	if p := ann.event(chat.EventPresence); p["online"] != 1.0 {
		t.Fatalf("ann's presence: %v, want online 1", p)
	}
	idA := ann.send("ann", "live a")
	idB := ann.send("ann", "live b")

	bob, _ := e.join(nil)
	var got []string
	for range 4 {
		m, offset := bob.message()
		got = append(got, str(m, "message"))
		if offset != str(m, "id") {
			t.Errorf("history message %v has offset %q, want its id", m, offset)
		}
	}
	if want := []string{"stored 2", "stored 3", "live a", "live b"}; !slices.Equal(got, want) {
		t.Fatalf("bob's history: %q, want %q", got, want)
	}
	if p := bob.event(chat.EventPresence); p["online"] != 2.0 {
		t.Fatalf("bob's presence: %v, want online 2", p)
	}
	id := ann.send("ann", "live c")
	m, offset := bob.message()
	if str(m, "message") != "live c" || str(m, "id") != id || str(m, "username") != "ann" || offset != id {
		t.Fatalf("live message %v, offset %q; want live c from ann with id and offset %s", m, offset, id)
	}
	if _, ok := m["verified"]; ok {
		t.Errorf("with AUTH_MODE off a message says verified: %v", m)
	}
	// ann sees her own messages live, in order, after her history.
	for _, want := range []string{idA, idB, id} {
		if m, _ := ann.message(); str(m, "id") != want {
			t.Fatalf("ann got %v, want message %s", m, want)
		}
	}
}

// Without connection-state recovery a message event has one argument and
// the CONNECT answer no pid.
func TestNoRecoveryNoOffset(t *testing.T) {
	e := startEdge(t, setup{})
	c, hello := e.join(nil)
	if _, ok := hello["pid"]; ok {
		t.Fatalf("CONNECT answer %v has a pid without recovery", hello)
	}
	c.emit("event:message", map[string]any{"message": "hi", "username": "cy"})
	if m, offset := c.message(); str(m, "message") != "hi" || offset != "" {
		t.Fatalf("message %v with offset %q; want hi without offset", m, offset)
	}
}

// Every client receives a message once; its sender's acknowledgement says
// it is durable, with its id (the client's own clientId when it gave one).
func TestMessageBroadcastAndAck(t *testing.T) {
	e := startEdge(t, setup{})
	a, _ := e.join(nil)
	b, _ := e.join(nil)
	c, _ := e.join(nil)
	clientID := uuid.NewString()
	ack := a.call("event:message", map[string]any{"message": "  hello all  ", "username": "amy", "clientId": clientID})
	if ack["ok"] != true || str(ack, "id") != clientID {
		t.Fatalf("ack %v, want {ok: true, id: %s}", ack, clientID)
	}
	stored, err := e.store.Find(t.Context(), clientID)
	if err != nil || stored.Text != "hello all" {
		t.Fatalf("acknowledged message not in the store: %+v, %v", stored, err)
	}
	for i, cl := range []*client{a, b, c} {
		m, _ := cl.message()
		if str(m, "id") != clientID || str(m, "message") != "hello all" || str(m, "username") != "amy" {
			t.Errorf("client %d got %v", i, m)
		}
	}
	// The same clientId again from another sender is refused.
	ack = b.call("event:message", map[string]any{"message": "hijack", "clientId": clientID})
	if code := str(errorOf(t, ack), "code"); code != chat.CodeClientIDTaken {
		t.Fatalf("a taken clientId: %v", ack)
	}
	if e.Connections() != 3 {
		t.Fatalf("Connections() = %d, want 3", e.Connections())
	}
}

// A message the accept flow refuses gets a negative acknowledgement and an
// `error` event with the same code; nobody receives it.
func TestInvalidMessages(t *testing.T) {
	e := startEdge(t, setup{Options: Options{Limits: chat.Limits{MaxMessageLength: 10, MaxUsernameLength: 5}}})
	sender, _ := e.join(nil)
	watcher, _ := e.join(nil)
	for _, tt := range []struct {
		name    string
		payload []any
		code    string
	}{
		{"no payload", nil, chat.CodeInvalidPayload},
		{"a string", []any{"hello"}, chat.CodeInvalidPayload},
		{"no message", []any{map[string]any{"username": "x"}}, chat.CodeInvalidPayload},
		{"message not a string", []any{map[string]any{"message": 5}}, chat.CodeInvalidPayload},
		{"empty", []any{map[string]any{"message": ""}}, chat.CodeMessageEmpty},
		{"blank", []any{map[string]any{"message": " \t\u0000 "}}, chat.CodeMessageEmpty},
		{"too long", []any{map[string]any{"message": strings.Repeat("é", 11)}}, chat.CodeMessageTooLong},
		{"username too long", []any{map[string]any{"message": "hi", "username": "abcdef"}}, chat.CodeUsernameTooLong},
		{"clientId not a UUID", []any{map[string]any{"message": "hi", "clientId": "nope"}}, chat.CodeInvalidClientID},
		{"clientId not a string", []any{map[string]any{"message": "hi", "clientId": 7}}, chat.CodeInvalidClientID},
	} {
		ack := sender.call("event:message", tt.payload...)
		e := errorOf(t, ack)
		if str(e, "code") != tt.code || str(e, "reason") == "" {
			t.Fatalf("%s: ack %v, want code %s with a reason", tt.name, ack, tt.code)
		}
		ev := sender.event("error")
		if str(ev, "code") != tt.code || str(ev, "reason") != str(e, "reason") {
			t.Fatalf("%s: error event %v, want the acknowledgement's %v", tt.name, ev, e)
		}
	}
	// None of them was broadcast: the watcher's first message is the
	// valid one.
	sender.send("ok", "valid")
	if m, _ := watcher.message(); str(m, "message") != "valid" {
		t.Fatalf("the watcher got %v first", m)
	}
	if n := e.metric("chat_messages_rejected_total", "reason", chat.CodeMessageEmpty); n != 2 {
		t.Fatalf("chat_messages_rejected_total{reason=message_empty} = %v, want 2", n)
	}
}

// Past its rate limit a connection's messages are refused with
// rate_limited and retryAfterMs; it gets at most one `error` event a
// second for it.
func TestMessageRateLimit(t *testing.T) {
	e := startEdge(t, setup{Options: Options{RatePerSecond: 0.5, RateBurst: 2}})
	c, _ := e.join(nil)
	other, _ := e.join(nil)
	start := time.Now()
	c.send("rl", "one")
	c.send("rl", "two")
	for i := range 2 {
		ack := c.call("event:message", map[string]any{"message": "three", "username": "rl"})
		e := errorOf(t, ack)
		if str(e, "code") != chat.CodeRateLimited {
			t.Fatalf("refusal %d: %v, want rate_limited", i, ack)
		}
		if ms, _ := e["retryAfterMs"].(float64); ms < 1 || ms > 2000 {
			t.Fatalf("refusal %d: retryAfterMs %v, want 1..2000", i, e["retryAfterMs"])
		}
	}
	c.oneErrorSince(start)
	// Without an acknowledgement, refused all the same.
	c.emit("event:message", map[string]any{"message": "four"})
	if got := other.texts(2); !slices.Equal(got, []string{"one", "two"}) {
		t.Fatalf("the other client got %q", got)
	}
	testkit.Until(t, wait, "three rate_limited refusals counted", func() (bool, string) {
		n := e.metric("chat_messages_rejected_total", "reason", chat.CodeRateLimited)
		return n == 3, fmt.Sprint(n)
	})
}

// An event the server does not know gets unknown_event, and counts against
// the rate limit; the refusals of a flood (unknown_event, rate_limited)
// share one `error` event a second, and an acknowledgement says why each
// time.
func TestUnknownEvent(t *testing.T) {
	e := startEdge(t, setup{Options: Options{RatePerSecond: 0.5, RateBurst: 2}})
	c, _ := e.join(nil)
	c.emit("shout", "hey")
	c.emit("event:messages", map[string]any{"message": "typo"})
	// The two unknown events took the burst.
	ack := c.call("event:message", map[string]any{"message": "now", "username": "u"})
	if code := str(errorOf(t, ack), "code"); code != chat.CodeRateLimited || ack["error"].(map[string]any)["retryAfterMs"] == nil {
		t.Fatalf("a message after two unknown events: %v, want rate_limited with retryAfterMs", ack)
	}
	if ev := c.event("error"); str(ev, "code") != chat.CodeUnknownEvent {
		t.Fatalf("error event %v, want unknown_event first", ev)
	}
	// Within the second: no other error event (the rate_limited one was
	// said by its acknowledgement).
	c.quiet("/", "error", 300*time.Millisecond)
	if n := e.metric("chat_messages_rejected_total", "reason", chat.CodeUnknownEvent); n != 2 {
		t.Fatalf("chat_messages_rejected_total{reason=unknown_event} = %v, want 2", n)
	}
}

// failingAccepter accepts every message and reports it lost, or refuses it
// with err.
type failingAccepter struct{ err error }

func (a failingAccepter) Accept(_ chat.Sender, _ any, durable func(chat.Message, error)) (chat.Message, error) {
	if a.err != nil {
		return chat.Message{}, a.err
	}
	m := chat.Message{ID: uuid.NewString()}
	durable(m, chat.ErrLost)
	durable(m, nil) // a second report is not a second acknowledgement
	return m, nil
}

// The acknowledgement tells a message that could not be made durable, and
// a fault of the accept flow, by their codes.
func TestAckOfFailures(t *testing.T) {
	for _, tt := range []struct {
		err  error
		code string
	}{
		{nil, chat.CodeNotStored},
		{chat.ErrUnavailable, chat.CodeUnavailable},
		{errors.New("boom"), chat.CodeInternal},
	} {
		e := startEdge(t, setup{Options: Options{Accepter: failingAccepter{tt.err}}})
		c, _ := e.join(nil)
		ack := c.call("event:message", map[string]any{"message": "x"})
		if code := str(errorOf(t, ack), "code"); code != tt.code {
			t.Errorf("accept error %v: ack %v, want %s", tt.err, ack, tt.code)
		}
		// One acknowledgement only: the next call's is the next one.
		ack = c.call("event:message", map[string]any{"message": "y"})
		if code := str(errorOf(t, ack), "code"); code != tt.code {
			t.Errorf("accept error %v, second message: ack %v", tt.err, ack)
		}
		for _, p := range c.held {
			if p.typ == '3' {
				t.Errorf("an acknowledgement nobody waits for: %s", p.raw)
			}
		}
	}
}
