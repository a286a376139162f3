// Package sioclient is a minimal Socket.IO v4 client over raw Engine.IO v4,
// with every frame under its user's control: the benchmark (scripts/bench)
// holds tens of thousands of connections with it, and the server's tests
// drive the real binary with it.
//
// It is written for load: one goroutine per connection reads, pings are
// answered in place, and frames are handed over as byte slices without
// decoding JSON, so that one process can receive hundreds of thousands of
// frames a second. It speaks to namespace "/", over WebSocket (Dial) or
// HTTP long-polling (DialPolling), never upgrading from one to the other;
// both the Go server and the Node reference accept either.
package sioclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Kind is the type of an Engine.IO / Socket.IO frame.
type Kind uint8

// Frame kinds, after the Engine.IO packet type (first byte) and, for
// messages ('4'), the Socket.IO packet type (second byte).
const (
	KindOther Kind = iota
	KindOpen
	KindClose
	KindPing
	KindPong
	KindNoop
	KindConnect      // 40
	KindDisconnect   // 41
	KindEvent        // 42
	KindAck          // 43
	KindConnectError // 44
)

// Classify returns the kind of a text frame.
func Classify(f []byte) Kind {
	if len(f) == 0 {
		return KindOther
	}
	switch f[0] {
	case '0':
		return KindOpen
	case '1':
		return KindClose
	case '2':
		return KindPing
	case '3':
		return KindPong
	case '6':
		return KindNoop
	case '4':
		if len(f) < 2 {
			return KindOther
		}
		switch f[1] {
		case '0':
			return KindConnect
		case '1':
			return KindDisconnect
		case '2':
			return KindEvent
		case '3':
			return KindAck
		case '4':
			return KindConnectError
		}
	}
	return KindOther
}

// EventName returns the name of an event frame to namespace "/"
// (`42["name",...]` or `42<ackId>["name",...]`) as it is written in the
// frame (JSON escapes are not undone), or nil when f is no such frame.
func EventName(f []byte) []byte {
	if Classify(f) != KindEvent {
		return nil
	}
	i := 2
	for i < len(f) && f[i] >= '0' && f[i] <= '9' {
		i++
	}
	if i+1 >= len(f) || f[i] != '[' || f[i+1] != '"' {
		return nil
	}
	rest := f[i+2:]
	for j := 0; j < len(rest); j++ {
		switch rest[j] {
		case '\\':
			j++
		case '"':
			return rest[:j]
		}
	}
	return nil
}

// IsEvent reports whether f is an event frame named name.
func IsEvent(f []byte, name string) bool {
	n := EventName(f)
	return n != nil && string(n) == name
}

// Dialer opens connections. Its zero value is usable.
type Dialer struct {
	// HTTPClient carries the long-polling requests (http.DefaultClient
	// when nil).
	HTTPClient *http.Client
	// ReadBufferSize is each connection's read buffer (4096 when zero):
	// larger lets one read system call take several queued frames.
	ReadBufferSize int
	// HandshakeTimeout bounds the WebSocket, Engine.IO and namespace
	// handshakes together (10 s when zero).
	HandshakeTimeout time.Duration

	once sync.Once
	pool websocket.BufferPool
}

// Conn is one Socket.IO connection. Write may be called from any goroutine;
// Serve from one.
type Conn struct {
	// SID is the Engine.IO session id.
	SID string
	// PID is the private session id the namespace CONNECT answer carries
	// when the server recovers connection state: socket.io-client sends it
	// back with its last offset in the auth of its next CONNECT
	// ({pid, offset}), and its socket is recovered when the answer carries
	// the same PID again.
	PID string

	ws   *websocket.Conn // nil for long-polling
	poll *polling
	wmu  sync.Mutex
	buf  []byte
}

// ErrConnectRefused is returned when the server answers the namespace
// CONNECT with CONNECT_ERROR.
var ErrConnectRefused = errors.New("namespace connect refused")

// Dial connects to the Socket.IO server at baseURL (http://host:port) from
// the local address local (nil: any), completes the Engine.IO handshake and
// connects to namespace "/". Event frames that arrive before the CONNECT
// answer (a broadcast can overtake it) are returned in early, in order.
func (d *Dialer) Dial(ctx context.Context, baseURL string, local net.IP) (c *Conn, early [][]byte, err error) {
	return d.DialAuth(ctx, baseURL, local, nil)
}

