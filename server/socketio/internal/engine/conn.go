package engine

import (
	"errors"
	"sync"
	"time"
	"unicode/utf8"
)

// wsConn is one WebSocket connection: a session's transport, or the probe
// of an upgrade. Its reading state belongs to its event loop (one
// goroutine serves many connections); its write queue is guarded by wmu
// and written by its shard's flusher with one writev for everything
// queued. An idle connection holds no buffer: the read buffer is the
// loop's, and a partial frame is kept only while a frame is split.
type wsConn struct {
	sess  *Session
	set   *ioSet
	shard *shard
	sys   sysConn // the platform's descriptor

	// Owned by the reading side (the loop).
	rbuf   []byte // the start of a frame split across reads
	need   int    // the length of that frame, once its header is in
	msg    []byte // a fragmented message so far
	msgOp  byte   // its opcode; 0 when none is in progress
	paused bool   // reading waits for the session's inbox
	dead   bool   // closed: ignore further events

	wmu      sync.Mutex
	q        [][]byte // frames to write, shared and read-only
	off      int      // bytes of q[0] already written
	dirty    bool     // in the shard's list
	blocked  bool     // the socket buffer is full: waiting for EPOLLOUT
	closing  bool     // a close was requested: nothing more is queued
	closed   bool     // the descriptor is (being) closed
	overTick bool     // a slow-client check is pending
}

// errAgain is a write the socket buffer cannot take now.
var errAgain = errors.New("would block")

// errShuttingDown: the engine is closing and takes no new connection.
var errShuttingDown = errors.New("the server is shutting down")

// enqueue queues f (and its attachments) for writing.
func (c *wsConn) enqueue(f *Frame) {
	c.wmu.Lock()
	if c.closing || c.closed {
		c.wmu.Unlock()
		return
	}
	idle := len(c.q) == 0 && !c.dirty && !c.blocked
	if directWrites && idle && len(f.next) == 0 && f.direct.Add(1) <= DirectFanout {
		c.writeNow(f.ws)
		return
	}
	c.q = append(c.q, f.ws)
	for _, a := range f.next {
		c.q = append(c.q, a.ws)
	}
	c.afterQueue()
}

// DirectFanout is how many recipients of one frame, at most, the sender
// writes to itself, when nothing else is queued for them. A frame of a
// small room, or an acknowledgement, then leaves without waking a flusher:
// two goroutine switches a message saved in rooms of 10 (the execution
// trace counted two flusher wakes a message), which on two cores cost more
// CPU than the writes. A larger fanout (Frame.Fanout) is the flushers',
// which write on every core and coalesce what queues up while they write.
const DirectFanout = 16

// Fanout tells the engine that f is about to be sent to n recipients. Past
// DirectFanout, no sender writes it itself: the flushers start on every
// core at once, instead of after the sender's first writes.
func (f *Frame) Fanout(n int) {
	if n > DirectFanout {
		f.direct.Store(DirectFanout)
	}
}

// writeNow writes b, a frame for a connection with nothing queued, from
// the sender's goroutine, as the flusher would, and unlocks wmu. The
// queue is not used unless the socket leaves part of b: a socket of a
// small room then keeps no queue array at all. The write does not block.
func (c *wsConn) writeNow(b []byte) {
	n, err := c.sys.write(b)
	c.set.e.m.wsWrites.Inc()
	switch {
	case err != nil && err != errAgain:
		c.closing = true
		c.q = nil
		c.post(func() { c.closeConn(0, "transport error") })
	case n < len(b):
		c.q = append(c.q, b)
		c.off = n
		if err == errAgain {
			c.blocked = true // EPOLLOUT resumes it
			break
		}
		// A short write, with no EAGAIN: no EPOLLOUT will come for the
		// rest. The flusher writes it.
		c.afterQueue()
		return
	}
	c.wmu.Unlock()
}

