package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// subscriber keeps this node's sharded Pub/Sub subscriptions (SSUBSCRIBE)
// alive on one Redis server or a Redis Cluster, whatever happens to the
// nodes, and delivers what arrives on them.
//
// It exists because neither zishang520's sharded adapter nor go-redis's
// PubSub survives a cluster's failover or slot migration: go-redis ignores
// the `sunsubscribe` a node sends when its slot moves away, reconnects a
// cluster PubSub to a random node, and subscribes again to all of a
// connection's channels in one SSUBSCRIBE, which a cluster refuses with
// CROSSSLOT when they are in several slots; the adapter pins its room
// channels to the master it first found, whose death it never gets over.
// Deliveries then stop, silently.
//
// Here:
//   - one connection per master (all the channels of this node that the
//     master serves), one channel per SSUBSCRIBE, and each command's reply
//     matched to it in order, so an error answers for its channel only;
//   - any sign that a channel is no longer served where it is subscribed
//     (the connection breaks, a ping goes unanswered, the node sends
//     `sunsubscribe`, or answers MOVED or CLUSTERDOWN) drops that
//     subscription and reads the cluster's slots again; a reconciling
//     loop then subscribes each channel on the master that now serves it,
//     retrying every 100 ms (on a cluster 150 ms at most; 1 s with one
//     server) until it is confirmed;
//   - on a cluster the slots are read again every health interval too, so
//     a move that no connection noticed is still found;
//   - every loss is counted and logged, with its cause and, once the
//     subscription is back, how long it was missing: what other nodes
//     published on the channel meanwhile did not reach this node (the
//     publishing side counts those, see reach).
type subscriber struct {
	c        *Cluster
	log      *slog.Logger
	m        *subMetrics
	health   time.Duration // pings and (on a cluster) slot reads
	retryMax time.Duration

	ctx    context.Context
	cancel context.CancelFunc
	kick   chan struct{}
	done   chan struct{}

	mu   sync.Mutex
	want map[string]*subChannel
	// confirmedN counts the wanted channels whose subscription a node
	// confirmed: kept as they change, as the gauges are set on every
	// change and a scan of thousands of room channels each time made
	// subscribing to n rooms cost n².
	confirmedN int
	// pending are the wanted channels not confirmed (the same count as
	// confirmedN's complement), and dirty those added or removed since
	// the last round: a round looks at them only, and at every channel on
	// a health tick or once the cluster's slots changed, since a scan of
	// a hundred thousand room channels for each room joined cost 24 ms.
	pending  map[string]*subChannel
	dirty    map[string]bool
	conns    map[string]*subConn        // by node address
	clients  map[string]*goredis.Client // by node address
	topo     *topology                  // nil before the first read, and with one server
	failed   map[string]time.Time       // when a node last failed to answer or to connect
	stale    bool                       // read the slots again before the next round
	moves    int64                      // channels found served by another master
	lastMove time.Time
}

// subChannel is a channel this node wants.
type subChannel struct {
	name    string
	handler func(channel string, payload []byte)
	conn    *subConn // where it is subscribed, or asked to be (nil: nowhere)
	ok      bool     // the node confirmed the subscription
	// room marks a hub room's channel, wanted since since: one is
	// subscribed whenever a room gets its first member here.
	room    bool
	since   time.Time
	lostAt  time.Time
	lostWhy string
	// confirmed, once made (whenConfirmed), is closed when the
	// subscription is confirmed next.
	confirmed chan struct{}
}

// subConn is one Pub/Sub connection to a node, on a client of its own
// that dials once: go-redis's PubSub reconnects by itself after an error
// and subscribes again to all its channels before it returns the error,
// which left a node subscribed twice for a moment (counted twice by
// SPUBLISH) or refused with CROSSSLOT; here only the subscriber's loop
// makes connections.
type subConn struct {
	addr   string
	client *goredis.Client
	ps     *goredis.PubSub
	// holds are the channels subscribed here or asked to be (s.mu).
	holds map[string]bool

	mu      sync.Mutex
	pending []pendingOp // commands sent whose replies have not come, in order
	dead    bool
	reading bool
	seen    atomic.Int64 // Unix nanoseconds of the last reply
}

