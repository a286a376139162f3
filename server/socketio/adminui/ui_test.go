package adminui

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/crypto/bcrypt"

	"github.com/scalable-chat-go/server/chat"
	"github.com/scalable-chat-go/server/sioclient"
	"github.com/scalable-chat-go/server/socketio/internal/engine"
	"github.com/scalable-chat-go/server/testkit"
)

// The UI's tests run it behind the real session engine on loopback, with
// the chat namespace and the other nodes played by the test: chat sockets
// are plain sockets of namespace "/" (in the room "chat:live"), and the
// Directory records what the UI asks of the cluster.

const within = 10 * time.Second

// node is an engine serving the UI's namespace, and "/" as a stand-in
// chat.
type node struct {
	t   *testing.T
	ui  *UI
	eng *engine.Engine
	url string
	dir *directory

	mu    sync.Mutex
	socks map[*engine.Socket]map[string]any // chat sockets and their data
}

var _ engine.Handler = (*node)(nil)

func startNode(t *testing.T, o Options, dir *directory) *node {
	t.Helper()
	n := &node{t: t, dir: dir, socks: map[*engine.Socket]map[string]any{}}
	d := Deps{Chat: chatSide{n}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if dir != nil {
		d.Directory = dir
	}
	n.ui = New(o, d)
	eng, err := engine.New(engine.Options{Handler: n})
	if err != nil {
		t.Fatal(err)
	}
	n.eng = eng
	srv := httptest.NewServer(eng)
	n.url = srv.URL
	n.ui.Start()
	t.Cleanup(func() {
		n.ui.Close()
		ctx, cancel := context.WithTimeout(context.Background(), within)
		defer cancel()
		_ = eng.Close(ctx)
		srv.Close()
	})
	return n
}

func (n *node) Connect(s *engine.Socket, h *engine.Hello) error {
	if s.Namespace() == Namespace {
		return n.ui.Connect(s, h)
	}
	return nil
}

func (n *node) info(s *engine.Socket) chat.SocketInfo {
	n.mu.Lock()
	defer n.mu.Unlock()
	return chat.SocketInfo{ID: s.ID(), Namespace: "/", Transport: s.Transport(), Addr: s.Addr(),
		Rooms: []string{s.ID(), "chat:live"}, Data: n.socks[s]}
}

func (n *node) Ready(s *engine.Socket) {
	if s.Namespace() == Namespace {
		n.ui.Ready(s)
		return
	}
	n.mu.Lock()
	n.socks[s] = map[string]any{}
	n.mu.Unlock()
	n.ui.ChatReady(s, n.info(s))
}

// Event: an Admin UI command, or a chat socket giving its name.
func (n *node) Event(s *engine.Socket, name string, args []any, _ engine.Ack) {
	if s.Namespace() == Namespace {
		n.ui.Event(s, name, args)
		return
	}
	n.mu.Lock()
	n.socks[s]["name"] = args[0]
	n.mu.Unlock()
	n.ui.ChatUpdated(s.ID(), n.info(s).Data)
}

func (n *node) Disconnect(s *engine.Socket, reason string) {
	if s.Namespace() == Namespace {
		n.ui.Disconnect(s, reason)
		return
	}
	rooms := n.info(s).Rooms
	n.mu.Lock()
	delete(n.socks, s)
	n.mu.Unlock()
	n.ui.ChatGone(s, rooms, reason)
}

// chatSide is the node's "/" as the UI's Chat.
type chatSide struct{ n *node }

func (c chatSide) Sockets(limit int) []chat.SocketInfo {
	var out []chat.SocketInfo
	for _, s := range c.n.chatSockets() {
		if len(out) < limit {
			out = append(out, c.n.info(s))
		}
	}
	return out
}

func (c chatSide) Connections() int { return len(c.n.chatSockets()) }
func (c chatSide) Sessions() int    { return c.n.eng.Sessions() }

func (c chatSide) Disconnect(closeConn bool, filter string) int {
	k := 0
	for _, s := range c.n.chatSockets() {
		if filter == "" || filter == s.ID() || filter == "chat:live" {
			k++
			if closeConn {
				s.Close()
			} else {
				s.Disconnect()
			}
		}
	}
	return k
}

func (n *node) chatSockets() []*engine.Socket {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]*engine.Socket, 0, len(n.socks))
	for s := range n.socks {
		out = append(out, s)
	}
	return out
}

