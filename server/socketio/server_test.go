package socketio

import (
	"strings"
	"testing"
	"time"

	"github.com/scalable-chat-go/server/chat"
	"github.com/scalable-chat-go/server/hub"
	"github.com/scalable-chat-go/server/inmem"
)

// New refuses options without which the edge cannot run, naming them.
func TestNewRefuses(t *testing.T) {
	h, err := hub.New(hub.Options{
		Broker: inmem.NewBus().Broker(inmem.BrokerOptions{}), Encoder: NewEncoder(chat.AuthOff, 0),
		History:          globalHistory(chat.NewHistory(nil, 10)),
		PresenceInterval: time.Hour, TypingTimeout: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	accepter := failingAccepter{}
	for _, tt := range []struct {
		o    Options
		want string
	}{
		{Options{Accepter: accepter, SweepInterval: time.Second}, "Options.Hub"},
		{Options{Hub: h, SweepInterval: time.Second}, "Options.Accepter"},
		{Options{Hub: h, Accepter: accepter}, "Options.SweepInterval"},
		{Options{Hub: h, Accepter: accepter, SweepInterval: -time.Second}, "Options.SweepInterval"},
		{Options{Hub: h, Accepter: accepter, SweepInterval: time.Second, CORSOrigins: []string{"example.com"}}, "CORS_ORIGINS"},
	} {
		if s, err := New(tt.o); err == nil || !strings.Contains(err.Error(), tt.want) {
			if s != nil {
				t.Cleanup(func() { _ = s.Close(t.Context()) })
			}
			t.Errorf("New(%+v) = %v, want an error naming %s", tt.o, err, tt.want)
		}
	}
}

// Close disconnects every client, whose socket may be recovered, and
// stops the edge: no new session is taken.
func TestClose(t *testing.T) {
	e := startEdge(t, setup{Options: Options{RecoveryWindow: time.Minute}})
	a, _ := e.join(nil)
	b, _ := e.join(nil)
	a.send("a", "before the close")
	b.message()
	e.close()
	a.gone()
	b.gone()
	if n := e.Connections(); n != 0 {
		t.Fatalf("Connections() = %d after Close, want 0", n)
	}
	if _, res, err := wsDial(e.url, nil); err == nil {
		t.Fatal("a WebSocket handshake was taken after Close")
	} else if res != nil && res.StatusCode < 400 {
		t.Fatalf("a handshake after Close: %s", res.Status)
	}
}

// Close may be called again (a deferred Close after an explicit one): it
// returns the first call's result instead of closing the engine twice.
func TestCloseTwice(t *testing.T) {
	e := startEdge(t, setup{})
	e.join(nil)
	for i := range 2 {
		if err := e.Server.Close(t.Context()); err != nil {
			t.Fatalf("Close #%d: %v", i+1, err)
		}
	}
}