// pendingOp is a command sent on a subConn: ssubscribe, sunsubscribe or
// ping, and its channel.
type pendingOp struct{ kind, channel string }

var errConnClosed = errors.New("subscription connection closed")

func newSubscriber(c *Cluster) *subscriber {
	s := &subscriber{c: c, log: c.o.Logger, m: newSubMetrics(c.o.Registerer),
		health: 2 * time.Second, retryMax: time.Second,
		kick: make(chan struct{}, 1), done: make(chan struct{}),
		want: map[string]*subChannel{}, conns: map[string]*subConn{}, clients: map[string]*goredis.Client{},
		pending: map[string]*subChannel{}, dirty: map[string]bool{},
		failed: map[string]time.Time{}}
	if c.cluster != nil {
		// A master's successor takes over within seconds: find it soon.
		s.health, s.retryMax, s.stale = time.Second, 150*time.Millisecond, true
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	go s.loop()
	return s
}

// add subscribes to channel; handler gets what arrives on it, from one
// goroutine per node, in order.
func (s *subscriber) add(channel string, handler func(channel string, payload []byte)) {
	s.mu.Lock()
	if _, ok := s.want[channel]; !ok {
		s.wantLocked(&subChannel{name: channel, handler: handler})
	}
	s.gauges()
	s.mu.Unlock()
	s.poke()
}

// addRoom subscribes to a hub room's channel (see add): until it is
// confirmed, within roomSubscribeGrace, it does not count as missing.
func (s *subscriber) addRoom(channel string, handler func(channel string, payload []byte)) {
	s.mu.Lock()
	if _, ok := s.want[channel]; !ok {
		s.wantLocked(&subChannel{name: channel, handler: handler, room: true, since: time.Now()})
	}
	s.gauges()
	s.mu.Unlock()
	s.poke()
}

// wantLocked adds ch to the wanted channels, for the next round.
func (s *subscriber) wantLocked(ch *subChannel) {
	s.want[ch.name] = ch
	s.pending[ch.name] = ch
	s.dirty[ch.name] = true
}

// roomSubscribeGrace is how long a new room channel may wait for its
// confirmation before /readyz counts it as missing: rooms get their first
// member all the time, and readiness must not flap with each.
const roomSubscribeGrace = 2 * time.Second

// remove unsubscribes from channel.
func (s *subscriber) remove(channel string) {
	s.mu.Lock()
	if ch := s.want[channel]; ch != nil && ch.ok {
		s.confirmedN--
	}
	delete(s.want, channel)
	delete(s.pending, channel)
	s.dirty[channel] = true
	s.gauges()
	s.mu.Unlock()
	s.poke()
}

func (s *subscriber) poke() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// close ends every subscription.
func (s *subscriber) close() {
	s.cancel()
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sc := range s.conns {
		sc.close()
	}
	for _, c := range s.clients {
		_ = c.Close()
	}
}

// loop reconciles what is subscribed with what is wanted: at once when
// something changed, again after a short wait while a channel is not
// confirmed, and at every health tick.
func (s *subscriber) loop() {
	defer close(s.done)
	health := time.NewTicker(s.health)
	defer health.Stop()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	backoff := 100 * time.Millisecond
	for {
		full := false
		select {
		case <-s.ctx.Done():
			return
		case <-s.kick:
		case <-retry.C:
		case <-health.C:
			s.checkHealth()
			full = true
		}
		if s.round(full) {
			retry.Reset(backoff)
			backoff = min(2*backoff, s.retryMax)
		} else {
			backoff = 100 * time.Millisecond
		}
	}
}

// round subscribes each wanted channel on the node that serves it, and
// leaves what is not wanted there; true while a channel is not confirmed.
// It looks at every channel when full, or when the cluster's slots were
// read again; else at those added, removed or not confirmed only.
func (s *subscriber) round(full bool) bool {
	if s.c.cluster != nil && s.refreshTopology() {
		full = true
	}
	type move struct {
		sc      *subConn
		channel string
	}
	var leave []move
	join := map[string][]string{}
	s.mu.Lock()
	wanted := s.want
	if full {
		for _, sc := range s.conns {
			for ch := range sc.holds {
				if w := s.want[ch]; w == nil || w.conn != sc {
					delete(sc.holds, ch)
					leave = append(leave, move{sc, ch})
				}
			}
		}
	} else {
		wanted = make(map[string]*subChannel, len(s.dirty)+len(s.pending))
		for name := range s.dirty {
			w := s.want[name]
			for _, sc := range s.conns {
				if sc.holds[name] && (w == nil || w.conn != sc) {
					delete(sc.holds, name)
					leave = append(leave, move{sc, name})
				}
			}
			if w != nil {
				wanted[name] = w
			}
		}
		for name, w := range s.pending {
			wanted[name] = w
		}
	}
	clear(s.dirty)
	for name, ch := range wanted {
		owner := s.ownerLocked(name)
		if ch.conn != nil && ch.conn.addr != owner && owner != "" {
			// The slot moved (a failover, a migration) without the old
			// node saying so yet.
			delete(ch.conn.holds, name)
			leave = append(leave, move{ch.conn, name})
			s.lostLocked(ch, "slot served by "+owner+" now")
			ch.conn = nil
		}
		if ch.conn == nil && owner != "" {
			join[owner] = append(join[owner], name)
		}
	}
	s.mu.Unlock()

	for _, l := range leave {
		if err := l.sc.send(s.ctx, "sunsubscribe", l.channel); err != nil && !errors.Is(err, errConnClosed) {
			s.lose(l.sc, err)
		}
	}
	for addr, channels := range join {
		slices.Sort(channels)
		sc := s.conn(addr)
		for _, name := range channels {
			s.mu.Lock()
			ch := s.want[name]
			if ch == nil || ch.conn != nil || s.conns[addr] != sc {
				s.mu.Unlock()
				continue
			}
			ch.conn = sc
			sc.holds[name] = true
			s.mu.Unlock()
			if err := sc.send(s.ctx, "ssubscribe", name); err != nil {
				s.lose(sc, err)
				break
			}
			sc.startReading(s)
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	for addr, sc := range s.conns {
		if len(sc.holds) == 0 && !sc.hasPending() {
			sc.close()
			delete(s.conns, addr)
		}
	}
	s.gauges()
	return len(s.pending) > 0
}

// ownerLocked is the address of the node serving channel ("" when
// unknown).
func (s *subscriber) ownerLocked(channel string) string {
	if s.c.cluster == nil {
		return s.c.node.Addr
	}
	if s.topo == nil {
		return ""
	}
	return s.topo.owner(Slot(channel))
}

// refreshTopology reads the cluster's slots when they may have changed or
// are a health interval old, and counts the wanted channels whose master
// changed; true when it read them first, or they changed.
func (s *subscriber) refreshTopology() bool {
	s.mu.Lock()
	known, due := s.topo, s.stale || s.topo == nil || time.Since(s.topo.at) >= s.health
	s.mu.Unlock()
	if !due {
		return false
	}
	t, err := s.loadTopology(s.ctx, known)
	if err != nil {
		if s.ctx.Err() == nil {
			s.c.reportError(err)
		}
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.topo, s.stale = t, false
	s.m.masters.Set(float64(len(t.masters())))
	if known == nil {
		return true
	}
	changed := false
	for name := range s.want {
		was, now := known.owner(Slot(name)), t.owner(Slot(name))
		if was != now {
			changed = true
			s.moves++
			s.lastMove = time.Now()
			s.m.moves.Inc()
			s.log.Info("redis cluster: a channel's slot is served by another master now",
				"channel", name, "slot", Slot(name), "from", was, "to", now)
		}
	}
	if changed || !slices.Equal(known.masters(), t.masters()) {
		// The cluster client routes the publications: let it follow.
		s.c.cluster.ReloadState(s.ctx)
		return true
	}
	return false
}

// conn is the connection to addr, made when missing.
func (s *subscriber) conn(addr string) *subConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sc := s.conns[addr]; sc != nil {
		return sc
	}
	o := *s.c.node
	o.Addr, o.Dialer, o.DialerRetries = addr, dialOnce(s.c.node.Dialer), 1
	client := goredis.NewClient(&o)
	sc := &subConn{addr: addr, client: client, ps: client.SSubscribe(s.ctx), holds: map[string]bool{}}
	sc.seen.Store(time.Now().UnixNano())
	s.conns[addr] = sc
	return sc
}

// errRedial refuses go-redis's own reconnection of a subscription.
var errRedial = errors.New("a subscription connection is not dialled again (the subscriber makes a new one)")

// dialOnce lets dial make one connection, then refuses.
func dialOnce(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	var used atomic.Bool
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if used.Swap(true) {
			return nil, errRedial
		}
		return dial(ctx, network, addr)
	}
}

// client is the client of the node at addr (for CLUSTER SHARDS), made
// with the connection's options.
func (s *subscriber) client(addr string) *goredis.Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.clientLocked(addr)
}

func (s *subscriber) clientLocked(addr string) *goredis.Client {
	if c := s.clients[addr]; c != nil {
		return c
	}
	o := *s.c.node
	o.Addr = addr
	c := goredis.NewClient(&o)
	s.clients[addr] = c
	return c
}

// checkHealth pings every connection; one that answered nothing for three
// health intervals is dropped (a node that vanished without closing it).
func (s *subscriber) checkHealth() {
	s.mu.Lock()
	conns := make([]*subConn, 0, len(s.conns))
	for _, sc := range s.conns {
		conns = append(conns, sc)
	}
	s.stale = s.stale || s.c.cluster != nil
	s.mu.Unlock()
	for _, sc := range conns {
		if time.Since(time.Unix(0, sc.seen.Load())) > 3*s.health {
			s.lose(sc, fmt.Errorf("no answer to pings for %v", 3*s.health))
			continue
		}
		if err := sc.send(s.ctx, "ping", ""); err != nil && !errors.Is(err, errConnClosed) {
			s.lose(sc, err)
		}
	}
}

// startReading starts sc's reader once (after its first command, which
// made the connection).
func (sc *subConn) startReading(s *subscriber) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.reading || sc.dead {
		return
	}
	sc.reading = true
	go s.read(sc)
}

