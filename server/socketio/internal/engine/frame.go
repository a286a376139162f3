package engine

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sync/atomic"

	"github.com/zishang520/socket.io/parsers/socket/v3/parser"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// WebSocket opcodes (RFC 6455 section 5.2).
const (
	opContinuation byte = 0x0
	opText         byte = 0x1
	opBinary       byte = 0x2
	opClose        byte = 0x8
	opPing         byte = 0x9
	opPong         byte = 0xA
)

// WebSocket close codes (RFC 6455 section 7.4.1).
const (
	closeNormal        = 1000
	closeGoingAway     = 1001
	closeProtocol      = 1002
	closeInvalidData   = 1007
	closeTooBig        = 1009
	closeInternalError = 1011
)

// Engine.IO v4 packet types, as their wire byte.
const (
	eioOpen    byte = '0'
	eioClose   byte = '1'
	eioPing    byte = '2'
	eioPong    byte = '3'
	eioMessage byte = '4'
	eioUpgrade byte = '5'
	eioNoop    byte = '6'
)

// recordSeparator separates packets in a long-polling payload.
const recordSeparator = 0x1e

// Frame is one Engine.IO packet encoded once for every transport, so that
// a broadcast is encoded once and the same bytes are queued for each
// recipient. It is immutable once built and safe to share.
type Frame struct {
	// ws is the unmasked, final WebSocket frame; ws[hdr:] is the packet.
	ws  []byte
	hdr int
	// poll is the packet as it goes in a long-polling payload: the same
	// bytes for text packets, "b" and base64 for binary ones.
	poll []byte
	// next are the binary attachments of a Socket.IO packet, sent right
	// after it.
	next []*Frame
	// direct counts the recipients whose sender wrote it to them itself
	// (see DirectFanout).
	direct atomic.Int32
}

// newTextFrame builds the frame of a text Engine.IO packet: typ, then
// payload.
func newTextFrame(typ byte, payload []byte) *Frame {
	ws, hdr := buildWSFrame(opText, typ, payload)
	return &Frame{ws: ws, hdr: hdr, poll: ws[hdr:]}
}

// newBinaryFrame builds the frame of a binary Engine.IO message.
func newBinaryFrame(data []byte) *Frame {
	ws, hdr := buildWSFrame(opBinary, 0, data)
	poll := make([]byte, 1+base64.StdEncoding.EncodedLen(len(data)))
	poll[0] = 'b'
	base64.StdEncoding.Encode(poll[1:], data)
	return &Frame{ws: ws, hdr: hdr, poll: poll}
}

// buildWSFrame returns an unmasked, final WebSocket frame carrying
// prefix+payload (prefix 0: none), and the length of its header. A
// server's frames are never masked.
func buildWSFrame(op, prefix byte, payload []byte) ([]byte, int) {
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
	return f, hdr
}

// closeFrame builds a WebSocket close frame with code.
func closeFrame(code int) []byte {
	f, _ := buildWSFrame(opClose, 0, []byte{byte(code >> 8), byte(code)})
	return f
}

// Frames every session shares.
var (
	framePing  = newTextFrame(eioPing, nil)
	frameProbe = newTextFrame(eioPong, []byte("probe"))
	frameNoop  = newTextFrame(eioNoop, nil)
	frameClose = newTextFrame(eioClose, nil)
)

// EventFrame encodes a Socket.IO EVENT packet for namespace "/": the event
// name and its arguments, JSON-encoded ([]byte arguments become binary
// attachments). Build it once and send it to every recipient.
func EventFrame(name string, args ...any) (*Frame, error) {
	return encodePacket(&parser.Packet{Type: parser.EVENT, Nsp: "/", Data: append([]any{name}, args...)})
}

// MustEventFrame is EventFrame for arguments known to encode; it panics
// otherwise (a programming error).
func MustEventFrame(name string, args ...any) *Frame {
	f, err := EventFrame(name, args...)
	if err != nil {
		panic(err)
	}
	return f
}

// encodePacket encodes a Socket.IO packet with zishang520's encoder into an
// Engine.IO message frame, with its binary attachments.
func encodePacket(p *parser.Packet) (*Frame, error) {
	if p.Data != nil {
		// The library's encoder drops data it cannot marshal silently:
		// check first, and report.
		if _, err := json.Marshal(p.Data); err != nil {
			return nil, fmt.Errorf("encode %s packet: %w", p.Type, err)
		}
	}
	bufs := parser.NewEncoder().Encode(p)
	if len(bufs) == 0 {
		return nil, fmt.Errorf("encode %s packet: nothing encoded", p.Type)
	}
	f := newTextFrame(eioMessage, bufs[0].Bytes())
	for _, b := range bufs[1:] {
		f.next = append(f.next, newBinaryFrame(b.Bytes()))
	}
	return f, nil
}

// errorPayload is the data of a CONNECT_ERROR packet, as Node sends it.
type errorPayload struct {
	Message string `json:"message"`
	Data    any    `json:"data,omitempty"`
}

// connectFrame is the answer to a CONNECT: {sid} or {sid, pid}.
func connectFrame(nsp, sid, pid string) *Frame {
	data := map[string]any{"sid": sid}
	if pid != "" {
		data["pid"] = pid
	}
	f, _ := encodePacket(&parser.Packet{Type: parser.CONNECT, Nsp: nsp, Data: data})
	return f
}

// connectErrorFrame refuses a CONNECT.
func connectErrorFrame(nsp, message string, data any) *Frame {
	f, err := encodePacket(&parser.Packet{Type: parser.CONNECT_ERROR, Nsp: nsp, Data: errorPayload{Message: message, Data: data}})
	if err != nil {
		f, _ = encodePacket(&parser.Packet{Type: parser.CONNECT_ERROR, Nsp: nsp, Data: errorPayload{Message: message}})
	}
	return f
}

// disconnectFrame is the server's namespace DISCONNECT.
func disconnectFrame(nsp string) *Frame {
	f, _ := encodePacket(&parser.Packet{Type: parser.DISCONNECT, Nsp: nsp})
	return f
}

// ackFrame answers an event's acknowledgement id with args.
func ackFrame(nsp string, id uint64, args []any) (*Frame, error) {
	if args == nil {
		args = []any{}
	}
	return encodePacket(&parser.Packet{Type: parser.ACK, Nsp: nsp, Id: &id, Data: args})
}

// openPayload is the Engine.IO handshake.
type openPayload struct {
	SID          string   `json:"sid"`
	Upgrades     []string `json:"upgrades"`
	PingInterval int64    `json:"pingInterval"`
	PingTimeout  int64    `json:"pingTimeout"`
	MaxPayload   int64    `json:"maxPayload"`
}

func (e *Engine) openFrame(sid string, upgrades []string) *Frame {
	b, _ := json.Marshal(openPayload{
		SID:          sid,
		Upgrades:     upgrades,
		PingInterval: e.o.PingInterval.Milliseconds(),
		PingTimeout:  e.o.PingTimeout.Milliseconds(),
		MaxPayload:   e.o.MaxPayload,
	})
	return newTextFrame(eioOpen, b)
}

// bufferOf wraps an Engine.IO message for zishang520's Socket.IO decoder.
func bufferOf(data []byte, binary bool) any {
	if binary {
		return data
	}
	return types.NewStringBuffer(data)
}
