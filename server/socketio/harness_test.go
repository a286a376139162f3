package socketio

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/scalable-chat-go/server/batchwriter"
	"github.com/scalable-chat-go/server/chat"
	"github.com/scalable-chat-go/server/directlog"
	"github.com/scalable-chat-go/server/hub"
	"github.com/scalable-chat-go/server/inmem"
	"github.com/scalable-chat-go/server/sqlstore"
	"github.com/scalable-chat-go/server/testkit"
)

// The edge's tests drive the real edge in-process, wired as
// cmd/chat-server wires it (SQLite store, direct log, in-memory broker,
// hub, accept flow, moderation), behind an httptest server on loopback,
// with a raw Socket.IO client over gorilla/websocket: every packet is the
// test's to read.

// wait bounds every wait of these tests: generous for -race on a loaded
// two-core machine, and never reached when the behaviour holds.
const wait = 10 * time.Second

// setup is what a test edge is built from.
type setup struct {
	// Options are the edge's; Hub and Accepter are filled in unless set,
	// and Moderation unless NoModeration. SweepInterval defaults to an
	// hour (no sweep happens in a test unless it asks for one).
	Options
	NoModeration bool
	// HistoryLimit is how many messages a newcomer gets (default 50).
	HistoryLimit int
	// PresenceInterval is the hub's tick (default an hour: no tick).
	PresenceInterval time.Duration
	// Seed is stored before the edge starts.
	Seed []chat.Message
	// Bus links the edge to others (a new bus when nil).
	Bus *inmem.Bus
	// Rooms serves rooms over the test's SQLite store (with the limits
	// given, the defaults otherwise).
	Rooms      bool
	RoomLimits chat.RoomLimits
}

// tedge is a running edge and what it was built on.
type tedge struct {
	*Server
	t      *testing.T
	url    string
	hub    *hub.Hub
	store  *sqlstore.Store
	mod    *chat.Moderation
	broker *inmem.Broker
	reg    *prometheus.Registry

	closeOnce sync.Once
}

// moderator is a verified user who may delete and ban.
var moderator = &chat.User{ID: "mod-1", Name: "mod", Roles: []string{chat.RoleModerator}}

// globalHistory is the hub's history of rooms: only the global room
// exists.
func globalHistory(h *chat.History) func(string) *chat.History {
	return func(room string) *chat.History {
		if room == chat.GlobalRoom {
			return h
		}
		return nil
	}
}

