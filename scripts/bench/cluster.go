package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/scalable-chat-go/bench/internal/server"
	"github.com/scalable-chat-go/bench/internal/services"
)

// maxNodes bounds the nodes of a cluster step.
const maxNodes = 16

type clusterFlags struct {
	fanoutFlags
	nodes        int
	redisURL     string
	redisCluster string
	on           string
	adapter      string
}

// runCluster is the fanout over several nodes sharing Redis: for each
// offered rate, for each server kind in turn, N fresh nodes on a fresh
// key prefix, the receivers and the senders spread over them round-robin.
func runCluster(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := clusterFlags{fanoutFlags: fanoutFlags{rates: []float64{25, 50, 70, 100, 150, 200}}}
	fs := flag.NewFlagSet("cluster", flag.ContinueOnError)
	fs.SetOutput(stderr)
	f.register(fs)
	f.registerLoad(fs, 0)
	fs.IntVar(&f.nodes, "nodes", 3, fmt.Sprintf("nodes of each server kind, sharing Redis (1..%d)", maxNodes))
	fs.StringVar(&f.redisURL, "redis-url", os.Getenv("REDIS_URL"), `Redis on loopback (default $REDIS_URL, from eval "$(scripts/services up redis)")`)
	fs.StringVar(&f.redisCluster, "redis-cluster", os.Getenv("REDIS_CLUSTER_NODES"), `a Redis Cluster's seeds on loopback, for -on cluster (default $REDIS_CLUSTER_NODES, from eval "$(scripts/services up redis-cluster)")`)
	fs.StringVar(&f.on, "on", "redis", "what the nodes share, in this order: redis (one server, -redis-url), cluster (a Redis Cluster, -redis-cluster), or both: redis,cluster")
	fs.StringVar(&f.adapter, "adapter", "sharded", "our nodes' REDIS_ADAPTER_MODE: sharded or streams (the reference always uses Node's sharded adapter)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: go run ./scripts/bench cluster [flags]\n\n"+
			"The fanout over several nodes through Redis: for each offered rate and each server, starts\n"+
			"-nodes nodes on a fresh Redis key prefix, spreads the receivers and the senders over them,\n"+
			"sends at the rate, and measures deliveries/s, loss, latency and CPU per delivery summed over\n"+
			"the nodes (and the Redis server's CPU).\n\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := f.check(); err != nil {
		return err
	}
	if f.nodes < 1 || f.nodes > maxNodes {
		return usagef("-nodes %d: want 1..%d", f.nodes, maxNodes)
	}
	if f.senders == 0 { // not given: one per node
		f.senders = f.nodes
	}
	if err := f.checkLoad(); err != nil {
		return err
	}
	if f.adapter != "sharded" && f.adapter != "streams" {
		return usagef("-adapter %q: want sharded or streams", f.adapter)
	}
	backends := strings.Split(f.on, ",")
	for _, b := range backends {
		if b != "redis" && b != "cluster" {
			return usagef("-on %q: want redis, cluster, or redis,cluster", f.on)
		}
	}
	var seeds []string
	if slices.Contains(backends, "cluster") {
		if f.redisCluster == "" {
			return fmt.Errorf(`-on cluster needs a Redis Cluster: set REDIS_CLUSTER_NODES or -redis-cluster (start it with: eval "$(scripts/services up redis-cluster)")`)
		}
		for _, seed := range strings.Split(f.redisCluster, ",") {
			if err := services.LoopbackHostPort(seed); err != nil {
				return usagef("-redis-cluster: %v", err)
			}
			seeds = append(seeds, seed)
		}
	}
	var redisAddr string
	if slices.Contains(backends, "redis") {
		if f.redisURL == "" {
			return fmt.Errorf(`cluster needs Redis: set REDIS_URL or -redis-url (start it with: eval "$(scripts/services up redis)")`)
		}
		var err error
		if redisAddr, err = services.RedisAddr(f.redisURL); err != nil {
			return usagef("-redis-url: %v", err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	// The Redis servers' processes, whose CPU each step reports.
	pids := map[string][]int{}
	if redisAddr != "" {
		pid, err := services.RedisPID(ctx, f.redisURL)
		if err != nil {
			return fmt.Errorf("the Redis server at %s: %w", redisAddr, err)
		}
		pids["redis"] = []int{pid}
	}
	for _, seed := range seeds {
		pid, err := services.RedisPID(ctx, "redis://"+seed)
		if err != nil {
			return fmt.Errorf("the Redis Cluster's node %s: %w", seed, err)
		}
		pids["cluster"] = append(pids["cluster"], pid)
	}

	s, cleanup, err := f.start(ctx, "cluster", args, f.receivers+f.senders+f.nodes*fdMargin, stderr)
	if err != nil {
		return err
	}
	defer cleanup()
	s.meta.Params = f.params()
	s.meta.Params["nodes"] = f.nodes
	s.meta.Params["adapter"] = f.adapter
	s.meta.Params["redis"] = redisAddr
	s.meta.Params["on"] = f.on
	if len(seeds) > 0 {
		s.meta.Params["redis_cluster"] = strings.Join(seeds, ",")
	}
	s.meta.Servers["go_server_step_env"] = "each step adds REDIS_URL (or REDIS_CLUSTER_NODES on the cluster), REDIS_KEY_PREFIX (fresh per step), REDIS_ADAPTER_MODE=" + f.adapter
	s.meta.Servers["go_server_cluster"] = fmt.Sprintf("%d nodes, REDIS_ADAPTER_MODE=%s", f.nodes, f.adapter)
	s.meta.Servers["node_server_cluster"] = fmt.Sprintf("%d nodes, createShardedAdapter (@socket.io/redis-adapter %s)", f.nodes, s.meta.Servers["node_@socket.io/redis-adapter"])
	run := time.Now().UTC().Format("20060102150405")
	var tops []topology
	for _, b := range backends {
		link := "REDIS_URL=" + f.redisURL
		if b == "cluster" {
			link = "REDIS_CLUSTER_NODES=" + strings.Join(seeds, ",")
		}
		tops = append(tops, topology{nodes: f.nodes, backend: b, redisPIDs: pids[b], env: func(k server.Kind, step int) []string {
			// Both kinds read the same names.
			env := []string{link, "REDIS_KEY_PREFIX=" + keyPrefix(run, step)}
			if k == server.Go {
				env = append(env, "REDIS_ADAPTER_MODE="+f.adapter)
			}
			return env
		}})
	}
	through := "Redis"
	if len(backends) > 1 {
		through = "one Redis, then a Redis Cluster"
	} else if backends[0] == "cluster" {
		through = "a Redis Cluster"
	}
	title := fmt.Sprintf("cluster: %d nodes each through %s (ours %s), %d receivers and %s spread over them, %s per rate after %s warm-up, %d-character texts",
		f.nodes, through, f.adapter, f.receivers, plural(f.senders, "sender"), f.duration, f.warmup, f.text)
	return sweep(ctx, s, &f.fanoutFlags, tops, "cluster", title, stdout, stderr)
}

// keyPrefix is the Redis key prefix of one step: fresh, so that no node of
// an earlier step (or another run) shares its channels.
func keyPrefix(run string, step int) string { return fmt.Sprintf("bench-%s-%d", run, step) }
