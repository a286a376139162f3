package socketio

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zishang520/socket.io/parsers/socket/v3/parser"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"

	"github.com/scalable-chat-go/server/chat"
)

// adapterBuilder makes the edge's adapter; once, when next is set, it makes
// the cluster adapter of the internal namespace instead (see clusterLink).
type adapterBuilder struct {
	edge *Server
	mu   sync.Mutex
	next socket.AdapterConstructor
}

func (b *adapterBuilder) New(nsp socket.Namespace) socket.Adapter {
	b.mu.Lock()
	next := b.next
	b.next = nil
	b.mu.Unlock()
	if next != nil {
		return next.New(nsp)
	}
	a := &adapter{Adapter: socket.MakeAdapter(), edge: b.edge, enc: parser.NewEncoder()}
	a.Prototype(a)
	a.Construct(nsp)
	b.edge.main = a
	return a
}

// adapter is the single-node adapter. It keeps the library's room
// bookkeeping and replaces two things:
//
//   - Broadcast encodes a packet once, builds its WebSocket frame once, and
//     queues the same bytes for every recipient on the edge's transport
//     (recipients on long-polling take the library's path);
//   - connection-state recovery: the offset of a `message` event is the
//     message's id (with the node's high-water id when messages arrived out
//     of order, see makeOffset), and a client's missed messages come from
//     the History ring, so nothing is stored twice and a client whose
//     session cannot be recovered still resumes after the newest message it
//     saw (welcome).
type adapter struct {
	socket.Adapter
	edge *Server
	enc  parser.Encoder

	// version counts membership changes; a room's snapshot is rebuilt when
	// it is older (see members).
	version   atomic.Uint64
	snapMu    sync.Mutex
	snapshots map[socket.Room]*roomSnapshot
}

// roomSnapshot is the live room's members as a plain slice: building it
// costs what one walk over the library's maps costs, and each broadcast
// until the next membership change saves that.
type roomSnapshot struct {
	version uint64
	sockets []*socket.Socket
	absent  []socket.SocketId // members not (yet) reachable: being recovered
}

// AddAll, Del and DelAll keep the library's bookkeeping and mark the
// snapshots stale.
func (a *adapter) AddAll(id socket.SocketId, rooms *types.Set[socket.Room]) {
	a.Adapter.AddAll(id, rooms)
	a.version.Add(1)
}

func (a *adapter) Del(id socket.SocketId, room socket.Room) {
	a.Adapter.Del(id, room)
	a.version.Add(1)
}

func (a *adapter) DelAll(id socket.SocketId) {
	a.Adapter.DelAll(id)
	a.version.Add(1)
}

// invalidate marks the snapshots stale: a socket became reachable (the
// library adds it to the namespace after it joined its rooms).
func (a *adapter) invalidate() { a.version.Add(1) }

// members returns room's members, from a snapshot no older than the last
// membership change.
func (a *adapter) members(room socket.Room) *roomSnapshot {
	v := a.version.Load()
	a.snapMu.Lock()
	defer a.snapMu.Unlock()
	if snap := a.snapshots[room]; snap != nil && snap.version == v {
		return snap
	}
	snap := &roomSnapshot{version: v}
	if ids, ok := a.Rooms().Load(room); ok {
		sockets := a.Nsp().Sockets()
		for _, id := range ids.Keys() {
			if s, ok := sockets.Load(id); ok {
				snap.sockets = append(snap.sockets, s)
			} else {
				snap.absent = append(snap.absent, id)
			}
		}
	}
	if a.snapshots == nil {
		a.snapshots = make(map[socket.Room]*roomSnapshot)
	}
	a.snapshots[room] = snap
	return snap
}

