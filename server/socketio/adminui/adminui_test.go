package adminui

import (
	"encoding/json"
	"fmt"
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
	// One check at a time: another one meanwhile waits its turn, up to
	// slotWait, then is told to retry.
	a.slotWait = 50 * time.Millisecond
	a.bcryptSlot <- struct{}{}
	if ok, busy := a.checkPassword("admin", "secret"); ok || !busy {
		t.Fatalf("a second check at once: ok %v, busy %v", ok, busy)
	}
	time.AfterFunc(20*time.Millisecond, func() { <-a.bcryptSlot })
	if ok, busy := a.checkPassword("admin", "secret"); !ok || busy {
		t.Fatalf("a check that waited for its turn: ok %v, busy %v", ok, busy)
	}
}

// An address has one sign-in checked at a time and, from its third failure
// in a row, waits 1 s, 2 s, 4 s... up to the most; a success forgets its failures; other
// addresses are not held back by it; the addresses remembered are bounded.
func TestAdminSignInGuard(t *testing.T) {
	g := newSignInGuard(5*time.Second, nil)
	now := time.Unix(1_000_000, 0)
	if ok, _ := g.begin("192.0.2.1", now); !ok {
		t.Fatal("a first attempt is refused")
	}
	if ok, _ := g.begin("192.0.2.1", now); ok {
		t.Fatal("a second attempt of the address is checked while the first is")
	}
	if ok, _ := g.begin("198.51.100.1", now); !ok {
		t.Fatal("another address is held back")
	}
	g.end("198.51.100.1", true, false, now)
	for range adminFreeFailures - 1 { // the first failures cost no wait
		g.end("192.0.2.1", false, true, now)
		if ok, _ := g.begin("192.0.2.1", now); !ok {
			t.Fatal("a first failure makes the address wait")
		}
	}
	for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second} {
		g.end("192.0.2.1", false, true, now)
		if ok, wait := g.begin("192.0.2.1", now); ok || wait != want {
			t.Fatalf("after failure %d: ok %v, wait %v; want %v", i+1, ok, wait, want)
		}
		now = now.Add(want)
		if ok, _ := g.begin("192.0.2.1", now); !ok {
			t.Fatalf("after the wait of failure %d: refused", i+1)
		}
	}
	// A check that could not be made (busy) is no failure.
	g.end("192.0.2.1", false, false, now)
	if ok, _ := g.begin("192.0.2.1", now); !ok {
		t.Fatal("a busy check counted as a failure")
	}
	g.end("192.0.2.1", true, false, now)
	if len(g.addrs) != 0 {
		t.Fatalf("a success left %d addresses", len(g.addrs))
	}
	for i := range signInAddrLimit + 100 {
		addr := fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)
		if ok, _ := g.begin(addr, now); !ok {
			t.Fatalf("address %d refused", i)
		}
		g.end(addr, false, true, now)
	}
	if n := len(g.addrs); n > signInAddrLimit {
		t.Fatalf("%d addresses remembered", n)
	}
}
