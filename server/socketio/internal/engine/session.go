package engine

import (
	"net/http"
	"sync"
	"time"
)

type transportKind uint8

const (
	transportPolling transportKind = iota
	transportWebSocket
)

func (t transportKind) String() string {
	if t == transportWebSocket {
		return "websocket"
	}
	return "polling"
}

// slowGrace is how long a client's send queue may stay above
// SendQueueLimit (a burst it is draining) before it counts as slow.
const slowGrace = time.Second

// maxAuthorization bounds the Authorization header a session keeps.
const maxAuthorization = 8 << 10

// Session is one Engine.IO session: a client connection over long-polling,
// WebSocket, or the first upgraded to the second. It is one flat struct:
// its transport state, heartbeat, the messages waiting for a worker and
// its main Socket.IO socket; no goroutine and no buffer is its own while
// it is idle. Its methods are safe for concurrent use.
type Session struct {
	e     *Engine
	id    string
	addr  string
	authz string

	mu        sync.Mutex
	closed    bool
	transport transportKind
	ws        *wsConn // the WebSocket transport, when it is the session's
	probe     *wsConn // an upgrade's WebSocket, until it completes
	upgrading bool    // the probe was answered: polling requests return at once

	// Long-polling: packets waiting for a GET, and the GET waiting for them.
	pollQ      []*Frame
	pollWake   chan struct{}
	pollActive bool
	pollOver   bool // a slow-client check is pending
	cut        bool // disconnected as a slow client
	closeReply *Frame

	// Heartbeat: the wheel entry of generation hbGen is the live one.
	hbGen     uint32
	awaitPong bool
	connected bool // a namespace was connected at least once

	// The messages received and not yet handled, and who handles them.
	inbox     []inbound
	scheduled bool
	paused    *wsConn // a WebSocket whose reading waits for the inbox
	// hold is where a CONNECT decided off the workers (Hello.Async) is:
	// while it is decided the inbox waits and the session stays marked
	// scheduled (so no packet schedules it), and once the worker has left
	// it (holdParked) release puts it back in the run queue; a decision
	// that ends before the worker left waits in decided for it.
	hold    uint8
	decided func()
	// toPark: the worker running the session started a decision (read and
	// written by that worker only: park's test without the lock).
	toPark bool
	// onLoop: a read loop runs the session (Options.Inline); toWorker is
	// what it leaves to a worker, with everything after it. Both belong
	// to whoever runs the session, and are clear whenever it hands over.
	onLoop   bool
	toWorker func()

	main    Socket
	extra   []*Socket
	binPend *binaryPending
}

// inbound is one item of a session's inbox.
type inbound struct {
	data   []byte
	binary bool
	// kind is an Engine.IO message (0), or a control item.
	kind   uint8
	nsp    string
	reason string
	call   func()
}

// The states of Session.hold.
const (
	holdNone     uint8 = iota
	holdDeciding       // the worker that started the decision still runs the session
	holdParked         // the worker left the session to the decision
)

const (
	itemMessage uint8 = iota
	itemClosed        // the session closed: every socket's Disconnect
	itemNamespaceDisconnect
	itemCall // the completion of an asynchronous CONNECT
)

func (e *Engine) newSession(addr string, r *http.Request, t transportKind) *Session {
	s := &Session{e: e, id: newID(), addr: addr, transport: t, closeReply: frameClose}
	if a := r.Header.Get("Authorization"); len(a) <= maxAuthorization {
		s.authz = a
	}
	s.main.sess = s
	s.main.nsp = "/"
	return s
}

// start arms the session's timers; it is registered.
func (s *Session) start() {
	s.mu.Lock()
	gen := s.hbGen
	s.mu.Unlock()
	s.e.wheel.add(s, gen, timerHeartbeat, s.e.o.PingInterval)
	if s.e.o.Messages == nil {
		s.e.wheel.add(s, 0, timerConnect, s.e.o.ConnectTimeout)
	}
}

// ID is the Engine.IO session id.
func (s *Session) ID() string { return s.id }

// Addr is the client address the session was admitted for.
func (s *Session) Addr() string { return s.addr }

// Transport names the session's transport: "polling" or "websocket".
func (s *Session) Transport() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.transport.String()
}

