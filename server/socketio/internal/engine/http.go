package engine

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/zishang520/socket.io/parsers/engine/v3/packet"
	eioparser "github.com/zishang520/socket.io/parsers/engine/v3/parser"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// Engine.IO error codes, in the JSON body of a refused request (as Node's
// engine.io numbers them; 6 is ours).
const (
	codeTransportUnknown = 0
	codeUnknownSID       = 1
	codeBadHandshake     = 2
	codeBadRequest       = 3
	codeForbidden        = 4
	codeUnsupported      = 5
	codeTooLarge         = 6
)

// ServeHTTP serves Options.Path: long-polling requests, WebSocket
// handshakes (new sessions and upgrades) and CORS preflights.
func (e *Engine) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.URL.Path, e.o.Path) && r.URL.Path != strings.TrimSuffix(e.o.Path, "/") {
		http.NotFound(w, r)
		return
	}
	origin := r.Header.Get("Origin")
	if origin != "" && e.o.AllowOrigin != nil && !e.o.AllowOrigin(origin) {
		e.m.refused.WithLabelValues("origin").Inc()
		writeError(w, http.StatusForbidden, codeForbidden, "origin not allowed")
		return
	}
	e.cors(w.Header(), origin)
	if r.Method == http.MethodOptions {
		h := w.Header()
		h.Set("Access-Control-Allow-Methods", "GET,HEAD,PUT,PATCH,POST,DELETE")
		h.Set("Access-Control-Allow-Headers", "*")
		h.Set("Content-Length", "0")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	q := r.URL.Query()
	if q.Get("EIO") != "4" {
		writeError(w, http.StatusBadRequest, codeUnsupported, "Unsupported protocol version")
		return
	}
	transport := q.Get("transport")
	if transport != "polling" && transport != "websocket" {
		writeError(w, http.StatusBadRequest, codeTransportUnknown, "Transport unknown")
		return
	}
	if q.Has("j") {
		// JSONP polling: no socket.io-client of v3 or later uses it, and its
		// script responses invite content sniffing.
		writeError(w, http.StatusBadRequest, codeBadRequest, "JSONP polling is not supported")
		return
	}
	sid := q.Get("sid")
	upgrade := isWebSocketUpgrade(r)
	if transport == "websocket" {
		if !upgrade {
			writeError(w, http.StatusBadRequest, codeBadRequest, "Bad request")
			return
		}
		e.serveWebSocket(w, r, sid)
		return
	}
	if upgrade {
		writeError(w, http.StatusBadRequest, codeBadRequest, "Bad request")
		return
	}
	if sid == "" {
		if r.Method != http.MethodGet {
			writeError(w, http.StatusBadRequest, codeBadHandshake, "Bad handshake method")
			return
		}
		e.handshakePolling(w, r)
		return
	}
	s := e.lookup(sid)
	if s == nil {
		writeError(w, http.StatusBadRequest, codeUnknownSID, "Session ID unknown")
		return
	}
	switch r.Method {
	case http.MethodGet:
		s.servePoll(w, r)
	case http.MethodPost:
		s.servePost(w, r)
	default:
		writeError(w, http.StatusBadRequest, codeBadRequest, "Bad request")
	}
}

// cors sets the CORS response headers for a request from origin.
func (e *Engine) cors(h http.Header, origin string) {
	if e.o.AllowOrigin == nil || origin == "" {
		h.Set("Access-Control-Allow-Origin", "*")
		return
	}
	h.Set("Access-Control-Allow-Origin", origin)
	h.Add("Vary", "Origin")
}

// writeError refuses a request as Engine.IO does: a JSON body {code,
// message}.
func writeError(w http.ResponseWriter, status, code int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, `{"code":%d,"message":%q}`, code, msg)
}

func (e *Engine) handshakePolling(w http.ResponseWriter, r *http.Request) {
	addr := e.o.ClientAddr(r)
	if status, code, msg := e.reserve(addr); status != 0 {
		writeError(w, status, code, msg)
		return
	}
	s := e.newSession(addr, r, transportPolling)
	if !e.register(s) {
		e.release(addr)
		writeError(w, http.StatusServiceUnavailable, codeUnsupported, "the server is shutting down")
		return
	}
	s.start()
	writePayload(w, []*Frame{e.openFrame(s.id, []string{"websocket"})})
}

