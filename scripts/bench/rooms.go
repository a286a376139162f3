package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scalable-chat-go/bench/internal/report"
	"github.com/scalable-chat-go/bench/internal/server"
	"github.com/scalable-chat-go/bench/internal/services"
	"github.com/scalable-chat-go/bench/internal/stamp"
	"github.com/scalable-chat-go/server/sioclient"
)

// The rooms mode: messages to rooms rather than to everyone.
//
// For each shape (-rooms: how many rooms the -clients share), for each
// server in turn on a fresh process: the rooms are made (ours: POST
// /api/rooms as the administrator; the reference: any name is a room),
// every client joins one room (client i room i mod R, `room:join` with an
// acknowledgement), the -senders join the rooms they send to, and the
// senders send at -rate in all on fanout's absolute schedule: message k from
// sender k mod S to room k mod R. Sender j is thus in the rooms r ≡ j (mod
// gcd(R, S)), every one of which it sends to.
//
// Then the memory step, per server: -mem-conns sockets each join one
// public room of -mem-pool, then -mem-rooms − 1 more; the RSS per socket
// between the two readings is what the extra rooms cost.

// Bounds of the rooms mode.
const (
	maxRoomsClients = 50000
	maxRoomsShape   = 5000
	maxRoomsShapes  = 8
	maxMemConns     = 20000
	maxMemRooms     = 100
	// joinTimeout bounds the wait for the acknowledgements of one round of
	// room:join.
	joinTimeout = time.Minute
)

type roomsFlags struct {
	common
	stepFlags
	clients, senders   int
	rooms              []int
	rate               float64
	memConns, memRooms int
	memPool            int
	memHold            time.Duration
	// Across nodes (rooms_cluster.go).
	nodes        int
	redisURL     string
	databaseURL  string
	subscription string
	subs         []string
}

// RoomsResult is the JSON of a rooms run.
type RoomsResult struct {
	Meta   Meta            `json:"meta"`
	Points []RoomsPoint    `json:"points"`
	Memory []RoomsMemPoint `json:"memory"`
}

// RoomsPoint is one server under one shape: fanout's figures (Receivers
// are the clients, OfferedDeliveriesPerSec the rate times the mean room
// size), and the rooms'.
type RoomsPoint struct {
	FanoutPoint
	Rooms int `json:"rooms"`
	// RoomSizeMin and RoomSizeMax are the clients per room.
	RoomSizeMin int `json:"room_size_min"`
	RoomSizeMax int `json:"room_size_max"`
	// WrongRoom counts measured messages a client received from a room it
	// is not in (each is a failure of isolation).
	WrongRoom int64 `json:"wrong_room"`
	// JoinSec is the time every client and sender took to join its rooms,
	// acknowledgements included.
	JoinSec float64 `json:"join_sec"`
	// Subscription is the Redis subscription mode of a step across nodes
	// (dynamic or static; "" on one node), and Cross what its nodes
	// received from each other (rooms_cluster.go).
	Subscription string     `json:"subscription,omitempty"`
	Cross        *CrossNode `json:"cross_node,omitempty"`
}

// RoomsMemPoint is one server's memory step.
type RoomsMemPoint struct {
	Server string `json:"server"`
	Label  string `json:"label"`
	Error  string `json:"error,omitempty"`
	Conns  int    `json:"conns"`
	Pool   int    `json:"pool"`
	// Rooms is how many rooms each socket is in at the second reading
	// (one at the first), the global room not counted.
	Rooms int `json:"rooms"`
	// RSS of the empty server (with the pool's rooms), with every socket
	// in one room, and in Rooms rooms, in MB.
	BaseRSSMB float64 `json:"base_rss_mb"`
	OneRSSMB  float64 `json:"one_room_rss_mb"`
	ManyRSSMB float64 `json:"many_rooms_rss_mb"`
	PeakRSSMB float64 `json:"peak_rss_mb"`
	// OneSettledKB and ExtraSettledKB are the same figures from the RSS
	// read a hold after a garbage collection (ours through its profiler,
	// the reference with --expose-gc).
	OneSettledKB   float64 `json:"one_room_settled_kb_per_socket"`
	ExtraSettledKB float64 `json:"extra_rooms_settled_kb_per_socket"`
	OneKB          float64 `json:"one_room_kb_per_socket"`
	ManyKB         float64 `json:"many_rooms_kb_per_socket"`
	ExtraKB        float64 `json:"extra_rooms_kb_per_socket"`
	PerRoomKB      float64 `json:"kb_per_socket_room"`
	JoinOneSec     float64 `json:"join_one_sec"`
	JoinSec        float64 `json:"join_many_sec"`
	// Ours: the heap in use after a garbage collection (the live objects)
	// per socket, in one room over the empty server, and for the extra
	// rooms.
	OneLiveKB   *float64 `json:"one_room_live_heap_kb_per_socket,omitempty"`
	ExtraLiveKB *float64 `json:"extra_rooms_live_heap_kb_per_socket,omitempty"`
	HoldSec     float64  `json:"hold_sec"`
	Dropped     int64    `json:"dropped"`
	BusyBefore  float64  `json:"busy_before,omitempty"`
	NotQuiet    bool     `json:"not_quiet,omitempty"`
}