// Broadcast encodes p once and delivers it to every recipient: the same
// frame bytes are queued for each client on the edge's WebSocket
// transport; long-polling clients (and clients in the middle of an
// upgrade) take the library's path. Outgoing-packet listeners of client
// sockets are not called: the edge registers none.
func (a *adapter) Broadcast(p *parser.Packet, opts *socket.BroadcastOptions) {
	flags := &socket.BroadcastFlags{}
	if opts != nil && opts.Flags != nil {
		flags = opts.Flags
	}
	p.Nsp = a.Nsp().Name()
	encoded := a.enc.Encode(p)
	var frame []byte
	if len(encoded) == 1 {
		if sb, ok := encoded[0].(*types.StringBuffer); ok {
			frame = buildFrame(opText, '4', sb.Bytes())
		}
	}
	wopts := &socket.WriteOptions{}
	wopts.PreEncoded = true
	wopts.Volatile = flags.Volatile
	wopts.Compress = flags.Compress

	deliver := func(s *socket.Socket) {
		if !s.Connected() {
			return
		}
		conn := s.Client().Conn()
		if t, ok := conn.Transport().(*wsTransport); ok && frame != nil && t.direct.Load() {
			if st := conn.ReadyState(); st == "closing" || st == "closed" {
				return
			}
			if wopts.Volatile && t.queueLen() > 0 {
				return
			}
			t.enqueue(frame)
			return
		}
		s.Client().WriteToEngine(encoded, wopts)
	}

	var except *types.Set[socket.SocketId]
	if opts != nil && opts.Except != nil && opts.Except.Len() > 0 {
		except = types.NewSet[socket.SocketId]()
		for _, room := range opts.Except.Keys() {
			if ids, ok := a.Rooms().Load(room); ok {
				except.Add(ids.Keys()...)
			}
		}
	}
	if opts != nil && opts.Rooms != nil && opts.Rooms.Len() == 1 && opts.Rooms.Has(liveRoom) {
		// The live room of every message: walk its snapshot.
		snap := a.members(liveRoom)
		for _, s := range snap.sockets {
			if except == nil || !except.Has(s.Id()) {
				deliver(s)
			}
		}
		for _, id := range snap.absent {
			a.edge.holdForRecovering(id, p.Data)
		}
		return
	}
	sockets := a.Nsp().Sockets()
	if opts != nil && opts.Rooms != nil && opts.Rooms.Len() > 0 {
		seen := types.NewSet[socket.SocketId]()
		for _, room := range opts.Rooms.Keys() {
			ids, ok := a.Rooms().Load(room)
			if !ok {
				continue
			}
			for _, id := range ids.Keys() {
				if seen.Has(id) || (except != nil && except.Has(id)) {
					continue
				}
				seen.Add(id)
				if s, ok := sockets.Load(id); ok {
					deliver(s)
				} else {
					a.edge.holdForRecovering(id, p.Data)
				}
			}
		}
		return
	}
	a.Sids().Range(func(id socket.SocketId, _ *types.Set[socket.Room]) bool {
		if except != nil && except.Has(id) {
			return true
		}
		if s, ok := sockets.Load(id); ok {
			deliver(s)
		}
		return true
	})
}

// PersistSession keeps a disconnected client's session for recovery.
func (a *adapter) PersistSession(sess *socket.SessionToPersist) { a.edge.persistSession(sess) }

// RestoreSession recovers a client's session and the messages it missed.
func (a *adapter) RestoreSession(pid socket.PrivateSessionId, offset string) (*socket.Session, error) {
	return a.edge.restoreSession(pid, offset), nil
}

// savedSession is a disconnected client's session.
type savedSession struct {
	s  *socket.SessionToPersist
	at time.Time
}

// recovering holds the live messages broadcast to a recovered socket
// between the snapshot of what it missed and the moment the library makes
// it reachable (a window of the library's connect sequence).
type recovering struct {
	held    [][]any
	expires time.Time
}

func (s *Server) persistSession(sess *socket.SessionToPersist) {
	s.sessMu.Lock()
	defer s.sessMu.Unlock()
	s.sessions[sess.Pid] = savedSession{s: sess, at: time.Now()}
}

