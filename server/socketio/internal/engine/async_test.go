package engine

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// slowConnects is the echo handler, but a CONNECT whose auth has "slow" is
// decided off the workers (Hello.Async) once gate is closed, and refused
// when its auth has "refuse" too.
type slowConnects struct {
	echo
	gate chan struct{}
}

func (h *slowConnects) Connect(s *Socket, hello *Hello) error {
	if _, slow := hello.Auth["slow"]; !slow {
		return h.echo.Connect(s, hello)
	}
	return hello.Async(func() error {
		<-h.gate
		if _, refuse := hello.Auth["refuse"]; refuse {
			return &ConnectError{Message: "refused later"}
		}
		return h.echo.Connect(s, hello)
	})
}

// A CONNECT decided asynchronously holds no worker: with one worker, other
// sessions connect and chat while it waits; the packets its client sent
// after it are handled once it is answered, in order. (A token check on the
// workers stalled every session of the node while a JWKS fetch hung: issue
// 29.)
func TestAsyncConnectHoldsNoWorker(t *testing.T) {
	h := &slowConnects{gate: make(chan struct{})}
	ts := startEngine(t, quick(Options{Handler: h, Workers: 1}))

	slow := ts.ws("EIO=4&transport=websocket")
	slow.read()
	slow.send(`40{"slow":true}`)
	slow.send(`42["message","sent before the answer"]`)

	other := ts.connectWS()
	other.send(`42["message","while the other waits"]`)
	if m := other.readSkipPings(); m != `42["message-back","while the other waits"]` {
		t.Fatalf("another session while a CONNECT is decided: %q", m)
	}

	close(h.gate)
	if m := slow.readSkipPings(); !strings.HasPrefix(m, "40{") {
		t.Fatalf("the answer %q", m)
	}
	for _, want := range []string{`42["auth",{"slow":true}]`, `42["message-back","sent before the answer"]`} {
		if m := slow.readSkipPings(); m != want {
			t.Fatalf("after the answer: %q, want %q", m, want)
		}
	}

	refused := ts.ws("EIO=4&transport=websocket")
	refused.read()
	refused.send(`40{"slow":true,"refuse":true}`)
	if m := refused.readSkipPings(); m != `44{"message":"refused later"}` {
		t.Fatalf("a refusal decided later: %q", m)
	}
}

// Decisions that end at once (before the worker has left the session) and
// later ones, on many sessions at once: each session gets its answer, then
// its own events, in order. Run with -race.
func TestAsyncConnectOrderUnderLoad(t *testing.T) {
	h := &slowConnects{gate: make(chan struct{})}
	close(h.gate)
	ts := startEngine(t, quick(Options{Handler: h, Workers: 2}))
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := ts.ws("EIO=4&transport=websocket")
			w.read()
			w.send(`40{"slow":true}`)
			for k := range 3 {
				w.send(fmt.Sprintf(`42["message","%d-%d"]`, i, k))
			}
			want := []string{"40{", `42["auth",{"slow":true}]`}
			for k := range 3 {
				want = append(want, fmt.Sprintf(`42["message-back","%d-%d"]`, i, k))
			}
			for _, p := range want {
				if m := w.readSkipPings(); !strings.HasPrefix(m, p) {
					errs <- fmt.Errorf("session %d: %q, want %q", i, m, p)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// A session that closes while its CONNECT is decided is never connected,
// and Close still returns once the decision is made.
func TestAsyncConnectOfAClosedSession(t *testing.T) {
	h := &slowConnects{gate: make(chan struct{})}
	reg := prometheus.NewRegistry()
	e, err := New(quick(Options{Handler: h, Registerer: reg}))
	if err != nil {
		t.Fatal(err)
	}
	srv := newHTTPServer(t, e)
	ts := &tserver{t: t, e: e, srv: srv, url: srv.URL + e.o.Path, reg: reg}
	w := ts.ws("EIO=4&transport=websocket")
	w.read()
	w.send(`40{"slow":true}`)
	eventually(t, time.Second, "the decision under way", func() (bool, string) {
		n := ts.metric("chat_connects_deciding")
		return n == 1, fmt.Sprint(n)
	})
	_ = w.c.Close()
	eventually(t, time.Second, "the session gone", func() (bool, string) {
		n := ts.e.Sessions()
		return n == 0, fmt.Sprint(n)
	})
	time.AfterFunc(100*time.Millisecond, func() { close(h.gate) })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ts.e.Close(ctx); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.connects != 1 || len(h.disconnects) != 0 {
		t.Fatalf("connects %d, disconnects %v: the closed session was connected", h.connects, h.disconnects)
	}
}
