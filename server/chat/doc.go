// Package chat is the domain of the chat server: the message, its limits and
// validation, the accept flow that turns a client's event into a broadcast
// and a durable record, and the interfaces its engines implement.
//
// The package imports nothing of the project. Engines live at the edge:
//
//   - Fanout delivers an Event (a message, or another event clients
//     receive) to every connected client on every node, once, keeping each
//     sender's order (in-memory, or through Redis).
//   - Log makes an accepted message durable exactly once (a direct batch
//     writer to the Store, or a Kafka producer).
//   - Store keeps messages, idempotently by id, and pages through them
//     newest first (SQLite, or PostgreSQL with the Prisma schema).
//
// A message acknowledged to its sender is durable: the acknowledgement
// waits for the Log's durability callback. A message sent without an
// acknowledgement is best effort; any loss the server can see is counted.
package chat