// servePoll answers a long-polling GET: what is queued for the client, or,
// when nothing is, once something is (a ping at the latest).
func (s *Session) servePoll(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	switch {
	case s.closed || s.transport != transportPolling:
		s.mu.Unlock()
		writeError(w, http.StatusBadRequest, codeBadRequest, "Bad request")
		return
	case s.pollActive:
		// Two GETs at once: the client is broken, or someone else uses its
		// session id. Node closes the session, and so do we.
		s.mu.Unlock()
		s.close("transport error", 0)
		writeError(w, http.StatusBadRequest, codeBadRequest, "overlapping poll requests")
		return
	}
	s.pollActive = true
	for len(s.pollQ) == 0 && !s.closed && !s.upgrading && s.transport == transportPolling {
		wake := make(chan struct{})
		s.pollWake = wake
		s.mu.Unlock()
		select {
		case <-wake:
			s.mu.Lock()
		case <-r.Context().Done():
			s.mu.Lock()
			s.pollWake = nil
			s.pollActive = false
			s.mu.Unlock()
			// Node closes a session whose poll request is cut: what it was
			// sent next would be lost.
			s.close("transport error", 0)
			return
		}
	}
	frames := s.pollQ
	s.pollQ = nil
	s.pollOver = false
	switch {
	case len(frames) > 0:
	case s.closed:
		frames = []*Frame{s.closeReply}
	default: // upgrading, or upgraded
		frames = []*Frame{frameNoop}
	}
	s.pollActive = false
	s.mu.Unlock()
	writePayload(w, frames)
}

// writePayload writes frames as a long-polling payload.
func writePayload(w http.ResponseWriter, frames []*Frame) {
	n := 0
	for _, f := range frames {
		n += len(f.poll) + 1
		for _, a := range f.next {
			n += len(a.poll) + 1
		}
	}
	body := make([]byte, 0, n)
	add := func(f *Frame) {
		if len(body) > 0 {
			body = append(body, recordSeparator)
		}
		body = append(body, f.poll...)
	}
	for _, f := range frames {
		add(f)
		for _, a := range f.next {
			add(a)
		}
	}
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=UTF-8")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// servePost takes a long-polling payload from the client: all of it is
// read (at most MaxPayload bytes, within BodyTimeout) before any packet is
// handled, so a body over the limit is refused whole.
func (s *Session) servePost(w http.ResponseWriter, r *http.Request) {
	e := s.e
	if r.ContentLength > e.o.MaxPayload {
		s.tooLarge(w)
		return
	}
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(e.o.BodyTimeout))
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, e.o.MaxPayload))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.tooLarge(w)
			return
		}
		e.m.bodyErrors.Inc()
		s.close("transport error", 0)
		writeError(w, http.StatusBadRequest, codeBadRequest, "the request body could not be read")
		return
	}
	s.mu.Lock()
	ok := !s.closed && s.transport == transportPolling
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusBadRequest, codeBadRequest, "Bad request")
		return
	}
	packets, err := eioparser.Parserv4().DecodePayload(types.NewStringBuffer(body))
	if err != nil {
		s.close("parse error", 0)
		writeError(w, http.StatusBadRequest, codeBadRequest, "invalid payload")
		return
	}
	for _, p := range packets {
		if !s.onPollPacket(p) {
			break
		}
	}
	h := w.Header()
	h.Set("Content-Type", "text/html")
	h.Set("Content-Length", "2")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, "ok")
}

// tooLarge refuses a polling body over MaxPayload and closes the session.
func (s *Session) tooLarge(w http.ResponseWriter) {
	s.e.frameTooLarge("polling")
	s.close("transport error", 0)
	w.Header().Set("Connection", "close")
	writeError(w, http.StatusRequestEntityTooLarge, codeTooLarge, "payload too large")
}

// onPollPacket handles one Engine.IO packet of a polling payload; false
// when the session ended.
func (s *Session) onPollPacket(p *packet.Packet) bool {
	var data []byte
	binary := false
	if p.Data != nil {
		if b, ok := p.Data.(types.BufferInterface); ok {
			data = b.Bytes()
			_, text := b.(*types.StringBuffer)
			binary = !text
		}
	}
	switch p.Type {
	case packet.MESSAGE:
		s.deliver(inbound{data: data, binary: binary})
	case packet.PONG:
		s.onPong()
	case packet.NOOP:
	case packet.CLOSE:
		s.close("transport close", 0)
		return false
	default: // a ping (wrong direction in v4), an upgrade over polling, junk
		s.close("parse error", 0)
		return false
	}
	return true
}

func (e *Engine) frameTooLarge(transport string) {
	e.m.tooLarge.Inc()
	e.log.Info("closed a connection that sent a frame over MAX_HTTP_BUFFER_SIZE",
		"transport", transport, "limit", e.o.MaxPayload)
}