func runRooms(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := roomsFlags{rooms: []int{100, 10}}
	fs := flag.NewFlagSet("rooms", flag.ContinueOnError)
	fs.SetOutput(stderr)
	f.register(fs)
	fs.IntVar(&f.clients, "clients", 1000, fmt.Sprintf("receiving clients, each in one room (1..%d)", maxRoomsClients))
	fs.Var(intListFlag{&f.rooms}, "rooms", fmt.Sprintf("shapes: how many rooms the clients are spread over, comma separated (up to %d shapes of 1..%d rooms; empty: the memory step only)", maxRoomsShapes, maxRoomsShape))
	fs.IntVar(&f.senders, "senders", 10, fmt.Sprintf("sending connections, sharing the rate (1..%d); each is in the rooms it sends to, and receives them", maxSenders))
	fs.Float64Var(&f.rate, "rate", 100, fmt.Sprintf("messages per second over all senders and rooms (0..%d]", maxRate))
	f.registerStep(fs, "per shape")
	fs.IntVar(&f.memConns, "mem-conns", 5000, fmt.Sprintf("memory step: sockets (0: no memory step; at most %d)", maxMemConns))
	fs.IntVar(&f.memRooms, "mem-rooms", 10, fmt.Sprintf("memory step: rooms each socket is in at the second reading (2..%d)", maxMemRooms))
	fs.IntVar(&f.memPool, "mem-pool", 100, "memory step: public rooms the sockets are spread over (at least -mem-rooms)")
	fs.DurationVar(&f.memHold, "mem-hold", 5*time.Second, "memory step: wait before each reading")
	fs.IntVar(&f.nodes, "nodes", 1, fmt.Sprintf("nodes of each server sharing Redis (1..%d); above 1 each room's members sit on one node or two", maxNodes))
	fs.StringVar(&f.redisURL, "redis-url", os.Getenv("REDIS_URL"), `with -nodes: Redis on loopback (default $REDIS_URL, from eval "$(scripts/services up redis postgres)")`)
	fs.StringVar(&f.databaseURL, "database-url", os.Getenv("DATABASE_URL"), "with -nodes: PostgreSQL on loopback whose role may create databases, for ours (default $DATABASE_URL)")
	fs.StringVar(&f.subscription, "subscription", "dynamic,static", "with -nodes: the Redis subscription modes to run each server in, in this order: dynamic (a channel per room), static (one for all)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: go run ./scripts/bench rooms [flags]\n\n"+
			"For each shape and each server: makes the rooms, puts each client in one, sends at the rate\n"+
			"from the senders, each message to one room, and measures deliveries/s, loss, isolation,\n"+
			"latency and CPU per delivery (user and system). Then what a socket's extra rooms cost in RSS.\n\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := f.check(); err != nil {
		return err
	}
	if err := f.checkRooms(); err != nil {
		return err
	}
	if f.nodeScript == "" {
		f.nodeScript = filepath.Join(f.repo, "server", "e2e", "fixtures", "rooms-server.js")
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	var cl *roomsCluster
	modes := []string{""}
	if f.nodes > 1 {
		modes = f.subs
		cl = &roomsCluster{redisURL: f.redisURL, run: time.Now().UTC().Format("20060102150405"), log: stderr}
		var err error
		if cl.redisPID, err = services.RedisPID(ctx, f.redisURL); err != nil {
			return fmt.Errorf("the Redis server at %s: %w", f.redisURL, err)
		}
		if slices.Contains(f.servers, server.Go) {
			if cl.pg, err = services.ConnectPostgres(ctx, f.databaseURL); err != nil {
				return err
			}
			defer cl.pg.Close(context.Background())
		}
	}

	s, cleanup, err := f.start(ctx, "rooms", args, max(f.clients+f.senders, f.memConns)+fdMargin, stderr)
	if err != nil {
		return err
	}
	defer cleanup()
	s.meta.Params = map[string]any{
		"clients": f.clients, "rooms": f.rooms, "senders": f.senders, "rate": f.rate, "duration": f.duration.String(),
		"warmup": f.warmup.String(), "drain": f.drain.String(), "text": f.text, "quiet": f.quiet,
		"mem_conns": f.memConns, "mem_rooms": f.memRooms, "mem_pool": f.memPool, "mem_hold": f.memHold.String(),
		"nodes": f.nodes,
	}
	if cl != nil {
		s.meta.Params["subscription"] = f.subs
		s.meta.Params["redis"] = f.redisURL
		s.meta.Servers["go_server_cluster"] = fmt.Sprintf("%d nodes; each step adds REDIS_URL, REDIS_KEY_PREFIX (fresh), REDIS_SUBSCRIPTION_MODE and DATABASE_URL (a fresh PostgreSQL database)", f.nodes)
		s.meta.Servers["node_server_cluster"] = fmt.Sprintf("%d nodes, createShardedAdapter (@socket.io/redis-adapter %s) with subscriptionMode REDIS_SUBSCRIPTION_MODE", f.nodes, s.meta.Servers["node_@socket.io/redis-adapter"])
	}
	token := adminToken()
	s.meta.Servers["go_server_step_env"] = "each step adds " + strings.Join(f.serverEnv("(hidden)"), " ")
	// The receivers allocate little; a lazier GC keeps the bench's own
	// CPU low (as in fanout).
	defer debug.SetGCPercent(debug.SetGCPercent(400))

	res := RoomsResult{Meta: s.meta}
	var t tally
	for _, n := range f.rooms {
		for _, mode := range modes {
			for _, k := range f.servers {
				p, err := roomsStep(ctx, s, &f, k, n, mode, t.steps+1, token, cl)
				if p.Error, err = t.take(ctx, err, fmt.Sprintf("rooms, %s with %d rooms", p.Label, n), stderr); err != nil {
					return err
				}
				res.Points = append(res.Points, p)
			}
		}
	}
	for _, k := range f.servers {
		if f.memConns == 0 {
			break
		}
		p, err := roomsMemory(ctx, s, &f, k, token)
		if p.Error, err = t.take(ctx, err, fmt.Sprintf("rooms, %s, memory step", k.Label()), stderr); err != nil {
			return err
		}
		res.Memory = append(res.Memory, p)
	}
	title := fmt.Sprintf("rooms: %d clients, each in one room; %s at %g msgs/s in all, each message to one room; %s per shape after %s warm-up, %d-character texts",
		f.clients, plural(f.senders, "sender"), f.rate, f.duration, f.warmup, f.text)
	if cl != nil {
		title += fmt.Sprintf("; %d nodes of each server through one Redis, each room on one node or two", f.nodes)
	}
	return s.publish(stdout, res, s.header(title)+roomsTable(res.Points)+roomsClusterTable(res.Points)+roomsMemTable(res.Memory), nil, t)
}

func (f *roomsFlags) checkRooms() error {
	switch {
	case f.clients < 1 || f.clients > maxRoomsClients:
		return usagef("-clients %d: want 1..%d", f.clients, maxRoomsClients)
	case len(f.rooms) > maxRoomsShapes:
		return usagef("-rooms: want at most %d shapes", maxRoomsShapes)
	case len(f.rooms) == 0 && f.memConns == 0:
		return usagef("-rooms and -mem-conns: nothing to measure (no shape, no memory step)")
	case f.senders < 1 || f.senders > maxSenders:
		return usagef("-senders %d: want 1..%d", f.senders, maxSenders)
	case !(f.rate > 0 && f.rate <= maxRate):
		return usagef("-rate %g: want (0, %d]", f.rate, maxRate)
	case f.memConns < 0 || f.memConns > maxMemConns:
		return usagef("-mem-conns %d: want 0..%d", f.memConns, maxMemConns)
	case f.memRooms < 2 || f.memRooms > maxMemRooms:
		return usagef("-mem-rooms %d: want 2..%d", f.memRooms, maxMemRooms)
	case f.memPool < f.memRooms || f.memPool > maxRoomsShape:
		return usagef("-mem-pool %d: want -mem-rooms (%d)..%d", f.memPool, f.memRooms, maxRoomsShape)
	case f.memHold < 0 || f.memHold > time.Minute:
		return usagef("-mem-hold %s: want 0..1m", f.memHold)
	case f.nodes < 1 || f.nodes > maxNodes:
		return usagef("-nodes %d: want 1..%d", f.nodes, maxNodes)
	}
	if f.nodes > 1 {
		var err error
		if f.subs, err = parseSubscriptions(f.subscription); err != nil {
			return err
		}
		if f.redisURL == "" {
			return fmt.Errorf(`-nodes %d needs Redis: set REDIS_URL or -redis-url (start it with: eval "$(scripts/services up redis postgres)")`, f.nodes)
		}
		if _, err := services.RedisAddr(f.redisURL); err != nil {
			return usagef("-redis-url: %v", err)
		}
		if slices.Contains(f.servers, server.Go) {
			if f.databaseURL == "" {
				return fmt.Errorf(`-nodes %d needs PostgreSQL for ours (rooms across nodes need a shared store): set DATABASE_URL or -database-url (start it with: eval "$(scripts/services up redis postgres)")`, f.nodes)
			}
			if err := services.PostgresHost(f.databaseURL); err != nil {
				return usagef("-database-url: %v", err)
			}
		}
	}
	for _, n := range f.rooms {
		if n < 1 || n > min(maxRoomsShape, f.clients) {
			return usagef("-rooms %d: want 1..%d (and no more than -clients)", n, min(maxRoomsShape, f.clients))
		}
	}
	return f.checkStep()
}

// serverEnv is what our server needs for the rooms mode, on top of the
// load settings: the administrator's token, to make the rooms, and room
// limits high enough for the administrator making them all within a
// minute and for anonymous sockets joining as many as the load has them
// join.
func (f *roomsFlags) serverEnv(token string) []string {
	most := f.memPool
	joins := f.memRooms
	if f.memConns > 0 {
		joins = max(joins, f.memPool) // the memory step's keeper is in every room
	}
	for _, n := range f.rooms {
		most = max(most, n)
		joins = max(joins, len(senderRooms(n, f.senders, 0)))
	}
	return []string{
		"ADMIN_TOKEN=" + token,
		"ROOMS_ANONYMOUS_MAX=" + strconv.Itoa(joins),
		"ROOMS_PER_USER_MAX=" + strconv.Itoa(most),
		"ROOM_CREATE_RATE_PER_MIN=" + strconv.Itoa(most),
	}
}

// adminToken is a fresh ADMIN_TOKEN for our server (32 random bytes).
func adminToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// routing says which room each message goes to and who is in each room:
// client i is in room i mod R; message k goes to room k mod R, from sender
// k mod S.
type routing struct {
	ids     []string // by room index
	of      []int    // the room of each client
	size    []int64  // clients per room
	warm    int64    // warm-up messages, before the measured ones
	senders int64
}

func newRouting(ids []string, clients, senders int, warm int64) *routing {
	rt := &routing{ids: ids, of: make([]int, clients), size: make([]int64, len(ids)), warm: warm, senders: int64(senders)}
	for i := range rt.of {
		rt.of[i] = i % len(ids)
		rt.size[rt.of[i]]++
	}
	return rt
}

// room returns the room of measured message seq of sender j: the message
// k = (the first measured message of j) + seq × S.
func (rt *routing) room(j, seq int64) int {
	s := rt.senders
	first := rt.warm + ((j-rt.warm)%s+s)%s
	return int((first + seq*s) % int64(len(rt.ids)))
}

// delivers reports whether client i is in the room of the measured
// message stamped st.
func (rt *routing) delivers(i int, st stamp.Stamp) bool {
	return st.Sender >= 0 && st.Sender < rt.senders && st.Seq >= 0 && rt.room(st.Sender, st.Seq) == rt.of[i]
}

// senderRooms returns the rooms sender j of senders sends to, of n: the
// rooms k mod n of the messages k ≡ j (mod senders), that is the rooms
// r ≡ j (mod gcd(n, senders)).
func senderRooms(n, senders, j int) []int {
	g := gcd(n, senders)
	var out []int
	for r := j % g; r < n; r += g {
		out = append(out, r)
	}
	return out
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// roomSizes returns the smallest and largest room of a routing.
func (rt *routing) roomSizes() (lo, hi int) {
	lo = int(rt.size[0])
	for _, n := range rt.size {
		lo, hi = min(lo, int(n)), max(hi, int(n))
	}
	return lo, hi
}

// makeRooms makes n public rooms on the server of sys and returns their
// ids: ours through POST /api/rooms as the administrator (token); for the
// reference any name is a room.
func makeRooms(ctx context.Context, sys *system, n int, token string) ([]string, error) {
	ids := make([]string, n)
	if sys.kind != server.Go {
		for i := range ids {
			ids[i] = fmt.Sprintf("bench-%d", i)
		}
		return ids, nil
	}
	client := &http.Client{Timeout: 10 * time.Second}
	for i := range ids {
		body := fmt.Sprintf(`{"name":"bench %d","kind":"public"}`, i)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, sys.nodes[0].URL+"/api/rooms", strings.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		res, err := client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("make room %d of %d: %w", i+1, n, err)
		}
		data, err := io.ReadAll(io.LimitReader(res.Body, 64<<10))
		res.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("make room %d of %d: %w", i+1, n, err)
		}
		var out struct {
			Room struct{ ID string } `json:"room"`
		}
		if res.StatusCode != http.StatusCreated || json.Unmarshal(data, &out) != nil || out.Room.ID == "" {
			return nil, fmt.Errorf("make room %d of %d: POST /api/rooms answered %s: %s", i+1, n, res.Status, bytes.TrimSpace(data))
		}
		ids[i] = out.Room.ID
	}
	return ids, nil
}

