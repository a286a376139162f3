package main

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scalable-chat-go/server/testkit"
)

// redisURL is the real Redis the cluster tests use (scripts/services).
func redisURL(t *testing.T) string {
	t.Helper()
	return testkit.Service(t, "REDIS_URL", "Redis")
}

// prefix returns a key prefix of the test's own, so that tests running at
// once on one Redis do not hear each other.
func prefix(t *testing.T) string {
	return fmt.Sprintf("t%d%s", time.Now().UnixNano()%1e9, strings.ReplaceAll(t.Name(), "/", "-"))
}

// startCluster starts n nodes sharing Redis at url with the key prefix.
func startCluster(t *testing.T, n int, url, mode, keyPrefix string, env ...string) []*proc {
	t.Helper()
	var nodes []*proc
	for range n {
		nodes = append(nodes, start(t, "", append([]string{
			"REDIS_URL=" + url, "REDIS_ADAPTER_MODE=" + mode, "REDIS_KEY_PREFIX=" + keyPrefix,
			"RATE_LIMIT_PER_SEC=0", "HISTORY_LIMIT=0",
		}, env...)...))
	}
	// Wait until every node sees the others.
	for _, p := range nodes {
		p.awaitServers(n)
	}
	return nodes
}

// fanoutContract is the Fanout contract over real nodes: clients spread
// over the nodes each send a burst; every client receives every message
// exactly once, and each sender's messages in the order sent.
func fanoutContract(t *testing.T, nodes []*proc, perNode, burst int) {
	t.Helper()
	var clients []*sio
	for i, p := range nodes {
		for j := range perNode {
			clients = append(clients, dialSIO(t, p.URL, []string{"websocket", "polling"}[(i+j)%2]))
		}
	}
	time.Sleep(200 * time.Millisecond) // every socket in the live room everywhere
	var wg sync.WaitGroup
	for c, cl := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range burst {
				cl.emit(fmt.Sprintf(`{"message":"%d:%d","username":"c%d"}`, c, k, c))
			}
		}()
	}
	wg.Wait()
	want := len(clients) * burst
	errs := make(chan error, len(clients))
	for r, cl := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			next := make([]int, len(clients))
			seen := map[string]bool{}
			deadline := time.After(60 * time.Second)
			for got := 0; got < want; got++ {
				var f string
				select {
				case f = <-cl.frames:
				case <-deadline:
					errs <- fmt.Errorf("client %d: %d of %d messages", r, got, want)
					return
				}
				if !strings.HasPrefix(f, `2["message",`) {
					got--
					continue
				}
				m := toWire(mustEvent(f))
				if seen[m.ID] {
					errs <- fmt.Errorf("client %d: duplicate %s (%s)", r, m.ID, m.Message)
					return
				}
				seen[m.ID] = true
				var c, k int
				fmt.Sscanf(m.Message, "%d:%d", &c, &k)
				if k != next[c] {
					errs <- fmt.Errorf("client %d: from sender %d got #%d, want #%d (order)", r, c, k, next[c])
					return
				}
				next[c]++
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestFanoutContract(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		p := start(t, "", "RATE_LIMIT_PER_SEC=0", "HISTORY_LIMIT=0")
		fanoutContract(t, []*proc{p}, 4, 100)
	})
	for _, mode := range []string{"sharded", "streams"} {
		t.Run("redis-"+mode, func(t *testing.T) {
			nodes := startCluster(t, 3, redisURL(t), mode, prefix(t))
			fanoutContract(t, nodes, 2, 100)
		})
		// The same nodes on a Redis Cluster (REDIS_CLUSTER_NODES, no
		// REDIS_URL).
		t.Run("redis-cluster-"+mode, func(t *testing.T) {
			seeds := testkit.Service(t, "REDIS_CLUSTER_NODES", "Redis Cluster")
			nodes := startCluster(t, 3, "", mode, prefix(t), "REDIS_CLUSTER_NODES="+seeds)
			fanoutContract(t, nodes, 2, 100)
			var ready struct {
				Redis struct{ Deployment, Mode string }
			}
			if nodes[0].getJSON(t, "/readyz", &ready); ready.Redis.Deployment != "cluster" || ready.Redis.Mode != mode {
				t.Errorf("/readyz says redis %+v, want a cluster in %s mode", ready.Redis, mode)
			}
		})
	}
}

// metric reads one sample of /metrics.
func (p *proc) metric(t *testing.T, name string) float64 {
	t.Helper()
	for _, line := range strings.Split(metrics(t, p), "\n") {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			v, _ := strconv.ParseFloat(rest, 64)
			return v
		}
	}
	t.Fatalf("/metrics has no %s", name)
	return 0
}

func mustEvent(f string) any {
	var ev []any
	if err := jsonUnmarshal(f[1:], &ev); err != nil || len(ev) < 2 {
		return nil
	}
	return ev[1]
}

// Churn: a thousand connect/disconnect cycles leave goroutines and heap
// near where they started, on a node of a cluster.
func TestChurnLeavesNothingBehind(t *testing.T) {
	p := startBinary(t, plainBinary, "", "REDIS_URL="+redisURL(t), "REDIS_KEY_PREFIX="+prefix(t),
		"MAX_CONNECTIONS_PER_IP=0", "HISTORY_LIMIT=5")
	warm := dialSIO(t, p.URL, "websocket")
	warm.ack(`{"message":"history","username":"x"}`)
	time.Sleep(500 * time.Millisecond)
	g0, h0 := p.metric(t, "go_goroutines"), p.metric(t, "go_memstats_heap_inuse_bytes")
	const cycles = 1000
	var wg sync.WaitGroup
	sem := make(chan struct{}, 20)
	for i := range cycles {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c := dialSIO(t, p.URL, []string{"websocket", "polling"}[i%2])
			c.message() // its history
			c.close()
		}()
	}
	wg.Wait()
	testkit.Until(t, 30*time.Second, "chat_connections 1 (the others closed)", func() (bool, string) {
		n := p.metric(t, "chat_connections")
		return n == 1, fmt.Sprintf("chat_connections %v", n)
	})
	time.Sleep(2 * time.Second)
	g1, h1 := p.metric(t, "go_goroutines"), p.metric(t, "go_memstats_heap_inuse_bytes")
	t.Logf("%d cycles: goroutines %v -> %v, heap in use %.1f -> %.1f MB", cycles, g0, g1, h0/1e6, h1/1e6)
	if g1 > g0+10 {
		t.Errorf("goroutines grew from %v to %v", g0, g1)
	}
	if h1 > 2*h0+8<<20 {
		t.Errorf("heap in use grew from %.0f to %.0f bytes", h0, h1)
	}
}
