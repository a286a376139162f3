package main

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"

	"github.com/scalable-chat-go/server/sioclient"
)

// perSourceAddr is how many connections one loopback source address
// carries: the ephemeral port range (32768-60999 by default) bounds the
// connections from one address to one port, so larger runs spread over
// 127.0.0.2, 127.0.0.3, ...
const perSourceAddr = 16000

// sourceAddr returns the local address of connection i of n (nil: let the
// kernel choose, for runs that fit one address).
func sourceAddr(i, n int) net.IP {
	if n <= perSourceAddr {
		return nil
	}
	k := i / perSourceAddr
	return net.IPv4(127, 0, byte(k>>8), byte(1+k&0xff))
}

// conns is a set of open connections, each read by its own goroutine.
type conns struct {
	list    []*sioclient.Conn
	wg      sync.WaitGroup
	dropped atomic.Int64 // connections that ended before close
	closing atomic.Bool
}

// handler builds the frame handler of connection i; it runs on that
// connection's reading goroutine only.
type handler func(i int) func(frame []byte)

// dial opens n connections, connection i to urls[i mod len(urls)], at
// most parallel at once, and starts each one's reader with the handler
// from h (early frames first). It stops at the first failure and returns
// it, with the connections opened so far (close them).
func dial(ctx context.Context, d *sioclient.Dialer, urls []string, n, parallel int, h handler) (*conns, error) {
	cs := &conns{list: make([]*sioclient.Conn, n)}
	var (
		mu       sync.Mutex
		firstErr error
		next     atomic.Int64
		wg       sync.WaitGroup
	)
	for w := 0; w < min(parallel, n); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				mu.Lock()
				failed := firstErr != nil
				mu.Unlock()
				if failed {
					return
				}
				c, early, err := d.Dial(ctx, urls[i%len(urls)], sourceAddr(i, n))
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("connection %d of %d: %w", i+1, n, err)
					}
					mu.Unlock()
					return
				}
				fn := h(i)
				for _, f := range early {
					fn(f)
				}
				cs.list[i] = c
				cs.wg.Add(1)
				go func() {
					defer cs.wg.Done()
					_ = c.Serve(fn)
					if !cs.closing.Load() {
						cs.dropped.Add(1)
					}
				}()
			}
		}()
	}
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = ctx.Err()
	}
	return cs, firstErr
}

// open counts the connections that were opened.
func (cs *conns) open() int {
	n := 0
	for _, c := range cs.list {
		if c != nil {
			n++
		}
	}
	return n
}

// close closes every connection and waits for the readers to end.
func (cs *conns) close() {
	if cs == nil {
		return
	}
	cs.closing.Store(true)
	var wg sync.WaitGroup
	ch := make(chan *sioclient.Conn)
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range ch {
				_ = c.Close()
			}
		}()
	}
	for _, c := range cs.list {
		if c != nil {
			ch <- c
		}
	}
	close(ch)
	wg.Wait()
	cs.wg.Wait()
}