// newSocket waits for a chat socket whose id is not in known, and adds it.
func (n *node) newSocket(known map[string]bool) string {
	n.t.Helper()
	var id string
	testkit.Until(n.t, within, "a new chat socket", func() (bool, string) {
		for _, s := range n.chatSockets() {
			if !known[s.ID()] {
				id = s.ID()
				known[id] = true
				return true, id
			}
		}
		return false, fmt.Sprint(len(known), " known")
	})
	return id
}

// directory is the other nodes, as the test plays them.
type directory struct {
	// remote are the other nodes' sockets by namespace; err, when set, is
	// FetchSockets' answer for "/admin".
	remote map[string][]chat.SocketInfo
	err    error
	// hold, when set, holds FetchSockets until it is closed.
	hold chan struct{}

	mu          sync.Mutex
	published   []string // names of the events published
	disconnects [][]any
}

var _ chat.Directory = (*directory)(nil)

func (d *directory) FetchSockets(ctx context.Context, nsp string) ([]chat.SocketInfo, error) {
	if d.hold != nil {
		select {
		case <-d.hold:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if nsp == Namespace && d.err != nil {
		return nil, d.err
	}
	return d.remote[nsp], nil
}

func (d *directory) DisconnectSockets(nsp string, closeConn bool, filter string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.disconnects = append(d.disconnects, []any{nsp, closeConn, filter})
}

func (d *directory) PublishAdmin(name string, _ []any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.published = append(d.published, name)
}

func (d *directory) RegisterDirectoryHandler(chat.DirectoryHandler) {}

// took returns and forgets the names published.
func (d *directory) took() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := d.published
	d.published = nil
	return out
}

// ui is a client of the Admin UI's namespace: a Socket.IO connection
// (which is a chat socket of "/" too, as sioclient connects there first)
// with the events of /admin in a channel, in order.
type ui struct {
	t    *testing.T
	conn *sioclient.Conn
	// adminID is the id of its /admin socket once signed in.
	adminID string
	events  chan []json.RawMessage
	// answers are the CONNECT, CONNECT_ERROR and DISCONNECT packets of
	// /admin, as sent (without the Engine.IO type).
	answers chan string
	ended   chan struct{}
}

// dialUI opens a connection (WebSocket, or long-polling).
func dialUI(t *testing.T, url string, polling bool) *ui {
	t.Helper()
	var d sioclient.Dialer
	var conn *sioclient.Conn
	var err error
	if polling {
		conn, _, err = d.DialPolling(context.Background(), url)
	} else {
		conn, _, err = d.Dial(context.Background(), url, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	c := &ui{t: t, conn: conn, events: make(chan []json.RawMessage, 1000), answers: make(chan string, 10), ended: make(chan struct{})}
	go func() {
		defer close(c.ended)
		_ = conn.Serve(c.receive)
	}()
	t.Cleanup(func() { _ = conn.Close() })
	return c
}

func (c *ui) receive(f []byte) {
	p, ok := strings.CutPrefix(string(f), "4")
	if !ok || len(p) < 2 {
		return
	}
	body, ok := strings.CutPrefix(p[1:], Namespace)
	if !ok {
		return
	}
	switch p[0] {
	case '2':
		var args []json.RawMessage
		if err := json.Unmarshal([]byte(strings.TrimPrefix(body, ",")), &args); err != nil {
			c.t.Errorf("bad event %q", f)
			return
		}
		c.events <- args
	case '0', '1', '4':
		c.answers <- p
	}
}

// signIn connects to /admin with auth and returns the answer's packet.
func (c *ui) signIn(auth any) string {
	c.t.Helper()
	b, err := json.Marshal(auth)
	if err != nil {
		c.t.Fatal(err)
	}
	if err := c.conn.Write([]byte("40" + Namespace + "," + string(b))); err != nil {
		c.t.Fatal(err)
	}
	p := c.answer()
	if data, ok := strings.CutPrefix(p, "0"+Namespace+","); ok {
		c.adminID = unmarshal[map[string]string](c.t, json.RawMessage(data))["sid"]
	}
	return p
}

func (c *ui) answer() string {
	c.t.Helper()
	select {
	case p := <-c.answers:
		return p
	case <-time.After(within):
		c.t.Fatal("no answer from /admin")
		return ""
	}
}

// next returns the next event of /admin named name, skipping others.
func (c *ui) next(name string) []json.RawMessage {
	c.t.Helper()
	deadline := time.After(within)
	for {
		select {
		case args := <-c.events:
			var got string
			_ = json.Unmarshal(args[0], &got)
			if got == name {
				return args[1:]
			}
		case <-deadline:
			c.t.Fatalf("no %s within %v", name, within)
		}
	}
}

// names returns the names of the next n events of /admin.
func (c *ui) names(n int) []string {
	c.t.Helper()
	out := make([]string, 0, n)
	for range n {
		select {
		case args := <-c.events:
			var name string
			_ = json.Unmarshal(args[0], &name)
			out = append(out, name)
		case <-time.After(within):
			c.t.Fatalf("only %q within %v", out, within)
		}
	}
	return out
}

func (c *ui) command(args ...any) {
	c.t.Helper()
	b, _ := json.Marshal(args)
	if err := c.conn.Write([]byte("42" + Namespace + "," + string(b))); err != nil {
		c.t.Fatal(err)
	}
}

func password(t *testing.T) []byte {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return hash
}

func unmarshal[T any](t *testing.T, raw json.RawMessage) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	return v
}

// Sign-in: credentials, then the session they earned; one bcrypt check
// at a time.
func TestSignIn(t *testing.T) {
	n := startNode(t, Options{Username: "admin", PasswordHash: password(t)}, nil)
	c := dialUI(t, n.url, false)
	for _, auth := range []any{nil, map[string]any{"username": "admin", "password": "nope"}, map[string]any{"sessionId": "forged"}} {
		if got := c.signIn(auth); !strings.HasPrefix(got, "4"+Namespace+",") || !strings.Contains(got, "invalid credentials") {
			t.Fatalf("sign-in with %v: %q", auth, got)
		}
	}
	n.ui.bcryptSlot <- struct{}{}
	if got := c.signIn(map[string]any{"username": "admin", "password": "secret"}); !strings.Contains(got, "retry") {
		t.Fatalf("a sign-in while another is checked: %q", got)
	}
	<-n.ui.bcryptSlot
	if got := c.signIn(map[string]any{"username": "admin", "password": "secret"}); !strings.HasPrefix(got, "0"+Namespace+",") {
		t.Fatalf("sign-in: %q", got)
	}
	session := unmarshal[string](t, c.next("session")[0])
	second := dialUI(t, n.url, false)
	if got := second.signIn(map[string]any{"sessionId": session}); !strings.HasPrefix(got, "0") {
		t.Fatalf("sign-in with the session: %q", got)
	}
	if got := second.names(2); !slices.Equal(got, []string{"config", "all_sockets"}) {
		t.Fatalf("after a sign-in with the session: %q, want no new session", got)
	}
}

// An Admin UI socket gets config, then every socket of the cluster (the
// other nodes' too, those that answered), then the events that came
// meanwhile, in order.
func TestWelcome(t *testing.T) {
	dir := &directory{
		remote: map[string][]chat.SocketInfo{"/": {{ID: "remote-chat", Namespace: "/", Rooms: []string{"remote-chat", "chat:live"}}}},
		err:    errors.New("one node did not answer"),
		hold:   make(chan struct{}),
	}
	n := startNode(t, Options{StatsInterval: time.Hour}, dir)
	c := dialUI(t, n.url, false)
	if got := c.signIn(nil); !strings.HasPrefix(got, "0") {
		t.Fatalf("sign-in without auth: %q", got)
	}
	if got := unmarshal[map[string][]string](t, c.next("config")[0]); !slices.Equal(got["supportedFeatures"], features) {
		t.Fatalf("config %v", got)
	}
	// The UI's own socket_connected and server_stats are queued (Ready
	// goes on after config)...
	testkit.Until(t, within, "the Admin UI's own events queued", func() (bool, string) {
		n.ui.mu.Lock()
		defer n.ui.mu.Unlock()
		for _, ac := range n.ui.admins {
			return len(ac.pending) == 2, fmt.Sprint(len(ac.pending), " queued")
		}
		return false, "no Admin UI socket"
	})
	// ... and, while the cluster is asked, a chat socket comes and names
	// itself.
	chatter := dialUI(t, n.url, false)
	_ = chatter.conn.Write([]byte(`42["name","zed"]`))
	testkit.Until(t, within, "the chat socket named", func() (bool, string) {
		for _, s := range (chatSide{n}).Sockets(10) {
			if s.Data["name"] == "zed" {
				return true, ""
			}
		}
		return false, fmt.Sprint(n.chatSockets())
	})
	close(dir.hold)
	all := unmarshal[[]chat.SocketInfo](t, c.next("all_sockets")[0])
	var ids []string
	for _, s := range all {
		ids = append(ids, s.Namespace+" "+s.ID)
	}
	slices.Sort(ids)
	// The list is this node's sockets when the UI's goroutine read them
	// (its own two, and the chat socket that came if it came before), and
	// the remote one.
	if !slices.Contains(ids, "/ remote-chat") || !slices.Contains(ids, Namespace+" "+c.adminID) || len(ids) < 3 || len(ids) > 4 {
		t.Fatalf("all_sockets %q: want this node's sockets and the remote one", ids)
	}
	got := c.names(5)
	want := []string{"socket_connected", "server_stats", "socket_connected", "room_joined", "socket_updated"}
	if !slices.Equal(got, want) {
		t.Fatalf("after all_sockets: %q, want %q", got, want)
	}
	if pub := dir.took(); !slices.Contains(pub, "socket_updated") {
		t.Fatalf("published to the other nodes: %q", pub)
	}
}

// What the chat's sockets do reaches the Admin UI, and the other nodes'
// UIs; `_disconnect` acts here and there.
func TestChatEventsAndCommands(t *testing.T) {
	dir := &directory{}
	n := startNode(t, Options{StatsInterval: time.Hour}, dir)
	known := map[string]bool{}
	// Nobody watches: nothing is published.
	quiet := dialUI(t, n.url, false)
	quietID := n.newSocket(known)
	if pub := dir.took(); len(pub) != 0 {
		t.Fatalf("published with no Admin UI anywhere: %q", pub)
	}

	adm := dialUI(t, n.url, false)
	n.newSocket(known) // its chat socket
	adm.signIn(nil)
	adm.next("all_sockets")
	dialUI(t, n.url, false)
	chatID := n.newSocket(known)
	for {
		if info := unmarshal[chat.SocketInfo](t, adm.next("socket_connected")[0]); info.ID == chatID {
			break
		}
	}
	if got := strs(t, adm.next("room_joined")); !slices.Equal(got[:3], []string{"/", "chat:live", chatID}) {
		t.Fatalf("room_joined %q", got)
	}

	adm.command("_disconnect", "/", false, chatID)
	if got := strs(t, adm.next("socket_disconnected")); !slices.Equal(got[:3], []string{"/", chatID, "server namespace disconnect"}) {
		t.Fatalf("socket_disconnected %q", got)
	}
	for _, room := range []string{"chat:live", chatID} {
		if got := strs(t, adm.next("room_left")); !slices.Equal(got[:3], []string{"/", room, chatID}) {
			t.Fatalf("room_left %q, want room %s", got, room)
		}
	}
	adm.command("_join", "/", "room")                     // not supported
	adm.command("_disconnect", "/elsewhere", true, "")    // no such namespace
	adm.command("_disconnect", Namespace, true, "nobody") // nobody here, maybe elsewhere
	adm.command("_disconnect", "/", true, quietID)        // the whole connection
	adm.command("_disconnect", "/", false, "chat:live")   // a room: the chat socket left
	select {
	case <-quiet.ended:
	case <-time.After(within):
		t.Fatal("the connection of the socket disconnected with close is open")
	}
	want := fmt.Sprint([][]any{{"/", false, chatID}, {Namespace, true, "nobody"}, {"/", true, quietID}, {"/", false, "chat:live"}})
	testkit.Until(t, within, "the commands forwarded", func() (bool, string) {
		dir.mu.Lock()
		defer dir.mu.Unlock()
		got := fmt.Sprint(dir.disconnects)
		return got == want, got
	})

	// Another node's event reaches this node's Admin UI.
	n.ui.HandleRemote("socket_connected", []any{map[string]any{"id": "far", "nsp": "/"}, "now"})
	for {
		if got := unmarshal[map[string]any](t, adm.next("socket_connected")[0]); got["id"] == "far" {
			break
		}
	}
	// The UI's own sockets, listed and disconnected for another node.
	if got := n.ui.LocalSockets(10); len(got) != 1 || got[0].Namespace != Namespace {
		t.Fatalf("LocalSockets = %+v", got)
	}
	if got := n.ui.LocalSockets(0); len(got) != 0 {
		t.Fatalf("LocalSockets(0) = %+v", got)
	}
	if k := n.ui.DisconnectLocal(false, ""); k != 1 {
		t.Fatalf("DisconnectLocal = %d, want 1", k)
	}
	if got := adm.answer(); got != "1"+Namespace+"," {
		t.Fatalf("the Admin UI socket got %q, want its DISCONNECT", got)
	}
	testkit.Until(t, within, "socket_disconnected of the Admin UI published", func() (bool, string) {
		pub := dir.took()
		return slices.Contains(pub, "socket_disconnected"), fmt.Sprint(pub)
	})
}

// Every StatsInterval: server_stats, and the transports that changed.
// Another node's stats that count Admin UI sockets keep this node talking.
func TestStats(t *testing.T) {
	dir := &directory{}
	n := startNode(t, Options{ServerID: "self", StatsInterval: 30 * time.Millisecond}, dir)
	if pub := dir.took(); len(pub) != 0 {
		t.Fatalf("published with no Admin UI: %q", pub)
	}
	n.ui.HandleRemote("server_stats", []any{map[string]any{"serverId": "other", "namespaces": []any{
		map[string]any{"name": Namespace, "socketsCount": 1.0}}}})
	testkit.Until(t, within, "server_stats published while another node has an Admin UI", func() (bool, string) {
		pub := dir.took()
		return slices.Contains(pub, "server_stats"), fmt.Sprint(pub)
	})

	dialUI(t, n.url, true)
	up := upgrading(t, n.url)
	adm := dialUI(t, n.url, true)
	adm.signIn(nil)
	type nsp struct {
		Name         string
		SocketsCount int
	}
	type serverStats struct {
		ServerID            string
		ClientsCount        int
		PollingClientsCount int
		Namespaces          []nsp
	}
	var s serverStats
	for s.PollingClientsCount != 4 {
		s = unmarshal[serverStats](t, adm.next("server_stats")[0])
	}
	if s.ServerID != "self" || s.ClientsCount != 3 || !slices.Equal(s.Namespaces, []nsp{{"/", 3}, {Namespace, 1}}) {
		t.Fatalf("server_stats %+v", s)
	}
	up()
	for {
		u := unmarshal[map[string]any](t, adm.next("socket_updated")[0])
		if u["transport"] == "websocket" && u["nsp"] == "/" {
			break
		}
	}
	for s.PollingClientsCount != 3 {
		s = unmarshal[serverStats](t, adm.next("server_stats")[0])
	}
}

// upgrading opens a long-polling session with a chat socket, and returns
// a function that upgrades it to WebSocket.
func upgrading(t *testing.T, url string) func() {
	t.Helper()
	base := url + "/socket.io/?EIO=4&transport=polling"
	body := httpDo(t, http.MethodGet, base, "")
	var open struct{ SID string }
	if err := json.Unmarshal([]byte(strings.TrimPrefix(body, "0")), &open); err != nil {
		t.Fatalf("open packet %q", body)
	}
	q := "&sid=" + open.SID
	httpDo(t, http.MethodPost, base+q, "40")
	if got := httpDo(t, http.MethodGet, base+q, ""); !strings.HasPrefix(got, "40") {
		t.Fatalf("CONNECT answer %q", got)
	}
	return func() {
		t.Helper()
		ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(url, "http")+"/socket.io/?EIO=4&transport=websocket"+q, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = ws.Close() })
		_ = ws.WriteMessage(websocket.TextMessage, []byte("2probe"))
		_ = ws.SetReadDeadline(time.Now().Add(within))
		if _, b, err := ws.ReadMessage(); err != nil || string(b) != "3probe" {
			t.Fatalf("probe answer %q, %v", b, err)
		}
		_ = ws.WriteMessage(websocket.TextMessage, []byte("5"))
	}
}

