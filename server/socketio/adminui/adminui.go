// Package adminui is the server side of the Socket.IO Admin UI.
//
// @socket.io/admin-ui is the page Socket.IO users open to see a cluster's
// servers, sockets and rooms; in Node its instrument() serves it the
// namespace /admin. This is that namespace's server side, as the UI
// (0.5) reads it, behind the Socket.IO edge's router:
//
//   - CONNECT to /admin with auth {username, password} checked against
//     ADMIN_UI_USERNAME and the bcrypt ADMIN_UI_PASSWORD_HASH, or
//     {sessionId} from an earlier success (`session` {id} is sent then;
//     sessions live a day, in this node's memory); refused with
//     connect_error "invalid credentials". ADMIN_UI=noauth takes anyone.
//   - On connect: `config` {supportedFeatures}, then `all_sockets`, every
//     socket of the cluster (this node's, and the other servers' through the
//     broker's Directory: chat.Directory.FetchSockets).
//   - Then, cluster-wide: `socket_connected` (socket, time),
//     `socket_updated` {id, nsp, transport | data} (an upgrade to
//     WebSocket, a name given), `socket_disconnected` (nsp, id, reason,
//     time), `room_joined` / `room_left` (nsp, room, id, time), and
//     `server_stats` every 2 s from every node.
//   - The command `_disconnect` (nsp, close, filter): filter is a socket id
//     or a room; close ends the whole connection (the client reconnects),
//     otherwise the socket is disconnected from its namespace (the client
//     stays disconnected).
//
// What is shown: the namespaces "/" (the chat) and /admin; each socket's
// id, transport, address, connection time, data ({name} once given) and
// rooms (its own id, and the chat's rooms: chat:live for the global one,
// and the ids of the others it is in, as it joins and leaves them); see
// chat.SocketInfo for what a handshake lacks. supportedFeatures are
// DISCONNECT and MDISCONNECT (disconnect every socket of a room). Not
// supported, and so not announced: EMIT, JOIN, LEAVE, MJOIN, MLEAVE (who is
// in which room is the room rules' to decide, not the UI's),
// AGGREGATED_EVENTS (packet and byte counts per second; /metrics has the
// figures) and ALL_EVENTS (every event each socket receives and sends:
// event_received and event_sent). Without AGGREGATED_EVENTS the UI shows its
// socket, room and client pages, as it does for a Node server in
// development mode.
//
// Nothing is sent or published while no Admin UI is connected anywhere in
// the cluster: a node counts as watched while it has an Admin UI socket,
// and for a while after another node's server_stats said it had one, or
// after it answered a fetch-sockets request (how a new Admin UI elsewhere
// first reaches it).
package adminui

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"

	"github.com/scalable-chat-go/server/chat"
	"github.com/scalable-chat-go/server/socketio/internal/engine"
)

// Namespace is the namespace of the Socket.IO Admin UI.
const Namespace = "/admin"

// features are the Admin UI features this server supports.
var features = []string{"DISCONNECT", "MDISCONNECT"}

// Options turn the Admin UI's namespace on.
type Options struct {
	// Username and PasswordHash (bcrypt) are the credentials the UI must
	// give; both empty: no authentication.
	Username     string
	PasswordHash []byte
	// ServerID names this node in the UI (default: hostname#pid).
	ServerID string
	// SocketsLimit is the most sockets of one namespace of this node that
	// are listed (default 10,000).
	SocketsLimit int
	// StatsInterval is how often server_stats is sent (default 2 s, as
	// instrument()).
	StatsInterval time.Duration
	// FetchTimeout bounds the cluster's answer to a fetch-sockets request
	// (default 5 s).
	FetchTimeout time.Duration
	// SignInBackoffMax is the longest one address waits between sign-in
	// attempts after failures (ADMIN_UI_SIGNIN_BACKOFF_MAX, default 5 min;
	// see limits.go).
	SignInBackoffMax time.Duration
}