// joins counts the acknowledgements of the room:join events the
// connections sent, and keeps the first refusal.
type joins struct {
	ok, refused atomic.Int64
	once        sync.Once
	first       string
}

var ackOK = []byte(`[{"ok":true`)

// wrap returns h with the acknowledgements taken out first.
func (js *joins) wrap(h func([]byte)) func([]byte) {
	return func(f []byte) {
		if sioclient.Classify(f) != sioclient.KindAck {
			h(f)
			return
		}
		if bytes.Contains(f, ackOK) {
			js.ok.Add(1)
			return
		}
		js.once.Do(func() { js.first = string(f) })
		js.refused.Add(1)
	}
}

// join has connection i of cs join the rooms rooms(i) (ids), with an
// acknowledgement each (ids next, next+1, ...), at most parallel
// connections writing at once, and waits for every acknowledgement.
func (js *joins) join(ctx context.Context, cs *conns, parallel, next int, rooms func(i int) []string) error {
	want := js.ok.Load() + js.refused.Load()
	var (
		wg    sync.WaitGroup
		index atomic.Int64
		mu    sync.Mutex
		werr  error
	)
	for w := 0; w < min(parallel, len(cs.list)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			for {
				i := int(index.Add(1) - 1)
				if i >= len(cs.list) || ctx.Err() != nil {
					return
				}
				for a, id := range rooms(i) {
					buf = append(strconv.AppendInt(append(buf[:0], "42"...), int64(next+a), 10), `["room:join",{"room":"`...)
					buf = append(append(buf, id...), `"}]`...)
					if err := cs.list[i].Write(buf); err != nil {
						mu.Lock()
						werr = errors.Join(werr, fmt.Errorf("connection %d: room:join: %w", i, err))
						mu.Unlock()
						return
					}
				}
			}
		}()
	}
	for i := range cs.list {
		want += int64(len(rooms(i)))
	}
	wg.Wait()
	if werr != nil {
		return werr
	}
	deadline := time.Now().Add(joinTimeout)
	for {
		ok, refused := js.ok.Load(), js.refused.Load()
		if refused > 0 {
			return fmt.Errorf("%d room:join refused; the first answer: %s", refused, js.first)
		}
		if ok >= want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %s, %d of %d room:join still unanswered", joinTimeout, want-ok, want)
		}
		if err := sleepCtx(ctx, 10*time.Millisecond); err != nil {
			return err
		}
	}
}