// send writes one command, noting it as waiting for its reply.
func (sc *subConn) send(ctx context.Context, kind, channel string) error {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.dead {
		return errConnClosed
	}
	sc.pending = append(sc.pending, pendingOp{kind, channel})
	var err error
	switch kind {
	case "ssubscribe":
		err = sc.ps.SSubscribe(ctx, channel)
	case "sunsubscribe":
		err = sc.ps.SUnsubscribe(ctx, channel)
	default:
		err = sc.ps.Ping(ctx)
	}
	if err != nil {
		sc.pending = sc.pending[:len(sc.pending)-1]
	}
	return err
}

// reply takes the oldest command waiting, when it is of kind (and of
// channel, unless channel is "").
func (sc *subConn) reply(kind, channel string) (pendingOp, bool) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if len(sc.pending) == 0 || sc.pending[0].kind != kind && kind != "" ||
		channel != "" && sc.pending[0].channel != channel {
		return pendingOp{}, false
	}
	op := sc.pending[0]
	sc.pending = sc.pending[1:]
	return op, true
}

func (sc *subConn) hasPending() bool {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return len(sc.pending) > 0
}

// close closes the connection; its reader ends.
func (sc *subConn) close() {
	sc.mu.Lock()
	if sc.dead {
		sc.mu.Unlock()
		return
	}
	sc.dead = true
	sc.mu.Unlock()
	_ = sc.ps.Close()
	_ = sc.client.Close()
}