func (s *Server) restoreSession(pid socket.PrivateSessionId, offset string) *socket.Session {
	s.sessMu.Lock()
	saved, ok := s.sessions[pid]
	if ok {
		delete(s.sessions, pid)
	}
	s.sessMu.Unlock()
	if !ok || time.Since(saved.at) > s.o.RecoveryWindow {
		return nil
	}
	s.deliverMu.Lock()
	defer s.deliverMu.Unlock()
	last, _ := parseOffset(offset)
	missed, found := s.o.History.Since(last)
	if !found {
		// The last message it saw is not in the ring: welcome() resumes it
		// from the store instead.
		return nil
	}
	packets := make([]any, len(missed))
	for i, d := range missed {
		packets[i] = s.messageArgs(d.Message, d.High)
	}
	s.recoverMu.Lock()
	s.recovering[saved.s.Sid] = &recovering{expires: time.Now().Add(connectGateTimeout)}
	s.recoverMu.Unlock()
	return &socket.Session{SessionToPersist: saved.s, MissedPackets: packets}
}

// holdForRecovering keeps a packet for a socket that is being recovered and
// not yet reachable. deliverMu is held by the broadcaster.
func (s *Server) holdForRecovering(id socket.SocketId, data any) {
	s.recoverMu.Lock()
	defer s.recoverMu.Unlock()
	if r, ok := s.recovering[id]; ok {
		if args, ok := data.([]any); ok {
			r.held = append(r.held, args)
		}
	}
}

// recovered sends a recovered socket what was held for it. deliverMu is held.
func (s *Server) recovered(sock *socket.Socket) {
	s.recoverMu.Lock()
	r := s.recovering[sock.Id()]
	delete(s.recovering, sock.Id())
	s.recoverMu.Unlock()
	if r == nil {
		return
	}
	for _, args := range r.held {
		if len(args) > 0 {
			if ev, ok := args[0].(string); ok {
				_ = sock.Emit(ev, args[1:]...)
			}
		}
	}
}

// sweepSessions forgets sessions past the recovery window.
func (s *Server) sweepSessions(now time.Time) {
	s.sessMu.Lock()
	for pid, saved := range s.sessions {
		if now.Sub(saved.at) > s.o.RecoveryWindow {
			delete(s.sessions, pid)
		}
	}
	s.sessMu.Unlock()
	s.recoverMu.Lock()
	for id, r := range s.recovering {
		if now.After(r.expires) {
			delete(s.recovering, id)
		}
	}
	s.recoverMu.Unlock()
}

// messageArgs are the arguments of a `message` event for m: the wire
// message, then, with recovery on, its recovery offset (clients ignore the
// extra argument; socket.io-client keeps it as its offset and sends it back
// when it reconnects). high is the id of m's high-water mark (see
// chat.Delivery); "" when m is sent in order (history).
func (s *Server) messageArgs(m chat.Message, high string) []any {
	if s.o.RecoveryWindow > 0 {
		return []any{"message", m.Wire(), makeOffset(m.ID, high)}
	}
	return []any{"message", m.Wire()}
}

// offsetSep joins a message id and its high-water id in a recovery offset
// (ids are UUIDs, which never hold it).
const offsetSep = "~"

// makeOffset is the recovery offset of a message: its id, then, when a
// newer message was delivered before it, offsetSep and that message's id.
func makeOffset(id, high string) string {
	if high == "" || high == id {
		return id
	}
	return id + offsetSep + high
}

// parseOffset reads a recovery offset: last is the id of the last message
// the client received (where this node's ring resumes it), high the id of
// the newest message it had received (where another node resumes it; the
// same id when the offset carries only one).
func parseOffset(offset string) (last, high string) {
	last, high, ok := strings.Cut(offset, offsetSep)
	if !ok || high == "" {
		high = last
	}
	return last, high
}
