//go:build rediscluster

package main

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scalable-chat-go/server/redis/redistest"
	"github.com/scalable-chat-go/server/testkit"
)

// One failover of the Redis Cluster under load, end to end: two Go nodes
// and a Node socket.io server (createShardedAdapter on node-redis's
// createCluster) share the sharded mode, two more Go nodes the streams
// mode; a client on each node sends a message every 50 ms and receives
// everyone's. The master that serves both the sharded channel and the
// stream is killed (SIGKILL), its replica takes over.
//
// Asserted: every flow between two Go nodes resumes by itself within
// resumeLimit; streams mode misses nothing; in sharded mode every message
// of a Go node that another Go node missed is counted by its publisher
// (chat_cluster_undelivered_total), and what the Node server missed is
// counted and logged too (not silent); the Go nodes log their lost and
// restored subscriptions; /readyz says redis or its subscriptions are down
// during the failover, and shows the cluster, with every subscription back
// and the slot's move, after it. The Node server's own recovery is
// node-redis's, only reported: with redis 4.7.0 it keeps dialling the dead
// master and never receives again.
//
// Built with the tag rediscluster (it kills a master): scripts/test runs
// it in the rediscluster stage, alone. Needs REDIS_CLUSTER_NODES and
// server/e2e's node_modules (the Node server). REDIS_CLUSTER_ROUNDS sets
// how many failovers (default 1): the master is killed, brought back (a
// replica now), and the shard's new master killed next, the same
// processes and clients throughout.
func TestRedisClusterFailoverUnderLoad(t *testing.T) {
	admin := redistest.New(t)
	seeds := strings.Join(admin.Seeds, ",")
	// Prefixes whose sharded channel and stream one master serves: one
	// kill disrupts both modes.
	var sharded, streams string
	var master redistest.Shard
	for {
		sharded = fmt.Sprintf("rc-sharded-%d", rand.Int64())
		master = admin.MasterOf(redistest.Slot(sharded + "#/#"))
		streams = fmt.Sprintf("rc-streams-%d", rand.Int64())
		if admin.MasterOf(redistest.Slot(streams)).ID == master.ID {
			break
		}
	}
	env := func(mode, prefix string) []string {
		return []string{"REDIS_CLUSTER_NODES=" + seeds, "REDIS_ADAPTER_MODE=" + mode, "REDIS_KEY_PREFIX=" + prefix,
			"RATE_LIMIT_PER_SEC=0", "HISTORY_LIMIT=0", "REDIS_REQUEST_TIMEOUT=2s"}
	}
	goNodes := []*proc{
		launchBinary(t, plainBinary, "", env("sharded", sharded)...),
		launchBinary(t, plainBinary, "", env("sharded", sharded)...),
		launchBinary(t, plainBinary, "", env("streams", streams)...),
		launchBinary(t, plainBinary, "", env("streams", streams)...),
	}
	nodeURL := startNodeServer(t, seeds, sharded)
	for _, p := range goNodes {
		p.awaitReady()
	}
	// The sharded nodes count each other at once (PUBSUB SHARDNUMSUB); the
	// streams nodes by heartbeats every 5 s: the flows below show them
	// linked.
	for _, p := range goNodes[:2] {
		p.awaitServers(3)
	}

	// One client per node, each sender and receiver.
	run := &clusterRun{sent: map[string]map[int]time.Time{}, got: map[string]map[string]time.Time{}}
	groups := map[string][]string{"sharded": {"go1", "go2", "node"}, "streams": {"go3", "go4"}}
	urls := map[string]string{"go1": goNodes[0].URL, "go2": goNodes[1].URL, "go3": goNodes[2].URL, "go4": goNodes[3].URL, "node": nodeURL}
	clients := map[string]*sio{}
	for name, url := range urls {
		clients[name] = dialSIO(t, url, "websocket")
		run.receive(name, clients[name])
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for name, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				case <-time.After(50 * time.Millisecond):
				}
				run.noteSent(name, k)
				if err := c.send(fmt.Sprintf(`2["event:message",{"message":"%s|%d","username":"%s"}]`, name, k, name)); err != nil {
					return
				}
			}
		}()
	}
	flows := func(group string) [][2]string {
		var out [][2]string
		for _, s := range groups[group] {
			for _, r := range groups[group] {
				if s != r {
					out = append(out, [2]string{s, r})
				}
			}
		}
		return out
	}
	all := append(flows("sharded"), flows("streams")...)
	start := time.Now()
	testkit.Until(t, 20*time.Second, "every flow between the nodes before the failover", func() (bool, string) {
		for _, f := range all {
			if run.firstAfter(f[0], f[1], start).IsZero() {
				return false, f[0] + " to " + f[1] + " not yet"
			}
		}
		return true, ""
	})
	flowing := time.Now()
	time.Sleep(500 * time.Millisecond)

	rounds := 1
	if n, err := strconv.Atoi(os.Getenv("REDIS_CLUSTER_ROUNDS")); err == nil && n > 0 {
		rounds = n
	}
	t.Cleanup(admin.Restore)
	sawDown := false
	var goResumes, afterPromotion []time.Duration
	var lines []string
	for round := range rounds {
		if round > 0 {
			// The shard's master now (the replica that took over).
			master = admin.MasterOf(redistest.Slot(sharded + "#/#"))
			time.Sleep(time.Second)
		}
		t0 := admin.Kill(master.Master)
		promoted := admin.Promoted(redistest.Slot(sharded+"#/#"), master.Master, 3*resumeLimit)
		// /readyz during the failover, and the flows back.
		resumed := map[[2]string]time.Duration{}
		goResumed := func() bool {
			for _, f := range all {
				if _, ok := resumed[f]; !ok && f[0] != "node" && f[1] != "node" {
					return false
				}
			}
			return true
		}
		// Until every flow is back, or the Go ones are and the Node
		// server had 2 s more.
		var goBack time.Time
		for time.Since(t0) < 3*resumeLimit && len(resumed) < len(all) && (goBack.IsZero() || time.Since(goBack) < 2*time.Second) {
			if goBack.IsZero() && goResumed() {
				goBack = time.Now()
			}
			var ready struct {
				Checks map[string]struct{ Status string }
			}
			goNodes[0].getJSON(t, "/readyz", &ready)
			sawDown = sawDown || ready.Checks["redis"].Status == "down" || ready.Checks["redis-subscriptions"].Status == "down"
			for _, f := range all {
				if _, ok := resumed[f]; !ok {
					if at := run.firstAfter(f[0], f[1], t0); !at.IsZero() {
						resumed[f] = at.Sub(t0)
					}
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
		var got []string
		for _, f := range all {
			r, ok := resumed[f]
			switch {
			case f[0] == "node" || f[1] == "node":
				// node-redis's doing, reported only.
				if ok {
					got = append(got, fmt.Sprintf("%s>%s %v", f[0], f[1], r.Round(time.Millisecond)))
				} else {
					got = append(got, fmt.Sprintf("%s>%s never", f[0], f[1]))
				}
			case !ok:
				t.Errorf("failover %d: %s to %s: deliveries did not resume within %v", round, f[0], f[1], time.Since(t0).Round(time.Second))
			default:
				goResumes = append(goResumes, r)
				got = append(got, fmt.Sprintf("%s>%s %v", f[0], f[1], r.Round(time.Millisecond)))
				if r > resumeLimit {
					t.Errorf("failover %d: %s to %s: deliveries resumed only after %v (limit %v)", round, f[0], f[1], r, resumeLimit)
				}
			}
		}
		promotion := "not seen"
		select {
		case at := <-promoted:
			promotion = at.Sub(t0).Round(time.Millisecond).String()
			for _, f := range all {
				if r, ok := resumed[f]; ok && f[0] != "node" && f[1] != "node" {
					afterPromotion = append(afterPromotion, r-at.Sub(t0))
				}
			}
		case <-time.After(time.Second):
		}
		lines = append(lines, fmt.Sprintf("failover %d of %s, replica promoted after %s: resumed %s", round, master.Master, promotion, strings.Join(got, ", ")))
		time.Sleep(2 * time.Second)
		admin.Restore()
	}
	close(stop)
	wg.Wait()
	stopped := time.Now()
	// Drain: what is on its way arrives.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if n, _ := run.missed(all, flowing, stopped); n == 0 {
			break
		}
	}
	time.Sleep(1500 * time.Millisecond) // the publishers settle their counts
	for _, f := range all {
		n, _ := run.missed([][2]string{f}, flowing, stopped)
		lines = append(lines, fmt.Sprintf("%s to %s: %d missed", f[0], f[1], n))
	}
	slices.Sort(goResumes)
	if len(goResumes) == 0 {
		t.Fatal("no flow between Go nodes resumed")
	}
	slices.Sort(afterPromotion)
	promo := ""
	if n := len(afterPromotion); n > 0 {
		promo = fmt.Sprintf("; after the replica's promotion: p50 %v, p99 %v", afterPromotion[n/2].Round(time.Millisecond), afterPromotion[n*99/100].Round(time.Millisecond))
	}
	t.Logf("%d failovers:\n  %s\n  between Go nodes (%d flows): resumed after p50 %v, p99 %v, max %v%s", rounds, strings.Join(lines, "\n  "),
		len(goResumes), goResumes[len(goResumes)/2].Round(time.Millisecond), goResumes[len(goResumes)*99/100].Round(time.Millisecond),
		goResumes[len(goResumes)-1].Round(time.Millisecond), promo)

	if n, which := run.missed(flows("streams"), flowing, stopped); n > 0 {
		t.Errorf("streams mode: %d messages missed by a connected client: %v", n, which)
	}
	goMissed, which := run.missed([][2]string{{"go1", "go2"}, {"go2", "go1"}}, flowing, stopped)
	toNode, _ := run.missed([][2]string{{"go1", "node"}, {"go2", "node"}}, flowing, stopped)
	fromNode, _ := run.missed([][2]string{{"node", "go1"}, {"node", "go2"}}, flowing, stopped)
	counted := goNodes[0].metric(t, "chat_cluster_undelivered_total") + goNodes[1].metric(t, "chat_cluster_undelivered_total")
	t.Logf("sharded mode: %d messages between the Go nodes missed (%v), %d of theirs missed by the Node server, %.0f counted undelivered; %d of the Node server's missed by the Go nodes",
		goMissed, which, toNode, counted, fromNode)
	if float64(goMissed) > counted {
		t.Errorf("sharded mode: %d messages between the Go nodes missed, only %.0f counted undelivered", goMissed, counted)
	}
	if toNode > 0 && counted == 0 {
		t.Errorf("the Node server missed %d messages of the Go nodes, and none was counted", toNode)
	}
	if counted > 0 && !strings.Contains(goNodes[0].logs.String()+goNodes[1].logs.String(), "counted as undelivered") {
		t.Error("undelivered messages counted but not logged")
	}
	for _, p := range goNodes[:2] {
		logs := p.logs.String()
		if !strings.Contains(logs, "sharded subscription lost") || !strings.Contains(logs, "sharded subscription restored") {
			t.Errorf("%s did not log its lost and restored subscriptions:\n%s", p.URL, tail(logs, 3000))
		}
	}
	if !sawDown {
		t.Error("/readyz never said redis or its subscriptions were down during the failover")
	}
	testkit.Until(t, 10*time.Second, "/readyz to show the cluster whole again", func() (bool, string) {
		var ready struct {
			Checks map[string]struct{ Status, Error string }
			Redis  struct {
				Deployment    string
				Masters       []string
				SlotMoves     int `json:"slot_moves"`
				Subscriptions struct{ Wanted, Subscribed int }
			}
		}
		goNodes[0].getJSON(t, "/readyz", &ready)
		r := ready.Redis
		ok := ready.Checks["redis"].Status == "ok" && ready.Checks["redis-subscriptions"].Status == "ok" &&
			r.Deployment == "cluster" && len(r.Masters) == 3 && !slices.Contains(r.Masters, master.Master) &&
			r.SlotMoves >= 1 && r.Subscriptions.Wanted > 0 && r.Subscriptions.Subscribed == r.Subscriptions.Wanted
		return ok, fmt.Sprintf("%+v", ready)
	})
}