func (sc *subConn) isDead() bool {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return sc.dead
}

// read hands what arrives on sc to the channels' handlers, and the
// replies to the commands sent.
func (s *subscriber) read(sc *subConn) {
	for {
		msg, err := sc.ps.Receive(s.ctx)
		if sc.isDead() {
			return
		}
		if err != nil {
			var rerr goredis.Error
			if errors.As(err, &rerr) {
				sc.seen.Store(time.Now().UnixNano())
				s.onErrorReply(sc, err)
				continue
			}
			s.lose(sc, err)
			return
		}
		sc.seen.Store(time.Now().UnixNano())
		switch m := msg.(type) {
		case *goredis.Message:
			s.deliver(sc, m.Channel, m.Payload)
		case *goredis.Subscription:
			s.onSubscription(sc, m)
		case *goredis.Pong:
			sc.reply("ping", "")
		}
	}
}

func (s *subscriber) deliver(sc *subConn, channel, payload string) {
	s.mu.Lock()
	ch := s.want[channel]
	var h func(string, []byte)
	if ch != nil && ch.conn == sc {
		h = ch.handler
	}
	s.mu.Unlock()
	if h != nil {
		h(channel, []byte(payload))
	}
}

// onSubscription handles a confirmation, or a node's own sunsubscribe.
func (s *subscriber) onSubscription(sc *subConn, m *goredis.Subscription) {
	switch m.Kind {
	case "ssubscribe":
		sc.reply("ssubscribe", m.Channel)
		s.mu.Lock()
		defer s.mu.Unlock()
		if ch := s.want[m.Channel]; ch != nil && ch.conn == sc && !ch.ok {
			ch.ok = true
			if ch.confirmed != nil {
				close(ch.confirmed)
				ch.confirmed = nil
			}
			s.confirmedN++
			delete(s.pending, m.Channel)
			if !ch.lostAt.IsZero() {
				gap := time.Since(ch.lostAt)
				s.m.restored.Inc()
				s.m.gap.Observe(gap.Seconds())
				s.log.Info("sharded subscription restored", "channel", m.Channel, "node", sc.addr,
					"missing_for", gap.Round(time.Millisecond), "lost_because", ch.lostWhy)
				ch.lostAt, ch.lostWhy = time.Time{}, ""
			}
			s.gauges()
		}
	case "sunsubscribe":
		if _, ours := sc.reply("sunsubscribe", m.Channel); ours {
			return
		}
		// The node dropped the subscription itself: its slot moved away
		// (Redis 7 does so on a migration and on a failover).
		s.mu.Lock()
		if ch := s.want[m.Channel]; ch != nil && ch.conn == sc {
			delete(sc.holds, m.Channel)
			ch.conn = nil
			s.lostLocked(ch, "the node unsubscribed it (slot moved)")
			s.stale = true
		}
		s.mu.Unlock()
		s.poke()
	}
}

