// Package engine is the chat server's own Engine.IO v4 and Socket.IO v5
// session layer: long-polling, WebSocket and the upgrade between them,
// heartbeats, limits, namespaces with their CONNECT and auth,
// acknowledgements, binary attachments and connection-state recovery ids.
// It knows nothing of the chat: a Handler receives connects, events and
// disconnects, and sends pre-encoded frames. zishang520's parsers decode
// and encode the packets (parsers/engine for polling payloads,
// parsers/socket for Socket.IO packets); everything per connection is
// ours.
//
// Why our own: the library keeps, per connection, event emitters and
// concurrent maps on each of its objects (socket, client, engine socket,
// transport, WebSocket connection, HTTP context), the upgrade request, and
// two parked goroutines: 32 KB of RSS and 2 goroutines per idle WebSocket
// where Node's socket.io takes 17.5 KB. Here an idle WebSocket is a
// Session and a wsConn, about 460 bytes of structs plus the descriptor,
// and no goroutine: 2.2 to 3.1 KB of RSS (the performance record in
// scripts/bench/README.md has the runs).
//
// How a frame travels:
//
//	in:  socket ─epoll (a few loops)─▶ shared 64 KB read buffer ─parse─▶ control frames
//	     answered on the loop; Engine.IO pings/pongs handled there; a message
//	     copied into its session's inbox ─▶ worker pool (one session at a time,
//	     in order) ─▶ Socket.IO decode ─▶ Handler; a session with nothing
//	     waiting is decoded on the loop, and an event that Options.Inline says
//	     never waits is handled there too (anything else goes to a worker)
//	out: Handler builds a Frame once (EventFrame) ─▶ Socket.Send on every
//	     recipient: written by the sender at once when nothing was queued,
//	     for a frame's first 16 recipients (a small room, an ack: no
//	     goroutine switch; what the socket does not take is queued); else
//	     appended to its queue, whose flusher (one per core) writes all that
//	     is queued for the connection with one writev
//
// Guarantees:
//   - Order: a session's packets reach the Handler in the order the client
//     sent them, over polling, WebSocket and across the upgrade; what the
//     server sends a session leaves in the order it was queued (what was
//     queued for polling goes first on the upgraded WebSocket).
//   - No delay on the way out: a frame for a connection whose queue is
//     empty is written at once, by its sender (the first 16 recipients of
//     a frame) or as soon as its flusher runs; frames queued while a
//     flusher is busy go out together in its next writev. That is the only
//     coalescing. What a socket leaves of a write waits for EPOLLOUT when
//     the socket buffer is full, and goes back to the flusher when it took
//     part of it (a short write raises no EPOLLOUT).
//   - Nothing per idle connection: no goroutine and no buffer. A split frame
//     keeps its start in a buffer of its own until it is whole; a long-poll
//     GET holds net/http's goroutine while it waits.
//   - Bounded: a WebSocket message or polling body over MaxPayload closes
//     the session (1009 on WebSocket, 413 on polling, counted); a slow
//     reader's queue over SendQueueLimit for a second, or ten times it,
//     closes it (counted once); a client whose messages wait for the workers
//     past InboxLimit is not read until they are handled; sessions per node
//     and per address are reserved before the session exists.
//   - No worker waits on the outside for a CONNECT: a decision that may
//     wait (Hello.Async) runs on a goroutine of its own, its session's
//     later packets held in order meanwhile (one such goroutine per
//     session at most).
//   - Protocol faults close only the faulty session (RFC 6455 close codes
//     1002 and 1007, Engine.IO and Socket.IO parse errors as Node closes
//     them); a Handler panic is recovered, logged and counted.
//   - Close answers no new session, closes every session ("server shutting
//     down", 1001 on WebSocket) and returns once the Handler has seen every
//     Disconnect, so every event received before was handled.
//
// Linux is the target (epoll, edge-triggered, on descriptors taken over
// from net/http after the handshake). Elsewhere, and with the build tag
// engine_portable, a portable path reads each WebSocket with a goroutine
// of its own: correct, not lean.
package engine