// enqueueRaw queues one frame of this connection's own (a pong, a close).
func (c *wsConn) enqueueRaw(frame []byte) {
	c.wmu.Lock()
	if c.closing || c.closed {
		c.wmu.Unlock()
		return
	}
	c.q = append(c.q, frame)
	c.afterQueue()
}

// afterQueue checks the queue against SendQueueLimit, hands the connection
// to its flusher, and unlocks wmu.
func (c *wsConn) afterQueue() {
	limit := c.set.e.o.SendQueueLimit
	n := len(c.q)
	switch {
	case n > 10*limit:
		c.closing = true
		c.q = nil
		c.wmu.Unlock()
		go func() {
			c.sess.slow("ten times the limit", n) // counts, and closes the session
			c.post(func() { c.closeConn(0, "transport error") })
		}()
		return
	case n > limit && !c.overTick:
		c.overTick = true
		time.AfterFunc(slowGrace, c.checkSlow)
	}
	mark := !c.dirty && !c.blocked
	if mark {
		c.dirty = true
	}
	c.wmu.Unlock()
	if mark {
		c.shard.mark(c)
	}
}

func (c *wsConn) checkSlow() {
	c.wmu.Lock()
	n := len(c.q)
	slow := !c.closed && !c.closing && n > c.set.e.o.SendQueueLimit
	c.overTick = false
	c.wmu.Unlock()
	if slow {
		c.sess.slow("above the limit for "+slowGrace.String(), n)
	}
}

// keptQueue is the largest write queue array a connection keeps once it
// is written out. A burst (ten rooms joined at once, each with its
// presence) grows a queue to dozens of frames; kept at 64 (1.5 KB), those
// arrays were the largest part of what a socket's nine more rooms cost
// (3.5 MB of the heap over 5,000 sockets in the rooms bench's memory
// step), and kept at 8 still 0.6 MB. A steady stream, a frame or two
// between flushes, stays under it and keeps its array.
const keptQueue = 2

// maxIOV is the most buffers one writev takes (IOV_MAX).
const maxIOV = 1024

// flush writes what is queued without blocking; its shard's flusher calls
// it. When the socket buffer fills, the rest waits for the loop's EPOLLOUT.
func (c *wsConn) flush(iov *[][]byte) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.dirty = false
	if c.blocked {
		return
	}
	if err := c.writeQueued(iov); err != nil && err != errAgain {
		c.closing = true
		c.q = nil
		c.post(func() { c.closeConn(0, "transport error") })
	}
}

// writeQueued writes q until it is empty or the socket buffer is full.
// wmu is held.
func (c *wsConn) writeQueued(iov *[][]byte) error {
	for !c.closed && len(c.q) > 0 {
		v := append((*iov)[:0], c.q[0][c.off:])
		for i := 1; i < len(c.q) && len(v) < maxIOV; i++ {
			v = append(v, c.q[i])
		}
		*iov = v
		n, err := c.sys.writev(v)
		clear(v)
		c.set.e.m.wsWrites.Inc()
		if n > 0 {
			c.advance(n)
		}
		if err == errAgain {
			c.blocked = true
			return err
		}
		if err != nil {
			return err
		}
	}
	if len(c.q) == 0 {
		if cap(c.q) > keptQueue {
			c.q = nil
		} else {
			c.q = c.q[:0]
		}
	}
	return nil
}

// advance drops n written bytes from the front of q.
func (c *wsConn) advance(n int) {
	i := 0
	for i < len(c.q) && n > 0 {
		if l := len(c.q[i]) - c.off; n >= l {
			n -= l
			c.off = 0
			i++
		} else {
			c.off += n
			n = 0
		}
	}
	if i > 0 {
		k := copy(c.q, c.q[i:])
		clear(c.q[k:])
		c.q = c.q[:k]
	}
}

// writable: the socket buffer has room again (EPOLLOUT).
func (c *wsConn) writable() {
	c.wmu.Lock()
	if !c.blocked {
		c.wmu.Unlock()
		return
	}
	mark := c.unblock()
	c.wmu.Unlock()
	if mark {
		c.shard.mark(c)
	}
}