// Chat is the chat namespace of this node, as the UI sees it.
type Chat interface {
	// Sockets describes up to limit sockets of the chat.
	Sockets(limit int) []chat.SocketInfo
	// Connections is how many sockets the chat has; Sessions how many
	// Engine.IO sessions the node has.
	Connections() int
	Sessions() int
	// Disconnect disconnects the chat's sockets that filter names (a
	// socket id, a room; "" for every one), and returns how many.
	Disconnect(closeConn bool, filter string) int
}

// Deps are what the UI talks to.
type Deps struct {
	// Chat is this node's chat namespace; required.
	Chat Chat
	// Directory reaches the other nodes; nil on a node alone.
	Directory chat.Directory
	// Guard runs fn recovering a panic (the engine's).
	Guard func(what string, fn func())
	// Banned, when set, tells whether an IP ban keeps the client address
	// out, and the data of the refusal (the chat's, for /admin too).
	Banned     func(addr string) (data any, banned bool)
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// sessionTTL is how long a session id from a successful sign-in is taken
// instead of the password; sessionLimit bounds the ids kept.
const (
	sessionTTL   = 24 * time.Hour
	sessionLimit = 1000
	// pendingLimit bounds the events kept for an Admin UI socket until its
	// all_sockets is sent.
	pendingLimit = 10_000
)

// UI is the Admin UI's namespace of this node.
type UI struct {
	o        Options
	d        Deps
	log      *slog.Logger
	auth     bool
	started  time.Time
	hostname string

	mu       sync.Mutex
	admins   map[*engine.Socket]*adminConn
	polling  map[*engine.Socket]struct{} // chat sockets seen on long-polling, until they upgrade
	sessions map[string]time.Time        // session id -> expiry

	// told are the rooms each chat socket of this node was last announced
	// in (its own id left out): what an Admin UI knows of it. Kept while no
	// UI watches too, so that the changes announced later are exact.
	// roomsMu is held while a socket's changes are announced, in order.
	roomsMu sync.Mutex
	told    map[string][]string

	count        atomic.Int64 // len(admins)
	watchedUntil atomic.Int64 // unix ns
	bcryptSlot   chan struct{}
	slotWait     time.Duration // how long a check waits for bcryptSlot
	guard        *signInGuard

	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
	running atomic.Bool
}

// adminConn is an Admin UI socket of this node.
type adminConn struct {
	sock      *engine.Socket
	since     time.Time
	session   string // issued by this CONNECT, sent in Ready
	transport string
	// synced: all_sockets was sent; until then events wait in pending.
	synced  bool
	pending []pendingEvent
}

type pendingEvent struct {
	name string
	args []any
}

// New returns the UI; Start runs its stats loop.
func New(o Options, d Deps) *UI {
	host, _ := os.Hostname()
	if o.ServerID == "" {
		o.ServerID = fmt.Sprintf("%s#%d", host, os.Getpid())
	}
	if o.StatsInterval <= 0 {
		o.StatsInterval = 2 * time.Second
	}
	if o.FetchTimeout <= 0 {
		o.FetchTimeout = 5 * time.Second
	}
	if o.SocketsLimit <= 0 {
		o.SocketsLimit = 10_000
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.Guard == nil {
		d.Guard = func(_ string, fn func()) { fn() }
	}
	return &UI{
		o: o, d: d, log: d.Logger, auth: o.Username != "" || len(o.PasswordHash) > 0,
		started: time.Now(), hostname: host,
		admins:     make(map[*engine.Socket]*adminConn),
		polling:    make(map[*engine.Socket]struct{}),
		sessions:   make(map[string]time.Time),
		told:       make(map[string][]string),
		bcryptSlot: make(chan struct{}, 1),
		slotWait:   adminSignInWait,
		guard:      newSignInGuard(o.SignInBackoffMax, d.Registerer),
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
	}
}

// SocketsLimit is the most sockets of one namespace the node lists.
func (a *UI) SocketsLimit() int { return a.o.SocketsLimit }

// WithCredentials lets the Admin UI's long-polling requests through CORS:
// the UI sends them with credentials (for cookie-based sticky sessions),
// which a browser accepts only from an origin that is echoed with
// Access-Control-Allow-Credentials. That is given to the origins listed
// by name (lists; with "*" the answer is "*", which a browser refuses for
// such a request: list the UI's origin, or tick the UI's "WebSocket
// only").
func WithCredentials(next http.Handler, lists func(origin string) bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o := r.Header.Get("Origin"); o != "" && lists(o) {
			w.Header().Set("Access-Control-Allow-Credentials", "true")
		}
		next.ServeHTTP(w, r)
	})
}

