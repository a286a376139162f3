package socketio

import (
	"strings"
	"testing"
)

func TestRecoveryOffset(t *testing.T) {
	const a, b = "0190f7b2-8c1e-7000-8000-000000000001", "0190f7b2-8c1e-7000-8000-000000000002"
	for _, tt := range []struct {
		id, high  string
		offset    string
		last, top string
	}{
		{a, a, a, a, a},
		{a, "", a, a, a},
		{a, b, a + "~" + b, a, b},
	} {
		offset := makeOffset(tt.id, tt.high)
		if offset != tt.offset {
			t.Errorf("makeOffset(%q, %q) = %q, want %q", tt.id, tt.high, offset, tt.offset)
		}
		if last, high := parseOffset(offset); last != tt.last || high != tt.top {
			t.Errorf("parseOffset(%q) = %q, %q; want %q, %q", offset, last, high, tt.last, tt.top)
		}
	}
	// Whatever a client sends back: never a panic, and a trailing separator
	// means no second id.
	for _, in := range []string{"", "~", a + "~", "~" + b, "x~y~z"} {
		last, high := parseOffset(in)
		if high == "" && last != "" {
			t.Errorf("parseOffset(%q) = %q, %q: an empty high-water id", in, last, high)
		}
	}
}

func TestResumeOffset(t *testing.T) {
	two := strings.Repeat("a", 64) + "~" + strings.Repeat("b", 64)
	long := strings.Repeat("1", maxOffsetLength)
	for _, tt := range []struct {
		auth map[string]any
		want string
	}{
		{nil, ""},
		{map[string]any{"offset": "x"}, ""}, // no session id: not a reconnection
		{map[string]any{"pid": "p", "offset": 5}, ""},          // not a string
		{map[string]any{"pid": "p", "offset": "x~y"}, "x~y"},   // two ids
		{map[string]any{"pid": "p", "offset": two}, two},       // two ids
		{map[string]any{"pid": "p", "offset": long}, long},     // the longest accepted: a Place
		{map[string]any{"pid": "p", "offset": long + "c"}, ""}, // too long: ignored
	} {
		if got := resumeOffset(tt.auth); got != tt.want {
			t.Errorf("resumeOffset(%v) = %q, want %q", tt.auth, got, tt.want)
		}
	}
}
