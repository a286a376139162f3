package sio

import "testing"

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