// Send queues f for the client (an Engine.IO message in the bare engine).
func (s *Session) Send(f *Frame) {
	s.mu.Lock()
	s.sendLocked(f)
	s.mu.Unlock()
}

// SendMessage queues an Engine.IO message (bare engine).
func (s *Session) SendMessage(data []byte, binary bool) {
	if binary {
		s.Send(newBinaryFrame(data))
		return
	}
	s.Send(newTextFrame(eioMessage, data))
}

// Close closes the session ("forced close").
func (s *Session) Close() { s.close("forced close", closeNormal) }

// sendLocked queues f on the current transport. s.mu is held.
func (s *Session) sendLocked(f *Frame) {
	if s.closed {
		return
	}
	if s.transport == transportWebSocket {
		s.ws.enqueue(f)
		return
	}
	s.pollQ = append(s.pollQ, f)
	s.wakePoll()
	limit := s.e.o.SendQueueLimit
	switch n := len(s.pollQ); {
	case n > 10*limit:
		s.pollQ = nil
		go s.slow("ten times the limit", n)
	case n > limit && !s.pollOver:
		s.pollOver = true
		time.AfterFunc(slowGrace, s.checkSlowPoll)
	}
}

// wakePoll lets a waiting GET return. s.mu is held.
func (s *Session) wakePoll() {
	if s.pollWake != nil {
		close(s.pollWake)
		s.pollWake = nil
	}
}

func (s *Session) checkSlowPoll() {
	s.mu.Lock()
	n := len(s.pollQ)
	slow := s.pollOver && !s.closed && s.transport == transportPolling && n > s.e.o.SendQueueLimit
	s.pollOver = false
	s.mu.Unlock()
	if slow {
		s.slow("above the limit for "+slowGrace.String(), n)
	}
}

// slow closes a session whose client does not keep up.
func (s *Session) slow(why string, queued int) {
	s.mu.Lock()
	done, t := s.closed || s.cut, s.transport
	s.cut = true
	s.mu.Unlock()
	if done {
		return
	}
	s.e.m.slowClients.Inc()
	s.e.log.Info("disconnecting a slow client: its send queue passed SEND_QUEUE_LIMIT",
		"sid", s.id, "transport", t.String(), "limit", s.e.o.SendQueueLimit, "queued", queued, "why", why)
	s.close("transport error", 0)
}

// close ends the session for reason. A WebSocket gets wsCode (0: none)
// after what is queued; a waiting poll gets the close packet ("1"), or a
// noop when the client asked to close. Every socket's Disconnect follows
// the messages received before.
func (s *Session) close(reason string, wsCode int) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	if reason == "transport close" {
		s.closeReply = frameNoop
	}
	ws, probe := s.ws, s.probe
	if s.upgrading {
		// The client paused polling for the probe and waits to send its
		// "5" there: it can hear of the close only on the WebSocket (see
		// upgrade). The upgrade timeout bounds the wait.
		probe = nil
	} else {
		s.probe = nil
	}
	s.pollQ = nil
	s.wakePoll()
	s.mu.Unlock()

	s.e.unregister(s)
	s.e.release(s.addr)
	if ws != nil {
		ws.requestClose(wsCode)
	}
	if probe != nil && probe != probeReserved {
		probe.requestClose(0)
	}
	s.deliver(inbound{kind: itemClosed, reason: reason})
}

// onPong takes the client's heartbeat answer.
func (s *Session) onPong() {
	s.mu.Lock()
	if !s.awaitPong || s.closed {
		s.mu.Unlock()
		return
	}
	s.awaitPong = false
	s.hbGen++
	gen := s.hbGen
	s.mu.Unlock()
	s.e.wheel.add(s, gen, timerHeartbeat, s.e.o.PingInterval)
}

// heartbeat is the heartbeat timer of generation gen: it pings, or, when
// the last ping was not answered, closes the session.
func (s *Session) heartbeat(gen uint32) {
	s.mu.Lock()
	if s.closed || gen != s.hbGen {
		s.mu.Unlock()
		return
	}
	if s.awaitPong {
		s.mu.Unlock()
		s.close("ping timeout", 0)
		return
	}
	s.awaitPong = true
	s.hbGen++
	gen = s.hbGen
	s.sendLocked(framePing)
	s.mu.Unlock()
	s.e.wheel.add(s, gen, timerHeartbeat, s.e.o.PingTimeout)
}

