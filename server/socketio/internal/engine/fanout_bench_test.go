//go:build linux

package engine

// Where a delivery's CPU goes: the engine's whole path (queue, flusher,
// writev) beside a bare write(2) of the same frame to the same number of
// loopback connections, in one invocation:
//
//	go test -run '^$' -bench Fanout -benchtime 200x ./socketio/internal/engine/
//
// Each op is one frame to every connection; the figures are per delivery:
// CPU (user and system, from getrusage) and write system calls. The bare
// write is the floor the kernel sets for one syscall per delivery.

import (
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

const benchConns = 500

func rusage() (user, sys time.Duration) {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}

func report(b *testing.B, deliveries int, u0, s0 time.Duration, writes float64) {
	u1, s1 := rusage()
	n := float64(deliveries)
	b.ReportMetric(float64((u1-u0).Nanoseconds())/n/1000, "µs-user/delivery")
	b.ReportMetric(float64((s1-s0).Nanoseconds())/n/1000, "µs-sys/delivery")
	if writes >= 0 {
		b.ReportMetric(writes/n, "writes/delivery")
	}
}

func BenchmarkFanout(b *testing.B) {
	frame := MustEventFrame("message", map[string]any{"message": strings.Repeat("x", 120), "username": "bench"})
	pace := 5 * time.Millisecond // 200 broadcasts a second, like the bench's top rate

	b.Run("bare-write", func(b *testing.B) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		defer ln.Close()
		var server []*net.TCPConn
		var wg sync.WaitGroup
		for range benchConns {
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			s, _ := ln.Accept()
			server = append(server, s.(*net.TCPConn))
			wg.Add(1)
			go func() {
				defer wg.Done()
				buf := make([]byte, 4096)
				for {
					if _, err := c.Read(buf); err != nil {
						return
					}
				}
			}()
		}
		fds := make([]uintptr, len(server))
		for i, s := range server {
			rc, _ := s.SyscallConn()
			_ = rc.Control(func(fd uintptr) { fds[i] = fd })
		}
		b.ResetTimer()
		u0, s0 := rusage()
		for range b.N {
			for _, fd := range fds {
				_, _ = syscall.Write(int(fd), frame.ws)
			}
			time.Sleep(pace)
		}
		report(b, b.N*len(fds), u0, s0, float64(b.N*len(fds)))
		b.StopTimer()
		for _, s := range server {
			s.Close()
		}
		wg.Wait()
	})

	b.Run("engine", func(b *testing.B) {
		var mu sync.Mutex
		var socks []*Socket
		h := &collect{add: func(s *Socket) { mu.Lock(); socks = append(socks, s); mu.Unlock() }}
		ts := startEngine(b, Options{Handler: h})
		u := "ws" + strings.TrimPrefix(ts.url, "http") + "?EIO=4&transport=websocket"
		var wg sync.WaitGroup
		var clients []*websocket.Conn
		for range benchConns {
			c, _, err := websocket.DefaultDialer.Dial(u, nil)
			if err != nil {
				b.Fatal(err)
			}
			clients = append(clients, c)
			_ = c.WriteMessage(websocket.TextMessage, []byte("40"))
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					if _, _, err := c.ReadMessage(); err != nil {
						return
					}
				}
			}()
		}
		for {
			mu.Lock()
			n := len(socks)
			mu.Unlock()
			if n == benchConns {
				break
			}
			time.Sleep(time.Millisecond)
		}
		w0 := ts.metric("chat_ws_writes_total")
		b.ResetTimer()
		u0, s0 := rusage()
		for range b.N {
			for _, s := range socks {
				s.Send(frame)
			}
			time.Sleep(pace)
		}
		report(b, b.N*len(socks), u0, s0, ts.metric("chat_ws_writes_total")-w0)
		b.StopTimer()
		for _, c := range clients {
			c.Close()
		}
		wg.Wait()
	})
}

// collect is a handler that keeps every connected socket.
type collect struct{ add func(*Socket) }

func (h *collect) Connect(*Socket, *Hello) error     { return nil }
func (h *collect) Ready(s *Socket)                   { h.add(s) }
func (h *collect) Event(*Socket, string, []any, Ack) {}
func (h *collect) Disconnect(*Socket, string)        {}
