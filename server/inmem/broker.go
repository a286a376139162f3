// Package inmem provides the chat's cluster engines in memory: a Broker
// and a Presence for nodes that share one process. A node that runs alone
// uses them with a bus of its own (its broker publishes to no one); tests
// put several nodes on one bus to run a cluster without Redis.
package inmem

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"

	"github.com/scalable-chat-go/server/chat"
)

// Bus links the in-memory brokers and presences of one process.
type Bus struct {
	mu    sync.Mutex
	nodes []*Broker // running, in the order they ran

	pmu   sync.Mutex
	views map[string]map[*Presence]view // room -> node -> view
}

// NewBus returns an empty bus.
func NewBus() *Bus { return &Bus{views: make(map[string]map[*Presence]view)} }

// BrokerOptions configure a Broker. Zero fields take their defaults.
type BrokerOptions struct {
	// Buffer bounds the events waiting for this node's handlers (default
	// 10,000); past it an event for this node is dropped, counted
	// (Dropped) and logged.
	Buffer int
	// SocketsLimit is the most sockets of one namespace a node lists to
	// the others (default 10,000).
	SocketsLimit int
	Logger       *slog.Logger
}

// Broker is a node on a Bus: a chat.Broker and chat.Directory.
//
// Guarantees (see chat.Broker): what a node publishes is handed, in
// order, to every other running node's queue, and each node's handlers
// take their queue in order from one goroutine. An event's data arrives
// as it would from Redis: encoded to JSON and decoded again, so a handler
// sees maps where the publisher had structs. Publishing never blocks: a
// node whose queue is full loses the event, counted and logged. Nothing
// is lost otherwise.
type Broker struct {
	bus *Bus
	o   BrokerOptions

	events  []chat.BrokerEventHandler
	control []chat.ControlEventHandler
	dir     chat.DirectoryHandler

	mu      sync.Mutex
	running bool
	closed  bool
	queue   chan func()
	done    chan struct{}
	dropped int
}

var (
	_ chat.Broker    = (*Broker)(nil)
	_ chat.Directory = (*Broker)(nil)
)

// Broker returns a new node of the bus. It receives nothing before Run.
func (b *Bus) Broker(o BrokerOptions) *Broker {
	if o.Buffer <= 0 {
		o.Buffer = 10_000
	}
	if o.SocketsLimit <= 0 {
		o.SocketsLimit = 10_000
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Broker{bus: b, o: o, queue: make(chan func(), o.Buffer), done: make(chan struct{})}
}

// RegisterEventHandler adds a receiver of the other nodes' events (before
// Run).
func (n *Broker) RegisterEventHandler(h chat.BrokerEventHandler) { n.events = append(n.events, h) }

// RegisterControlHandler adds a receiver of the other nodes' control
// events (before Run).
func (n *Broker) RegisterControlHandler(h chat.ControlEventHandler) {
	n.control = append(n.control, h)
}

// RegisterDirectoryHandler sets what answers the other nodes' socket
// requests (before Run).
func (n *Broker) RegisterDirectoryHandler(h chat.DirectoryHandler) { n.dir = h }

// Run joins the node to the bus: from now on it receives the others'
// events.
func (n *Broker) Run() error {
	n.mu.Lock()
	if n.running || n.closed {
		n.mu.Unlock()
		return errors.New("inmem: the broker ran already")
	}
	n.running = true
	n.mu.Unlock()
	go n.loop()
	n.bus.mu.Lock()
	n.bus.nodes = append(n.bus.nodes, n)
	n.bus.mu.Unlock()
	return nil
}

func (n *Broker) loop() {
	defer close(n.done)
	for fn := range n.queue {
		n.guard(fn)
	}
}

func (n *Broker) guard(fn func()) {
	defer func() {
		if v := recover(); v != nil {
			n.o.Logger.Error("recovered from a panic in a broker handler", "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
		}
	}()
	fn()
}

// others returns the running nodes of the bus but n.
func (n *Broker) others() []*Broker {
	n.bus.mu.Lock()
	defer n.bus.mu.Unlock()
	out := make([]*Broker, 0, len(n.bus.nodes))
	for _, o := range n.bus.nodes {
		if o != n {
			out = append(out, o)
		}
	}
	return out
}

// send queues fn for every other node's handlers.
func (n *Broker) send(others []*Broker, fn func(to *Broker)) {
	for _, to := range others {
		to.enqueue(func() { fn(to) })
	}
}

// enqueue queues fn for n's handlers without blocking.
func (n *Broker) enqueue(fn func()) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return
	}
	select {
	case n.queue <- fn:
	default:
		n.dropped++
		n.o.Logger.Warn("an in-memory broker's queue is full: an event for this node is lost", "limit", n.o.Buffer)
	}
}

