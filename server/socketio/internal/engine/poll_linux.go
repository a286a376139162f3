//go:build linux && !engine_portable

package engine

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// The Linux I/O: after net/http's hijack, the engine takes its own copy of
// the connection's descriptor (net/http's is closed, which removes it from
// Go's poller) and registers it, edge-triggered, with one of a few epoll
// loops. A loop goroutine reads every ready connection into its one shared
// buffer and parses the frames there; nothing waits per connection. Only
// the loop reads and closes a descriptor, and writes hold the connection's
// lock, so a descriptor number is never used after it was closed (and
// perhaps reused).

// readBufferSize is the loop's shared read buffer.
const readBufferSize = 64 << 10

// loop is one epoll event loop.
type loop struct {
	set  *ioSet
	epfd int
	efd  int // eventfd: wakes the loop for its tasks
	// ep is epfd in Go's own poller: the loop waits there, parked, rather
	// than blocked in epoll_wait. A goroutine blocked in a system call
	// costs its P, which sysmon hands off after up to 10 ms; the return
	// then wakes sysmon, which polls every 20 µs for a millisecond and
	// more. At 100 messages a second that was a fifth of the server's CPU
	// (perf, rooms of 10); parked, it is none.
	ep *os.File
	rc syscall.RawConn

	mu    sync.Mutex
	conns map[int]*wsConn
	tasks []func()
	woken bool
	stop  bool

	buf []byte
}

// sysConn is a connection's descriptor and loop.
type sysConn struct {
	loop *loop
	fd   int
	// hup: the peer closed its side (an event said EPOLLRDHUP, HUP or
	// ERR). Edge-triggered, that edge comes once, often with the last
	// data, so a short read no longer means "drained, wait for the next
	// edge": reading goes on to the EOF. On the loop only.
	hup bool
}

func newIOSet(e *Engine, n int) (*ioSet, error) {
	s := &ioSet{e: e, stopCh: make(chan struct{})}
	for range max(n, 1) {
		l, err := newLoop(s)
		if err != nil {
			for _, l := range s.loops {
				l.shutdown()
			}
			return nil, err
		}
		s.loops = append(s.loops, l)
	}
	for _, l := range s.loops {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			l.run()
		}()
	}
	s.startShards(n)
	return s, nil
}

func newLoop(s *ioSet) (*loop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		_ = unix.Close(epfd)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, efd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(efd)}); err != nil {
		_ = unix.Close(epfd)
		_ = unix.Close(efd)
		return nil, fmt.Errorf("epoll_ctl: %w", err)
	}
	// An epoll descriptor is readable while it has events, so Go's poller
	// can wait on it; os.NewFile registers it there when it is
	// non-blocking.
	if err := unix.SetNonblock(epfd, true); err != nil {
		_ = unix.Close(epfd)
		_ = unix.Close(efd)
		return nil, fmt.Errorf("epoll non-blocking: %w", err)
	}
	ep := os.NewFile(uintptr(epfd), "epoll")
	rc, err := ep.SyscallConn()
	if err != nil {
		_ = ep.Close()
		_ = unix.Close(efd)
		return nil, fmt.Errorf("epoll in Go's poller: %w", err)
	}
	return &loop{set: s, epfd: epfd, efd: efd, ep: ep, rc: rc, conns: make(map[int]*wsConn), buf: make([]byte, readBufferSize)}, nil
}

// attach hands the hijacked connection nc to c's loop; pre is what net/http
// read past the handshake. The loop itself takes the connection over, as
// one of its tasks: only the loop reads, registers and closes descriptors,
// so a close requested while the handshake was answered (a flush that
// failed, the session closed) runs after the takeover, never beside it. An
// engine shutting down refuses it with errShuttingDown (nc is closed).
func (s *ioSet) attach(c *wsConn, nc net.Conn, pre []byte) error {
	fd, err := takeFD(nc)
	if err != nil {
		_ = nc.Close()
		return err
	}
	if !c.sys.loop.post(func() { c.takeOver(fd, pre) }) {
		_ = unix.Close(fd)
		return errShuttingDown
	}
	return nil
}

// takeOver registers fd as c's socket and reads what came with it; on the
// loop only.
func (c *wsConn) takeOver(fd int, pre []byte) {
	l := c.sys.loop
	c.wmu.Lock()
	if c.closed {
		// Its session closed while the handshake was answered.
		c.wmu.Unlock()
		_ = unix.Close(fd)
		return
	}
	c.sys.fd = fd
	c.wmu.Unlock()
	if len(pre) > 0 {
		c.rbuf = pre
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(fd)}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		l.set.e.log.Warn("a WebSocket connection could not be taken over", "err", fmt.Errorf("epoll_ctl add: %w", err))
		c.closeConn(0, "transport error") // closes fd, and tells the session
		return
	}
	l.mu.Lock()
	l.conns[fd] = c
	l.mu.Unlock()
	// Writable from now on, before it is read: a protocol fault in the
	// first bytes must find the socket open for its close frame.
	c.wmu.Lock()
	mark := c.unblock()
	c.wmu.Unlock()
	if mark {
		c.shard.mark(c)
	}
	// Parse what came with the handshake, and whatever arrived since.
	c.readable()
}

