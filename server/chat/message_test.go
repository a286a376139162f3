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
		{"extra fields ignored", map[string]any{"message": "hi", "username": "x", "color": "red"}, Draft{Text: "hi", Username: "x"}, ""},
		{"a room", map[string]any{"message": "hi", "username": "x", "room": "0193a1b2-0000-7000-8000-000000000001"}, Draft{Text: "hi", Username: "x", Room: "0193a1b2-0000-7000-8000-000000000001"}, ""},
		{"the global room by name", map[string]any{"message": "hi", "username": "x", "room": "global"}, Draft{Text: "hi", Username: "x"}, ""},
		{"a room that is not a string", map[string]any{"message": "hi", "room": 7.0}, Draft{}, CodeInvalidPayload},
		{"a room too long to be an id", map[string]any{"message": "hi", "room": strings.Repeat("r", 65)}, Draft{}, CodeInvalidPayload},

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
		{"only zero-width characters", map[string]any{"message": "\u200b\u200c\u200d\u2060\ufeff"}, Draft{}, CodeMessageEmpty},
		{"only invisibles and spaces", map[string]any{"message": " \u200b\n\u00a0\u3000\u00ad\u202e\u2066 "}, Draft{}, CodeMessageEmpty},
		{"only fillers and selectors", map[string]any{"message": "\u3164\u115f\uffa0\u034f\ufe0f\U000e0041\u2800"}, Draft{}, CodeMessageEmpty},
		{"one over", map[string]any{"message": strings.Repeat("a", 2001)}, Draft{}, CodeMessageTooLong},
		{"long username", map[string]any{"message": "hi", "username": strings.Repeat("u", 10000)}, Draft{}, CodeUsernameTooLong},
		{"format characters removed from the username", map[string]any{"message": "hi", "username": "ad\u200bmin\u200c\u200d\u2060\ufeff"}, Draft{Text: "hi", Username: "admin"}, ""},
		{"bidi controls removed from the username", map[string]any{"message": "hi", "username": "\u202euser\u202c \u2066gnp.exe\u2069\u200e"}, Draft{Text: "hi", Username: "user gnp.exe"}, ""},
		{"other invisibles removed from the username", map[string]any{"message": "hi", "username": "b\u034fo\u3164b\ufe0f\U000e0041\u00ad"}, Draft{Text: "hi", Username: "bob"}, ""},
		{"trimmed once the invisibles are gone", map[string]any{"message": "hi", "username": "\u200b bob \u200b"}, Draft{Text: "hi", Username: "bob"}, ""},
		// U+2800 and the other blank look-alikes (issue 29): "Wendy⠀" passed
		// for "Wendy", "Mallory⠀" got past a ban on "Mallory".
		{"blank look-alikes removed from the username", map[string]any{"message": "hi", "username": "Wendy⠀"}, Draft{Text: "hi", Username: "Wendy"}, ""},
		{"every blank look-alike", map[string]any{"message": "hi", "username": "⠀Mal𝅙lo𖿤ry ⠀"}, Draft{Text: "hi", Username: "Mallory"}, ""},
		{"an invisible-only username is none", map[string]any{"message": "hi", "username": "\u200b\u202e"}, Draft{Text: "hi"}, ""},
		{"emoji sequences in a username show as their parts", map[string]any{"message": "hi", "username": "👨\u200d👩\u200d👧"}, Draft{Text: "hi", Username: "👨👩👧"}, ""},
		{"an emoji ZWJ sequence survives in the text", map[string]any{"message": "👨\u200d👩\u200d👧 🏳\ufe0f\u200d🌈"}, Draft{Text: "👨\u200d👩\u200d👧 🏳\ufe0f\u200d🌈"}, ""},
		{"a subdivision flag survives in the text", map[string]any{"message": "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f"}, Draft{Text: "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f"}, ""},
		{"bidi marks survive in the text", map[string]any{"message": "\u200fשלום\u200e ok"}, Draft{Text: "\u200fשלום\u200e ok"}, ""},

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
	f.Add("\u200b", "ad\u200bmin", "")
	f.Fuzz(func(t *testing.T, msg, user, id string) {
		d, err := ParseDraft(map[string]any{"message": msg, "username": user, "clientId": id}, Limits{MaxMessageLength: 50, MaxUsernameLength: 10})
		if err != nil {
			return
		}
		if !visible(d.Text) || strings.ContainsRune(d.Text, 0) || strings.ContainsRune(d.Username, 0) {
			t.Fatalf("accepted %+v", d)
		}
		if i := strings.IndexFunc(d.Username, func(r rune) bool { return ignorable(r) || blank(r) }); i >= 0 {
			t.Fatalf("username %q keeps an invisible %U", d.Username, []rune(d.Username[i:])[0])
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