// Connect checks an Admin UI's credentials.
func (a *UI) Connect(sock *engine.Socket, h *engine.Hello) error {
	ac := &adminConn{sock: sock, since: time.Now()}
	if err := a.refuseBanned(sock); err != nil {
		return err
	}
	if a.auth {
		id, _ := h.Auth["sessionId"].(string)
		if id == "" || !a.validSession(id) {
			return a.signIn(sock, h, ac)
		}
	}
	sock.Data = ac
	return nil
}

// checkPassword compares the credentials, one at a time (bcrypt takes tens
// of milliseconds of a core); busy when the check waited slotWait for its
// turn (limits.go bounds who may ask).
func (a *UI) checkPassword(user, pass string) (ok, busy bool) {
	t := time.NewTimer(a.slotWait)
	defer t.Stop()
	select {
	case a.bcryptSlot <- struct{}{}:
	case <-t.C:
		return false, true
	}
	defer func() { <-a.bcryptSlot }()
	userOK := subtle.ConstantTimeCompare([]byte(user), []byte(a.o.Username)) == 1
	passOK := bcrypt.CompareHashAndPassword(a.o.PasswordHash, []byte(pass)) == nil
	return userOK && passOK, false
}

func (a *UI) newSession() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, until := range a.sessions {
		if now.After(until) {
			delete(a.sessions, k)
		}
	}
	if len(a.sessions) >= sessionLimit {
		oldest, at := "", time.Time{}
		for k, until := range a.sessions {
			if oldest == "" || until.Before(at) {
				oldest, at = k, until
			}
		}
		delete(a.sessions, oldest)
	}
	a.sessions[id] = now.Add(sessionTTL)
	return id
}

func (a *UI) validSession(id string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	until, ok := a.sessions[id]
	return ok && time.Now().Before(until)
}

// Ready welcomes an Admin UI socket: its session, the config, then (once
// the cluster answered) every socket.
func (a *UI) Ready(sock *engine.Socket) {
	ac, _ := sock.Data.(*adminConn)
	if ac == nil {
		return
	}
	ac.transport = sock.Transport()
	a.mu.Lock()
	a.admins[sock] = ac
	a.count.Store(int64(len(a.admins)))
	a.mu.Unlock()
	if ac.session != "" {
		_ = sock.Emit("session", ac.session)
	}
	_ = sock.Emit("config", map[string]any{"supportedFeatures": features})
	a.log.Info("Admin UI connected", "addr", sock.Addr(), "id", sock.ID())
	now := stamp()
	a.emit("socket_connected", a.adminInfo(ac), now)
	a.emit("server_stats", a.stats())
	go a.d.Guard("admin all_sockets", func() { a.sync(ac) })
}

// sync sends an Admin UI socket every socket of the cluster, then the
// events that came meanwhile, in order.
func (a *UI) sync(ac *adminConn) {
	list := a.allSockets()
	_ = ac.sock.Emit("all_sockets", list)
	for {
		a.mu.Lock()
		pending := ac.pending
		ac.pending = nil
		if len(pending) == 0 {
			ac.synced = true
			a.mu.Unlock()
			return
		}
		a.mu.Unlock()
		for _, e := range pending {
			_ = ac.sock.Emit(e.name, e.args...)
		}
	}
}