// unblock lets the flusher write again; under wmu. It reports whether the
// connection must be marked for its flusher (something is queued).
func (c *wsConn) unblock() bool {
	c.blocked = false
	mark := !c.dirty && len(c.q) > 0
	if mark {
		c.dirty = true
	}
	return mark
}

// requestClose closes the connection from any goroutine: what is queued,
// then a close frame with code (0: none), goes out if the socket takes it
// at once, then the descriptor is closed by its loop.
func (c *wsConn) requestClose(code int) {
	c.wmu.Lock()
	if c.closing || c.closed {
		c.wmu.Unlock()
		return
	}
	c.closing = true
	if code != 0 {
		c.q = append(c.q, closeFrame(code))
	}
	c.wmu.Unlock()
	c.post(func() { c.closeConn(0, "transport close") })
}

// closeConn closes the connection; on its loop only. code, when not 0, is
// a close frame to send first (a protocol failure found while reading).
func (c *wsConn) closeConn(code int, reason string) {
	c.wmu.Lock()
	if c.closed {
		c.wmu.Unlock()
		return
	}
	if code != 0 && !c.closing {
		c.q = append(c.q, closeFrame(code))
	}
	c.closing = true
	if !c.blocked {
		var iov [][]byte
		_ = c.writeQueued(&iov) // one last try, never blocking
	}
	c.closed = true
	c.q = nil
	c.wmu.Unlock()
	c.dead = true
	c.rbuf, c.msg = nil, nil
	c.sys.close(c)
	c.sess.transportClosed(c, reason)
}

// resume restarts reading once the session's inbox is drained.
func (c *wsConn) resume() {
	c.post(func() {
		if c.paused && !c.dead {
			c.paused = false
			c.readable()
		}
	})
}

// consume parses what was read; on the loop only.
func (c *wsConn) consume(data []byte) {
	buf := data
	own := false
	if len(c.rbuf) > 0 {
		c.rbuf = append(c.rbuf, data...)
		buf, own = c.rbuf, true
	}
	off := 0
	for off < len(buf) && !c.paused && !c.dead {
		n := c.frame(buf[off:])
		if n == 0 {
			break
		}
		off += n
	}
	if c.dead {
		return
	}
	rest := buf[off:]
	need := max(c.need, len(rest), 512)
	c.need = 0
	switch {
	case len(rest) == 0:
		c.rbuf = nil
	case own && cap(c.rbuf) >= need:
		k := copy(c.rbuf, rest)
		c.rbuf = c.rbuf[:k]
	default:
		c.rbuf = append(make([]byte, 0, need), rest...)
	}
}

