package chat

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
)

// FuzzParseDraftJSON feeds ParseDraft what a client can send: the payload of
// an `event:message` as the edge decodes it from JSON (objects, arrays,
// numbers, strings with any escape), or, for bytes that are not JSON, the
// raw bytes as message and username (a decoder that does not repair
// invalid UTF-8), under small limits so that the boundaries are reached.
//
// An accepted draft must keep the limits, hold no control character (but
// line feeds and tabs inside the text), be trimmed and valid UTF-8, be what
// an independent cleaning of the input gives, and come back unchanged when
// parsed again. A refusal must be an *Error with a documented code.
func FuzzParseDraftJSON(f *testing.F) {
	f.Add([]byte(`{"message":"hello","username":"bob"}`), uint8(20), uint8(8))
	f.Add([]byte(`{"message":"  hi\u0000\u0007  ","username":" b\u001bob\n "}`), uint8(20), uint8(8))
	f.Add([]byte(`{"message":"one\ntwo\tthree\r\n","username":null}`), uint8(20), uint8(8))
	f.Add([]byte(`{"message":"\u0085\u2028\u00a0x\u3000","username":"\u202e\u200b"}`), uint8(20), uint8(8))
	f.Add([]byte(`{"message":"\ud83d\udc4b\ud83d","username":"\udc4b"}`), uint8(2), uint8(1))
	f.Add([]byte(`{"message":"abcd","username":"u","clientId":"0191D2C4-7B1E-7C3A-9F00-5A1B2C3D4E5F"}`), uint8(4), uint8(1))
	f.Add([]byte(`{"message":"x","clientId":"{0191d2c4-7b1e-7c3a-9f00-5a1b2c3d4e5f}"}`), uint8(4), uint8(1))
	f.Add([]byte(`{"message":"x","clientId":"urn:uuid:0191d2c4-7b1e-7c3a-9f00-5a1b2c3d4e5f"}`), uint8(4), uint8(1))
	f.Add([]byte(`{"message":"x","clientId":7}`), uint8(4), uint8(1))
	f.Add([]byte(`{"message":5,"username":"x"}`), uint8(4), uint8(1))
	f.Add([]byte(`{"message":"x","username":{"a":1}}`), uint8(4), uint8(1))
	f.Add([]byte(`{"message":"x","message":"y"}`), uint8(4), uint8(1))
	f.Add([]byte(`[{"message":"x"}]`), uint8(4), uint8(1))
	f.Add([]byte(`"hello"`), uint8(4), uint8(1))
	f.Add([]byte(`null`), uint8(4), uint8(1))
	f.Add([]byte("a\xffb\x00 c\xc3"), uint8(4), uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, maxMessage, maxUsername uint8) {
		l := Limits{MaxMessageLength: 1 + int(maxMessage), MaxUsernameLength: 1 + int(maxUsername)}
		var payload any
		if err := json.Unmarshal(data, &payload); err != nil {
			raw := string(data)
			payload = map[string]any{"message": raw, "username": raw[:len(raw)/2]}
		}
		d, err := ParseDraft(payload, l)
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) || ce.Reason == "" {
				t.Fatalf("refusal %v is not an *Error with a reason", err)
			}
			switch ce.Code {
			case CodeInvalidPayload, CodeMessageEmpty, CodeMessageTooLong, CodeUsernameTooLong, CodeInvalidClientID:
			default:
				t.Fatalf("refusal with code %q, which ParseDraft does not document", ce.Code)
			}
			return
		}
		obj := payload.(map[string]any)
		checkClean(t, "text", d.Text, true)
		checkClean(t, "username", d.Username, false)
		if d.Text == "" {
			t.Fatal("accepted an empty text")
		}
		if n := utf8.RuneCountInString(d.Text); n > l.MaxMessageLength {
			t.Fatalf("text of %d code points accepted with a limit of %d", n, l.MaxMessageLength)
		}
		if n := utf8.RuneCountInString(d.Username); n > l.MaxUsernameLength {
			t.Fatalf("username of %d code points accepted with a limit of %d", n, l.MaxUsernameLength)
		}
		if want := refClean(obj["message"].(string), true); d.Text != want {
			t.Fatalf("text %q, want %q", d.Text, want)
		}
		if user, _ := obj["username"].(string); d.Username != refClean(user, false) {
			t.Fatalf("username %q, want %q", d.Username, refClean(user, false))
		}
		if d.ClientID != "" {
			id, err := uuid.Parse(d.ClientID)
			if err != nil || id.String() != d.ClientID {
				t.Fatalf("clientId %q is not a canonical UUID", d.ClientID)
			}
			if sent, _ := obj["clientId"].(string); !strings.EqualFold(sent, d.ClientID) {
				t.Fatalf("clientId %q accepted as %q", sent, d.ClientID)
			}
		} else if obj["clientId"] != nil {
			t.Fatalf("clientId %v dropped", obj["clientId"])
		}
		// What was accepted is accepted again as it is: a draft replayed
		// (from the store, from another node) is stable.
		again := map[string]any{"message": d.Text, "username": d.Username}
		if d.ClientID != "" {
			again["clientId"] = d.ClientID
		}
		d2, err := ParseDraft(again, l)
		if err != nil || d2 != d {
			t.Fatalf("parsed again: %+v, %v; want %+v", d2, err, d)
		}
	})
}

// checkClean fails when s is not valid UTF-8, not trimmed, or holds a
// control character (line feeds and tabs are allowed inside a text).
func checkClean(t *testing.T, what, s string, text bool) {
	t.Helper()
	if !utf8.ValidString(s) {
		t.Fatalf("%s %q is not valid UTF-8", what, s)
	}
	if strings.TrimSpace(s) != s {
		t.Fatalf("%s %q is not trimmed", what, s)
	}
	for _, r := range s {
		if unicode.IsControl(r) && !(text && (r == '\n' || r == '\t')) {
			t.Fatalf("%s %q holds the control character %U", what, s, r)
		}
	}
}

// refClean is the cleaning ParseDraft documents, written independently:
// drop invalid bytes and control characters (but line feeds and tabs in a
// text), then trim white space.
func refClean(s string, text bool) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		keep := !(r == utf8.RuneError && size == 1) && (!unicode.IsControl(r) || text && (r == '\n' || r == '\t')) &&
			// A username also loses every default-ignorable code point.
			(text || !unicode.In(r, unicode.Cf, unicode.Variation_Selector, unicode.Other_Default_Ignorable_Code_Point))
		if keep {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return strings.TrimSpace(b.String())
}