// allSockets lists the sockets of the cluster: this node's, then the other
// servers' (what they answered within FetchTimeout).
func (a *UI) allSockets() []chat.SocketInfo {
	list := append(a.d.Chat.Sockets(a.o.SocketsLimit), a.LocalSockets(a.o.SocketsLimit)...)
	dir := a.d.Directory
	if dir == nil {
		return list
	}
	ctx, cancel := context.WithTimeout(context.Background(), a.o.FetchTimeout+2*time.Second)
	defer cancel()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, nsp := range []string{"/", Namespace} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			remote, err := dir.FetchSockets(ctx, nsp)
			if err != nil {
				a.log.Warn("the Admin UI lists this node's sockets only: the cluster did not answer", "namespace", nsp, "err", err)
				return
			}
			mu.Lock()
			list = append(list, remote...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return list
}

// LocalSockets describes up to limit Admin UI sockets of this node.
func (a *UI) LocalSockets(limit int) []chat.SocketInfo {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]chat.SocketInfo, 0, min(len(a.admins), limit))
	for _, ac := range a.admins {
		if len(out) >= limit {
			break
		}
		out = append(out, a.adminInfo(ac))
	}
	return out
}

func (a *UI) adminInfo(ac *adminConn) chat.SocketInfo {
	id := ac.sock.ID()
	return chat.SocketInfo{ID: id, Namespace: Namespace, Transport: ac.sock.Transport(), Addr: ac.sock.Addr(), Since: ac.since,
		Rooms: []string{id}, Data: map[string]any{}}
}

// Event handles an Admin UI command.
func (a *UI) Event(sock *engine.Socket, name string, args []any) {
	if name != "_disconnect" {
		a.log.Debug("Admin UI command not supported", "event", name)
		return
	}
	var nsp, filter string
	var closeConn bool
	if len(args) > 0 {
		nsp, _ = args[0].(string)
	}
	if len(args) > 1 {
		closeConn, _ = args[1].(bool)
	}
	if len(args) > 2 {
		filter, _ = args[2].(string)
	}
	var n int
	switch nsp {
	case "/":
		n = a.d.Chat.Disconnect(closeConn, filter)
	case Namespace:
		n = a.DisconnectLocal(closeConn, filter)
	default:
		return
	}
	a.log.Info("Admin UI disconnects sockets", "admin", sock.Addr(), "namespace", nsp, "filter", filter,
		"close", closeConn, "here", n)
	if a.d.Directory != nil {
		a.d.Directory.DisconnectSockets(nsp, closeConn, filter)
	}
}

// DisconnectLocal disconnects this node's Admin UI sockets that filter
// names (a socket id; "" for every one): from the namespace, or with their
// whole connection when closeConn. It returns how many.
func (a *UI) DisconnectLocal(closeConn bool, filter string) int {
	var socks []*engine.Socket
	a.mu.Lock()
	for sock := range a.admins {
		if filter == "" || sock.ID() == filter {
			socks = append(socks, sock)
		}
	}
	a.mu.Unlock()
	for _, sock := range socks {
		if closeConn {
			sock.Close()
		} else {
			sock.Disconnect()
		}
	}
	return len(socks)
}

// Disconnect forgets an Admin UI socket.
func (a *UI) Disconnect(sock *engine.Socket, reason string) {
	a.mu.Lock()
	_, known := a.admins[sock]
	delete(a.admins, sock)
	a.count.Store(int64(len(a.admins)))
	a.mu.Unlock()
	if known {
		now := stamp()
		a.emit("socket_disconnected", Namespace, sock.ID(), reason, now)
		a.emit("room_left", Namespace, sock.ID(), sock.ID(), now)
	}
}