// onErrorReply handles an error the node answered to the oldest command
// waiting on sc: a subscription refused (MOVED, CLUSTERDOWN, ...) is
// retried after the slots are read again.
func (s *subscriber) onErrorReply(sc *subConn, err error) {
	op, ok := sc.reply("", "")
	if !ok || op.kind == "ping" {
		s.lose(sc, fmt.Errorf("unexpected answer: %w", err))
		return
	}
	if op.kind != "ssubscribe" {
		return // leaving a channel the node no longer serves
	}
	s.mu.Lock()
	if ch := s.want[op.channel]; ch != nil && ch.conn == sc {
		delete(sc.holds, op.channel)
		ch.conn = nil
		s.lostLocked(ch, "refused: "+err.Error())
	}
	s.stale = true
	s.mu.Unlock()
	s.m.refused.Inc()
	if strings.HasPrefix(err.Error(), "MOVED ") {
		if f := strings.Fields(err.Error()); len(f) == 3 {
			if slot, e := strconv.Atoi(f[1]); e == nil {
				s.log.Debug("sharded subscription moved", "channel", op.channel, "slot", slot, "to", f[2])
			}
		}
	}
	s.poke()
}

// noteFailure remembers that the node at addr failed just now: the slots
// are asked of the others first for a while.
func (s *subscriber) noteFailure(addr string) {
	s.mu.Lock()
	s.failed[addr] = time.Now()
	s.mu.Unlock()
}