// resumeLimit bounds the time from a master's death to the first delivery
// across Go nodes after it (the target is 5 s at the 99th percentile,
// measured over many failovers; the failover alone takes 3 to 4 s).
const resumeLimit = 10 * time.Second

// clusterRun is what the clients sent, and when each received what.
type clusterRun struct {
	mu   sync.Mutex
	sent map[string]map[int]time.Time    // sender -> seq -> when
	got  map[string]map[string]time.Time // receiver -> "sender|seq" -> when
}

func (r *clusterRun) noteSent(sender string, k int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sent[sender] == nil {
		r.sent[sender] = map[int]time.Time{}
	}
	r.sent[sender][k] = time.Now()
}

// receive records the messages c gets, as receiver name.
func (r *clusterRun) receive(name string, c *sio) {
	go func() {
		for {
			var f string
			select {
			case f = <-c.frames:
			case <-c.closed:
				return
			}
			if !strings.HasPrefix(f, `2["message",`) {
				continue
			}
			m := toWire(mustEvent(f))
			r.mu.Lock()
			if r.got[name] == nil {
				r.got[name] = map[string]time.Time{}
			}
			if _, dup := r.got[name][m.Message]; !dup {
				r.got[name][m.Message] = time.Now()
			}
			r.mu.Unlock()
		}
	}()
}