func httpDo(t *testing.T, method, url, body string) string {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: %s %s", method, url, res.Status, b)
	}
	return string(b)
}

func TestWithCredentials(t *testing.T) {
	h := WithCredentials(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }),
		func(origin string) bool { return origin == "https://admin.example.com" })
	for origin, want := range map[string]string{"https://admin.example.com": "true", "https://evil.example.com": "", "": ""} {
		r := httptest.NewRequest(http.MethodGet, "/socket.io/", nil)
		if origin != "" {
			r.Header.Set("Origin", origin)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if got := w.Header().Get("Access-Control-Allow-Credentials"); got != want || w.Code != http.StatusNoContent {
			t.Errorf("origin %q: credentials %q (%d), want %q", origin, got, w.Code, want)
		}
	}
}

// Close stops the stats loop, once; a UI never started closes at once.
func TestClose(t *testing.T) {
	a := New(Options{StatsInterval: time.Millisecond}, Deps{})
	a.Close()
	a.Start() // after Close: the loop ends at once
	a.Close()
	b := New(Options{}, Deps{})
	b.Start()
	b.Start()
	b.Close()
	b.Close()
	if b.SocketsLimit() != 10_000 {
		t.Fatalf("default SocketsLimit %d", b.SocketsLimit())
	}
}