func startEdge(t *testing.T, s setup) *tedge {
	t.Helper()
	ctx := context.Background()
	store, err := sqlstore.OpenSQLite(ctx, filepath.Join(t.TempDir(), "chat.db"))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Seed) > 0 {
		if _, err := store.SaveBatch(ctx, s.Seed); err != nil {
			t.Fatal(err)
		}
	}
	reg := prometheus.NewRegistry()
	wlog, err := directlog.New(store, directlog.Options{Buffer: 1000,
		Batching: batchwriter.Batching{BatchSize: 100, RetryMax: time.Second}, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	if s.Bus == nil {
		s.Bus = inmem.NewBus()
	}
	broker := s.Bus.Broker(inmem.BrokerOptions{})
	if s.HistoryLimit == 0 {
		s.HistoryLimit = 50
	}
	if s.PresenceInterval == 0 {
		s.PresenceInterval = time.Hour
	}
	history := chat.NewHistory(store, 100)
	histories := globalHistory(history)
	if s.Rooms {
		histories = func(room string) *chat.History {
			if room == chat.GlobalRoom {
				return history
			}
			return chat.NewRoomHistory(store, room, 100)
		}
	}
	hb, err := hub.New(hub.Options{
		Broker:            broker,
		History:           histories,
		Encoder:           NewEncoder(s.AuthMode, s.RecoveryWindow),
		HistoryLimit:      s.HistoryLimit,
		PresenceInterval:  s.PresenceInterval,
		PresenceListLimit: 100,
		TypingTimeout:     5 * time.Second,
		Registerer:        reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	o := s.Options
	o.Hub = hb
	if !s.NoModeration {
		o.Moderation = chat.NewModeration(chat.ModerationOptions{
			Log: wlog, Fanout: hb, Control: broker, History: history, Bans: store,
		})
		if err := o.Moderation.Load(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if o.Accepter == nil {
		o.Accepter = chat.NewService(wlog, hb, chat.ServiceOptions{Limits: o.Limits})
	}
	if s.Rooms {
		o.Rooms = chat.NewRoomService(chat.RoomServiceOptions{Store: store, Fanout: hb, Users: hb, Limits: s.RoomLimits})
	}
	if o.SweepInterval == 0 {
		o.SweepInterval = time.Hour
	}
	if o.Directory == nil {
		o.Directory = broker
	}
	o.Registerer = reg
	edge, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	broker.RegisterEventHandler(hb)
	if o.Moderation != nil {
		broker.RegisterControlHandler(o.Moderation)
	}
	broker.RegisterDirectoryHandler(edge)
	if err := broker.Run(); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(edge.Handler())
	te := &tedge{Server: edge, t: t, url: srv.URL, hub: hb, store: store, mod: o.Moderation, broker: broker, reg: reg}
	t.Cleanup(func() {
		te.close()
		hb.Close()
		cctx, cancel := context.WithTimeout(ctx, wait)
		defer cancel()
		_ = broker.Close(cctx)
		_ = wlog.Close(cctx)
		srv.Close()
		_ = store.Close()
	})
	return te
}

// close stops the edge (once; the test's cleanup calls it too).
func (e *tedge) close() {
	e.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		if err := e.Close(ctx); err != nil {
			e.t.Errorf("close the edge: %v", err)
		}
	})
}

// metric reads a counter or gauge of the edge's registry (0 when absent).
func (e *tedge) metric(name string, labels ...string) float64 {
	e.t.Helper()
	return max(testkit.Gathered(e.t, e.reg, name, labels...), 0)
}

// pkt is a Socket.IO packet the server sent.
type pkt struct {
	typ  byte // '0' CONNECT, '1' DISCONNECT, '2' EVENT, '3' ACK, '4' CONNECT_ERROR
	nsp  string
	id   int // the acknowledgement id, -1 without
	data json.RawMessage
	raw  string
}

// parsePkt reads a Socket.IO packet (the Engine.IO message type removed).
func parsePkt(s string) (pkt, error) {
	p := pkt{nsp: "/", id: -1, raw: s}
	if s == "" {
		return p, errors.New("empty packet")
	}
	p.typ, s = s[0], s[1:]
	if strings.HasPrefix(s, "/") {
		i := strings.IndexByte(s, ',')
		if i < 0 {
			p.nsp, s = s, ""
		} else {
			p.nsp, s = s[:i], s[i+1:]
		}
	}
	digits := 0
	for digits < len(s) && s[digits] >= '0' && s[digits] <= '9' {
		digits++
	}
	if digits > 0 {
		p.id, _ = strconv.Atoi(s[:digits])
		s = s[digits:]
	}
	if s != "" {
		if !json.Valid([]byte(s)) {
			return p, fmt.Errorf("packet %q: bad JSON", p.raw)
		}
		p.data = json.RawMessage(s)
	}
	return p, nil
}

// args is an EVENT's name and arguments, or an ACK's arguments.
func (p pkt) args() (name string, args []json.RawMessage) {
	var all []json.RawMessage
	_ = json.Unmarshal(p.data, &all)
	if p.typ == '2' && len(all) > 0 {
		_ = json.Unmarshal(all[0], &name)
		all = all[1:]
	}
	return name, all
}

// client is one Engine.IO session over WebSocket, with its sockets in any
// namespace. Its packets are read by one goroutine (which answers pings)
// and taken by the test, in order, with the ones it skipped kept for later.
type client struct {
	t    *testing.T
	ws   *websocket.Conn
	wmu  sync.Mutex
	in   chan pkt
	done chan struct{} // the connection ended
	held []pkt         // read, not taken yet
	acks int
}

// wsDial opens a WebSocket to the edge at url; header is sent with the
// handshake.
func wsDial(url string, header http.Header) (*websocket.Conn, *http.Response, error) {
	d := websocket.Dialer{HandshakeTimeout: wait}
	return d.Dial("ws"+strings.TrimPrefix(url, "http")+"/socket.io/?EIO=4&transport=websocket", header)
}

// dial opens a WebSocket session.
func dial(t *testing.T, url string, header http.Header) *client {
	t.Helper()
	ws, res, err := wsDial(url, header)
	if err != nil {
		status := ""
		if res != nil {
			status = res.Status
		}
		t.Fatalf("dial %s: %v %s", url, err, status)
	}
	_ = ws.SetReadDeadline(time.Now().Add(wait))
	_, open, err := ws.ReadMessage()
	if err != nil || !bytes.HasPrefix(open, []byte("0{")) {
		t.Fatalf("Engine.IO open packet: %q, %v", open, err)
	}
	_ = ws.SetReadDeadline(time.Time{})
	c := &client{t: t, ws: ws, in: make(chan pkt, 4096), done: make(chan struct{})}
	go c.read()
	t.Cleanup(func() { _ = ws.Close() })
	return c
}

func (c *client) read() {
	defer close(c.done)
	for {
		_, b, err := c.ws.ReadMessage()
		if err != nil {
			return
		}
		switch {
		case string(b) == "2":
			c.write("3")
		case len(b) > 1 && b[0] == '4':
			p, err := parsePkt(string(b[1:]))
			if err != nil {
				c.t.Errorf("the server sent %v", err)
				continue
			}
			c.in <- p
		}
	}
}

func (c *client) write(frame string) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(wait))
	_ = c.ws.WriteMessage(websocket.TextMessage, []byte(frame))
}

// prefix is how a packet names nsp.
func prefix(nsp string) string {
	if nsp == "/" {
		return ""
	}
	return nsp + ","
}

// connect sends a CONNECT to nsp with auth (nil: none) and returns the
// answer: a CONNECT ('0') or a CONNECT_ERROR ('4').
func (c *client) connect(nsp string, auth any) pkt {
	c.t.Helper()
	frame := "40" + prefix(nsp)
	if auth != nil {
		b, err := json.Marshal(auth)
		if err != nil {
			c.t.Fatal(err)
		}
		frame += string(b)
	}
	c.write(frame)
	return c.take("the CONNECT answer of "+nsp, func(p pkt) bool {
		return p.nsp == nsp && (p.typ == '0' || p.typ == '4')
	})
}

// take returns the first packet that match accepts, keeping the others.
func (c *client) take(what string, match func(pkt) bool) pkt {
	c.t.Helper()
	for i, p := range c.held {
		if match(p) {
			c.held = append(c.held[:i], c.held[i+1:]...)
			return p
		}
	}
	deadline := time.After(wait)
	for {
		select {
		case p := <-c.in:
			if match(p) {
				return p
			}
			c.held = append(c.held, p)
		case <-c.done:
			select {
			case p := <-c.in:
				if match(p) {
					return p
				}
				c.held = append(c.held, p)
				continue
			default:
			}
			c.t.Fatalf("the connection closed before %s; held: %s", what, c.heldText())
		case <-deadline:
			c.t.Fatalf("no %s within %v; held: %s", what, wait, c.heldText())
		}
	}
}

func (c *client) heldText() string {
	var b strings.Builder
	for _, p := range c.held {
		fmt.Fprintf(&b, "\n  %s", p.raw)
	}
	return b.String()
}

// isEvent reports whether p is the event name of nsp.
func isEvent(p pkt, nsp, name string) bool {
	if p.typ != '2' || p.nsp != nsp {
		return false
	}
	n, _ := p.args()
	return n == name
}

// eventIn returns the arguments of the next event name of nsp.
func (c *client) eventIn(nsp, name string) []json.RawMessage {
	c.t.Helper()
	p := c.take("event "+name+" of "+nsp, func(p pkt) bool { return isEvent(p, nsp, name) })
	_, args := p.args()
	return args
}

// event returns the first argument of the next event name of "/",
// decoded.
func (c *client) event(name string) map[string]any {
	c.t.Helper()
	args := c.eventIn("/", name)
	return decode(c.t, args[0])
}

// quiet fails when an event name of nsp comes within d; what comes
// meanwhile is kept.
func (c *client) quiet(nsp, name string, d time.Duration) {
	c.t.Helper()
	for _, p := range c.held {
		if isEvent(p, nsp, name) {
			c.t.Fatalf("unexpected %s: %s", name, p.raw)
		}
	}
	deadline := time.After(d)
	for {
		select {
		case p := <-c.in:
			if isEvent(p, nsp, name) {
				c.t.Fatalf("unexpected %s: %s", name, p.raw)
			}
			c.held = append(c.held, p)
		case <-deadline:
			return
		}
	}
}

// emit sends an event to "/" without asking for an acknowledgement.
func (c *client) emit(name string, args ...any) {
	c.t.Helper()
	c.emitIn("/", name, args...)
}

// emitIn sends an event to nsp without asking for an acknowledgement.
func (c *client) emitIn(nsp, name string, args ...any) {
	c.t.Helper()
	c.write("42" + prefix(nsp) + encodeEvent(c.t, name, args))
}

// call sends an event to "/" with an acknowledgement and returns the
// acknowledgement's first argument.
func (c *client) call(name string, args ...any) map[string]any {
	c.t.Helper()
	c.acks++
	id := c.acks
	c.write("42" + strconv.Itoa(id) + encodeEvent(c.t, name, args))
	p := c.take(fmt.Sprintf("the acknowledgement of %s #%d", name, id), func(p pkt) bool { return p.typ == '3' && p.id == id })
	_, got := p.args()
	if len(got) == 0 {
		c.t.Fatalf("an empty acknowledgement: %s", p.raw)
	}
	return decode(c.t, got[0])
}

func encodeEvent(t *testing.T, name string, args []any) string {
	t.Helper()
	b, err := json.Marshal(append([]any{name}, args...))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// oneErrorSince checks that the client holds one `error` event, all that
// the events it sent since start caused (they arrived before the
// acknowledgement the test took last). Refusals are told at most once a
// second: when the machine took longer than that, two are fine.
func (c *client) oneErrorSince(start time.Time) {
	c.t.Helper()
	n := 0
	for _, p := range c.held {
		if isEvent(p, "/", "error") {
			n++
		}
	}
	if took := time.Since(start); took >= time.Second && n == 2 {
		c.t.Logf("two error events in %v", took)
		return
	}
	if n != 1 {
		c.t.Fatalf("%d error events since %v, want 1; held: %s", n, start.Format(time.StampMilli), c.heldText())
	}
}

// gone waits until the server closed the connection.
func (c *client) gone() {
	c.t.Helper()
	select {
	case <-c.done:
	case <-time.After(wait):
		c.t.Fatalf("the connection is still open after %v; held: %s", wait, c.heldText())
	}
}

// leave closes the WebSocket without a DISCONNECT ("transport close": a
// socket that may be recovered).
func (c *client) leave() {
	_ = c.ws.Close()
	<-c.done
}

func decode(t *testing.T, raw json.RawMessage) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("want an object, got %s", raw)
	}
	return m
}