// frame handles one complete frame at the start of b and returns its
// length; 0 when the frame is incomplete or the connection failed.
func (c *wsConn) frame(b []byte) int {
	if len(b) < 2 {
		return 0
	}
	fin, rsv, op := b[0]&0x80 != 0, b[0]&0x70, b[0]&0x0f
	masked, n, hdr := b[1]&0x80 != 0, uint64(b[1]&0x7f), 2
	switch n {
	case 126:
		if len(b) < 4 {
			return 0
		}
		n, hdr = uint64(b[2])<<8|uint64(b[3]), 4
	case 127:
		if len(b) < 10 {
			return 0
		}
		n = 0
		for i := 2; i < 10; i++ {
			n = n<<8 | uint64(b[i])
		}
		hdr = 10
	}
	e := c.set.e
	switch {
	case !masked || rsv != 0:
		return c.fail(closeProtocol, "a frame unmasked or with reserved bits")
	case op >= opClose && (!fin || n > 125):
		return c.fail(closeProtocol, "a fragmented or long control frame")
	case op > opBinary && op < opClose, op > opPong:
		return c.fail(closeProtocol, "an unknown opcode")
	case op < opClose && n+uint64(len(c.msg)) > uint64(e.o.MaxPayload):
		e.frameTooLarge("websocket")
		return c.fail(closeTooBig, "a message over MAX_HTTP_BUFFER_SIZE")
	}
	total := uint64(hdr) + 4 + n
	if uint64(len(b)) < total {
		c.need = int(total) // consume keeps the start, with room for the rest
		return 0
	}
	key := b[hdr : hdr+4]
	payload := b[hdr+4 : total]
	for i := range payload {
		payload[i] ^= key[i&3]
	}
	switch op {
	case opPing:
		f, _ := buildWSFrame(opPong, 0, payload)
		c.enqueueRaw(f)
	case opPong:
	case opClose:
		code := closeNormal
		if len(payload) >= 2 {
			code = int(payload[0])<<8 | int(payload[1])
		}
		if code < 1000 || code == 1004 || code == 1005 || code == 1006 || (code > 1014 && code < 3000) || code > 4999 {
			code = closeProtocol
		}
		c.closeConn(code, "transport close")
		return 0
	case opText, opBinary:
		if c.msgOp != 0 {
			return c.fail(closeProtocol, "a new message inside a fragmented one")
		}
		if fin {
			c.message(op, payload, false) // consumed, even when reading must stop
		} else {
			c.msgOp = op
			c.msg = append(make([]byte, 0, len(payload)*2), payload...)
		}
	case opContinuation:
		if c.msgOp == 0 {
			return c.fail(closeProtocol, "a continuation frame with no message")
		}
		c.msg = append(c.msg, payload...)
		if fin {
			op, msg := c.msgOp, c.msg
			c.msgOp, c.msg = 0, nil
			c.message(op, msg, true)
		}
	}
	return int(total)
}

// fail closes the connection for a protocol fault and returns 0.
func (c *wsConn) fail(code int, what string) int {
	c.set.e.m.protocolErrors.Inc()
	c.set.e.log.Debug("closing a WebSocket connection", "sid", c.sess.id, "why", what, "code", code)
	c.closeConn(code, "parse error")
	return 0
}

// message handles one whole WebSocket message: an Engine.IO packet. owned
// tells whether payload may be kept (it is not the loop's buffer). It
// returns false when reading must stop.
func (c *wsConn) message(op byte, payload []byte, owned bool) bool {
	s := c.sess
	if op == opText && !utf8.Valid(payload) {
		c.fail(closeInvalidData, "a text frame of invalid UTF-8")
		return false
	}
	keep := func(b []byte) []byte {
		if owned {
			return b
		}
		return append([]byte(nil), b...)
	}
	transport, probe := s.role(c)
	if probe {
		switch {
		case op == opText && string(payload) == "2probe":
			c.enqueue(frameProbe)
			s.probeAnswered(c)
		case op == opText && string(payload) == "5":
			if !s.upgrade(c) {
				c.closeConn(closeProtocol, "transport close")
				return false
			}
		default: // Node closes a probe that carries anything else
			c.closeConn(closeNormal, "transport close")
			return false
		}
		return true
	}
	if !transport {
		c.closeConn(closeNormal, "transport close")
		return false
	}
	if op == opBinary {
		return c.handOn(inbound{data: keep(payload), binary: true})
	}
	if len(payload) == 0 {
		c.fail(closeProtocol, "an empty Engine.IO packet")
		return false
	}
	switch payload[0] {
	case eioMessage:
		return c.handOn(inbound{data: keep(payload[1:])})
	case eioPong:
		s.onPong()
	case eioNoop:
	case eioClose:
		s.close("transport close", closeNormal)
		return false
	default: // a ping (the wrong direction in v4), an open, junk
		s.e.m.protocolErrors.Inc()
		s.close("parse error", closeProtocol)
		return false
	}
	return true
}

// handOn gives a message to the session's workers; when its inbox is full,
// reading pauses until the workers caught up.
func (c *wsConn) handOn(it inbound) bool {
	if c.sess.deliverFrom(it, true) {
		return true
	}
	if c.sess.pauseReading(c) {
		c.paused = true
		c.set.e.m.readPauses.Inc()
		return false
	}
	return true
}
