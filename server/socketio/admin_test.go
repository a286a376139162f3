package socketio

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/scalable-chat-go/server/inmem"
	"github.com/scalable-chat-go/server/socketio/adminui"
	"github.com/scalable-chat-go/server/testkit"
)

// uiSocket is a socket as the Admin UI reads it.
type uiSocket struct {
	ID        string         `json:"id"`
	Nsp       string         `json:"nsp"`
	Transport string         `json:"transport"`
	Data      map[string]any `json:"data"`
	Rooms     []string       `json:"rooms"`
}

// adminEvent returns the arguments of the next Admin UI event name.
func (c *client) adminEvent(name string) []json.RawMessage {
	c.t.Helper()
	return c.eventIn(adminui.Namespace, name)
}

// allSockets takes the Admin UI's all_sockets, by socket id.
func (c *client) allSockets() map[string]uiSocket {
	c.t.Helper()
	var list []uiSocket
	if err := json.Unmarshal(c.adminEvent("all_sockets")[0], &list); err != nil {
		c.t.Fatal(err)
	}
	out := make(map[string]uiSocket, len(list))
	for _, s := range list {
		out[s.ID] = s
	}
	return out
}

// strings decodes the string arguments of an event; others are "".
func strs(args []json.RawMessage) []string {
	out := make([]string, len(args))
	for i, a := range args {
		_ = json.Unmarshal(a, &out[i])
	}
	return out
}

// adminOptions turns the Admin UI on with user admin, password secret.
func adminOptions(t *testing.T, serverID string) *adminui.Options {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return &adminui.Options{Username: "admin", PasswordHash: hash, ServerID: serverID, StatsInterval: 100 * time.Millisecond}
}

var credentials = map[string]any{"username": "admin", "password": "secret"}

// stats is a server_stats event.
type stats struct {
	ServerID     string `json:"serverId"`
	ClientsCount int    `json:"clientsCount"`
	Namespaces   []struct {
		Name         string `json:"name"`
		SocketsCount int    `json:"socketsCount"`
	} `json:"namespaces"`
}

func (s stats) count(nsp string) int {
	for _, n := range s.Namespaces {
		if n.Name == nsp {
			return n.SocketsCount
		}
	}
	return -1
}

// nextStats returns the next server_stats of serverID that ok accepts.
func (c *client) nextStats(serverID string, ok func(stats) bool) stats {
	c.t.Helper()
	var last stats
	c.take("server_stats of "+serverID, func(p pkt) bool {
		if !isEvent(p, adminui.Namespace, "server_stats") {
			return false
		}
		_, args := p.args()
		var s stats
		if json.Unmarshal(args[0], &s) != nil || s.ServerID != serverID {
			return false
		}
		last = s
		return ok(s)
	})
	return last
}