// join connects a client to the chat with auth, and fails the test when
// it is refused. It returns the CONNECT answer's data ({sid, pid?}) once
// the socket is in the global room.
func (e *tedge) join(auth any) (*client, map[string]any) {
	e.t.Helper()
	c := dial(e.t, e.url, nil)
	return c, c.join(auth)
}

// join connects the client to the chat (see tedge.join).
func (c *client) join(auth any) map[string]any {
	c.t.Helper()
	p := c.connect("/", auth)
	if p.typ != '0' {
		c.t.Fatalf("CONNECT refused: %s", p.raw)
	}
	c.joined()
	return decode(c.t, p.data)
}

// joined waits until the socket is in the global room: the client is told
// it is connected before it joins, and `presence` is the last thing the
// hub sends a newcomer. The presence event stays to be taken, in its
// place.
func (c *client) joined() {
	c.t.Helper()
	p := c.take("presence after the join", func(p pkt) bool { return isEvent(p, "/", chat.EventPresence) })
	c.held = append(c.held, p)
}

// refusal connects a client to nsp and returns the data of the
// CONNECT_ERROR it must get: {message, data?}.
func refusedConnect(t *testing.T, c *client, nsp string, auth any) map[string]any {
	t.Helper()
	p := c.connect(nsp, auth)
	if p.typ != '4' {
		t.Fatalf("CONNECT to %s with %v accepted: %s", nsp, auth, p.raw)
	}
	return decode(t, p.data)
}