// lose drops sc and every subscription on it, after an error.
func (s *subscriber) lose(sc *subConn, err error) {
	if sc.isDead() {
		return
	}
	sc.close()
	s.noteFailure(sc.addr)
	if s.ctx.Err() != nil {
		return
	}
	s.mu.Lock()
	if s.conns[sc.addr] == sc {
		delete(s.conns, sc.addr)
	}
	n := 0
	for name := range sc.holds {
		if ch := s.want[name]; ch != nil && ch.conn == sc {
			ch.conn = nil
			if ch.ok {
				n++
			}
			s.lostLocked(ch, "connection to "+sc.addr+": "+err.Error())
		}
	}
	sc.holds = map[string]bool{}
	s.stale = true
	s.gauges()
	s.mu.Unlock()
	if n > 0 {
		s.log.Warn("sharded subscriptions lost: their connection failed", "node", sc.addr, "channels", n, "err", err)
	}
	s.c.reportError(err)
	s.poke()
}

// lostLocked marks ch as not subscribed (s.mu held); a confirmed one is
// counted as lost.
func (s *subscriber) lostLocked(ch *subChannel, why string) {
	if ch.ok {
		ch.ok = false
		s.confirmedN--
		s.pending[ch.name] = ch
		ch.lostAt, ch.lostWhy = time.Now(), why
		s.m.lost.Inc()
		s.log.Warn("sharded subscription lost: what other nodes publish on it does not reach this node until it is back",
			"channel", ch.name, "why", why)
	}
	s.gauges()
}

func (s *subscriber) gauges() {
	s.m.subscribed.Set(float64(s.confirmedN))
	s.m.missing.Set(float64(len(s.want) - s.confirmedN))
}

// wants tells whether this node subscribes to channel (confirmed or not).
func (s *subscriber) wants(channel string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.want[channel] != nil
}

// whenConfirmed returns a channel closed once this node is subscribed
// to channel: closed already when it is; nil when channel is not wanted.
func (s *subscriber) whenConfirmed(channel string) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := s.want[channel]
	switch {
	case ch == nil:
		return nil
	case ch.ok:
		return closedChan
	case ch.confirmed == nil:
		ch.confirmed = make(chan struct{})
	}
	return ch.confirmed
}

// closedChan is a closed channel.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// confirmed tells whether this node is subscribed to channel now.
func (s *subscriber) confirmed(channel string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := s.want[channel]
	return ch != nil && ch.ok
}

// SubscriptionState is what /readyz tells of the sharded subscriptions.
type SubscriptionState struct {
	// Wanted and Subscribed count this node's channels, and those a node
	// confirmed; Pending, the new room channels waiting for their
	// confirmation within roomSubscribeGrace.
	Wanted, Subscribed, Pending int
	// MissingSince is when the oldest missing one was lost (zero: none
	// missing, or never subscribed yet).
	MissingSince time.Time
	// Masters are the cluster's masters as last read (nil with one
	// server).
	Masters []string
	// Moves counts the channels found served by another master; LastMove
	// is when the last was.
	Moves    int64
	LastMove time.Time
}

func (s *subscriber) state() SubscriptionState {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := SubscriptionState{Wanted: len(s.want), Moves: s.moves, LastMove: s.lastMove}
	for _, ch := range s.want {
		switch {
		case ch.ok:
			st.Subscribed++
		case ch.room && ch.lostAt.IsZero() && time.Since(ch.since) < roomSubscribeGrace:
			st.Pending++
		case !ch.lostAt.IsZero() && (st.MissingSince.IsZero() || ch.lostAt.Before(st.MissingSince)):
			st.MissingSince = ch.lostAt
		}
	}
	if s.topo != nil {
		st.Masters = s.topo.masters()
	}
	return st
}