// ChatReady tells the Admin UIs about a chat socket that connected (and
// joined its rooms: the global one, which the UI sees as liveRoom, and its
// user's).
func (a *UI) ChatReady(sock *engine.Socket, info chat.SocketInfo) {
	if sock.Transport() == "polling" {
		a.mu.Lock()
		a.polling[sock] = struct{}{}
		a.mu.Unlock()
	}
	rooms := without(info.Rooms, info.ID)
	a.roomsMu.Lock()
	defer a.roomsMu.Unlock()
	a.told[info.ID] = rooms
	if !a.watched() {
		return
	}
	info.Rooms = []string{info.ID}
	now := stamp()
	a.emit("socket_connected", info, now)
	for _, r := range rooms {
		a.emit("room_joined", "/", r, info.ID, now)
	}
}

// ChatRooms tells the Admin UIs the rooms the chat socket id is in now
// (its own id left out), as rooms reads them: room_joined and room_left for
// what changed since they were last told. The edge calls it whenever the
// socket may have joined or left a room; rooms is read under the lock that
// orders the announcements, so a late caller never announces an older
// state. A socket ChatReady did not announce is passed over.
func (a *UI) ChatRooms(id string, rooms func() []string) {
	a.roomsMu.Lock()
	defer a.roomsMu.Unlock()
	old, known := a.told[id]
	if !known {
		return
	}
	now := rooms()
	a.told[id] = now
	if !a.watched() {
		return
	}
	at := stamp()
	for _, r := range now {
		if !slices.Contains(old, r) {
			a.emit("room_joined", "/", r, id, at)
		}
	}
	for _, r := range old {
		if !slices.Contains(now, r) {
			a.emit("room_left", "/", r, id, at)
		}
	}
}

// without returns list without s.
func without(list []string, s string) []string {
	out := make([]string, 0, len(list))
	for _, x := range list {
		if x != s {
			out = append(out, x)
		}
	}
	return out
}

// ChatUpdated tells the Admin UIs that a chat socket gave a name.
func (a *UI) ChatUpdated(id string, data map[string]any) {
	if a.watched() {
		a.emit("socket_updated", map[string]any{"id": id, "nsp": "/", "data": data})
	}
}

// ChatGone tells the Admin UIs that a chat socket left its rooms (those
// it was in, and those they were told of).
func (a *UI) ChatGone(sock *engine.Socket, rooms []string, reason string) {
	a.mu.Lock()
	delete(a.polling, sock)
	a.mu.Unlock()
	id := sock.ID()
	a.roomsMu.Lock()
	defer a.roomsMu.Unlock()
	for _, r := range a.told[id] {
		if !slices.Contains(rooms, r) {
			rooms = append(rooms, r)
		}
	}
	delete(a.told, id)
	if !a.watched() {
		return
	}
	now := stamp()
	a.emit("socket_disconnected", "/", id, reason, now)
	for _, r := range rooms {
		if r != id {
			a.emit("room_left", "/", r, id, now)
		}
	}
	a.emit("room_left", "/", id, id, now)
}

// watched reports whether an Admin UI may be listening.
func (a *UI) watched() bool {
	return a.count.Load() > 0 || time.Now().UnixNano() < a.watchedUntil.Load()
}

// NoteWatched keeps this node talking for three stats intervals (another
// node asked for its sockets: an Admin UI is open there).
func (a *UI) NoteWatched() {
	a.watchedUntil.Store(time.Now().Add(3 * a.o.StatsInterval).UnixNano())
}

// emit sends an event to every Admin UI of the cluster.
func (a *UI) emit(name string, args ...any) {
	if !a.watched() {
		return
	}
	a.deliver(name, args)
	if a.d.Directory != nil {
		a.d.Directory.PublishAdmin(name, args)
	}
}

// deliver sends an event to this node's Admin UI sockets (kept for those
// waiting for their all_sockets).
func (a *UI) deliver(name string, args []any) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, ac := range a.admins {
		if !ac.synced {
			if len(ac.pending) < pendingLimit {
				ac.pending = append(ac.pending, pendingEvent{name, args})
			}
			continue
		}
		_ = ac.sock.Emit(name, args...)
	}
}

// HandleRemote delivers another server's Admin UI event here.
func (a *UI) HandleRemote(name string, args []any) {
	if name == "server_stats" && len(args) > 0 && remoteAdmins(args[0], a.o.ServerID) {
		a.NoteWatched()
	}
	a.deliver(name, args)
}