func roomsStep(ctx context.Context, s *session, f *roomsFlags, k server.Kind, n int, mode string, step int, token string, cl *roomsCluster) (pt RoomsPoint, err error) {
	pt = RoomsPoint{FanoutPoint: FanoutPoint{Server: string(k), Label: modeLabel(k, mode), Rate: f.rate, Receivers: f.clients, Senders: f.senders, Nodes: f.nodes,
		OfferedDeliveriesPerSec: f.rate * float64(f.clients) / float64(n)}, Rooms: n, Subscription: mode}
	var o server.StartOptions
	if k == server.Go {
		o.Env = f.serverEnv(token)
	}
	var redisPIDs []int
	if cl != nil {
		env, cleanup, err := cl.env(ctx, k, step, mode)
		if err != nil {
			return pt, err
		}
		defer cleanup() // after the nodes stopped (deferred below)
		o.Env = append(o.Env, env...)
		redisPIDs = []int{cl.redisPID}
	}
	sys, loadAvg, err := startStep(ctx, s, k, f.nodes, o, &pt.FanoutPoint)
	if err != nil {
		return pt, err
	}
	defer func() { err = sys.stopStep(s, err) }()

	l, err := newSchedule(f.rate, f.duration, f.warmup, f.drain)
	if err != nil {
		return pt, err
	}
	ids, err := makeRooms(ctx, sys, n, token)
	if err != nil {
		return pt, err
	}
	rt := newRouting(ids, f.clients, f.senders, l.warm)
	pt.RoomSizeMin, pt.RoomSizeMax = rt.roomSizes()
	clientURLs, senderURLs := sys.urls(), sys.urls()
	var pl *placement
	if cl != nil {
		pl = newPlacement(rt, f.nodes)
		clientURLs, senderURLs = pl.urls(sys.urls(), pl.client), pl.urls(sys.urls(), pl.sender)
	}
	l.frame = func(dst []byte, st stamp.Stamp, k int64) []byte {
		return stamp.AppendRoomEvent(dst, st, f.text, ids[k%int64(n)])
	}
	r := newFanoutRun(step, f.clients, f.senders, l.measured)
	r.rooms = rt

	var js joins
	d := &sioclient.Dialer{ReadBufferSize: f.readBuffer}
	t := time.Now()
	rc, err := dial(ctx, d, clientURLs, f.clients, f.parallel, func(i int) func([]byte) { return js.wrap(r.receiver(i)) })
	defer rc.close()
	if err != nil {
		return pt, fmt.Errorf("connect clients (%d open): %w", rc.open(), err)
	}
	sc, err := dial(ctx, d, senderURLs, f.senders, f.parallel, func(j int) func([]byte) { return js.wrap(r.sender(j)) })
	defer sc.close()
	if err != nil {
		return pt, fmt.Errorf("connect senders: %w", err)
	}
	connected := time.Since(t)
	t = time.Now()
	if err := js.join(ctx, rc, f.parallel, 0, func(i int) []string { return []string{ids[rt.of[i]]} }); err != nil {
		return pt, fmt.Errorf("clients join: %w", err)
	}
	if err := js.join(ctx, sc, f.parallel, 0, func(j int) []string {
		var out []string
		for _, room := range senderRooms(n, f.senders, j) {
			out = append(out, ids[room])
		}
		return out
	}); err != nil {
		return pt, fmt.Errorf("senders join: %w", err)
	}
	pt.JoinSec = time.Since(t).Seconds()
	fmt.Fprintf(s.log, "%s, %d rooms: %d clients and %d senders connected in %.1fs, in their rooms %.1fs later\n",
		sys.describe(), n, f.clients, f.senders, connected.Seconds(), pt.JoinSec)

	// Probe every room, each from its sender (message k = room goes to room
	// k from sender k mod S), until every connection receives.
	probe := func(buf []byte, seq int64) error {
		for room, id := range ids {
			buf = stamp.AppendRoomEvent(buf[:0], stamp.Stamp{Run: r.probeRun, Sender: int64(room % f.senders), Seq: seq, Sent: r.now()}, 0, id)
			if err := sc.list[room%f.senders].Write(buf); err != nil {
				return err
			}
		}
		return nil
	}
	if err := r.probe(ctx, probe, 200*time.Millisecond); err != nil {
		return pt, err
	}
	var cross0 [4]int64 // received, dropped, Redis bytes in, out
	if cl != nil {
		if cross0, err = crossNow(ctx, sys, cl); err != nil {
			return pt, err
		}
	}
	if err := r.measure(ctx, sys, redisPIDs, rc, sc, l, &pt.FanoutPoint); err != nil {
		return pt, err
	}
	if cl != nil {
		cross1, err := settledCross(ctx, sys, cl)
		if err != nil {
			return pt, err
		}
		c := &CrossNode{Received: cross1[0] - cross0[0], Dropped: cross1[1] - cross0[1]}
		sent := l.warm + pt.Sent
		pl.expect(c, sent)
		if c.Held > 0 {
			c.Ratio = float64(c.Received) / float64(c.Held)
		}
		if sent > 0 {
			c.RedisInPerMsg, c.RedisOutPerMsg = float64(cross1[2]-cross0[2])/float64(sent), float64(cross1[3]-cross0[3])/float64(sent)
		}
		if pt.RedisCPUSec != nil && pt.Sent > 0 {
			c.RedisCPUPerMsgUs = ptr(*pt.RedisCPUSec / float64(pt.Sent) * 1e6)
		}
		pt.Cross = c
		fmt.Fprintf(s.log, "%s, %d rooms: the nodes received %d events of rooms from each other, %d expected (%s), %d of every event; Redis %s µs CPU, %s bytes in, %s bytes out per message\n",
			pt.Label, n, c.Received, c.Held, report.Ratio(float64(c.Received), float64(c.Held)), c.All,
			opt(c.RedisCPUPerMsgUs), report.Num(c.RedisInPerMsg), report.Num(c.RedisOutPerMsg))
	}
	pt.LoadAverage = loadAvg
	pt.WrongRoom = r.wrongRoom.Load()
	fmt.Fprintf(s.log, "%s, %d rooms: %s deliveries/s (offered %s), missing %d, wrong room %d, p50 %s ms, p99 %s ms, %s µs CPU/delivery (%s user, %s system), server %.2f cores, bench %.2f cores\n",
		pt.Label, n, report.Num(pt.DeliveriesPerSec), report.Num(pt.OfferedDeliveriesPerSec), pt.Missing, pt.WrongRoom,
		report.Num(pt.LatencyMs.P50), report.Num(pt.LatencyMs.P99), report.Num(pt.CPUPerDeliveryUs),
		report.Num(pt.UserPerDeliveryUs), report.Num(pt.SysPerDeliveryUs), pt.ServerCores, pt.BenchCores)
	return pt, nil
}

