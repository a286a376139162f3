package socketio

import (
	"sync"
	"time"

	engine "github.com/zishang520/socket.io/servers/engine/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// connectGateTimeout bounds how long a client's packets wait for its
// namespace connection to be registered.
const connectGateTimeout = 5 * time.Second

// connectGate works around a race of the library (v3.0.6): it writes the
// namespace CONNECT answer to the client before it registers the socket in
// its client's namespace table (Client.doConnect after Socket._onconnect).
// A client that emits at once after the answer can reach the server in
// between; the library then takes the packet for one of an unknown
// namespace and closes the connection. Node's single thread has no such
// window.
//
// The gate runs first among an Engine.IO socket's "data" listeners: once a
// CONNECT packet went through, the client's next packets wait (in their
// reading goroutine, at most connectGateTimeout) until the edge's
// connection handler ran, which happens right after the registration.
type connectGate struct {
	mu         sync.Mutex
	connecting bool
	open       chan struct{}
	once       sync.Once
}

func (g *connectGate) release() { g.once.Do(func() { close(g.open) }) }

// onData is the gate's "data" listener.
func (g *connectGate) onData(args ...any) {
	select {
	case <-g.open:
		return
	default:
	}
	if len(args) == 0 {
		return
	}
	buf, ok := args[0].(types.BufferInterface)
	if !ok {
		return
	}
	first, err := buf.Peek(1)
	if err != nil || len(first) == 0 {
		return
	}
	g.mu.Lock()
	if first[0] == '0' { // a Socket.IO CONNECT packet: let it through
		g.connecting = true
		g.mu.Unlock()
		return
	}
	connecting := g.connecting
	g.mu.Unlock()
	if !connecting {
		return
	}
	select {
	case <-g.open:
	case <-time.After(connectGateTimeout):
	}
}

// installGate puts a gate in front of the socket.io client's "data"
// listener on es.
func (s *Server) installGate(es engine.Socket) {
	g := &connectGate{open: make(chan struct{})}
	existing := es.Listeners("data")
	es.RemoveAllListeners("data")
	_ = es.On("data", g.onData)
	_ = es.On("data", existing...)
	s.gates.Store(es.Id(), g)
	_ = es.Once("close", func(...any) {
		g.release()
		s.gates.Delete(es.Id())
	})
}

// openGate lets the packets of the Engine.IO session id through.
func (s *Server) openGate(id string) {
	if g, ok := s.gates.Load(id); ok {
		g.(*connectGate).release()
	}
}