// firstAfter is when receiver first got a message of sender sent at or
// after t0 (zero: not yet).
func (r *clusterRun) firstAfter(sender, receiver string, t0 time.Time) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	var first time.Time
	for text, at := range r.got[receiver] {
		s, k, ok := strings.Cut(text, "|")
		if !ok || s != sender {
			continue
		}
		seq, _ := strconv.Atoi(k)
		if sent, ok := r.sent[sender][seq]; ok && !sent.Before(t0) && (first.IsZero() || at.Before(first)) {
			first = at
		}
	}
	return first
}

// missed counts the messages sent in [from, to) along flows that did not
// arrive, and names a few.
func (r *clusterRun) missed(flows [][2]string, from, to time.Time) (int, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	var some []string
	for _, f := range flows {
		for k, at := range r.sent[f[0]] {
			text := f[0] + "|" + strconv.Itoa(k)
			if at.Before(from) || !at.Before(to) {
				continue
			}
			if _, ok := r.got[f[1]][text]; !ok {
				n++
				if len(some) < 5 {
					some = append(some, text+" to "+f[1])
				}
			}
		}
	}
	return n, some
}

// startNodeServer runs the Node reference server of server/e2e on the
// cluster (createShardedAdapter, prefix) and returns its URL.
func startNodeServer(t *testing.T, seeds, prefix string) string {
	t.Helper()
	port := testkit.FreePort(t)
	cmd := exec.Command("node", "fixtures/original-server.js")
	cmd.Dir = "../../e2e"
	cmd.Env = append(cmd.Environ(), "HOST=127.0.0.1", "PORT="+strconv.Itoa(port), "REDIS_CLUSTER_NODES="+seeds, "REDIS_KEY_PREFIX="+prefix)
	p := testkit.Start(t, "node server", cmd, nil)
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	testkit.Until(t, 20*time.Second, "the Node server to answer", func() (bool, string) {
		if p.Done() {
			t.Fatalf("the Node server exited (is server/e2e's npm ci done?):\n%s", p.Out.String())
		}
		res, err := http.Get(url + "/healthz")
		if err != nil {
			return false, err.Error()
		}
		res.Body.Close()
		return res.StatusCode == 200, res.Status
	})
	return url
}

func tail(s string, n int) string { return s[max(0, len(s)-n):] }
