package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// pollSessions are idle long-polling sessions: each one keeps a GET
// waiting on its own keep-alive connection and answers the server's pings
// on that same connection (GET returns "2", POST "3", GET again), so a
// session costs one TCP connection on each side, as an idle browser tab
// does between its polls.
type pollSessions struct {
	mu      sync.Mutex
	conns   []net.Conn
	wg      sync.WaitGroup
	open    atomic.Int64
	dropped atomic.Int64
	closing atomic.Bool
}

// dialPolling opens n long-polling sessions (Engine.IO handshake, then the
// namespace CONNECT), session i to urls[i mod len(urls)] from
// sourceAddr(i, n), at most parallel at once.
func dialPolling(ctx context.Context, urls []string, n, parallel int) (*pollSessions, error) {
	ps := &pollSessions{}
	var next atomic.Int64
	var firstErr error
	var errMu sync.Mutex
	var wg sync.WaitGroup
	for range min(parallel, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				errMu.Lock()
				failed := firstErr != nil
				errMu.Unlock()
				if i >= n || failed || ctx.Err() != nil {
					return
				}
				if err := ps.start(ctx, urls[i%len(urls)], sourceAddr(i, n)); err != nil {
					errMu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("polling session %d of %d: %w", i+1, n, err)
					}
					errMu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = ctx.Err()
	}
	return ps, firstErr
}

// pollConn is one session's HTTP/1.1 connection.
type pollConn struct {
	nc   net.Conn
	br   *bufio.Reader
	host string
	path string
}

func (c *pollConn) do(method, query, body string) (string, error) {
	_ = c.nc.SetDeadline(time.Now().Add(2 * time.Minute))
	req := fmt.Sprintf("%s %s?%s HTTP/1.1\r\nHost: %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s",
		method, c.path, query, c.host, len(body), body)
	if _, err := io.WriteString(c.nc, req); err != nil {
		return "", err
	}
	res, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return "", err
	}
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		return "", err
	}
	if res.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: HTTP %d %s", method, res.StatusCode, b)
	}
	return string(b), nil
}

func (ps *pollSessions) start(ctx context.Context, base string, local net.IP) error {
	u, err := url.Parse(base)
	if err != nil {
		return err
	}
	d := net.Dialer{Timeout: 10 * time.Second}
	if local != nil {
		d.LocalAddr = &net.TCPAddr{IP: local}
	}
	nc, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return err
	}
	c := &pollConn{nc: nc, br: bufio.NewReaderSize(nc, 1024), host: u.Host, path: "/socket.io/"}
	open, err := c.do(http.MethodGet, "EIO=4&transport=polling", "")
	if err != nil {
		nc.Close()
		return err
	}
	sid, ok := strings.CutPrefix(open, `0{"sid":"`)
	if !ok {
		nc.Close()
		return fmt.Errorf("handshake %q", open)
	}
	sid, _, _ = strings.Cut(sid, `"`)
	q := "EIO=4&transport=polling&sid=" + url.QueryEscape(sid)
	if _, err := c.do(http.MethodPost, q, "40"); err != nil {
		nc.Close()
		return err
	}
	ps.mu.Lock()
	ps.conns = append(ps.conns, nc)
	ps.mu.Unlock()
	ps.open.Add(1)
	ps.wg.Add(1)
	go func() {
		defer ps.wg.Done()
		ps.serve(c, q)
		if !ps.closing.Load() {
			ps.dropped.Add(1)
		}
	}()
	return nil
}

// serve polls until the connection ends, answering pings, and returns why
// it ended.
func (ps *pollSessions) serve(c *pollConn, q string) error {
	for {
		body, err := c.do(http.MethodGet, q, "")
		if err != nil {
			return err
		}
		for _, p := range strings.Split(body, "\x1e") {
			switch {
			case p == "2":
				if _, err := c.do(http.MethodPost, q, "3"); err != nil {
					return err
				}
			case p == "1":
				return errors.New("the server closed the session")
			}
		}
	}
}

// close ends every session and waits for them.
func (ps *pollSessions) close() {
	if ps == nil {
		return
	}
	ps.closing.Store(true)
	ps.mu.Lock()
	for _, nc := range ps.conns {
		_ = nc.Close()
	}
	ps.mu.Unlock()
	ps.wg.Wait()
}
