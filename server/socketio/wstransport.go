package socketio

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	ws "github.com/gorilla/websocket"
	"github.com/zishang520/socket.io/parsers/engine/v3/packet"
	"github.com/zishang520/socket.io/servers/engine/v3/transports"
	"github.com/zishang520/socket.io/v3/pkg/types"
	"golang.org/x/sys/unix"
)

// wsTransport is the edge's own Engine.IO "websocket" transport, registered
// through the library's public transport option in place of its own.
//
// It embeds the library's base transport (events, parser, state) and
// replaces the write path: frames are built once per broadcast and shared,
// each connection keeps a bounded queue of them, and a few flusher
// goroutines (one per core) write everything queued for a connection with
// one non-blocking writev. The library's transport instead turns the frame
// into a gorilla PreparedMessage per recipient, starts a goroutine per
// write, and makes one system call per message. Reading still goes through
// gorilla. Measured before and after: the README's Performance section.
//
// The queue is the slow-client guard: above SendQueueLimit frames for
// slowGrace, or ten times it at once, the connection is closed.
type wsTransport struct {
	transports.Transport

	edge        *Server
	shard       *flushShard
	idleTimeout time.Duration
	wsc         *types.WebSocketConn
	rc          syscall.RawConn

	// direct turns true with the first Send made while this transport is
	// its engine socket's (the flush after an upgrade, or any later write):
	// from then on the engine socket's own buffer is empty, so the adapter
	// may enqueue broadcast frames here directly without overtaking packets
	// written before. A Send during the upgrade probe does not count.
	direct atomic.Bool
	// sid is the Engine.IO session this transport upgrades ("" for a
	// connection that starts on WebSocket).
	sid string

	mu       sync.Mutex
	q        [][]byte // queued frames, shared and read-only
	off      int      // bytes of q[0] already written
	dirty    bool     // registered with the shard
	closed   bool
	overAt   time.Time // when the queue went above the limit
	overTick bool      // a grace timer is pending
}

// wsBuilder makes wsTransports (transports.TransportCtor).
type wsBuilder struct {
	edge *Server
	hub  *flushHub
}

func (b *wsBuilder) New(ctx *types.HttpContext) transports.Transport {
	t := &wsTransport{Transport: transports.MakeTransport(), edge: b.edge, shard: b.hub.pick()}
	t.Prototype(t)
	t.Construct(ctx)
	return t
}
func (*wsBuilder) Name() string          { return transports.WEBSOCKET }
func (*wsBuilder) HandlesUpgrades() bool { return true }
func (*wsBuilder) UpgradesTo() []string  { return nil }

func (t *wsTransport) Name() string          { return transports.WEBSOCKET }
func (t *wsTransport) HandlesUpgrades() bool { return true }

func (t *wsTransport) Construct(ctx *types.HttpContext) {
	t.Transport.Construct(ctx)
	t.idleTimeout = ctx.IdleTimeout
	t.wsc = ctx.Websocket
	t.sid = ctx.Query().Peek("sid")
	if sc, ok := t.wsc.NetConn().(syscall.Conn); ok {
		t.rc, _ = sc.SyscallConn()
	}
	_ = t.wsc.On("error", func(errs ...any) {
		var err error
		if len(errs) > 0 {
			err, _ = errs[0].(error)
		}
		t.OnError("websocket error", err)
	})
	_ = t.wsc.Once("close", func(...any) { t.OnClose() })
	// gorilla answers pings and closes with its own writer; route them
	// through the queue so that only the flusher writes to the socket.
	t.wsc.SetPingHandler(func(data string) error {
		t.enqueue(buildFrame(opPong, 0, []byte(data)))
		return nil
	})
	t.wsc.SetCloseHandler(func(code int, _ string) error {
		t.enqueue(buildFrame(opClose, 0, ws.FormatCloseMessage(code, "")))
		return nil
	})
	t.SetWritable(true)
	t.SetPerMessageDeflate(nil)
	transports.StartReader(t, ctx.TransportReadPermission(), t.readLoop)
}