// DialAuth is Dial with auth, the JSON object of the namespace CONNECT
// (socket.io-client's auth option; nil sends none).
func (d *Dialer) DialAuth(ctx context.Context, baseURL string, local net.IP, auth []byte) (c *Conn, early [][]byte, err error) {
	d.once.Do(func() { d.pool = &sync.Pool{} })
	timeout := d.HandshakeTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	rbs := d.ReadBufferSize
	if rbs <= 0 {
		rbs = 4096
	}
	nd := &net.Dialer{}
	if local != nil {
		nd.LocalAddr = &net.TCPAddr{IP: local}
	}
	wd := websocket.Dialer{
		NetDialContext:  nd.DialContext,
		ReadBufferSize:  rbs,
		WriteBufferSize: 512,
		WriteBufferPool: d.pool,
	}
	u := "ws" + strings.TrimPrefix(baseURL, "http") + "/socket.io/?EIO=4&transport=websocket"
	ws, resp, err := wd.DialContext(ctx, u, http.Header{})
	if err != nil {
		if resp != nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
			resp.Body.Close()
			return nil, nil, fmt.Errorf("websocket handshake with %s: %s %s", u, resp.Status, bytes.TrimSpace(body))
		}
		return nil, nil, fmt.Errorf("websocket handshake with %s: %w", u, err)
	}
	c = &Conn{ws: ws}
	deadline, _ := ctx.Deadline()
	_ = ws.SetReadDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = ws.SetReadDeadline(time.Now()) })
	defer stop()

	f, err := c.next()
	if err != nil {
		_ = ws.Close()
		return nil, nil, fmt.Errorf("read the Engine.IO open packet: %w", err)
	}
	if err := c.opened(f); err != nil {
		_ = ws.Close()
		return nil, nil, err
	}
	early, err = c.join(auth)
	if err != nil {
		_ = ws.Close()
		return nil, nil, err
	}
	_ = ws.SetReadDeadline(time.Time{})
	return c, early, nil
}

// DialPolling is Dial over HTTP long-polling: every packet the client
// sends is a POST, and a GET waits for what the server has (up to its ping
// interval). It never upgrades to WebSocket.
func (d *Dialer) DialPolling(ctx context.Context, baseURL string) (c *Conn, early [][]byte, err error) {
	timeout := d.HandshakeTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	client := d.HTTPClient
	if client == nil {
		client = http.DefaultClient
	}
	hctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	life, end := context.WithCancel(context.WithoutCancel(ctx))
	p := &polling{client: client, url: baseURL + "/socket.io/?EIO=4&transport=polling", ctx: hctx, life: life, end: end}
	c = &Conn{poll: p}
	f, err := c.next()
	if err != nil {
		end()
		return nil, nil, fmt.Errorf("long-polling handshake with %s: %w", p.url, err)
	}
	if err := c.opened(f); err != nil {
		end()
		return nil, nil, err
	}
	p.url += "&sid=" + c.SID
	early, err = c.join(nil)
	if err != nil {
		end()
		return nil, nil, err
	}
	p.ctx = life
	return c, early, nil
}

// opened reads the Engine.IO open packet f.
func (c *Conn) opened(f []byte) error {
	if Classify(f) != KindOpen {
		return fmt.Errorf("want the Engine.IO open packet, got %q", clip(f))
	}
	var open struct {
		SID string `json:"sid"`
	}
	if err := json.Unmarshal(f[1:], &open); err != nil || open.SID == "" {
		return fmt.Errorf("bad Engine.IO open packet %q", clip(f))
	}
	c.SID = open.SID
	return nil
}

// join connects to namespace "/" and returns the events that came before
// the answer.
func (c *Conn) join(auth []byte) (early [][]byte, err error) {
	if err := c.Write(append([]byte("40"), auth...)); err != nil {
		return nil, fmt.Errorf("send the namespace CONNECT: %w", err)
	}
	for {
		f, err := c.next()
		if err != nil {
			return nil, fmt.Errorf("wait for the namespace CONNECT answer: %w", err)
		}
		switch Classify(f) {
		case KindConnect:
			var answer struct {
				PID string `json:"pid"`
			}
			if i := bytes.IndexByte(f, '{'); i >= 0 && json.Unmarshal(f[i:], &answer) == nil {
				c.PID = answer.PID
			}
			return early, nil
		case KindConnectError:
			return nil, fmt.Errorf("%w: %s", ErrConnectRefused, clip(f))
		case KindPing:
			if err := c.Write([]byte("3")); err != nil {
				return nil, fmt.Errorf("answer a ping: %w", err)
			}
		case KindClose, KindDisconnect:
			return nil, fmt.Errorf("server closed during the handshake: %q", clip(f))
		case KindEvent:
			early = append(early, bytes.Clone(f))
		}
	}
}