// roomsMemory measures what extra rooms cost a socket: -mem-conns sockets
// each join one room of the pool (socket i room i mod P), then the
// -mem-rooms − 1 rooms after it; a keeper socket is in every room from
// before the baseline. After each round and a hold, RSS is read
// as it is (no forced collection, as in the idle mode), then, ours, the
// heap in use after a garbage collection (the live objects).
func roomsMemory(ctx context.Context, s *session, f *roomsFlags, k server.Kind, token string) (pt RoomsMemPoint, err error) {
	pt = RoomsMemPoint{Server: string(k), Label: k.Label(), Conns: f.memConns, Pool: f.memPool, Rooms: f.memRooms, HoldSec: f.memHold.Seconds()}
	o := server.StartOptions{NodeArgs: []string{"--expose-gc"}}
	if k == server.Go {
		o.Env, o.Pprof = f.serverEnv(token), true
	}
	var fp FanoutPoint
	sys, _, err := startStep(ctx, s, k, 1, o, &fp)
	if err != nil {
		return pt, err
	}
	pt.BusyBefore, pt.NotQuiet = fp.BusyBefore, fp.NotQuiet
	defer func() { err = sys.stopStep(s, err) }()
	ids, err := makeRooms(ctx, sys, f.memPool, token)
	if err != nil {
		return pt, err
	}
	type reading struct {
		rss, hwm float64
		live     float64 // ours: heap in use after a collection
		settled  float64 // RSS a hold after a collection
	}
	p := sys.nodes[0]
	rss := func() (float64, float64, error) {
		if err := sleepCtx(ctx, f.memHold); err != nil {
			return 0, 0, err
		}
		if log := sys.exited(); log != "" {
			return 0, 0, errors.New(log)
		}
		sample, err := p.Sample(ctx)
		return float64(sample.Status.RSS), float64(sample.Status.HWM), err
	}
	read := func() (x reading, err error) {
		if x.rss, x.hwm, err = rss(); err != nil {
			return x, err
		}
		x.live = math.NaN()
		if k == server.Go {
			x.live, err = p.LiveHeap(ctx)
		} else {
			err = p.CollectGarbage(ctx)
		}
		if err != nil {
			return x, err
		}
		x.settled, _, err = rss()
		return x, err
	}
	// A keeper socket in every room of the pool, before the baseline: what
	// a room costs the server once (ours: its history ring, its presence)
	// is then in the baseline, not in the sockets' figures.
	var js joins
	d := &sioclient.Dialer{ReadBufferSize: 1024}
	keeper, err := dial(ctx, d, sys.urls(), 1, 1, func(int) func([]byte) { return js.wrap(func([]byte) {}) })
	defer keeper.close()
	if err != nil {
		return pt, fmt.Errorf("open the keeper: %w", err)
	}
	if err := js.join(ctx, keeper, 1, 0, func(int) []string { return ids }); err != nil {
		return pt, fmt.Errorf("the keeper joins every room: %w", err)
	}
	base, err := read()
	if err != nil {
		return pt, err
	}
	cs, err := dial(ctx, d, sys.urls(), f.memConns, f.parallel, func(int) func([]byte) { return js.wrap(func([]byte) {}) })
	defer cs.close()
	if err != nil {
		return pt, fmt.Errorf("open connections (%d open): %w", cs.open(), err)
	}
	t := time.Now()
	if err := js.join(ctx, cs, f.parallel, 0, func(i int) []string { return []string{ids[i%f.memPool]} }); err != nil {
		return pt, fmt.Errorf("one room each: %w", err)
	}
	pt.JoinOneSec = time.Since(t).Seconds()
	one, err := read()
	if err != nil {
		return pt, err
	}
	t = time.Now()
	if err := js.join(ctx, cs, f.parallel, 1, func(i int) []string {
		out := make([]string, 0, f.memRooms-1)
		for a := 1; a < f.memRooms; a++ {
			out = append(out, ids[(i+a)%f.memPool])
		}
		return out
	}); err != nil {
		return pt, fmt.Errorf("%d rooms each: %w", f.memRooms, err)
	}
	pt.JoinSec = time.Since(t).Seconds()
	many, err := read()
	if err != nil {
		return pt, err
	}
	pt.Dropped = cs.dropped.Load()
	const mb, kb = 1 << 20, 1 << 10
	conns := float64(f.memConns)
	pt.BaseRSSMB, pt.OneRSSMB, pt.ManyRSSMB, pt.PeakRSSMB = base.rss/mb, one.rss/mb, many.rss/mb, many.hwm/mb
	pt.OneKB = (one.rss - base.rss) / conns / kb
	pt.ManyKB = (many.rss - base.rss) / conns / kb
	pt.ExtraKB = (many.rss - one.rss) / conns / kb
	pt.PerRoomKB = pt.ExtraKB / float64(f.memRooms-1)
	pt.OneSettledKB = (one.settled - base.settled) / conns / kb
	pt.ExtraSettledKB = (many.settled - one.settled) / conns / kb
	pt.OneLiveKB = ptr((one.live - base.live) / conns / kb)
	pt.ExtraLiveKB = ptr((many.live - one.live) / conns / kb)
	fmt.Fprintf(s.log, "%s: %d sockets, %.2f KB RSS each in one room, %.2f KB in %d rooms: %+.2f KB for the %d more (after a collection %+.2f KB, live heap %s KB)\n",
		k.Label(), f.memConns, pt.OneKB, pt.ManyKB, f.memRooms, pt.ExtraKB, f.memRooms-1, pt.ExtraSettledKB, opt(pt.ExtraLiveKB))
	return pt, nil
}