func (t *wsTransport) readLoop() {
	defer func() { _ = t.wsc.Close() }() // emits "close" on wsc, then OnClose
	for {
		if t.idleTimeout > 0 {
			_ = t.wsc.SetReadDeadline(time.Now().Add(t.idleTimeout))
		}
		mt, r, err := t.wsc.NextReader()
		if err != nil {
			if errors.Is(err, ws.ErrReadLimit) {
				t.edge.frameTooLarge("websocket")
			}
			return
		}
		var buf types.BufferInterface
		switch mt {
		case ws.TextMessage:
			buf = types.NewStringBuffer(nil)
		case ws.BinaryMessage:
			buf = types.NewBytesBuffer(nil)
		default:
			continue
		}
		if _, err := buf.ReadFrom(r); err != nil {
			if errors.Is(err, ws.ErrReadLimit) {
				t.edge.frameTooLarge("websocket")
			}
			return
		}
		t.OnData(buf)
	}
}

// Send takes the packets the engine socket flushes (pings, per-socket
// emits, acknowledgements). The transport stays writable, so they reach it
// at once and keep their order with the adapter's direct frames.
func (t *wsTransport) Send(packets []*packet.Packet) {
	for _, p := range packets {
		var frame []byte
		if p.Options != nil && p.Options.WsPreEncodedFrame != nil {
			frame = t.edge.frames.get(p.Options.WsPreEncodedFrame)
		} else {
			data, err := t.Parser().EncodePacket(p, t.SupportsBinary())
			if err != nil {
				t.OnError("encode error", err)
				continue
			}
			op := opBinary
			if _, ok := data.(*types.StringBuffer); ok {
				op = opText
			}
			frame = buildFrame(op, 0, data.Bytes())
		}
		t.enqueue(frame)
	}
	if !t.direct.Load() && t.current() {
		t.direct.Store(true)
	}
	// One "drain" per Send keeps the engine socket's send callbacks in step.
	t.Emit("drain")
}

// current reports whether this transport is its engine socket's.
func (t *wsTransport) current() bool {
	if t.sid == "" {
		return true // never anything but WebSocket
	}
	es, ok := t.edge.io.Engine().Clients().Load(t.sid)
	if !ok {
		return false
	}
	cur, ok := es.Transport().(*wsTransport)
	return ok && cur == t
}

// enqueue adds a shared frame for this connection. It returns false when
// the connection is closed.
func (t *wsTransport) enqueue(frame []byte) bool {
	limit := t.edge.o.SendQueueLimit
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return false
	}
	n := len(t.q)
	switch {
	case n >= 10*limit:
		t.mu.Unlock()
		t.slow("ten times the limit", n)
		return false
	case n >= limit && !t.overTick:
		t.overTick = true
		t.overAt = time.Now()
		time.AfterFunc(slowGrace, t.checkSlow)
	}
	t.q = append(t.q, frame)
	wasDirty := t.dirty
	t.dirty = true
	t.mu.Unlock()
	if !wasDirty {
		t.shard.mark(t)
	}
	return true
}

// checkSlow closes the connection if its queue stayed above the limit.
func (t *wsTransport) checkSlow() {
	t.mu.Lock()
	n := len(t.q)
	over := !t.closed && n > t.edge.o.SendQueueLimit
	t.overTick = false
	t.mu.Unlock()
	if over {
		t.slow("above the limit for "+slowGrace.String(), n)
	}
}

func (t *wsTransport) slow(why string, queued int) {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return
	}
	t.closed = true
	t.q = nil
	t.mu.Unlock()
	t.edge.m.slowClients.Inc()
	t.edge.log.Info("disconnecting a slow client: its send queue passed SEND_QUEUE_LIMIT",
		"transport", "websocket", "limit", t.edge.o.SendQueueLimit, "queued", queued, "why", why)
	// Not re-entrant: we may be inside the engine's flush.
	go t.Close()
}

// queueLen is how many frames wait for the socket.
func (t *wsTransport) queueLen() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.q)
}

// flush writes as much as the socket takes without blocking. It returns
// true when frames are left because the socket buffer is full.
func (t *wsTransport) flush(iov *[][]byte) (blocked bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for {
		if t.closed || len(t.q) == 0 {
			t.q = t.q[:0]
			t.off = 0
			t.dirty = false
			return false
		}
		v := append((*iov)[:0], t.q[0][t.off:])
		for i := 1; i < len(t.q) && len(v) < 1024; i++ {
			v = append(v, t.q[i])
		}
		*iov = v
		var n int
		var werr error
		err := t.rc.Write(func(fd uintptr) bool {
			n, werr = unix.Writev(int(fd), v)
			return true // never park: a flusher serves many connections
		})
		clear(v)
		t.edge.m.wsWrites.Inc()
		if err == nil {
			err = werr
		}
		if errors.Is(err, unix.EAGAIN) {
			n, err, blocked = 0, nil, true
		}
		if err != nil {
			t.closed = true
			t.q = nil
			t.dirty = false
			go func() { _ = t.wsc.Close() }()
			return false
		}
		i := 0
		for i < len(t.q) && n > 0 {
			if l := len(t.q[i]) - t.off; n >= l {
				n -= l
				t.off = 0
				i++
			} else {
				t.off += n
				n = 0
			}
		}
		if i > 0 {
			k := copy(t.q, t.q[i:])
			clear(t.q[k:])
			t.q = t.q[:k]
		}
		if blocked || (len(t.q) > 0 && t.off > 0) {
			t.shard.requeue(t)
			return true
		}
	}
}

