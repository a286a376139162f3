package socketio

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	sioadapter "github.com/zishang520/socket.io/adapters/adapter/v3"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"golang.org/x/crypto/bcrypt"
)

// fakeCluster records what an answeringAdapter sends on.
type fakeCluster struct {
	sioadapter.ClusterAdapter
	sent *sioadapter.ClusterResponse
}

func (f *fakeCluster) DoPublishResponse(_ sioadapter.ServerId, r *sioadapter.ClusterResponse) error {
	f.sent = r
	return nil
}

func TestAnsweringAdapterListsThisNodesSockets(t *testing.T) {
	mine := []*sioadapter.SocketResponse{socketInfo{id: "abcdefghijklmnopqrst", nsp: "/", transport: "websocket",
		addr: "10.0.0.7", since: time.UnixMilli(1_700_000_000_000), rooms: []string{"abcdefghijklmnopqrst", liveRoom},
		data: map[string]any{"name": "ann"}}.response()}
	sink := socket.SocketId("the-sink-id-of-24-chars")
	tests := []struct {
		name   string
		answer []*sioadapter.SocketResponse // what the library answered
		want   []string                     // ids sent on
	}{
		{"a fetch of every socket matched the sink", []*sioadapter.SocketResponse{{Id: sink}}, []string{"abcdefghijklmnopqrst"}},
		{"a fetch by room matched nothing", nil, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeCluster{}
			a := &answeringAdapter{ClusterAdapter: f, answer: func() []*sioadapter.SocketResponse { return mine }}
			a.setSink(sink)
			err := a.DoPublishResponse("node-b", &sioadapter.ClusterResponse{Type: sioadapter.FETCH_SOCKETS_RESPONSE,
				Data: &sioadapter.FetchSocketsResponse{RequestId: "r1", Sockets: tt.answer}})
			if err != nil {
				t.Fatal(err)
			}
			b, err := json.Marshal(f.sent)
			if err != nil {
				t.Fatal(err)
			}
			var wire struct {
				Data struct {
					RequestID string `json:"requestId"`
					Sockets   []struct {
						ID        string         `json:"id"`
						Rooms     []string       `json:"rooms"`
						Data      map[string]any `json:"data"`
						Handshake map[string]any `json:"handshake"`
					} `json:"sockets"`
				} `json:"data"`
			}
			if err := json.Unmarshal(b, &wire); err != nil {
				t.Fatal(err)
			}
			// Node's adapter reads response.data.sockets without a check:
			// an empty list must be on the wire.
			if !strings.Contains(string(b), `"sockets":[`) {
				t.Fatalf("no sockets list on the wire: %s", b)
			}
			got := []string{}
			for _, s := range wire.Data.Sockets {
				got = append(got, s.ID)
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") || wire.Data.RequestID != "r1" {
				t.Fatalf("sent %s", b)
			}
			if len(wire.Data.Sockets) == 1 {
				s := wire.Data.Sockets[0]
				admin, _ := s.Data["_admin"].(map[string]any)
				if s.Data["name"] != "ann" || admin["clientId"] != "abcdefghijkl" || admin["transport"] != "websocket" ||
					s.Handshake["address"] != "10.0.0.7" || s.Handshake["issued"] != float64(1_700_000_000_000) ||
					strings.Join(s.Rooms, ",") != "abcdefghijklmnopqrst,"+liveRoom {
					t.Fatalf("socket on the wire: %s", b)
				}
			}
		})
	}
}

func TestAnsweringAdapterPassesOtherResponses(t *testing.T) {
	f := &fakeCluster{}
	a := &answeringAdapter{ClusterAdapter: f, answer: func() []*sioadapter.SocketResponse { t.Fatal("asked"); return nil }}
	r := &sioadapter.ClusterResponse{Type: sioadapter.BROADCAST_ACK, Data: &sioadapter.BroadcastAck{RequestId: "x"}}
	if err := a.DoPublishResponse("b", r); err != nil || f.sent != r {
		t.Fatalf("sent %v, %v", f.sent, err)
	}
}

func TestAdminSocketShape(t *testing.T) {
	info := socketInfo{id: "s1", nsp: "/", transport: "polling", addr: "127.0.0.1", since: time.UnixMilli(5000),
		rooms: []string{"s1", liveRoom}, data: map[string]any{}}
	b, err := json.Marshal(info.admin())
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	_ = json.Unmarshal(b, &got)
	hs, _ := got["handshake"].(map[string]any)
	if got["id"] != "s1" || got["clientId"] != "s1" || got["transport"] != "polling" || got["nsp"] != "/" ||
		hs["address"] != "127.0.0.1" || hs["issued"] != float64(5000) || hs["headers"] == nil || hs["query"] == nil {
		t.Fatalf("serialized socket: %s", b)
	}
	a, ok := decodeAdminSocket(got)
	if !ok || a.ID != "s1" || a.Handshake.Address != "127.0.0.1" || len(a.Rooms) != 2 {
		t.Fatalf("decoded back: %+v", a)
	}
}

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
	a := newAdminUI(&Server{}, AdminOptions{Username: "admin", PasswordHash: []byte("x")})
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
	a := newAdminUI(&Server{}, AdminOptions{Username: "admin", PasswordHash: hash})
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