// strs decodes the arguments of an event, strings or "".
func strs(t *testing.T, args []json.RawMessage) []string {
	t.Helper()
	out := make([]string, len(args))
	for i, a := range args {
		_ = json.Unmarshal(a, &out[i])
	}
	return out
}

// A chat socket's rooms as it joins and leaves them: the Admin UI hears of
// each change once (ChatRooms may be called when nothing changed), also of
// what changed while nobody watched, and of every room it was told of when
// the socket goes.
func TestChatRooms(t *testing.T) {
	n := startNode(t, Options{StatsInterval: time.Hour}, nil)
	known := map[string]bool{}
	dialUI(t, n.url, false)
	chatID := n.newSocket(known)
	rooms := func(list ...string) func() []string { return func() []string { return list } }
	// Nobody watches yet: the change is kept, not sent.
	n.ui.ChatRooms(chatID, rooms("chat:live", "r-1"))
	n.ui.ChatRooms("never-announced", rooms("chat:live", "r-9"))

	adm := dialUI(t, n.url, false)
	n.newSocket(known)
	adm.signIn(nil)
	adm.next("all_sockets")
	// marker is an event sent after the calls before it: nothing of theirs
	// may come after it.
	marker := func(tag string) {
		t.Helper()
		n.ui.ChatUpdated(tag, map[string]any{})
		for {
			args := adm.events
			select {
			case got := <-args:
				var name string
				_ = json.Unmarshal(got[0], &name)
				if name == "socket_updated" && unmarshal[map[string]any](t, got[1])["id"] == tag {
					return
				}
				if name == "room_joined" || name == "room_left" {
					t.Fatalf("before %s: %s %s", tag, name, got[1:])
				}
			case <-time.After(within):
				t.Fatalf("no marker %s", tag)
			}
		}
	}
	roomEvent := func(name, room string) {
		t.Helper()
		if got := strs(t, adm.next(name)); !slices.Equal(got[:3], []string{"/", room, chatID}) {
			t.Fatalf("%s %q, want room %s", name, got, room)
		}
	}

	n.ui.ChatRooms(chatID, rooms("chat:live", "r-1", "r-2"))
	roomEvent("room_joined", "r-2")
	marker("after r-2 joined")
	n.ui.ChatRooms(chatID, rooms("chat:live", "r-1", "r-2")) // nothing changed
	marker("after the same rooms")
	n.ui.ChatRooms(chatID, rooms("chat:live", "r-2", "r-3"))
	roomEvent("room_joined", "r-3")
	roomEvent("room_left", "r-1")
	marker("after r-1 left, r-3 joined")

	// Gone: every room it was in, and those it was told to be in.
	n.ui.ChatRooms(chatID, rooms("chat:live", "r-2", "r-3", "r-4"))
	roomEvent("room_joined", "r-4")
	for _, s := range n.chatSockets() {
		if s.ID() == chatID {
			s.Disconnect()
		}
	}
	adm.next("socket_disconnected")
	var left []string
	for range 5 {
		left = append(left, strs(t, adm.next("room_left"))[1])
	}
	slices.Sort(left)
	want := []string{chatID, "chat:live", "r-2", "r-3", "r-4"}
	slices.Sort(want)
	if !slices.Equal(left, want) {
		t.Fatalf("room_left for %q, want %q", left, want)
	}
	n.ui.ChatRooms(chatID, rooms("chat:live", "r-5")) // forgotten
	marker("after the socket went")
}
