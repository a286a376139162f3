// Package redistest drives the Redis Cluster of scripts/services in tests:
// it finds which master serves a key, kills a master (the process
// scripts/services started for this checkout, by its PID), migrates a
// slot, and brings the cluster back to health. Only tests built with the
// tag rediscluster use it: they change the cluster under everyone's feet,
// so scripts/test runs them in a stage of their own.
package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/scalable-chat-go/server/redis"
	"github.com/scalable-chat-go/server/testkit"
)

// Admin reaches every node of the cluster.
type Admin struct {
	t     testing.TB
	Seeds []string
	cc    *goredis.ClusterClient
}

// New connects to the cluster of REDIS_CLUSTER_NODES and waits until it is
// healthy (scripts/services start redis-cluster's check).
func New(t testing.TB) *Admin {
	t.Helper()
	seeds := strings.Split(testkit.Service(t, "REDIS_CLUSTER_NODES", "Redis Cluster"), ",")
	a := &Admin{t: t, Seeds: seeds, cc: goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: seeds, Protocol: 2})}
	t.Cleanup(func() { _ = a.cc.Close() })
	return a
}

// node is a client of one node, closed by the caller.
func node(addr string) *goredis.Client {
	return goredis.NewClient(&goredis.Options{Addr: addr, Protocol: 2, MaxRetries: -1, DialTimeout: time.Second, ReadTimeout: 5 * time.Second})
}

// Shard is a master and its slots, as a node of the cluster sees them.
type Shard struct {
	Master string // host:port
	ID     string
	Slots  [][2]int
}

// Shards lists the masters serving slots (CLUSTER SHARDS), asking each
// seed in turn until one answers.
func (a *Admin) Shards() []Shard {
	a.t.Helper()
	var last error
	for _, seed := range a.Seeds {
		c := node(seed)
		shards, err := c.ClusterShards(context.Background()).Result()
		c.Close()
		if err != nil {
			last = err
			continue
		}
		var out []Shard
		for _, sh := range shards {
			var s Shard
			for _, n := range sh.Nodes {
				if n.Role == "master" && (s.ID == "" || n.Health == "online") {
					s = Shard{Master: net.JoinHostPort(n.Endpoint, strconv.FormatInt(n.Port, 10)), ID: n.ID}
				}
			}
			for _, r := range sh.Slots {
				s.Slots = append(s.Slots, [2]int{int(r.Start), int(r.End)})
			}
			if s.ID != "" && len(s.Slots) > 0 {
				out = append(out, s)
			}
		}
		return out
	}
	a.t.Fatalf("no node of %v answered CLUSTER SHARDS: %v", a.Seeds, last)
	return nil
}

// Slot is the hash slot of key.
func Slot(key string) int { return redis.Slot(key) }

// MasterOf is the master serving slot.
func (a *Admin) MasterOf(slot int) Shard {
	a.t.Helper()
	for _, sh := range a.Shards() {
		for _, r := range sh.Slots {
			if slot >= r[0] && slot <= r[1] {
				return sh
			}
		}
	}
	a.t.Fatalf("no master serves slot %d", slot)
	return Shard{}
}

// Kill kills the redis-server at addr with SIGKILL, as a crash would, and
// returns when. The process must be one of this checkout's cluster nodes
// (its command line names redis-server and the address); Restore starts it
// again.
func (a *Admin) Kill(addr string) time.Time {
	a.t.Helper()
	c := node(addr)
	defer c.Close()
	info, err := c.Info(context.Background(), "server").Result()
	if err != nil {
		a.t.Fatalf("INFO server of %s: %v", addr, err)
	}
	var pid int
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); ok {
			pid, _ = strconv.Atoi(v)
		}
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !strings.Contains(string(cmdline), "redis-server") || !strings.Contains(string(cmdline), addr) {
		a.t.Fatalf("%s: process %d (%q) is not this cluster's redis-server: %v", addr, pid, cmdline, err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		a.t.Fatalf("kill redis-server %d of %s: %v", pid, addr, err)
	}
	return time.Now()
}