// remoteAdmins reports whether another server's server_stats counts
// Admin UI sockets.
func remoteAdmins(stats any, self string) bool {
	m, _ := stats.(map[string]any)
	if id, _ := m["serverId"].(string); id == self {
		return false
	}
	nsps, _ := m["namespaces"].([]any)
	for _, n := range nsps {
		nm, _ := n.(map[string]any)
		if name, _ := nm["name"].(string); name == Namespace {
			if positive(nm["socketsCount"]) {
				return true
			}
		}
	}
	return false
}

// positive reports whether a decoded JSON number is above 0 (the library's
// decoders give float64, json.Number or integers).
func positive(v any) bool {
	switch n := v.(type) {
	case float64:
		return n > 0
	case int:
		return n > 0
	case int64:
		return n > 0
	case uint64:
		return n > 0
	case json.Number:
		f, err := n.Float64()
		return err == nil && f > 0
	}
	return false
}

// serverStats is what instrument() sends every 2 s.
type serverStats struct {
	ServerID            string      `json:"serverId"`
	Hostname            string      `json:"hostname"`
	PID                 int         `json:"pid"`
	Uptime              float64     `json:"uptime"`
	ClientsCount        int         `json:"clientsCount"`
	PollingClientsCount int         `json:"pollingClientsCount"`
	Namespaces          []nspDetail `json:"namespaces"`
}

type nspDetail struct {
	Name         string `json:"name"`
	SocketsCount int    `json:"socketsCount"`
}

func (a *UI) stats() serverStats {
	a.mu.Lock()
	polling := len(a.polling)
	for _, ac := range a.admins {
		if ac.transport == "polling" {
			polling++
		}
	}
	admins := len(a.admins)
	a.mu.Unlock()
	return serverStats{
		ServerID: a.o.ServerID, Hostname: a.hostname, PID: os.Getpid(),
		Uptime:       time.Since(a.started).Seconds(),
		ClientsCount: a.d.Chat.Sessions(), PollingClientsCount: polling,
		Namespaces: []nspDetail{{"/", a.d.Chat.Connections()}, {Namespace, admins}},
	}
}

// Start runs the stats loop until Close.
func (a *UI) Start() {
	if a.running.CompareAndSwap(false, true) {
		go a.loop()
	}
}

func (a *UI) loop() {
	defer close(a.done)
	t := time.NewTicker(a.o.StatsInterval)
	defer t.Stop()
	for {
		select {
		case <-a.stop:
			return
		case <-t.C:
		}
		a.d.Guard("admin stats", func() {
			a.checkTransports()
			a.emit("server_stats", a.stats())
		})
	}
}

// checkTransports tells the Admin UIs about sockets that moved from
// long-polling to WebSocket since the last look (the session layer has no
// upgrade callback; the UI learns within a stats interval).
func (a *UI) checkTransports() {
	type update struct {
		id, nsp, transport string
	}
	var ups []update
	a.mu.Lock()
	for sock := range a.polling {
		if sock.Transport() != "polling" {
			delete(a.polling, sock)
			ups = append(ups, update{sock.ID(), "/", "websocket"})
		}
	}
	for _, ac := range a.admins {
		if t := ac.sock.Transport(); t != ac.transport {
			ac.transport = t
			ups = append(ups, update{ac.sock.ID(), Namespace, t})
		}
	}
	a.mu.Unlock()
	for _, u := range ups {
		a.emit("socket_updated", map[string]any{"id": u.id, "nsp": u.nsp, "transport": u.transport})
	}
}

// Close stops the stats loop.
func (a *UI) Close() {
	a.once.Do(func() { close(a.stop) })
	if a.running.Load() {
		<-a.done
	}
}

// stamp is an event's time as the UI reads it (a JavaScript Date in JSON).
func stamp() string { return time.Now().UTC().Format(chat.TimeLayout) }