// Dropped is how many events for this node were lost to a full queue.
func (n *Broker) Dropped() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.dropped
}

// Publish hands e to the other nodes' handlers, for room. The bus took it
// at once: e.Sent is called before Publish returns.
func (n *Broker) Publish(room string, e chat.Event) {
	if e.Sent != nil {
		defer e.Sent(nil)
	}
	others := n.others()
	if len(others) == 0 {
		return // a node alone: nothing to encode
	}
	e = wired(e)
	n.send(others, func(to *Broker) {
		for _, h := range to.events {
			h.HandlePublication(room, e)
		}
	})
}

// PublishUser hands e to the other nodes' handlers, for userID.
func (n *Broker) PublishUser(userID string, e chat.Event) {
	e = wired(e)
	n.send(n.others(), func(to *Broker) {
		for _, h := range to.events {
			h.HandleUserEvent(userID, e)
		}
	})
}

// PublishControl hands a control event to the other nodes' handlers.
func (n *Broker) PublishControl(e chat.Event) {
	e = wired(e)
	n.send(n.others(), func(to *Broker) {
		for _, h := range to.control {
			h.HandleControl(e)
		}
	})
}

// Subscribe does nothing: the bus hands every room's events to every node
// in the process, which costs no network, and the hubs drop the rooms
// they have no member in.
func (n *Broker) Subscribe(string) {}

// Unsubscribe does nothing (see Subscribe).
func (n *Broker) Unsubscribe(string) {}

// Subscribed returns at once: every room reaches every node.
func (n *Broker) Subscribed(context.Context, string) error { return nil }

// wired is e as another node receives it: its data decoded from JSON, no
// Except (a connection of this node), a copy of its deletion.
func wired(e chat.Event) chat.Event {
	e.Except = ""
	e.Sent = nil
	if e.Data != nil {
		e.Data = roundTrip(e.Data)
	}
	if e.Deletion != nil {
		d := *e.Deletion
		e.Deletion = &d
	}
	return e
}

func roundTrip(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	var out any
	if json.Unmarshal(b, &out) != nil {
		return nil
	}
	return out
}

// Nodes is how many nodes of the bus run.
func (n *Broker) Nodes() int64 {
	n.bus.mu.Lock()
	defer n.bus.mu.Unlock()
	return int64(len(n.bus.nodes))
}

// FetchSockets asks the other nodes for their sockets of nsp.
func (n *Broker) FetchSockets(ctx context.Context, nsp string) ([]chat.SocketInfo, error) {
	var out []chat.SocketInfo
	for _, o := range n.others() {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		if o.dir != nil {
			for _, s := range o.dir.LocalSockets(nsp, o.o.SocketsLimit) {
				out = append(out, roundTripSocket(s))
			}
		}
	}
	return out, nil
}

// roundTripSocket is s as another node receives it.
func roundTripSocket(s chat.SocketInfo) chat.SocketInfo {
	b, err := json.Marshal(s)
	if err != nil {
		return s
	}
	var out chat.SocketInfo
	if json.Unmarshal(b, &out) != nil {
		return s
	}
	return out
}

// DisconnectSockets asks the other nodes to disconnect sockets of nsp.
func (n *Broker) DisconnectSockets(nsp string, closeConn bool, filter string) {
	n.send(n.others(), func(to *Broker) {
		if to.dir != nil {
			to.dir.DisconnectLocal(nsp, closeConn, filter)
		}
	})
}

// PublishAdmin hands an Admin UI event to the other nodes.
func (n *Broker) PublishAdmin(name string, args []any) {
	wire, _ := roundTrip(args).([]any)
	n.send(n.others(), func(to *Broker) {
		if to.dir != nil {
			to.dir.HandleAdmin(name, wire)
		}
	})
}

// Close takes the node off the bus, then lets its handlers take what was
// queued for it until ctx ends.
func (n *Broker) Close(ctx context.Context) error {
	n.bus.mu.Lock()
	for i, o := range n.bus.nodes {
		if o == n {
			n.bus.nodes = append(n.bus.nodes[:i], n.bus.nodes[i+1:]...)
			break
		}
	}
	n.bus.mu.Unlock()
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	running := n.running
	close(n.queue)
	n.mu.Unlock()
	if !running {
		return nil
	}
	select {
	case <-n.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("inmem: events still queued for this node at shutdown: %w", ctx.Err())
	}
}