// next reads one data frame into c.buf (or, long-polling, one packet of
// the last answer); the slice is valid until the next call.
func (c *Conn) next() ([]byte, error) {
	if c.poll != nil {
		return c.poll.next()
	}
	for {
		mt, r, err := c.ws.NextReader()
		if err != nil {
			return nil, err
		}
		b := c.buf[:0]
		for {
			if len(b) == cap(b) {
				b = append(b, 0)[:len(b)]
			}
			n, err := r.Read(b[len(b):cap(b)])
			b = b[:len(b)+n]
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, err
			}
		}
		c.buf = b
		if mt == websocket.TextMessage {
			return b, nil
		}
	}
}

// Serve reads frames until the connection ends, answers pings, and hands
// every other text frame to fn (the slice is valid only during the call).
// It returns the error that ended the connection.
func (c *Conn) Serve(fn func(frame []byte)) error {
	for {
		f, err := c.next()
		if err != nil {
			return err
		}
		if len(f) == 1 && f[0] == '2' {
			if err := c.Write([]byte("3")); err != nil {
				return err
			}
			continue
		}
		fn(f)
	}
}

// writeTimeout bounds one frame write, so a stalled server cannot block a
// sender for ever.
const writeTimeout = 10 * time.Second

// Write sends one text frame (an Engine.IO packet).
func (c *Conn) Write(frame []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.poll != nil {
		return c.poll.post(frame)
	}
	_ = c.ws.SetWriteDeadline(time.Now().Add(writeTimeout))
	return c.ws.WriteMessage(websocket.TextMessage, frame)
}

// Close closes the connection: with a WebSocket close frame when the
// server still reads, or, long-polling, with Engine.IO's close packet; a
// GET still waiting is cancelled.
func (c *Conn) Close() error {
	if c.poll != nil {
		c.wmu.Lock()
		err := c.poll.post([]byte("1"))
		c.wmu.Unlock()
		c.poll.end()
		return err
	}
	_ = c.ws.WriteControl(websocket.CloseMessage,
		websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	return c.ws.Close()
}

// polling is the long-polling transport of a Conn.
type polling struct {
	client *http.Client
	url    string
	// ctx bounds the requests: the handshake's timeout, then life, which
	// Close ends.
	ctx  context.Context
	life context.Context
	end  context.CancelFunc
	// queue holds the packets of the last GET not handed out yet; closed
	// says that one of them was the server's close packet.
	queue  [][]byte
	closed bool
}

// next returns the next packet the server sent, polling when none is
// left; io.EOF once the server closed the session.
func (p *polling) next() ([]byte, error) {
	for len(p.queue) == 0 {
		if p.closed {
			return nil, io.EOF
		}
		req, err := http.NewRequestWithContext(p.ctx, http.MethodGet, p.url, nil)
		if err != nil {
			return nil, err
		}
		res, err := p.client.Do(req)
		if err != nil {
			return nil, err
		}
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil {
			return nil, err
		}
		if res.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("GET %s: %s %s", p.url, res.Status, clip(bytes.TrimSpace(body)))
		}
		for _, f := range bytes.Split(body, []byte{0x1e}) {
			switch Classify(f) {
			case KindNoop:
			case KindClose:
				p.closed = true
			default:
				p.queue = append(p.queue, f)
			}
		}
	}
	f := p.queue[0]
	p.queue = p.queue[1:]
	return f, nil
}

// post sends one packet.
func (p *polling) post(frame []byte) error {
	ctx, cancel := context.WithTimeout(p.life, writeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(frame))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	res, err := p.client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s: %s", p.url, res.Status)
	}
	return nil
}

func clip(b []byte) string {
	if len(b) > 120 {
		return string(b[:120]) + "..."
	}
	return string(b)
}