// The Admin UI's namespace: credentials, the session, the config, every
// socket, then what the chat's sockets do, and the `_disconnect` command.
func TestAdminUI(t *testing.T) {
	e := startEdge(t, setup{Options: Options{Admin: adminOptions(t, "node-a")}})
	early, earlyHello := e.join(map[string]any{"username": "early"})
	adm := dial(t, e.url, nil)
	for _, auth := range []any{map[string]any{"username": "admin", "password": "wrong"},
		map[string]any{"username": "root", "password": "secret"}, map[string]any{"sessionId": "made-up"}} {
		if got := refusedConnect(t, adm, adminui.Namespace, auth); str(got, "message") != "invalid credentials" {
			t.Fatalf("Admin UI CONNECT with %v: %v, want invalid credentials", auth, got)
		}
	}
	// From the third failure in a row the address waits: the next attempt
	// is refused unchecked, and told when to retry.
	got := refusedConnect(t, adm, adminui.Namespace, nil)
	retry, _ := decode(t, mustJSON(t, got["data"]))["retryAfterMs"].(float64)
	if !strings.HasPrefix(str(got, "message"), "too many sign-in attempts") || retry <= 0 {
		t.Fatalf("a fourth attempt: %v, want a wait", got)
	}
	time.Sleep(time.Duration(retry)*time.Millisecond + 50*time.Millisecond)
	hello := adm.connect(adminui.Namespace, credentials)
	if hello.typ != '0' {
		t.Fatalf("Admin UI CONNECT refused: %s", hello.raw)
	}
	admID := str(decode(t, hello.data), "sid")
	var session string
	if err := json.Unmarshal(adm.adminEvent("session")[0], &session); err != nil || len(session) != 32 {
		t.Fatalf("session %q, %v", session, err)
	}
	var config struct{ SupportedFeatures []string }
	if err := json.Unmarshal(adm.adminEvent("config")[0], &config); err != nil ||
		!slices.Equal(config.SupportedFeatures, []string{"DISCONNECT", "MDISCONNECT"}) {
		t.Fatalf("config %+v, %v", config, err)
	}
	all := adm.allSockets()
	earlyID := str(earlyHello, "sid")
	if s := all[earlyID]; s.Nsp != "/" || s.Transport != "websocket" || s.Data["name"] != "early" ||
		!slices.Equal(s.Rooms, []string{earlyID, liveRoom}) {
		t.Fatalf("all_sockets lists the chat socket as %+v", s)
	}
	if s := all[admID]; s.Nsp != adminui.Namespace || !slices.Equal(s.Rooms, []string{admID}) {
		t.Fatalf("all_sockets lists the Admin UI socket as %+v", s)
	}
	if len(all) != 2 {
		t.Fatalf("all_sockets has %d sockets, want 2: %v", len(all), all)
	}

	// A chat socket comes, gives a name, and is disconnected by the UI.
	late, lateHello := e.join(nil)
	lateID := str(lateHello, "sid")
	var connected uiSocket
	for connected.ID != lateID {
		if err := json.Unmarshal(adm.adminEvent("socket_connected")[0], &connected); err != nil {
			t.Fatal(err)
		}
	}
	if connected.Nsp != "/" || !slices.Equal(connected.Rooms, []string{lateID}) {
		t.Fatalf("socket_connected %+v", connected)
	}
	if got := strs(adm.adminEvent("room_joined")); !slices.Equal(got[:3], []string{"/", liveRoom, lateID}) {
		t.Fatalf("room_joined %q", got)
	}
	late.send("lately", "hello admins")
	if got := decode(t, adm.adminEvent("socket_updated")[0]); str(got, "id") != lateID || str(got, "nsp") != "/" ||
		got["data"].(map[string]any)["name"] != "lately" {
		t.Fatalf("socket_updated %v", got)
	}
	st := adm.nextStats("node-a", func(s stats) bool { return s.count("/") == 2 })
	if st.count(adminui.Namespace) != 1 || st.ClientsCount != 3 {
		t.Fatalf("server_stats %+v, want 2 chat sockets, 1 Admin UI socket, 3 sessions", st)
	}

	adm.emitIn(adminui.Namespace, "_disconnect", "/", false, lateID)
	late.take("the server's DISCONNECT", func(p pkt) bool { return p.typ == '1' && p.nsp == "/" })
	if got := strs(adm.adminEvent("socket_disconnected")); !slices.Equal(got[:3], []string{"/", lateID, "server namespace disconnect"}) {
		t.Fatalf("socket_disconnected %q", got)
	}
	left := [][]string{strs(adm.adminEvent("room_left"))[:3], strs(adm.adminEvent("room_left"))[:3]}
	if !slices.Equal(left[0], []string{"/", liveRoom, lateID}) || !slices.Equal(left[1], []string{"/", lateID, lateID}) {
		t.Fatalf("room_left %q", left)
	}
	// Commands it does not support, or for a namespace it does not know,
	// do nothing.
	adm.emitIn(adminui.Namespace, "_join", "/", "room", earlyID)
	adm.emitIn(adminui.Namespace, "_disconnect", "/elsewhere", true, "")
	// By room, with the whole connection.
	adm.emitIn(adminui.Namespace, "_disconnect", "/", true, liveRoom)
	early.gone()
	if got := strs(adm.adminEvent("socket_disconnected")); got[1] != earlyID || got[2] != "forced close" {
		t.Fatalf("socket_disconnected %q", got)
	}

	// A second Admin UI signs in with the session; the first one sees it
	// come and go.
	second := dial(t, e.url, nil)
	if p := second.connect(adminui.Namespace, map[string]any{"sessionId": session}); p.typ != '0' {
		t.Fatalf("CONNECT with the session id refused: %s", p.raw)
	}
	secondID := second.allSockets()
	second.quiet(adminui.Namespace, "session", 0) // no new session for a session
	var other string
	for id, s := range secondID {
		if s.Nsp == adminui.Namespace && id != admID {
			other = id
		}
	}
	if other == "" {
		t.Fatalf("the second Admin UI is not in its all_sockets: %v", secondID)
	}
	adm.emitIn(adminui.Namespace, "_disconnect", adminui.Namespace, false, other)
	second.take("the server's DISCONNECT of /admin", func(p pkt) bool { return p.typ == '1' && p.nsp == adminui.Namespace })
	for {
		got := strs(adm.adminEvent("socket_disconnected"))
		if got[0] == adminui.Namespace && got[1] == other {
			break
		}
	}
}