// KillSubscriptions closes every Pub/Sub connection of the node at addr
// (CLIENT KILL TYPE pubsub), as a node's restart or a proxy would, while
// the node keeps serving.
func (a *Admin) KillSubscriptions(addr string) time.Time {
	a.t.Helper()
	c := node(addr)
	defer c.Close()
	if err := c.Do(context.Background(), "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
		a.t.Fatalf("CLIENT KILL TYPE pubsub on %s: %v", addr, err)
	}
	return time.Now()
}

// Promoted returns a channel that receives, once, when a master other than
// old serves slot (polled every 20 ms, for at most within): the moment
// the cluster's failover completed, as the nodes tell.
func (a *Admin) Promoted(slot int, old string, within time.Duration) <-chan time.Time {
	out := make(chan time.Time, 1)
	go func() {
		deadline := time.Now().Add(within)
		for time.Now().Before(deadline) {
			for _, seed := range a.Seeds {
				if seed == old {
					continue
				}
				c := node(seed)
				shards, err := c.ClusterShards(context.Background()).Result()
				c.Close()
				if err != nil {
					continue
				}
				for _, sh := range shards {
					for _, r := range sh.Slots {
						if int(r.Start) > slot || int(r.End) < slot {
							continue
						}
						for _, n := range sh.Nodes {
							if addr := net.JoinHostPort(n.Endpoint, strconv.FormatInt(n.Port, 10)); n.Role == "master" && n.Health == "online" && addr != old {
								out <- time.Now()
								return
							}
						}
					}
				}
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	return out
}

// Restore starts the cluster's stopped nodes again (scripts/services start
// redis-cluster) and waits until the cluster is healthy: every slot
// served, six nodes, none failing.
func (a *Admin) Restore() {
	a.t.Helper()
	script, err := servicesScript()
	if err != nil {
		a.t.Fatal(err)
	}
	out, err := exec.Command(script, "start", "redis-cluster").CombinedOutput()
	if err != nil {
		a.t.Fatalf("scripts/services start redis-cluster: %v\n%s", err, out)
	}
}

// servicesScript finds scripts/services above the working directory.
func servicesScript() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, "scripts", "services")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no scripts/services above the working directory")
		}
		dir = parent
	}
}

// MigrateSlot moves slot, with its keys, from its master to another one,
// as `redis-cli --cluster reshard` does, and returns the new master.
func (a *Admin) MigrateSlot(slot int) Shard {
	a.t.Helper()
	ctx := context.Background()
	from := a.MasterOf(slot)
	var to Shard
	for _, sh := range a.Shards() {
		if sh.ID != from.ID {
			to = sh
			break
		}
	}
	src, dst := node(from.Master), node(to.Master)
	defer src.Close()
	defer dst.Close()
	must := func(what string, err error) {
		if err != nil {
			a.t.Fatalf("migrate slot %d from %s to %s: %s: %v", slot, from.Master, to.Master, what, err)
		}
	}
	must("importing", dst.Do(ctx, "CLUSTER", "SETSLOT", slot, "IMPORTING", from.ID).Err())
	must("migrating", src.Do(ctx, "CLUSTER", "SETSLOT", slot, "MIGRATING", to.ID).Err())
	host, port, _ := strings.Cut(to.Master, ":")
	for {
		keys, err := src.ClusterGetKeysInSlot(ctx, slot, 100).Result()
		must("keys in slot", err)
		if len(keys) == 0 {
			break
		}
		args := []any{"MIGRATE", host, port, "", 0, 5000, "REPLACE", "KEYS"}
		for _, k := range keys {
			args = append(args, k)
		}
		must("MIGRATE", src.Do(ctx, args...).Err())
	}
	// The new owner first, then the old one, then the others, as
	// redis-cli does.
	must("node (new owner)", dst.Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", to.ID).Err())
	must("node (old owner)", src.Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", to.ID).Err())
	for _, sh := range a.Shards() {
		if sh.ID != from.ID && sh.ID != to.ID {
			c := node(sh.Master)
			_ = c.Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", to.ID).Err()
			c.Close()
		}
	}
	return to
}