// shapeText names a shape: "100 rooms of 10" (of 10-11 when uneven).
func shapeText(p RoomsPoint) string {
	size := strconv.Itoa(p.RoomSizeMax)
	if p.RoomSizeMin != p.RoomSizeMax {
		size = fmt.Sprintf("%d-%d", p.RoomSizeMin, p.RoomSizeMax)
	}
	return fmt.Sprintf("%d rooms of %s", p.Rooms, size)
}

func roomsTable(points []RoomsPoint) string {
	if len(points) == 0 {
		return ""
	}
	t := report.Table{
		Header: []string{"shape", "server", "deliveries/s", "missing", "p50 ms", "p95 ms", "p99 ms", "max ms",
			"server cores", "µs CPU/delivery", "µs user", "µs system", "RSS MB", "bench cores"},
		Right: []bool{false, false, true, true, true, true, true, true, true, true, true, true, true, true},
	}
	var notes []string
	// Rows by shape, then by subscription mode (across nodes).
	type group struct {
		rooms int
		sub   string
	}
	var order []group
	byRooms := map[group][]RoomsPoint{}
	for _, p := range points {
		g := group{p.Rooms, p.Subscription}
		if _, ok := byRooms[g]; !ok {
			order = append(order, g)
		}
		byRooms[g] = append(byRooms[g], p)
	}
	for _, g := range order {
		ps := byRooms[g]
		for _, p := range ps {
			at := fmt.Sprintf("%s, %d rooms", p.Label, p.Rooms)
			if p.Error != "" {
				t.Rows = append(t.Rows, []string{fmt.Sprintf("%d rooms", p.Rooms), p.Label, "failed", "", "", "", "", "", "", "", "", "", "", ""})
				notes = append(notes, fmt.Sprintf("%s failed: %s", at, firstLine(p.Error)))
				continue
			}
			row := append([]string{shapeText(p), p.Label}, latencyCells(p.FanoutPoint)...)
			t.Rows = append(t.Rows, append(row, report.Num(p.ServerCores), report.Num(p.CPUPerDeliveryUs),
				report.Num(p.UserPerDeliveryUs), report.Num(p.SysPerDeliveryUs), report.Num(p.ServerRSSMB), benchCell(p.FanoutPoint)))
			if p.WrongRoom > 0 {
				notes = append(notes, fmt.Sprintf("%s: %d messages reached clients not in their room", at, p.WrongRoom))
			}
			notes = append(notes, stepNotes(p.FanoutPoint, at)...)
		}
		ours, ref := find(ps, func(p RoomsPoint) string { return p.Server })
		if ours != nil && ref != nil && ours.Error == "" && ref.Error == "" {
			row := append([]string{"", "**ours/reference**"}, latencyRatios(ours.FanoutPoint, ref.FanoutPoint)...)
			t.Rows = append(t.Rows, append(row, report.Ratio(ours.ServerCores, ref.ServerCores),
				"**"+report.Ratio(ours.CPUPerDeliveryUs, ref.CPUPerDeliveryUs)+"**", report.Ratio(ours.UserPerDeliveryUs, ref.UserPerDeliveryUs),
				report.Ratio(ours.SysPerDeliveryUs, ref.SysPerDeliveryUs), report.Ratio(ours.ServerRSSMB, ref.ServerRSSMB), ""))
		}
	}
	out := t.Markdown()
	out += "\ndeliveries/s: receptions by the clients over the time from the first measured send to the last reception " +
		"(offered: the rate times the mean room size); missing: expected receptions (each message by every client of its room) that did not arrive within the drain time; " +
		"latency: send to reception; server CPU from /proc/<pid>/stat over the same window, per delivery including the senders' own copies, split into user and system time; " +
		"RSS at the end of the step; bench cores: the load generator's own CPU, (!) when server and bench together used over 90% of the machine.\n"
	return out + bullets(notes)
}

