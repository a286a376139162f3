package socketio

import (
	"testing"

	"github.com/scalable-chat-go/server/chat"
)

// Typing reaches the other clients, not the typist; a message ends it.
func TestTyping(t *testing.T) {
	e := startEdge(t, setup{Options: Options{TypingRatePerSecond: 5}})
	ann, _ := e.join(map[string]any{"username": "ann"})
	bob, _ := e.join(nil)
	ann.emit(chat.EventTyping, map[string]any{"typing": true})
	if ev := bob.event(chat.EventTyping); str(ev, "name") != "ann" || ev["typing"] != true {
		t.Fatalf("bob got typing %v, want ann typing", ev)
	}
	// The message that the typing led to ends it, for the others.
	ann.send("ann", "done typing")
	if ev := bob.event(chat.EventTyping); str(ev, "name") != "ann" || ev["typing"] != false {
		t.Fatalf("bob got typing %v after ann's message, want ann stopped", ev)
	}
	// ann's typing events would have come before her acknowledgement.
	ann.quiet("/", chat.EventTyping, 0)
}

// A client without a name cannot type until it gives one: with the typing
// event, or in a message.
func TestTypingNeedsAName(t *testing.T) {
	e := startEdge(t, setup{Options: Options{TypingRatePerSecond: 5}})
	anon, _ := e.join(nil)
	named, _ := e.join(nil)
	bob, _ := e.join(nil)

	anon.emit(chat.EventTyping, map[string]any{"typing": true})
	if ev := anon.event("error"); str(ev, "code") != chat.CodeInvalidPayload || str(ev, "reason") == "" {
		t.Fatalf("typing without a name: %v, want invalid_payload", ev)
	}
	anon.send("zoe", "my name is in my message")
	anon.emit(chat.EventTyping, map[string]any{"typing": true})
	if ev := bob.event(chat.EventTyping); str(ev, "name") != "zoe" {
		t.Fatalf("bob got typing %v, want zoe's (the name of her message)", ev)
	}

	named.emit(chat.EventTyping, map[string]any{"typing": true, "username": "  max  "})
	if ev := bob.event(chat.EventTyping); str(ev, "name") != "max" {
		t.Fatalf("bob got typing %v, want max's (the name given with it)", ev)
	}
}

// A typing event that is not {typing: bool} is refused; past its own rate
// limit typing is refused with rate_limited, at most one `error` a second.
func TestTypingRefusals(t *testing.T) {
	e := startEdge(t, setup{Options: Options{TypingRatePerSecond: 1}})
	for _, payload := range []any{nil, "yes", map[string]any{"typing": "yes"}} {
		c, _ := e.join(map[string]any{"username": "val"})
		if payload == nil {
			c.emit(chat.EventTyping)
		} else {
			c.emit(chat.EventTyping, payload)
		}
		if ev := c.event("error"); str(ev, "code") != chat.CodeInvalidPayload {
			t.Fatalf("typing %v: %v, want invalid_payload", payload, ev)
		}
	}

	fast, _ := e.join(map[string]any{"username": "fast"})
	bob, _ := e.join(nil)
	// A burst of twice the rate: two pass, the rest are refused.
	for _, typing := range []bool{true, false, true, false} {
		fast.emit(chat.EventTyping, map[string]any{"typing": typing})
	}
	if ev := fast.event("error"); str(ev, "code") != chat.CodeRateLimited {
		t.Fatalf("typing too fast: %v, want rate_limited", ev)
	}
	for _, want := range []bool{true, false} {
		if ev := bob.event(chat.EventTyping); ev["typing"] != want {
			t.Fatalf("bob got %v, want typing %v", ev, want)
		}
	}
	// Messages are not held back by the typing limit.
	fast.send("fast", "still here")
	fast.quiet("/", "error", 0)
	if m, _ := bob.message(); str(m, "message") != "still here" {
		t.Fatalf("bob got %v", m)
	}
	bob.quiet("/", chat.EventTyping, 0)
}