// With ADMIN_UI=noauth anyone may sign in, and no session is issued.
func TestAdminUINoAuth(t *testing.T) {
	e := startEdge(t, setup{Options: Options{Admin: &adminui.Options{}}})
	adm := dial(t, e.url, nil)
	if p := adm.connect(adminui.Namespace, nil); p.typ != '0' {
		t.Fatalf("Admin UI CONNECT refused: %s", p.raw)
	}
	adm.adminEvent("config")
	adm.quiet(adminui.Namespace, "session", 0) // it would come before the config
	if all := adm.allSockets(); len(all) != 1 {
		t.Fatalf("all_sockets %v, want the Admin UI socket alone", all)
	}
	// The chat namespace still works behind the router; another namespace
	// does not exist.
	e.join(nil)
	if got := refusedConnect(t, adm, "/elsewhere", nil); str(got, "message") != "Invalid namespace" {
		t.Fatalf("CONNECT to another namespace: %v", got)
	}
}

// Two nodes on one bus: the Admin UI of one lists and disconnects the
// other's sockets and hears of its events, through the edge's
// DirectoryHandler methods.
func TestAdminUICluster(t *testing.T) {
	bus := inmem.NewBus()
	a := startEdge(t, setup{Bus: bus, Options: Options{Admin: adminOptions(t, "node-a")}})
	b := startEdge(t, setup{Bus: bus, Options: Options{Admin: adminOptions(t, "node-b")}})
	bee, beeHello := b.join(map[string]any{"username": "bee"})
	beeID := str(beeHello, "sid")
	adm := dial(t, a.url, nil)
	if p := adm.connect(adminui.Namespace, credentials); p.typ != '0' {
		t.Fatalf("Admin UI CONNECT refused: %s", p.raw)
	}
	if s := adm.allSockets()[beeID]; s.Nsp != "/" || s.Data["name"] != "bee" || !slices.Equal(s.Rooms, []string{beeID, liveRoom}) {
		t.Fatalf("all_sockets lists the other node's socket as %+v", s)
	}
	// The other node is watched now: it tells of its sockets.
	_, hello := b.join(nil)
	for {
		var s uiSocket
		_ = json.Unmarshal(adm.adminEvent("socket_connected")[0], &s)
		if s.ID == str(hello, "sid") {
			break
		}
	}
	adm.nextStats("node-b", func(s stats) bool { return s.count("/") == 2 })

	adm.emitIn(adminui.Namespace, "_disconnect", "/", false, beeID)
	bee.take("the server's DISCONNECT", func(p pkt) bool { return p.typ == '1' })
	// The client is told before the edge lets the socket go.
	testkit.Until(t, wait, "the disconnected socket gone from its node", func() (bool, string) {
		return b.Connections() == 1, fmt.Sprint(b.Connections(), " connections")
	})

	// The methods themselves.
	if got := a.LocalSockets(adminui.Namespace, 10); len(got) != 1 || got[0].Namespace != adminui.Namespace {
		t.Fatalf("LocalSockets(/admin) = %+v, want the Admin UI socket", got)
	}
	if got := b.LocalSockets("/", 10); len(got) != 1 {
		t.Fatalf("LocalSockets(/) = %+v, want one chat socket", got)
	}
	if got := b.LocalSockets("/", 0); len(got) != 0 {
		t.Fatalf("LocalSockets(/, 0) = %+v", got)
	}
	if a.LocalSockets("/elsewhere", 10) != nil || a.DisconnectLocal("/elsewhere", true, "") != 0 {
		t.Fatal("a namespace that does not exist has sockets")
	}
	if n := a.DisconnectLocal(adminui.Namespace, false, "no such socket"); n != 0 {
		t.Fatalf("DisconnectLocal(/admin, an unknown id) = %d", n)
	}
	if n := a.DisconnectLocal(adminui.Namespace, true, ""); n != 1 {
		t.Fatalf("DisconnectLocal(/admin) = %d, want 1", n)
	}
	adm.gone()
}

// Without the Admin UI the edge answers the other nodes about its chat
// sockets only.
func TestDirectoryWithoutAdminUI(t *testing.T) {
	e := startEdge(t, setup{})
	c, hello := e.join(map[string]any{"username": "solo"})
	got := e.LocalSockets("/", 100)
	if len(got) != 1 || got[0].ID != str(hello, "sid") || got[0].Data["name"] != "solo" || got[0].Addr != "127.0.0.1" {
		t.Fatalf("LocalSockets(/) = %+v", got)
	}
	if e.LocalSockets(adminui.Namespace, 100) != nil || e.DisconnectLocal(adminui.Namespace, true, "") != 0 {
		t.Fatal("an Admin UI namespace without the Admin UI")
	}
	e.HandleAdmin("server_stats", []any{map[string]any{"serverId": "x"}}) // nobody to tell
	if n := e.DisconnectLocal("/", false, "not this one"); n != 0 {
		t.Fatalf("DisconnectLocal(/, another id) = %d", n)
	}
	if n := e.DisconnectLocal("/", false, liveRoom); n != 1 {
		t.Fatalf("DisconnectLocal(/, %s) = %d, want 1", liveRoom, n)
	}
	c.take("the server's DISCONNECT", func(p pkt) bool { return p.typ == '1' })
}

// mustJSON encodes v.
func mustJSON(t *testing.T, v any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