// connectTimeout closes a session that connected no namespace in time.
func (s *Session) connectTimeout() {
	s.mu.Lock()
	idle := !s.connected && !s.closed
	s.mu.Unlock()
	if idle {
		s.close("transport close", closeNormal)
	}
}

// deliver puts an item in the inbox and schedules a worker; false when the
// inbox is over InboxLimit (the caller stops reading).
func (s *Session) deliver(it inbound) bool { return s.deliverFrom(it, false) }

// deliverFrom queues it; from a read loop (loop), a message of a session
// with nothing else to do is handled there and then (Options.Inline).
func (s *Session) deliverFrom(it inbound, loop bool) bool {
	s.mu.Lock()
	if s.closed && it.kind != itemClosed {
		s.mu.Unlock()
		return true
	}
	s.inbox = append(s.inbox, it)
	over := len(s.inbox) > s.e.o.InboxLimit
	sched := !s.scheduled
	s.scheduled = true
	s.mu.Unlock()
	if sched {
		if loop && it.kind == itemMessage && s.e.o.Inline != nil && s.e.o.Messages == nil {
			s.onLoop = true
			s.run()
			return !over
		}
		s.e.workers.schedule(s)
	}
	return !over
}

// pauseReading records that c stopped reading for the inbox; the worker
// resumes it once the inbox is drained. false when it is drained already.
func (s *Session) pauseReading(c *wsConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.inbox) == 0 {
		return false
	}
	s.paused = c
	return true
}

// maxBatch is the most inbox items a worker handles before it lets other
// sessions run.
const maxBatch = 64

// run handles the inbox, in order; workers call it.
func (s *Session) run() {
	s.mu.Lock()
	var batch []inbound
	if len(s.inbox) <= maxBatch {
		// The whole inbox is the batch: an idle session keeps no array,
		// however many items a burst (ten room:join at once) queued.
		batch, s.inbox = s.inbox, nil
	} else {
		batch = make([]inbound, maxBatch)
		copy(batch, s.inbox)
		k := copy(s.inbox, s.inbox[maxBatch:])
		clear(s.inbox[k:])
		s.inbox = s.inbox[:k]
	}
	s.mu.Unlock()

	last := false
	for i, it := range batch {
		switch it.kind {
		case itemMessage:
			s.onMessage(it.data, it.binary)
		case itemNamespaceDisconnect:
			s.disconnectNamespace(it.nsp, it.reason)
		case itemClosed:
			s.closeSockets(it.reason)
			last = true
		case itemCall:
			it.call()
		}
		if (it.kind == itemMessage || it.kind == itemCall) && s.park(batch[i+1:]) {
			return
		}
		if s.toWorker != nil {
			s.handOver(batch[i+1:])
			return
		}
	}
	s.onLoop = false

	s.mu.Lock()
	more := len(s.inbox) > 0
	s.scheduled = more
	var resume *wsConn
	if !more && s.paused != nil {
		resume, s.paused = s.paused, nil
	}
	s.mu.Unlock()
	if resume != nil {
		resume.resume()
	}
	if more {
		s.e.workers.schedule(s)
	}
	if last {
		s.e.live.Done()
	}
}

// handOver leaves the session to a worker, from a read loop that met
// what it may not handle (toWorker): that, then rest, the batch's items
// after it, go to the head of the inbox, and the session to the run queue
// (it stays scheduled: no packet schedules it meanwhile).
func (s *Session) handOver(rest []inbound) {
	call := s.toWorker
	s.toWorker, s.onLoop = nil, false
	s.mu.Lock()
	head := append(make([]inbound, 0, 1+len(rest)+len(s.inbox)), inbound{kind: itemCall, call: call})
	s.inbox = append(append(head, rest...), s.inbox...)
	s.mu.Unlock()
	s.e.workers.schedule(s)
}

