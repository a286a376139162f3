package engine

import (
	"sync"
	"sync/atomic"
)

// ioSet is the engine's I/O: the event loops that read WebSocket
// connections and the flushers that write them, one of each per core. A
// connection is bound to one loop and one flusher for its life.
type ioSet struct {
	e      *Engine
	loops  []*loop
	shards []*shard
	next   atomic.Uint32
	stopCh chan struct{}
	wg     sync.WaitGroup
}

func (s *ioSet) startShards(n int) {
	for range max(n, 1) {
		sh := &shard{sig: make(chan struct{}, 1)}
		s.shards = append(s.shards, sh)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			sh.run(s.stopCh)
		}()
	}
}

// newConn makes the connection of s, bound to the next loop and flusher.
func (s *ioSet) newConn(sess *Session) *wsConn {
	i := int(s.next.Add(1))
	// blocked until attach hands it its socket: what is queued before
	// (a ping, a broadcast) waits for it instead of writing to nothing.
	c := &wsConn{sess: sess, set: s, shard: s.shards[i%len(s.shards)], blocked: true}
	c.sys.detach()
	if len(s.loops) > 0 {
		c.sys.loop = s.loops[i%len(s.loops)]
	}
	return c
}

// shard is one flusher: a goroutine that writes the connections marked
// dirty, each with one writev for everything queued for it. There is no
// delay: a connection marked while the flusher sleeps is written at once;
// frames queued while it writes other connections go out together in its
// next pass. That is where frames coalesce under load, and only there.
type shard struct {
	mu    sync.Mutex
	dirty []*wsConn
	sig   chan struct{}
}

func (s *shard) mark(c *wsConn) {
	s.mu.Lock()
	s.dirty = append(s.dirty, c)
	s.mu.Unlock()
	select {
	case s.sig <- struct{}{}:
	default:
	}
}

func (s *shard) run(stop <-chan struct{}) {
	var batch []*wsConn
	var iov [][]byte
	for {
		select {
		case <-stop:
			return
		case <-s.sig:
		}
		for {
			s.mu.Lock()
			batch, s.dirty = s.dirty, batch[:0]
			s.mu.Unlock()
			if len(batch) == 0 {
				break
			}
			for i, c := range batch {
				c.flush(&iov)
				batch[i] = nil
			}
		}
	}
}
