package server

import "testing"

func TestParseKind(t *testing.T) {
	tests := []struct {
		in   string
		want Kind
		ok   bool
	}{{"go", Go, true}, {" node ", Node, true}, {"python", "", false}, {"", "", false}, {"Go", "", false}}
	for _, tt := range tests {
		got, err := ParseKind(tt.in)
		if got != tt.want || (err == nil) != tt.ok {
			t.Errorf("ParseKind(%q) = %q, %v", tt.in, got, err)
		}
	}
	if Go.Label() != "ours (Go)" || Node.Label() != "reference (Node)" {
		t.Error("labels")
	}
}