func roomsMemTable(points []RoomsMemPoint) string {
	if len(points) == 0 {
		return ""
	}
	rooms := points[0].Rooms
	more := fmt.Sprintf("+%d rooms", rooms-1)
	t := report.Table{
		Header: []string{"server", "sockets", "RSS before MB", "RSS, 1 room each MB", fmt.Sprintf("RSS, %d rooms each MB", rooms),
			"KB/socket, 1 room", more + ", KB/socket", more + ", after a GC", "live heap, 1 room", "live heap, " + more, "join s"},
		Right: []bool{false, true, true, true, true, true, true, true, true, true, true},
	}
	var notes []string
	for _, p := range points {
		if p.Error != "" {
			t.Rows = append(t.Rows, []string{p.Label, "failed", "", "", "", "", "", "", "", "", ""})
			notes = append(notes, fmt.Sprintf("%s, memory step failed: %s", p.Label, firstLine(p.Error)))
			continue
		}
		t.Rows = append(t.Rows, []string{
			p.Label, fmt.Sprintf("%d", p.Conns), report.Num(p.BaseRSSMB), report.Num(p.OneRSSMB), report.Num(p.ManyRSSMB),
			report.Num(p.OneKB), "**" + fmt.Sprintf("%+.2f", p.ExtraKB) + "**", fmt.Sprintf("%+.2f", p.ExtraSettledKB),
			opt(p.OneLiveKB), opt(p.ExtraLiveKB), fmt.Sprintf("%.1f + %.1f", p.JoinOneSec, p.JoinSec),
		})
		if p.Dropped > 0 {
			notes = append(notes, fmt.Sprintf("%s dropped %d connections during the memory step", p.Label, p.Dropped))
		}
		if p.NotQuiet {
			notes = append(notes, fmt.Sprintf("%s's memory step started on a busy machine (%.2f cores busy; -quiet gave up)", p.Label, p.BusyBefore))
		}
	}
	ours, ref := find(points, func(p RoomsMemPoint) string { return p.Server })
	if ours != nil && ref != nil && ours.Error == "" && ref.Error == "" {
		t.Rows = append(t.Rows, []string{"**ours/reference**", "", report.Ratio(ours.BaseRSSMB, ref.BaseRSSMB),
			report.Ratio(ours.OneRSSMB, ref.OneRSSMB), report.Ratio(ours.ManyRSSMB, ref.ManyRSSMB), report.Ratio(ours.OneKB, ref.OneKB),
			report.Ratio(ours.ExtraKB, ref.ExtraKB), report.Ratio(ours.ExtraSettledKB, ref.ExtraSettledKB), "", "", ""})
	}
	p := points[0]
	hold := time.Duration(p.HoldSec * float64(time.Second))
	out := fmt.Sprintf("\n#### What a socket's rooms cost: %d sockets over %d public rooms, 1 room each, then %d\n\n", p.Conns, p.Pool, rooms)
	out += t.Markdown()
	out += fmt.Sprintf("\nRSS from /proc/<pid>/status, read %s after each round of room:join was acknowledged, no forced GC (as the idle mode); "+
		"RSS before: the server with its rooms made and a keeper socket in each (what a room costs once is not the sockets'); KB/socket over it. "+
		"%s: (RSS with %d rooms each − RSS with 1 room each) / sockets, the target being at most 1 KB; after a GC: the same from RSS read %s after a garbage collection "+
		"(ours through its profiler, the reference run with --expose-gc), without most of the garbage of the joins. "+
		"Live heap (ours), KB/socket: the Go heap in use right after that collection (/metrics): what the objects kept take. "+
		"The global room (and socket.io's own room of each socket) is not counted.\n", hold, more, rooms, hold)
	return out + bullets(notes)
}