// takeFD duplicates nc's descriptor (close-on-exec, non-blocking like the
// original: they share the open file description) and closes nc.
func takeFD(nc net.Conn) (int, error) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return -1, errors.New("not a socket")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var dupErr error
	if err := rc.Control(func(f uintptr) {
		fd, dupErr = unix.FcntlInt(f, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return -1, err
	}
	if dupErr != nil {
		return -1, fmt.Errorf("dup: %w", dupErr)
	}
	_ = nc.Close()
	if err := unix.SetNonblock(fd, true); err != nil {
		_ = unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// post runs fn on the loop goroutine; false (fn will not run) once the
// loop is stopping. Every task accepted runs before the loop ends.
func (l *loop) post(fn func()) bool {
	l.mu.Lock()
	if l.stop {
		l.mu.Unlock()
		return false
	}
	l.tasks = append(l.tasks, fn)
	wake := !l.woken
	l.woken = true
	l.mu.Unlock()
	if wake {
		one := [8]byte{1}
		_, _ = rawWrite(l.efd, one[:])
	}
	return true
}

func (c *wsConn) post(fn func()) { c.sys.loop.post(fn) }

func (l *loop) run() {
	events := make([]unix.EpollEvent, 256)
	var ready []*wsConn
	for {
		n, err := l.wait(events)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			l.set.e.log.Error("epoll_wait failed; WebSocket reads stop", "err", err)
			return
		}
		ready = ready[:0]
		tasks := false
		l.mu.Lock()
		for i := range n {
			fd := int(events[i].Fd)
			if fd == l.efd {
				tasks = true
				ready = append(ready, nil)
				continue
			}
			ready = append(ready, l.conns[fd])
		}
		l.mu.Unlock()
		for i := range n {
			c := ready[i]
			if c == nil {
				continue
			}
			ev := events[i].Events
			if ev&unix.EPOLLOUT != 0 {
				c.writable()
			}
			if ev&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
				c.sys.hup = true
			}
			if ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
				l.set.e.Guard("websocket read", c.readable)
			}
		}
		clear(ready)
		if tasks && l.runTasks() {
			return
		}
	}
}

// wait returns the next events: at once when there are some, else after
// parking in Go's poller until the epoll descriptor is readable.
func (l *loop) wait(events []unix.EpollEvent) (int, error) {
	var n int
	var werr error
	err := l.rc.Read(func(fd uintptr) bool {
		n, werr = rawEpollWait(int(fd), events)
		return n > 0 || werr != nil
	})
	if err != nil {
		return 0, err
	}
	return n, werr
}

// runTasks runs what was posted; true when the loop must stop.
func (l *loop) runTasks() bool {
	var b [8]byte
	_, _ = rawRead(l.efd, b[:])
	l.mu.Lock()
	tasks := l.tasks
	l.tasks = nil
	l.woken = false
	stop := l.stop
	l.mu.Unlock()
	for _, fn := range tasks {
		l.set.e.Guard("loop task", fn)
	}
	return stop
}

// readable reads c until the socket is drained; on the loop only.
func (c *wsConn) readable() {
	if c.dead || c.paused {
		return
	}
	if len(c.rbuf) > 0 {
		c.consume(nil) // what was read before a pause, or with the handshake
	}
	l := c.sys.loop
	for !c.dead && !c.paused {
		n, err := rawRead(c.sys.fd, l.buf)
		if n > 0 {
			c.consume(l.buf[:n])
			if n < len(l.buf) && !c.sys.hup {
				// Drained: more data makes a new edge. (After the peer's
				// FIN no edge comes again: read on to the EOF.)
				return
			}
			continue
		}
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN):
			return
		case n == 0 && err == nil:
			c.closeConn(0, "transport close")
		default:
			c.closeConn(0, "transport error")
		}
		return
	}
}

// directWrites: a sender may write a frame itself (wsConn.writeNow), as
// writes never block here.
const directWrites = true

// writev writes v without blocking.
func (s *sysConn) writev(v [][]byte) (int, error) {
	if len(v) == 1 {
		return s.write(v[0])
	}
	return nonBlocking(func() (int, error) { return rawWritev(s.fd, v) })
}

// write writes b without blocking.
func (s *sysConn) write(b []byte) (int, error) {
	return nonBlocking(func() (int, error) { return rawWrite(s.fd, b) })
}

// nonBlocking makes a write call again when a signal interrupted it, and
// reports a full socket buffer as errAgain.
func nonBlocking(write func() (int, error)) (int, error) {
	for {
		n, err := write()
		switch {
		case err == nil:
			return n, nil
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN):
			return max(n, 0), errAgain
		}
		return 0, err
	}
}

// close unregisters and closes the descriptor; on the loop only, with the
// connection marked closed under its write lock (no write can be in
// flight).
// detach marks a connection that has no descriptor yet.
func (s *sysConn) detach() { s.fd = -1 }

func (s *sysConn) close(c *wsConn) {
	if s.fd < 0 {
		return // never attached: nothing to close
	}
	l := s.loop
	l.mu.Lock()
	if l.conns[s.fd] == c {
		delete(l.conns, s.fd)
	}
	l.mu.Unlock()
	_ = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, s.fd, nil)
	_ = unix.Close(s.fd)
	s.fd = -1
}

// close stops the loops (after closing what is left on them) and the
// flushers. The closing task is each loop's last: the loop stops taking
// tasks in the same step, so no connection is taken over after it.
func (s *ioSet) close() {
	for _, l := range s.loops {
		closeAll := func() {
			l.mu.Lock()
			left := make([]*wsConn, 0, len(l.conns))
			for _, c := range l.conns {
				left = append(left, c)
			}
			l.mu.Unlock()
			for _, c := range left {
				c.closeConn(closeGoingAway, "server shutting down")
			}
		}
		l.mu.Lock()
		if !l.stop {
			l.stop = true
			l.tasks = append(l.tasks, closeAll)
		}
		l.mu.Unlock()
		one := [8]byte{1}
		_, _ = rawWrite(l.efd, one[:])
	}
	close(s.stopCh)
	s.wg.Wait()
	for _, l := range s.loops {
		l.shutdown()
	}
}

func (l *loop) shutdown() {
	_ = l.ep.Close() // closes epfd
	_ = unix.Close(l.efd)
}