func (t *wsTransport) OnClose() {
	t.mu.Lock()
	t.closed = true
	t.q = nil
	t.mu.Unlock()
	t.Transport.OnClose()
}

func (t *wsTransport) DoClose(fn types.Callable) {
	t.mu.Lock()
	t.closed = true
	t.q = nil
	t.mu.Unlock()
	defer func() { _ = t.wsc.Close() }()
	if fn != nil {
		fn()
	}
}

// flushHub is the set of flusher goroutines, one per core.
type flushHub struct {
	shards []*flushShard
	next   atomic.Uint32
	stop   chan struct{}
	wg     sync.WaitGroup
}

// flushShard writes the connections marked dirty, at most once a window:
// a frame after a quiet period goes out at once; under load, frames for the
// same connection wait up to the window and go out in one write.
type flushShard struct {
	mu     sync.Mutex
	dirty  []*wsTransport
	sig    chan struct{}
	window time.Duration
}

func newFlushHub(n int, window time.Duration) *flushHub {
	h := &flushHub{stop: make(chan struct{})}
	for range max(n, 1) {
		s := &flushShard{sig: make(chan struct{}, 1), window: window}
		h.shards = append(h.shards, s)
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			s.run(h.stop)
		}()
	}
	return h
}

func (h *flushHub) pick() *flushShard {
	return h.shards[h.next.Add(1)%uint32(len(h.shards))]
}

func (h *flushHub) close() {
	close(h.stop)
	h.wg.Wait()
}

func (s *flushShard) mark(t *wsTransport) {
	s.mu.Lock()
	s.dirty = append(s.dirty, t)
	s.mu.Unlock()
	s.signal()
}

func (s *flushShard) requeue(t *wsTransport) {
	s.mu.Lock()
	s.dirty = append(s.dirty, t)
	s.mu.Unlock()
}

func (s *flushShard) signal() {
	select {
	case s.sig <- struct{}{}:
	default:
	}
}

func (s *flushShard) run(stop <-chan struct{}) {
	var batch []*wsTransport
	var iov [][]byte
	var last time.Time
	for {
		select {
		case <-stop:
			return
		case <-s.sig:
		}
		if s.window > 0 {
			if d := time.Until(last.Add(s.window)); d > 0 {
				select {
				case <-stop:
					return
				case <-time.After(d):
				}
			}
		}
		last = time.Now()
		s.mu.Lock()
		batch, s.dirty = s.dirty, batch[:0]
		s.mu.Unlock()
		blocked := false
		for i, t := range batch {
			if t.flush(&iov) {
				blocked = true
			}
			batch[i] = nil
		}
		if blocked {
			// Retry the connections whose socket buffer was full.
			time.AfterFunc(5*time.Millisecond, s.signal)
		}
	}
}

// dropAfterHijack wraps the ResponseWriter of a WebSocket upgrade and
// forgets it once the connection is hijacked: the engine socket keeps the
// upgrade request's context for its whole life, and through the writer it
// would pin net/http's per-connection buffers (about 8 KB a connection).
type dropAfterHijack struct {
	w http.ResponseWriter
	h http.Header
}

func (d *dropAfterHijack) Header() http.Header {
	if d.w == nil {
		if d.h == nil {
			d.h = http.Header{}
		}
		return d.h
	}
	return d.w.Header()
}

func (d *dropAfterHijack) Write(b []byte) (int, error) {
	if d.w == nil {
		return 0, http.ErrHijacked
	}
	return d.w.Write(b)
}

func (d *dropAfterHijack) WriteHeader(code int) {
	if d.w != nil {
		d.w.WriteHeader(code)
	}
}

func (d *dropAfterHijack) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := d.w.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("the connection cannot be hijacked")
	}
	c, rw, err := h.Hijack()
	if err == nil {
		d.w = nil
	}
	return c, rw, err
}