// message returns the next `message` event: the wire message, and its
// recovery offset ("" without one).
func (c *client) message() (map[string]any, string) {
	c.t.Helper()
	args := c.eventIn("/", chat.EventMessage)
	var offset string
	if len(args) > 1 {
		if err := json.Unmarshal(args[1], &offset); err != nil {
			c.t.Fatalf("the offset is not a string: %s", args[1])
		}
	}
	if len(args) > 2 {
		c.t.Fatalf("a message event with %d arguments", len(args))
	}
	return decode(c.t, args[0]), offset
}

// texts returns the texts of the next n messages, in order.
func (c *client) texts(n int) []string {
	c.t.Helper()
	out := make([]string, 0, n)
	for range n {
		m, _ := c.message()
		out = append(out, str(m, "message"))
	}
	return out
}

// str is a string field of a decoded object.
func str(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}

// errorOf is the error object of a negative acknowledgement.
func errorOf(t *testing.T, ack map[string]any) map[string]any {
	t.Helper()
	if ok, _ := ack["ok"].(bool); ok {
		t.Fatalf("a positive acknowledgement where a refusal was due: %v", ack)
	}
	e, _ := ack["error"].(map[string]any)
	if e == nil {
		t.Fatalf("a negative acknowledgement without an error: %v", ack)
	}
	return e
}

// send sends a message as name and waits until it is durable.
func (c *client) send(name, text string) string {
	c.t.Helper()
	ack := c.call("event:message", map[string]any{"message": text, "username": name})
	if ok, _ := ack["ok"].(bool); !ok {
		c.t.Fatalf("message %q refused: %v", text, ack)
	}
	return str(ack, "id")
}

// fakeVerifier takes the tokens it knows.
type fakeVerifier struct {
	users map[string]*chat.User
	err   error // any other token: this error (ErrUnauthorized when nil)
}

func (v fakeVerifier) Verify(_ context.Context, token string) (*chat.User, error) {
	if u, ok := v.users[token]; ok {
		return u, nil
	}
	if v.err != nil {
		return nil, v.err
	}
	return nil, fmt.Errorf("%w: token signature is invalid", chat.ErrUnauthorized)
}
