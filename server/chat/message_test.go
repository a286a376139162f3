package chat

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseDraft(t *testing.T) {
	l := DefaultLimits()
	tests := []struct {
		name    string
		payload any
		want    Draft
		code    string
	}{
		{"original payload", map[string]any{"message": "hi", "username": "bob"}, Draft{Text: "hi", Username: "bob"}, ""},
		{"trimmed", map[string]any{"message": "  hi  ", "username": " bob "}, Draft{Text: "hi", Username: "bob"}, ""},
		{"no username", map[string]any{"message": "hi"}, Draft{Text: "hi"}, ""},
		{"null username", map[string]any{"message": "hi", "username": nil}, Draft{Text: "hi"}, ""},
		{"controls removed", map[string]any{"message": "a\x00b\x07c\u200bd", "username": "b\x1bo\nb"}, Draft{Text: "abc\u200bd", Username: "bob"}, ""},
		{"line breaks kept inside text", map[string]any{"message": "one\ntwo\tthree\r\n", "username": "x"}, Draft{Text: "one\ntwo\tthree", Username: "x"}, ""},
		{"C1 controls removed", map[string]any{"message": "a\u0085b\u009fc", "username": "x"}, Draft{Text: "abc", Username: "x"}, ""},
		{"invalid UTF-8 removed", map[string]any{"message": "a\xffb", "username": "x"}, Draft{Text: "ab", Username: "x"}, ""},
		{"exactly the limit", map[string]any{"message": strings.Repeat("é", 2000)}, Draft{Text: strings.Repeat("é", 2000)}, ""},
		{"emoji count as code points", map[string]any{"message": strings.Repeat("👋", 2000)}, Draft{Text: strings.Repeat("👋", 2000)}, ""},
		{"client id", map[string]any{"message": "hi", "clientId": "0191D2C4-7B1E-7C3A-9F00-5A1B2C3D4E5F"}, Draft{Text: "hi", ClientID: "0191d2c4-7b1e-7c3a-9f00-5a1b2c3d4e5f"}, ""},
		{"extra fields ignored", map[string]any{"message": "hi", "username": "x", "room": "other"}, Draft{Text: "hi", Username: "x"}, ""},

		{"string", "hi", Draft{}, CodeInvalidPayload},
		{"number", 42.0, Draft{}, CodeInvalidPayload},
		{"nil", nil, Draft{}, CodeInvalidPayload},
		{"array", []any{"hi"}, Draft{}, CodeInvalidPayload},
		{"missing message", map[string]any{"username": "x"}, Draft{}, CodeInvalidPayload},
		{"null message", map[string]any{"message": nil}, Draft{}, CodeInvalidPayload},
		{"number message", map[string]any{"message": 5.0}, Draft{}, CodeInvalidPayload},
		{"object username", map[string]any{"message": "hi", "username": map[string]any{}}, Draft{}, CodeInvalidPayload},
		{"empty", map[string]any{"message": ""}, Draft{}, CodeMessageEmpty},
		{"blank", map[string]any{"message": " \n\t "}, Draft{}, CodeMessageEmpty},
		{"only controls", map[string]any{"message": "\x00\x01"}, Draft{}, CodeMessageEmpty},
		{"one over", map[string]any{"message": strings.Repeat("a", 2001)}, Draft{}, CodeMessageTooLong},
		{"long username", map[string]any{"message": "hi", "username": strings.Repeat("u", 10000)}, Draft{}, CodeUsernameTooLong},
		{"bad client id", map[string]any{"message": "hi", "clientId": "x"}, Draft{}, CodeInvalidClientID},
		{"numeric client id", map[string]any{"message": "hi", "clientId": 7.0}, Draft{}, CodeInvalidClientID},
		{"braced client id", map[string]any{"message": "hi", "clientId": "{0191d2c4-7b1e-7c3a-9f00-5a1b2c3d4e5f}"}, Draft{}, CodeInvalidClientID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseDraft(tt.payload, l)
			if tt.code != "" {
				var ce *Error
				if !errors.As(err, &ce) || ce.Code != tt.code || ce.Reason == "" {
					t.Fatalf("err = %v, want code %s with a reason", err, tt.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func FuzzParseDraft(f *testing.F) {
	f.Add("hello", "bob", "")
	f.Add("\x00\xff", "\u202e", "0191d2c4-7b1e-7c3a-9f00-5a1b2c3d4e5f")
	f.Fuzz(func(t *testing.T, msg, user, id string) {
		d, err := ParseDraft(map[string]any{"message": msg, "username": user, "clientId": id}, Limits{MaxMessageLength: 50, MaxUsernameLength: 10})
		if err != nil {
			return
		}
		if d.Text == "" || strings.ContainsRune(d.Text, 0) || strings.ContainsRune(d.Username, 0) {
			t.Fatalf("accepted %+v", d)
		}
	})
}

func TestWireFormat(t *testing.T) {
	m := Message{ID: "i", Text: "t", Username: "u", CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600))}
	w := m.Wire()
	if w.CreatedAt != "2026-01-02T02:04:05.000Z" {
		t.Fatalf("createdAt = %q", w.CreatedAt)
	}
}
