package stamp

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestAppendEventIsTheOriginalProtocol(t *testing.T) {
	s := Stamp{Run: 3, Sender: 1, Seq: 42, Sent: 1234567890123}
	f := AppendEvent(nil, s, 120)
	if !strings.HasPrefix(string(f), "42") {
		t.Fatalf("not a Socket.IO event frame: %q", f)
	}
	var args []json.RawMessage
	if err := json.Unmarshal(f[2:], &args); err != nil || len(args) != 2 {
		t.Fatalf("frame %q: %v", f, err)
	}
	var name string
	var payload struct{ Message, Username string }
	_ = json.Unmarshal(args[0], &name)
	_ = json.Unmarshal(args[1], &payload)
	if name != "event:message" || payload.Username != Username {
		t.Fatalf("event %q payload %+v", name, payload)
	}
	if len(payload.Message) != 120 || !strings.HasPrefix(payload.Message, "bench|3|1|42|1234567890123|x") {
		t.Fatalf("text %q (%d)", payload.Message, len(payload.Message))
	}
	// A text never gets shorter than its stamp.
	short := AppendEvent(nil, s, 1)
	if got, ok := Parse(short); !ok || got != s {
		t.Fatalf("short text: %v %v", got, ok)
	}
}

func TestAppendRoomEvent(t *testing.T) {
	s := Stamp{Run: 5, Sender: 2, Seq: 7, Sent: 99}
	f := AppendRoomEvent(nil, s, 40, "0193d6c4-8d2f-7b8e-9a41-5c2e1f0a3b7d")
	var args []json.RawMessage
	if err := json.Unmarshal(f[2:], &args); err != nil || len(args) != 2 {
		t.Fatalf("frame %q: %v", f, err)
	}
	var payload struct{ Message, Username, Room string }
	if err := json.Unmarshal(args[1], &payload); err != nil {
		t.Fatal(err)
	}
	if payload.Room != "0193d6c4-8d2f-7b8e-9a41-5c2e1f0a3b7d" || payload.Username != Username || len(payload.Message) != 40 {
		t.Fatalf("payload %+v", payload)
	}
	if got, ok := Parse(f); !ok || got != s {
		t.Fatalf("parsed %v %v", got, ok)
	}
	if g, w := string(AppendRoomEvent(nil, s, 40, "")), string(AppendEvent(nil, s, 40)); g != w {
		t.Fatalf("no room is the global room's frame: %q, want %q", g, w)
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name  string
		frame string
		want  Stamp
		ok    bool
	}{
		{"node reference", `42["message",{"message":"bench|7|0|9|100|xxxx","username":"bench"}]`, Stamp{7, 0, 9, 100}, true},
		{"go server", `42["message",{"message":"bench|1|2|3|4|","username":"bench","id":"0199","createdAt":"2025-01-01T00:00:00.000Z"}]`, Stamp{1, 2, 3, 4}, true},
		{"username first", `42["message",{"username":"bench","message":"bench|1|2|3|4|x"}]`, Stamp{1, 2, 3, 4}, true},
		{"presence", `42["presence",{"online":3}]`, Stamp{}, false},
		{"other text", `42["message",{"message":"hello","username":"bench"}]`, Stamp{}, false},
		{"truncated", `42["message",{"message":"bench|1|2|3`, Stamp{}, false},
		{"missing field", `42["message",{"message":"bench|1|2|3|"}]`, Stamp{}, false},
		{"not a number", `42["message",{"message":"bench|1|a|3|4|"}]`, Stamp{}, false},
		{"negative", `42["message",{"message":"bench|1|-2|3|4|"}]`, Stamp{}, false},
		{"too long a number", `42["message",{"message":"bench|1|2|3|12345678901234567890|"}]`, Stamp{}, false},
		{"empty", ``, Stamp{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Parse([]byte(tt.frame))
			if ok != tt.ok || got != tt.want {
				t.Fatalf("Parse = %+v, %v; want %+v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func BenchmarkParse(b *testing.B) {
	f := []byte(`42["message",{"message":"bench|12|0|1234|98765432101|xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx","username":"bench","id":"019a0000-0000-7000-8000-000000000000","createdAt":"2025-01-01T00:00:00.000Z"}]`)
	for b.Loop() {
		if _, ok := Parse(f); !ok {
			b.Fatal("no stamp")
		}
	}
}
