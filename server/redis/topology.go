package redis

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Slot is the Redis Cluster hash slot of key: CRC16 of its hash tag (the
// part between the first '{' and the next '}', when not empty) or of the
// whole key, modulo 16384. Sharded Pub/Sub channels hash the same way.
func Slot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return int(crc16(key) % 16384)
}

// crc16 is CRC-16/XMODEM (polynomial 0x1021, initial value 0), the
// cluster's key hash.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// topology is which master serves each slot of the cluster, as one node
// told it (CLUSTER SHARDS).
type topology struct {
	ranges []slotRange // by start
	nodes  []string    // every node named, masters and replicas
	from   string      // the node that told
	at     time.Time
}

type slotRange struct {
	start, end int
	master     string // host:port
}

// owner is the address of the master serving slot ("" when none does).
func (t *topology) owner(slot int) string {
	i, found := slices.BinarySearchFunc(t.ranges, slot, func(r slotRange, s int) int { return r.start - s })
	if !found {
		i--
	}
	if i >= 0 && slot <= t.ranges[i].end {
		return t.ranges[i].master
	}
	return ""
}

// masters are the addresses of the masters that serve slots, sorted.
func (t *topology) masters() []string {
	var out []string
	for _, r := range t.ranges {
		out = append(out, r.master)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// loadTopology asks the nodes for the cluster's slots, one after the
// other, each for at most a second, and keeps the first answer: first the
// node that answered last time, then the others it named, then the seeds;
// those that failed lately last.
func (s *subscriber) loadTopology(ctx context.Context, known *topology) (*topology, error) {
	var addrs []string
	if known != nil {
		addrs = append([]string{known.from}, known.nodes...)
	}
	for _, a := range s.c.o.ClusterNodes {
		if i := strings.Index(a, "://"); i >= 0 {
			a = a[i+3:]
			if j := strings.LastIndexByte(a, '@'); j >= 0 {
				a = a[j+1:]
			}
			a, _, _ = strings.Cut(a, "/")
		}
		addrs = append(addrs, a)
	}
	seen := map[string]bool{}
	addrs = slices.DeleteFunc(addrs, func(a string) bool {
		dup := seen[a]
		seen[a] = true
		return dup
	})
	s.mu.Lock()
	slices.SortStableFunc(addrs, func(a, b string) int {
		return cmpBool(s.failed[a].After(time.Now().Add(-5*time.Second)), s.failed[b].After(time.Now().Add(-5*time.Second)))
	})
	s.mu.Unlock()
	var errs []error
	for _, addr := range addrs {
		actx, cancel := context.WithTimeout(ctx, min(time.Second, s.c.o.RequestTimeout))
		shards, err := s.client(addr).ClusterShards(actx).Result()
		cancel()
		if err != nil {
			s.noteFailure(addr)
			errs = append(errs, fmt.Errorf("%s: %w", addr, err))
			continue
		}
		return newTopology(addr, shards), nil
	}
	return nil, fmt.Errorf("no node told the cluster's shards: %w", errors.Join(errs...))
}

// newTopology reads CLUSTER SHARDS: each shard's slots and nodes, one of
// them its master (a dead master stays listed, as a failed replica once
// its successor is elected).
func newTopology(from string, shards []goredis.ClusterShard) *topology {
	t := &topology{from: from, at: time.Now()}
	for _, sh := range shards {
		master := ""
		for _, n := range sh.Nodes {
			addr := nodeAddr(n)
			if !slices.Contains(t.nodes, addr) {
				t.nodes = append(t.nodes, addr)
			}
			if n.Role == "master" && (master == "" || n.Health == "online") {
				master = addr
			}
		}
		if master == "" {
			continue
		}
		for _, r := range sh.Slots {
			t.ranges = append(t.ranges, slotRange{start: int(r.Start), end: int(r.End), master: master})
		}
	}
	slices.SortFunc(t.ranges, func(a, b slotRange) int { return a.start - b.start })
	return t
}

// nodeAddr is where to reach a node of CLUSTER SHARDS: its preferred
// endpoint, on its port (its TLS port when it has only that one).
func nodeAddr(n goredis.Node) string {
	host := n.Endpoint
	if host == "" || host == "?" {
		host = n.IP
	}
	port := n.Port
	if port == 0 {
		port = n.TLSPort
	}
	return net.JoinHostPort(host, strconv.FormatInt(port, 10))
}

// cmpBool orders false before true.
func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}
