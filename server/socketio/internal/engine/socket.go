package engine

import (
	"errors"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/zishang520/socket.io/parsers/socket/v3/parser"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// Socket is a client's Socket.IO socket in one namespace. The socket of
// namespace "/" lives inside its Session.
type Socket struct {
	sess      *Session
	nsp       string
	id        string
	pid       string
	connected bool // guarded by sess.mu

	// Data is the handler's own state for the socket. Set it in Connect;
	// the engine never touches it.
	Data any
}

// Hello is a client's CONNECT.
type Hello struct {
	// Auth is the CONNECT payload (socket.io-client's auth option, plus pid
	// and offset when it asks to recover), or nil.
	Auth map[string]any
	// Resumable: the client asked to recover the socket of PID, which the
	// engine kept; Offset is the recovery offset it sent (the last one it
	// received).
	Resumable   bool
	PID, Offset string

	keptID    string
	recovered bool
	// decide is the Handler's decision to be made off the worker pool
	// (Async).
	decide func() error
}

// errAsync is what Async returns, for Connect to return.
var errAsync = errors.New("engine: the CONNECT is decided asynchronously")

// Async lets Connect decide off the worker pool, for a decision that may
// wait (a token whose keys are being fetched, a password hash): Connect
// returns h.Async(decide), and the engine runs decide on a goroutine of its
// own; its error is the CONNECT's answer, as Connect's would be. Until
// decide returns, the session's later packets wait, in order, and hold no
// worker. A session waits for one decision at a time, so these goroutines
// are bounded by the sessions; decide must return in bounded time (the
// session's ConnectTimeout still closes it meanwhile).
func (h *Hello) Async(decide func() error) error {
	h.decide = decide
	return errAsync
}

// Recover resumes the kept socket (only when Resumable): the socket gets
// its old id and the client's socket.recovered is true. The handler sends
// what the client missed in Ready.
func (h *Hello) Recover() {
	if h.Resumable {
		h.recovered = true
	}
}

// Recovered reports whether Recover was called.
func (h *Hello) Recovered() bool { return h.recovered }

// ID is the socket's Socket.IO id.
func (s *Socket) ID() string { return s.id }

// Namespace is the socket's namespace.
func (s *Socket) Namespace() string { return s.nsp }

// Addr is the client address its session was admitted for.
func (s *Socket) Addr() string { return s.sess.addr }

// Authorization is the Authorization header of the request that opened the
// session ("" when none).
func (s *Socket) Authorization() string { return s.sess.authz }

// Transport names the transport the socket's session uses now.
func (s *Socket) Transport() string { return s.sess.Transport() }

// Connected reports whether the socket is connected.
func (s *Socket) Connected() bool {
	s.sess.mu.Lock()
	defer s.sess.mu.Unlock()
	return s.connected && !s.sess.closed
}

// Send queues a frame built by EventFrame (namespace "/" only) for the
// client; it is dropped when the socket is gone.
func (s *Socket) Send(f *Frame) {
	ss := s.sess
	ss.mu.Lock()
	if s.connected {
		ss.sendLocked(f)
	}
	ss.mu.Unlock()
}

// Emit encodes and sends one event to this socket.
func (s *Socket) Emit(name string, args ...any) error {
	f, err := encodePacket(&parser.Packet{Type: parser.EVENT, Nsp: s.nsp, Data: append([]any{name}, args...)})
	if err != nil {
		return err
	}
	s.Send(f)
	return nil
}

// Disconnect disconnects the socket from its namespace, as Node's
// socket.disconnect(): the client gets a DISCONNECT (and does not
// reconnect by itself), the handler a Disconnect with "server namespace
// disconnect". The session stays open.
func (s *Socket) Disconnect() {
	ss := s.sess
	ss.mu.Lock()
	if !s.connected || ss.closed {
		ss.mu.Unlock()
		return
	}
	ss.sendLocked(disconnectFrame(s.nsp))
	ss.mu.Unlock()
	ss.deliver(inbound{kind: itemNamespaceDisconnect, nsp: s.nsp, reason: "server namespace disconnect"})
}

// Close closes the socket's whole connection ("forced close"); the client
// reconnects by itself.
func (s *Socket) Close() { s.sess.close("forced close", closeNormal) }

// recoverable are the disconnect reasons after which Node keeps a socket
// for connection-state recovery.
var recoverable = map[string]bool{
	"transport error": true, "transport close": true, "forced close": true,
	"ping timeout": true, "server shutting down": true, "forced server close": true,
}

// decoder is zishang520's Socket.IO decoder with its result.
type decoder struct {
	d   parser.Decoder
	out *parser.Packet
}

var decoders = sync.Pool{New: func() any {
	w := &decoder{d: parser.NewDecoder()}
	_ = w.d.On("decoded", func(args ...any) {
		if len(args) > 0 {
			w.out, _ = args[0].(*parser.Packet)
		}
	})
	return w
}}

// binaryPending is a binary packet waiting for its attachments.
type binaryPending struct{ dec *decoder }

// errBinaryUnexpected is a binary message with no binary packet pending.
var errBinaryUnexpected = errors.New("binary data outside a binary packet")

// onSocketIO decodes a Socket.IO packet (or an attachment) and handles it.
func (s *Session) onSocketIO(data []byte, binary bool) {
	var dec *decoder
	if s.binPend != nil {
		dec = s.binPend.dec
		if !binary {
			s.binPend = nil
			s.protocolError(errors.New("text packet while attachments are due"))
			return
		}
	} else {
		if binary {
			s.protocolError(errBinaryUnexpected)
			return
		}
		dec = decoders.Get().(*decoder)
	}
	dec.out = nil
	if err := dec.d.Add(bufferOf(data, binary)); err != nil {
		s.binPend = nil // the decoder's state is unknown: never reuse it
		s.protocolError(err)
		return
	}
	p := dec.out
	dec.out = nil
	if p == nil { // attachments are due
		if s.binPend == nil {
			s.binPend = &binaryPending{dec: dec}
		}
		return
	}
	s.binPend = nil
	decoders.Put(dec)
	s.dispatch(p)
}

// inline reports whether p, read by a loop, may be handled there: an
// event of a connected namespace that Options.Inline says never waits.
// Anything else (a CONNECT above all, whose Handler may read a store)
// is a worker's.
func (s *Session) inline(p *parser.Packet, args []any) bool {
	if p.Type != parser.EVENT || s.socketOf(p.Nsp) == nil || len(args) == 0 {
		return false
	}
	name, ok := args[0].(string)
	return ok && s.e.o.Inline(p.Nsp, name, args[1:])
}

// protocolError closes the session for a packet that breaks the protocol,
// as Node does.
func (s *Session) protocolError(err error) {
	s.e.m.protocolErrors.Inc()
	s.e.log.Debug("closing a session for a protocol error", "sid", s.id, "err", err)
	s.close("parse error", closeProtocol)
}

func (s *Session) dispatch(p *parser.Packet) {
	var args []any
	if p.Type == parser.EVENT || p.Type == parser.BINARY_EVENT {
		args, _ = plain(p.Data).([]any)
	}
	s.dispatchPlain(p, args)
}

// dispatchPlain handles p, an event's arguments made plain once (args): a
// loop that hands the event over does not convert them again.
func (s *Session) dispatchPlain(p *parser.Packet, args []any) {
	if s.onLoop && !s.inline(p, args) {
		s.toWorker = func() { s.dispatchPlain(p, args) }
		return
	}
	switch p.Type {
	case parser.CONNECT:
		s.connectNamespace(p)
	case parser.DISCONNECT:
		if s.socketOf(p.Nsp) == nil {
			s.protocolError(errors.New("DISCONNECT of a namespace not connected"))
			return
		}
		s.disconnectNamespace(p.Nsp, "client namespace disconnect")
	case parser.EVENT, parser.BINARY_EVENT:
		sock := s.socketOf(p.Nsp)
		if sock == nil {
			s.protocolError(errors.New("event for a namespace not connected"))
			return
		}
		if len(args) == 0 {
			s.protocolError(errors.New("event without a name"))
			return
		}
		var name string
		switch v := args[0].(type) {
		case string:
			name = v
		case float64:
			name = strconv.FormatFloat(v, 'f', -1, 64)
		}
		var ack Ack
		if p.Id != nil {
			ack = sock.ack(*p.Id)
		}
		h := s.e.o.Handler
		s.e.Guard("event "+strconv.Quote(limitString(name, 64)), func() { h.Event(sock, name, args[1:], ack) })
	case parser.ACK, parser.BINARY_ACK:
		// The server asks for no acknowledgement: nothing to match.
	default:
		s.protocolError(errors.New("unexpected " + p.Type.String() + " packet"))
	}
}

func limitString(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// plain turns the library's binary buffers into []byte, recursively.
func plain(v any) any {
	switch t := v.(type) {
	case []any:
		for i := range t {
			t[i] = plain(t[i])
		}
		return t
	case map[string]any:
		for k, x := range t {
			t[k] = plain(x)
		}
		return t
	case *types.StringBuffer:
		return t.String()
	case types.BufferInterface:
		return t.Bytes()
	}
	return v
}

// ack returns the acknowledgement callback of packet id.
func (s *Socket) ack(id uint64) Ack {
	var sent atomic.Bool
	return func(args ...any) {
		if !sent.CompareAndSwap(false, true) {
			return
		}
		f, err := ackFrame(s.nsp, id, args)
		if err != nil {
			s.sess.e.log.Error("an acknowledgement could not be encoded", "err", err)
			return
		}
		s.Send(f)
	}
}

// socketOf returns the connected socket of nsp, or nil.
func (s *Session) socketOf(nsp string) *Socket {
	s.mu.Lock()
	defer s.mu.Unlock()
	if nsp == "/" {
		if s.main.connected {
			return &s.main
		}
		return nil
	}
	for _, x := range s.extra {
		if x.nsp == nsp && x.connected {
			return x
		}
	}
	return nil
}

func (s *Session) connectNamespace(p *parser.Packet) {
	nsp := p.Nsp
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed || s.socketOf(nsp) != nil {
		return // gone, or connected already (Node ignores a second CONNECT)
	}
	var sock *Socket
	if nsp == "/" {
		sock = &s.main
		sock.Data = nil
	} else {
		sock = &Socket{sess: s, nsp: nsp}
	}
	sock.id = newID()
	sock.pid = ""
	auth, _ := p.Data.(map[string]any)
	h := &Hello{Auth: auth}
	if s.e.o.RecoveryWindow > 0 && auth != nil {
		if pid, _ := auth["pid"].(string); pid != "" {
			if k, ok := s.e.takeKept(pid); ok {
				h.Resumable, h.PID, h.keptID = true, pid, k.id
				h.Offset, _ = auth["offset"].(string)
			}
		}
	}
	var err error
	s.e.Guard("connect", func() {
		err = errors.New("internal error")
		err = s.e.o.Handler.Connect(sock, h)
	})
	if err == errAsync && h.decide != nil {
		s.decideAsync(sock, h)
		return
	}
	s.answerConnect(sock, h, err)
}

// decideAsync runs h's decision on a goroutine of its own, the session
// held meanwhile (see Hello.Async), then completes the CONNECT on a worker,
// before the packets that came after it.
func (s *Session) decideAsync(sock *Socket, h *Hello) {
	s.toPark = true
	s.mu.Lock()
	s.hold = holdDeciding
	s.mu.Unlock()
	s.e.m.deciding.Inc()
	go func() {
		var err error
		s.e.Guard("connect", func() {
			err = errors.New("internal error")
			err = h.decide()
		})
		s.e.m.deciding.Dec()
		s.release(func() { s.answerConnect(sock, h, err) })
	}()
}

// answerConnect completes a CONNECT that Connect (or its decision) answered
// with err.
func (s *Session) answerConnect(sock *Socket, h *Hello, err error) {
	nsp := sock.nsp
	if err != nil {
		var ce *ConnectError
		if !errors.As(err, &ce) {
			ce = &ConnectError{Message: err.Error()}
		}
		s.Send(connectErrorFrame(nsp, ce.Message, ce.Data))
		return
	}
	if h.recovered {
		sock.id, sock.pid = h.keptID, h.PID
		s.e.m.recovered.Inc()
	} else if s.e.o.RecoveryWindow > 0 {
		sock.pid = newID()
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	sock.connected = true
	s.connected = true
	if sock != &s.main {
		s.extra = append(s.extra, sock)
	}
	s.sendLocked(connectFrame(nsp, sock.id, sock.pid))
	s.mu.Unlock()
	s.e.Guard("ready", func() { s.e.o.Handler.Ready(sock) })
}

// disconnectNamespace ends the socket of nsp for reason.
func (s *Session) disconnectNamespace(nsp, reason string) {
	sock := s.socketOf(nsp)
	if sock == nil {
		return
	}
	s.mu.Lock()
	sock.connected = false
	if sock != &s.main {
		for i, x := range s.extra {
			if x == sock {
				s.extra = append(s.extra[:i], s.extra[i+1:]...)
				break
			}
		}
	}
	s.mu.Unlock()
	s.disconnected(sock, reason)
}

// closeSockets ends every socket of a closed session.
func (s *Session) closeSockets(reason string) {
	s.mu.Lock()
	var socks []*Socket
	if s.main.connected {
		socks = append(socks, &s.main)
	}
	socks = append(socks, s.extra...)
	for _, x := range socks {
		x.connected = false
	}
	s.extra = nil
	s.mu.Unlock()
	s.binPend = nil
	for _, x := range socks {
		s.disconnected(x, reason)
	}
}

func (s *Session) disconnected(sock *Socket, reason string) {
	if recoverable[reason] {
		s.e.keep(sock.pid, sock.id)
	}
	s.e.Guard("disconnect", func() { s.e.o.Handler.Disconnect(sock, reason) })
}
