package socketio

import (
	"sync"
	"sync/atomic"

	"github.com/zishang520/socket.io/v3/pkg/types"
)

// WebSocket opcodes (RFC 6455 section 5.2).
const (
	opText   byte = 0x1
	opBinary byte = 0x2
	opClose  byte = 0x8
	opPong   byte = 0xA
)

// buildFrame returns an unmasked, final WebSocket frame carrying
// prefix+payload (prefix 0: none). A server's frames are never masked.
func buildFrame(op, prefix byte, payload []byte) []byte {
	n := len(payload)
	if prefix != 0 {
		n++
	}
	hdr := 2
	switch {
	case n >= 65536:
		hdr = 10
	case n >= 126:
		hdr = 4
	}
	f := make([]byte, hdr+n)
	f[0] = 0x80 | op
	switch hdr {
	case 2:
		f[1] = byte(n)
	case 4:
		f[1] = 126
		f[2], f[3] = byte(n>>8), byte(n)
	default:
		f[1] = 127
		for i := range 8 {
			f[2+i] = byte(uint64(n) >> (56 - 8*i))
		}
	}
	p := f[hdr:]
	if prefix != 0 {
		p[0] = prefix
		p = p[1:]
	}
	copy(p, payload)
	return f
}

// frameCache turns the pre-encoded Engine.IO packet that the library
// shares between all recipients of one emit (packet.Options
// .WsPreEncodedFrame) into one WebSocket frame, built once. An entry keeps
// its key alive, so the key's address cannot be reused while cached.
type frameCache struct {
	last atomic.Pointer[frameEntry]
	mu   sync.Mutex
	m    map[types.BufferInterface]*frameEntry
	ring [64]*frameEntry
	pos  int
}

type frameEntry struct {
	key   types.BufferInterface
	frame []byte
}

func newFrameCache() *frameCache {
	return &frameCache{m: make(map[types.BufferInterface]*frameEntry)}
}

func (c *frameCache) get(b types.BufferInterface) []byte {
	if e := c.last.Load(); e != nil && e.key == b {
		return e.frame
	}
	c.mu.Lock()
	e, ok := c.m[b]
	if !ok {
		op := opBinary
		if _, text := b.(*types.StringBuffer); text {
			op = opText
		}
		e = &frameEntry{key: b, frame: buildFrame(op, 0, b.Bytes())}
		if old := c.ring[c.pos]; old != nil {
			delete(c.m, old.key)
		}
		c.ring[c.pos] = e
		c.pos = (c.pos + 1) % len(c.ring)
		c.m[b] = e
	}
	c.mu.Unlock()
	c.last.Store(e)
	return e.frame
}
