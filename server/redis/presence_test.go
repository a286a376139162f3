package redis_test

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/scalable-chat-go/server/chat"
	"github.com/scalable-chat-go/server/redis"
)

// rawClient is a plain go-redis client of backend, to look at the keys.
func rawClient(t *testing.T, o redis.Options) goredis.UniversalClient {
	t.Helper()
	var c goredis.UniversalClient
	if len(o.ClusterNodes) > 0 {
		c = goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: o.ClusterNodes})
	} else {
		opt, err := goredis.ParseURL(o.URL)
		if err != nil {
			t.Fatal(err)
		}
		c = goredis.NewClient(opt)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// A room's presence is one key whatever the number of nodes, read without
// a SCAN: a SCAN per room and per second would walk the whole keyspace as
// many times as a node holds rooms. A node that stops syncing drops out of
// the hash within the TTL; one that leaves, at once.
func TestRoomPresenceIsOneKeyARoom(t *testing.T) {
	const ttl = 500 * time.Millisecond
	ctx := context.Background()
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			nodes := open(t, backend, redis.ModeSharded, 3, ttl)
			rdb := rawClient(t, target(t, backend))
			prefix := nodes[0].KeyPrefix()
			for i, n := range nodes {
				if _, err := n.Presence().Sync(ctx, "room-x", chat.PresenceView{Online: i + 1}); err != nil {
					t.Fatal(err)
				}
			}
			key := prefix + ":room-presence:room-x"
			if typ := rdb.Type(ctx, key).Val(); typ != "hash" {
				t.Fatalf("%s is a %q, want a hash", key, typ)
			}
			if n := rdb.HLen(ctx, key).Val(); n != 3 {
				t.Fatalf("%s has %d fields, want one per node (3)", key, n)
			}
			var others []string
			for _, k := range scanAll(t, rdb, prefix+":*") {
				if k != key {
					others = append(others, k)
				}
			}
			if len(others) > 0 {
				t.Fatalf("a room's presence wrote other keys too: %v", others)
			}
			// Node 2 leaves; node 1 stops syncing and expires.
			if err := nodes[2].Presence().Leave(ctx, "room-x"); err != nil {
				t.Fatal(err)
			}
			got, err := nodes[0].Presence().Sync(ctx, "room-x", chat.PresenceView{Online: 1})
			if err != nil {
				t.Fatal(err)
			}
			if got.Online != 3 {
				t.Fatalf("after a node left: online %d, want 1+2", got.Online)
			}
			time.Sleep(ttl + 200*time.Millisecond)
			if got, err = nodes[0].Presence().Sync(ctx, "room-x", chat.PresenceView{Online: 1}); err != nil {
				t.Fatal(err)
			}
			if got.Online != 1 || rdb.HLen(ctx, key).Val() != 1 {
				t.Fatalf("after a node stopped: online %d, %d fields, want 1 and 1", got.Online, rdb.HLen(ctx, key).Val())
			}
			// Every node gone: the key expires with the TTL.
			time.Sleep(ttl + 200*time.Millisecond)
			if n := rdb.Exists(ctx, key).Val(); n != 0 {
				t.Fatalf("%s outlived its last node", key)
			}
		})
	}
}

// scanAll lists the keys matching pattern, on every master of a cluster.
func scanAll(t *testing.T, rdb goredis.UniversalClient, pattern string) []string {
	t.Helper()
	ctx := context.Background()
	var keys []string
	scan := func(c goredis.Cmdable) error {
		iter := c.Scan(ctx, 0, pattern, 1000).Iterator()
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		return iter.Err()
	}
	var err error
	if cc, ok := rdb.(*goredis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, c *goredis.Client) error { return scan(c) })
	} else {
		err = scan(rdb)
	}
	if err != nil && !strings.Contains(err.Error(), "context canceled") {
		t.Fatal(err)
	}
	return keys
}

// BenchmarkRoomPresenceSync is one node's sync of the 100 rooms it holds,
// as the hub runs it every PRESENCE_INTERVAL (a batch, one pipeline):
// ns/room bounds the rooms a node can sync per tick. "one" is the same
// rooms synced one round trip each.
func BenchmarkRoomPresenceSync(b *testing.B) {
	const rooms = 100
	for _, backend := range backends {
		nodes := open(b, backend, redis.ModeSharded, 3, 0)
		ctx := context.Background()
		view := chat.PresenceView{Online: 2, Users: []chat.OnlineUser{{Name: "ann", Since: time.UnixMilli(1)}, {Name: "bob", Since: time.UnixMilli(2)}}}
		batch := make([]chat.RoomView, rooms)
		for r := range batch {
			batch[r] = chat.RoomView{Room: fmt.Sprint("room-", r), View: view}
		}
		for _, n := range nodes[1:] {
			if _, err := n.Presence().SyncRooms(ctx, batch); err != nil {
				b.Fatal(err)
			}
		}
		b.Run(backend+"/batch", func(b *testing.B) {
			cpu := processCPU()
			for b.Loop() {
				if _, err := nodes[0].Presence().SyncRooms(ctx, batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rooms), "ns/room")
			b.ReportMetric(float64((processCPU()-cpu).Nanoseconds())/float64(b.N*rooms), "cpu-ns/room")
		})
		b.Run(backend+"/one", func(b *testing.B) {
			cpu := processCPU()
			for b.Loop() {
				for _, r := range batch {
					if _, err := nodes[0].Presence().Sync(ctx, r.Room, r.View); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rooms), "ns/room")
			b.ReportMetric(float64((processCPU()-cpu).Nanoseconds())/float64(b.N*rooms), "cpu-ns/room")
		})
	}
}

// processCPU is this process's user and system time so far (the node's
// side of a sync: the client, encoding, merging).
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
