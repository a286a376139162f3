//go:build outage

package main

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Redis outages, without waiting on real restarts: the nodes reach the
// real Redis through a TCP proxy inside the test, which cuts every
// connection and refuses new ones for the length of a cut.
//
// Each cut checks: same-node delivery keeps its latency (p99 under 50 ms)
// and its CPU stays low; /readyz marks Redis down; after the cut,
// delivery across nodes resumes by itself; in streams mode nothing sent
// during the cut is lost across nodes; every message is stored once by the
// node that accepted it. After all cuts, goroutines and heap are back near
// where they started.
//
// It measures latency and CPU, so it runs in scripts/test's serial
// `outage` stage (build tag outage), not beside other packages' tests.
// Its two modes run side by side (each with its own proxy, nodes and key
// prefix): the cuts are light, and the thresholds hold with both at once.
func TestRedisOutage(t *testing.T) {
	cuts, cutFor := 5, 10*time.Second
	if n, err := strconv.Atoi(getenv("REDIS_OUTAGE_CUTS", "")); err == nil && n > 0 {
		cuts = n // the soak script asks for more
	}
	for _, mode := range []string{"sharded", "streams"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			target := strings.TrimPrefix(redisURL(t), "redis://")
			proxy := newTCPProxy(t, target)
			keyPrefix := prefix(t)
			env := []string{"REDIS_URL=redis://" + proxy.addr, "REDIS_ADAPTER_MODE=" + mode, "REDIS_KEY_PREFIX=" + keyPrefix,
				"RATE_LIMIT_PER_SEC=0", "HISTORY_LIMIT=0", "REDIS_REQUEST_TIMEOUT=1s"}
			a := startBinary(t, plainBinary, "", env...)
			b := startBinary(t, plainBinary, "", env...)
			for _, p := range []*proc{a, b} {
				p.awaitServers(2)
			}
			sender, local, remote := dialSIO(t, a.URL, "websocket"), dialSIO(t, a.URL, "websocket"), dialSIO(t, b.URL, "websocket")
			time.Sleep(300 * time.Millisecond)
			// Warm up, then take the baseline.
			probe(t, sender, local, remote, "warm-up")
			startGoroutines := []float64{a.metric(t, "go_goroutines"), b.metric(t, "go_goroutines")}
			startHeap := []float64{a.metric(t, "go_memstats_heap_inuse_bytes"), b.metric(t, "go_memstats_heap_inuse_bytes")}

			sent := 0
			var allLat []time.Duration // same-node latencies of every cut
			for cut := range cuts {
				proxy.cut()
				cpuA, cpuB := cpuSeconds(t, a.cmd.Process.Pid), cpuSeconds(t, b.cmd.Process.Pid)
				began := time.Now()
				var lat []time.Duration
				var during []string
				for time.Since(began) < cutFor {
					text := fmt.Sprintf("cut %d #%d", cut, len(during))
					t0 := time.Now()
					sender.emit(`{"message":"` + text + `","username":"a"}`)
					if m := local.message(); m.Message != text {
						t.Fatalf("same node during the cut: got %q, want %q", m.Message, text)
					}
					lat = append(lat, time.Since(t0))
					if m := sender.message(); m.Message != text {
						t.Fatalf("sender: got %q", m.Message)
					}
					during = append(during, text)
					time.Sleep(50 * time.Millisecond)
				}
				elapsed := time.Since(began).Seconds()
				usedA := (cpuSeconds(t, a.cmd.Process.Pid) - cpuA) / elapsed
				usedB := (cpuSeconds(t, b.cmd.Process.Pid) - cpuB) / elapsed
				var ready struct {
					Checks map[string]struct{ Status string }
				}
				a.getJSON(t, "/readyz", &ready)
				if ready.Checks["redis"].Status != "down" {
					t.Errorf("cut %d: /readyz says redis is %q during the cut", cut, ready.Checks["redis"].Status)
				}
				proxy.restore()
				allLat = append(allLat, lat...)
				slices.Sort(lat)
				t.Logf("cut %d: %d messages on the same node during the cut, p99 %v; CPU %.3f and %.3f cores",
					cut, len(during), lat[len(lat)*99/100], usedA, usedB)
				if usedA > 0.25 || usedB > 0.25 {
					t.Errorf("cut %d: CPU %.2f / %.2f cores during the outage, want it low", cut, usedA, usedB)
				}
				sent += len(during)
				// Across nodes: the messages of the cut (streams mode keeps
				// them all), then live ones again.
				deadline := time.After(30 * time.Second)
				got := map[string]bool{}
				after := fmt.Sprintf("after cut %d", cut)
				afterSent := false
				var arrived atomic.Bool
				resent := make(chan struct{})
				for !got[after] {
					if !afterSent && (mode == "sharded" || len(got) == len(during)) {
						// Give the nodes a moment to subscribe again, then
						// send until one gets across.
						go func() {
							defer close(resent)
							for i := 0; i < 300 && !arrived.Load(); i++ {
								sender.emit(`{"message":"` + after + `","username":"a"}`)
								time.Sleep(100 * time.Millisecond)
							}
						}()
						afterSent = true
					}
					select {
					case f := <-remote.frames:
						if strings.HasPrefix(f, `2["message",`) {
							got[toWire(mustEvent(f)).Message] = true
							arrived.Store(got[after])
						}
					case <-deadline:
						t.Fatalf("cut %d: delivery across nodes did not resume (%d of the cut's %d arrived)", cut, len(got), len(during))
					}
				}
				if mode == "streams" {
					for _, text := range during {
						if !got[text] {
							t.Errorf("cut %d: %q was lost across nodes in streams mode", cut, text)
						}
					}
				}
				// The resender may have sent one more "after" before it saw
				// the arrival: let it stop and its last one land on every
				// client, or the next cut reads it in place of its own.
				<-resent
				time.Sleep(300 * time.Millisecond)
				drain(sender)
				drain(local)
				drain(remote)
			}
			slices.Sort(allLat)
			if p99 := allLat[len(allLat)*99/100]; p99 > 50*time.Millisecond {
				t.Errorf("same-node p99 %v over %d messages sent during %d outages, want under 50 ms", p99, len(allLat), cuts)
			} else {
				t.Logf("same-node p99 %v over %d messages sent during %d outages", p99, len(allLat), cuts)
			}
			// Stored once each by the accepting node.
			var page struct{ Messages []wire }
			a.getJSON(t, "/api/messages?limit=200", &page)
			count := map[string]int{}
			for _, m := range page.Messages {
				count[m.Message]++
			}
			for text, n := range count {
				if strings.HasPrefix(text, "cut ") && n != 1 {
					t.Errorf("%q stored %d times", text, n)
				}
			}
			time.Sleep(2 * time.Second)
			endGoroutines := []float64{a.metric(t, "go_goroutines"), b.metric(t, "go_goroutines")}
			endHeap := []float64{a.metric(t, "go_memstats_heap_inuse_bytes"), b.metric(t, "go_memstats_heap_inuse_bytes")}
			t.Logf("goroutines before %v after %v; heap in use before %v after %v (%d cuts, %d messages)",
				startGoroutines, endGoroutines, startHeap, endHeap, cuts, sent)
			for i := range endGoroutines {
				if endGoroutines[i] > startGoroutines[i]+15 {
					t.Errorf("node %d: goroutines grew from %v to %v across %d outages", i, startGoroutines[i], endGoroutines[i], cuts)
				}
				if endHeap[i] > 2*startHeap[i]+8<<20 {
					t.Errorf("node %d: heap in use grew from %.0f to %.0f bytes across %d outages", i, startHeap[i], endHeap[i], cuts)
				}
			}
		})
	}
}

// probe sends one message and waits until both clients have it.
func probe(t *testing.T, sender, local, remote *sio, text string) {
	t.Helper()
	sender.emit(`{"message":"` + text + `","username":"probe"}`)
	for _, c := range []*sio{sender, local, remote} {
		if m := c.message(); m.Message != text {
			t.Fatalf("probe: got %q", m.Message)
		}
	}
}

// drain forgets the packets a client has received so far.
func drain(c *sio) {
	for {
		select {
		case <-c.frames:
		default:
			return
		}
	}
}

// cpuSeconds is the user+system CPU time of process pid.
func cpuSeconds(t *testing.T, pid int) float64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b)[strings.LastIndexByte(string(b), ')')+2:])
	u, _ := strconv.ParseFloat(f[11], 64)
	s, _ := strconv.ParseFloat(f[12], 64)
	return (u + s) / 100 // USER_HZ
}

func getenv(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
