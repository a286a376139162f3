//go:build !linux || engine_portable

package engine

import (
	"errors"
	"net"
	"os"
	"sync"
	"time"
)

// The portable I/O, for systems other than Linux (and for tests, with the
// build tag engine_portable): one reader goroutine per WebSocket
// connection, blocking reads into a buffer of its own, and writes with a
// deadline. Correct, not lean: Linux is the target.

// directWrites is off: a write here may block until its deadline, which
// no sender may wait for.
const directWrites = false

// loop is unused on this path.
type loop struct{}

// sysConn is the connection, and the lock that makes posted tasks run
// apart from its reader.
type sysConn struct {
	loop *loop
	nc   net.Conn
	c    *wsConn
	rmu  sync.Mutex
}

// portableWriteSlice bounds one write, since the flusher holds the
// connection's lock while it writes: what a client does not take within it
// waits, and is tried again a slice later.
const portableWriteSlice = 10 * time.Millisecond

func newIOSet(e *Engine, n int) (*ioSet, error) {
	s := &ioSet{e: e, stopCh: make(chan struct{})}
	s.startShards(n)
	return s, nil
}

func (s *ioSet) attach(c *wsConn, nc net.Conn, pre []byte) error {
	select {
	case <-s.stopCh:
		_ = nc.Close()
		return errShuttingDown
	default:
	}
	c.sys.rmu.Lock()
	if len(pre) > 0 {
		c.rbuf = pre
	}
	c.wmu.Lock()
	if c.closed {
		// Its session closed while the handshake was answered.
		c.wmu.Unlock()
		c.sys.rmu.Unlock()
		_ = nc.Close()
		return nil
	}
	c.sys.nc = nc
	c.sys.c = c
	// Writable from now on, before its reader starts: a protocol fault in
	// the first bytes must find the socket open for its close frame.
	mark := c.unblock()
	c.wmu.Unlock()
	c.sys.rmu.Unlock()
	if mark {
		c.shard.mark(c)
	}
	go c.readLoop()
	return nil
}

// detach marks a connection that has no socket yet (nc is nil already).
func (s *sysConn) detach() {}

func (c *wsConn) readLoop() {
	buf := make([]byte, 16<<10)
	c.sys.rmu.Lock()
	if len(c.rbuf) > 0 {
		c.consume(nil)
	}
	c.sys.rmu.Unlock()
	for {
		n, err := c.sys.nc.Read(buf)
		c.sys.rmu.Lock()
		if c.dead {
			c.sys.rmu.Unlock()
			return
		}
		if n > 0 {
			c.consume(buf[:n])
		}
		if err != nil && !c.dead {
			c.closeConn(0, "transport close")
		}
		for c.paused && !c.dead {
			c.sys.rmu.Unlock()
			time.Sleep(5 * time.Millisecond)
			c.sys.rmu.Lock()
		}
		dead := c.dead
		c.sys.rmu.Unlock()
		if dead || err != nil {
			return
		}
	}
}

// readable parses what is buffered (after a pause).
func (c *wsConn) readable() {
	if len(c.rbuf) > 0 && !c.dead && !c.paused {
		c.consume(nil)
	}
}

func (c *wsConn) post(fn func()) {
	go func() {
		c.sys.rmu.Lock()
		defer c.sys.rmu.Unlock()
		c.set.e.Guard("connection task", fn)
	}()
}

func (s *sysConn) writev(v [][]byte) (int, error) {
	_ = s.nc.SetWriteDeadline(time.Now().Add(portableWriteSlice))
	bufs := net.Buffers(append([][]byte(nil), v...))
	n, err := bufs.WriteTo(s.nc)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		time.AfterFunc(portableWriteSlice, s.c.writable)
		return int(n), errAgain
	}
	return int(n), err
}

// write is writev of one buffer (directWrites is off: nothing calls it).
func (s *sysConn) write(b []byte) (int, error) { return s.writev([][]byte{b}) }

func (s *sysConn) close(*wsConn) {
	if s.nc != nil {
		_ = s.nc.Close()
	}
}

func (s *ioSet) close() {
	close(s.stopCh)
	s.wg.Wait()
}
