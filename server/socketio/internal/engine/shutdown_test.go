package engine

import (
	"context"
	"errors"
	"net"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
)

// An engine closed while WebSocket handshakes are answered leaves no
// connection open: each one taken over before the close is closed by it,
// each one answered after it is refused and its socket closed. (A takeover
// that ran beside the loop's close once registered a descriptor after the
// loop's last pass, and raced the loop for it: -race saw it in CI.)
func TestCloseWhileWebSocketsAreTakenOver(t *testing.T) {
	for round := range 12 {
		e, err := New(Options{Handler: &echo{}, Registerer: prometheus.NewRegistry()})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(e)
		u := "ws" + strings.TrimPrefix(srv.URL, "http") + e.o.Path + "?EIO=4&transport=websocket"
		conns := make(chan *websocket.Conn, 40)
		opened := make(chan struct{}, cap(conns))
		var wg sync.WaitGroup
		for range cap(conns) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if c, _, err := websocket.DefaultDialer.Dial(u, nil); err == nil {
					conns <- c
					opened <- struct{}{}
				}
			}()
		}
		// Each round closes the engine at another point of the handshakes:
		// right after a client read its open packet (the server may not
		// have taken that connection over yet), others still dialing.
		for range round * 3 {
			select {
			case <-opened:
			case <-time.After(10 * time.Second):
				t.Fatalf("round %d: the handshakes do not complete", round)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		if err := e.Close(ctx); err != nil {
			t.Errorf("round %d: engine close: %v", round, err)
		}
		cancel()
		wg.Wait()
		close(conns)
		open := 0
		for c := range conns {
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			for {
				_, _, err := c.ReadMessage()
				if err == nil {
					continue // the open packet, or what came before the close
				}
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					open++
				}
				break
			}
			_ = c.Close()
		}
		srv.Close()
		if open > 0 {
			t.Fatalf("round %d: %d WebSocket connections stayed open 5 s after the engine closed", round, open)
		}
	}
}