// isWebSocketUpgrade reports whether r asks for a WebSocket (RFC 6455 4.1).
func isWebSocketUpgrade(r *http.Request) bool {
	return headerHasToken(r.Header, "Connection", "upgrade") && headerHasToken(r.Header, "Upgrade", "websocket")
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// acceptKey is Sec-WebSocket-Accept for key (RFC 6455 4.2.2).
func acceptKey(key string) string {
	h := sha1.New()
	h.Write([]byte(key))
	h.Write([]byte("258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// switchingProtocols appends the answer that completes the WebSocket
// handshake of key to dst.
func switchingProtocols(dst []byte, key string) []byte {
	dst = append(dst, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "...)
	dst = append(dst, acceptKey(key)...)
	return append(dst, "\r\n\r\n"...)
}

// serveWebSocket completes a WebSocket handshake: a new session (no sid),
// or the probe of an upgrade from long-polling.
func (e *Engine) serveWebSocket(w http.ResponseWriter, r *http.Request, sid string) {
	key := r.Header.Get("Sec-WebSocket-Key")
	if r.Method != http.MethodGet || r.Header.Get("Sec-WebSocket-Version") != "13" || len(key) != 24 {
		w.Header().Set("Sec-WebSocket-Version", "13")
		writeError(w, http.StatusBadRequest, codeBadRequest, "Bad request")
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		writeError(w, http.StatusInternalServerError, codeBadRequest, "the connection cannot be taken over")
		return
	}
	var s *Session
	var addr string
	if sid != "" {
		s = e.lookup(sid)
		if s == nil {
			writeError(w, http.StatusBadRequest, codeUnknownSID, "Session ID unknown")
			return
		}
		if !s.reserveProbe() {
			closeSecondWebSocket(hj, key)
			return
		}
	} else {
		addr = e.o.ClientAddr(r)
		if status, code, msg := e.reserve(addr); status != 0 {
			writeError(w, status, code, msg)
			return
		}
	}
	fail := func() {
		if s != nil {
			s.probeFailed(nil)
		} else {
			e.release(addr)
		}
	}
	nc, rw, err := hj.Hijack()
	if err != nil {
		fail()
		return
	}
	resp := switchingProtocols(make([]byte, 0, 256), key)
	var created *Session
	if s == nil {
		created = e.newSession(addr, r, transportWebSocket)
		resp = append(resp, e.openFrame(created.id, []string{}).ws...)
	}
	_ = nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := nc.Write(resp); err != nil {
		_ = nc.Close()
		fail()
		return
	}
	_ = nc.SetDeadline(time.Time{})
	pre := buffered(rw)
	if created != nil {
		s = created
		if !e.register(s) {
			_ = nc.Close()
			e.release(addr)
			return
		}
		c := e.io.newConn(s)
		s.mu.Lock()
		s.ws = c
		s.mu.Unlock()
		s.start()
		if err := e.io.attach(c, nc, pre); err != nil {
			if !errors.Is(err, errShuttingDown) {
				e.log.Warn("a WebSocket connection could not be taken over", "err", err)
			}
			s.close("transport error", 0)
		}
		return
	}
	c := e.io.newConn(s)
	if !s.probeStarted(c) {
		_ = nc.Close()
		return
	}
	if err := e.io.attach(c, nc, pre); err != nil {
		if !errors.Is(err, errShuttingDown) {
			e.log.Warn("an upgrade's WebSocket connection could not be taken over", "err", err)
		}
		s.probeFailed(c)
	}
}

// closeSecondWebSocket answers a WebSocket for a session that has upgraded
// already, or is upgrading over another one, as Node's engine.io does: the
// handshake succeeds and a close frame without a code follows at once (ws's
// close(); the client sees 1005). A client then sees a closed WebSocket, not
// a failed handshake. The connection stays open until the client answers the
// close or secondWSLinger passes, so it ends with the client's close rather
// than a reset. This runs on net/http's goroutine of the connection, which
// the per-address connection limit still counts until it is closed.
func closeSecondWebSocket(hj http.Hijacker, key string) {
	nc, _, err := hj.Hijack()
	if err != nil {
		return
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(secondWSLinger))
	resp := append(switchingProtocols(make([]byte, 0, 160), key), emptyCloseFrame...)
	if _, err := nc.Write(resp); err != nil {
		return
	}
	if cw, ok := nc.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	// Whatever the client sends now (its close frame) is read and dropped.
	_, _ = io.Copy(io.Discard, io.LimitReader(nc, 4096))
}

// secondWSLinger bounds how long closeSecondWebSocket waits for the
// client's answer to its close.
const secondWSLinger = time.Second

// emptyCloseFrame is a WebSocket close frame without a status code.
var emptyCloseFrame, _ = buildWSFrame(opClose, 0, nil)

// buffered returns what net/http read past the handshake request.
func buffered(rw *bufio.ReadWriter) []byte {
	if rw == nil || rw.Reader.Buffered() == 0 {
		return nil
	}
	b, _ := rw.Reader.Peek(rw.Reader.Buffered())
	return append([]byte(nil), b...)
}