// park reports whether the item just handled left a CONNECT to be
// decided asynchronously; then rest, the batch's items after it, goes back
// to the head of the inbox, and the worker leaves the session: to release,
// or, when the decision is made already, to the run queue at once.
func (s *Session) park(rest []inbound) bool {
	if !s.toPark {
		return false
	}
	s.toPark = false
	s.mu.Lock()
	if len(rest) > 0 {
		s.inbox = append(append(make([]inbound, 0, len(rest)+len(s.inbox)), rest...), s.inbox...)
	}
	done := s.decided
	s.decided = nil
	if done == nil {
		s.hold = holdParked
		s.mu.Unlock()
		return true
	}
	s.hold = holdNone
	s.inbox = append([]inbound{{kind: itemCall, call: done}}, s.inbox...)
	s.mu.Unlock()
	s.e.workers.schedule(s)
	return true
}

// release ends a decision: done runs on a worker before the inbox.
func (s *Session) release(done func()) {
	s.mu.Lock()
	if s.hold != holdParked {
		s.decided = done // the worker has not left yet: park hands it on
		s.mu.Unlock()
		return
	}
	s.hold = holdNone
	s.inbox = append([]inbound{{kind: itemCall, call: done}}, s.inbox...)
	s.mu.Unlock()
	s.e.workers.schedule(s)
}

// onMessage handles an Engine.IO message.
func (s *Session) onMessage(data []byte, binary bool) {
	if h := s.e.o.Messages; h != nil {
		s.e.Guard("message", func() { h(s, data, binary) })
		return
	}
	s.onSocketIO(data, binary)
}

// reserveProbe claims the session's upgrade for a WebSocket handshake.
func (s *Session) reserveProbe() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.transport != transportPolling || s.probe != nil || s.upgrading {
		return false
	}
	s.probe = probeReserved
	return true
}

// probeReserved marks an upgrade whose WebSocket is being set up.
var probeReserved = &wsConn{}

// probeStarted installs c as the session's upgrade probe; false when the
// session ended meanwhile.
func (s *Session) probeStarted(c *wsConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.probe != probeReserved {
		return false
	}
	s.probe = c
	time.AfterFunc(s.e.o.UpgradeTimeout, func() {
		s.mu.Lock()
		stale := s.probe == c
		s.mu.Unlock()
		if stale {
			c.requestClose(closeNormal)
		}
	})
	return true
}

// probeFailed forgets an upgrade that did not happen (c nil: its WebSocket
// was never made); long-polling goes on.
func (s *Session) probeFailed(c *wsConn) {
	s.mu.Lock()
	if s.probe == c || (c == nil && s.probe == probeReserved) {
		s.probe = nil
		s.upgrading = false
	}
	s.mu.Unlock()
}

// probeAnswered: the client's "2probe" was answered with "3probe". A
// waiting poll returns, so that the client can pause polling.
func (s *Session) probeAnswered(c *wsConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.probe != c {
		return false
	}
	s.upgrading = true
	s.wakePoll()
	return true
}

// upgrade completes the upgrade to c (the client's "5"): what was queued
// for long-polling goes out on c first, in order.
func (s *Session) upgrade(c *wsConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.probe != c || !s.upgrading {
		return false
	}
	if s.closed {
		// Closed while the client was pausing polling: tell it here.
		s.probe = nil
		c.enqueue(frameClose)
		c.requestClose(closeNormal)
		return true
	}
	s.probe = nil
	s.upgrading = false
	s.ws = c
	s.transport = transportWebSocket
	queued := s.pollQ
	s.pollQ = nil
	s.pollOver = false
	s.wakePoll()
	for _, f := range queued {
		c.enqueue(f)
	}
	s.e.m.upgrades.Inc()
	return true
}

// role tells what c is to the session: its transport, its probe, or
// neither (a leftover).
func (s *Session) role(c *wsConn) (transport, probe bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ws == c && s.transport == transportWebSocket, s.probe == c
}

// transportClosed: c's connection ended (the client left, or the server
// closed it).
func (s *Session) transportClosed(c *wsConn, reason string) {
	s.mu.Lock()
	if s.probe == c {
		s.probe = nil
		s.upgrading = false
		s.mu.Unlock()
		return
	}
	mine := s.ws == c
	s.mu.Unlock()
	if mine {
		s.close(reason, 0)
	}
}
