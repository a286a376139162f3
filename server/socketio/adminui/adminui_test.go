package adminui

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

func TestRemoteAdmins(t *testing.T) {
	stats := func(id string, admins any) any {
		return map[string]any{"serverId": id, "namespaces": []any{
			map[string]any{"name": "/", "socketsCount": float64(9)},
			map[string]any{"name": "/admin", "socketsCount": admins},
		}}
	}
	tests := []struct {
		stats any
		want  bool
	}{
		{stats("b", float64(1)), true},
		{stats("b", json.Number("2")), true},
		{stats("b", int64(1)), true},
		{stats("b", float64(0)), false},
		{stats("self", float64(3)), false}, // our own stats
		{map[string]any{"serverId": "b"}, false},
		{"nonsense", false},
	}
	for i, tt := range tests {
		if got := remoteAdmins(tt.stats, "self"); got != tt.want {
			t.Errorf("%d: remoteAdmins(%v) = %v", i, tt.stats, got)
		}
	}
}

func TestAdminSessions(t *testing.T) {
	a := New(Options{Username: "admin", PasswordHash: []byte("x")}, Deps{})
	id := a.newSession()
	if len(id) != 32 || !a.validSession(id) || a.validSession("other") {
		t.Fatalf("session %q", id)
	}
	a.sessions[id] = time.Now().Add(-time.Second)
	if a.validSession(id) {
		t.Fatal("an expired session is taken")
	}
	for range sessionLimit + 10 {
		a.newSession()
	}
	if len(a.sessions) > sessionLimit {
		t.Fatalf("%d sessions kept", len(a.sessions))
	}
}

func TestAdminPassword(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	a := New(Options{Username: "admin", PasswordHash: hash}, Deps{})
	for _, tt := range []struct {
		user, pass string
		ok         bool
	}{
		{"admin", "secret", true},
		{"admin", "Secret", false},
		{"Admin", "secret", false},
		{"", "", false},
		{"admin", strings.Repeat("s", 100), false},
	} {
		if ok, busy := a.checkPassword(tt.user, tt.pass); ok != tt.ok || busy {
			t.Errorf("checkPassword(%q, %q) = %v, busy %v", tt.user, tt.pass, ok, busy)
		}
	}
	// One check at a time: another one meanwhile is told to retry.
	a.bcryptSlot <- struct{}{}
	if ok, busy := a.checkPassword("admin", "secret"); ok || !busy {
		t.Fatalf("a second check at once: ok %v, busy %v", ok, busy)
	}
	<-a.bcryptSlot
}
