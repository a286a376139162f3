package redis

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/scalable-chat-go/server/chat"
)

// Presence tells who is online in each room on every Go node of the
// cluster: each node writes its own view of a room (its connection count
// and its users there), stamped with Redis's clock, and the cluster's view
// of the room is the merge of the views written within PresenceTTL. A
// crashed node stops refreshing and drops out within the TTL. Nodes
// running Node's adapters publish nothing, so their clients are not
// counted.
//
// The global room keeps the keys it had before rooms, one per node,
// prefix:presence:<node> with the TTL as their expiry, so that nodes of
// both versions count each other during a rolling upgrade; reading them
// takes a SCAN, once a second per node. Every other room is one hash,
// prefix:room-presence:<room>, a field per node, "<Redis ms> <view>": a
// sync reads and writes only that key, so its cost follows the room's
// nodes, not the keyspace. On a Redis Cluster the global room's keys are
// prefix:presence:{global}:<node>, one slot for the SCAN.
//
// The rooms a node holds are synced in batches, one pipeline each
// (SyncRooms): a room's sync is HGETALL, and HSET and PEXPIRE when this
// node's view changed or was last written half the TTL ago (the TTL is
// at least 4 ticks, so a view is rewritten before it is 3/4 of it old). The
// stamps are Redis's time, not the node's (the nodes' clocks may disagree
// by more than the TTL): the node reads Redis's TIME at most every
// presenceClockEvery and stamps with its own clock plus that offset.
type Presence struct {
	c *Cluster

	mu       sync.Mutex
	offset   time.Duration // Redis's clock minus this node's
	offsetAt time.Time     // when offset was read; zero: never
	// written is this node's field last written in each room it holds,
	// while its view is not empty.
	written map[string]written
}

type written struct {
	view []byte // the JSON view
	at   int64  // its stamp, Redis ms
}

// presenceClockEvery is how often a node reads Redis's clock.
const presenceClockEvery = 10 * time.Second

var _ chat.Presence = (*Presence)(nil)

// Presence returns the cluster's presence (one per Cluster: it remembers
// what this node wrote).
func (c *Cluster) Presence() *Presence {
	c.presenceOnce.Do(func() { c.presence = &Presence{c: c, written: make(map[string]written)} })
	return c.presence
}

// key is the key of node's view of the global room; key("") the prefix of
// all of them.
func (p *Presence) key(node string) string {
	if p.c.cluster != nil {
		return p.c.o.KeyPrefix + ":presence:{" + chat.GlobalRoom + "}:" + node
	}
	return p.c.o.KeyPrefix + ":presence:" + node
}

// roomKey is the hash of room's views, a field per node.
func (p *Presence) roomKey(room string) string {
	return p.c.o.KeyPrefix + ":room-presence:" + room
}

// globEscape quotes the characters SCAN's MATCH reads as a pattern.
var globEscape = strings.NewReplacer(`\`, `\\`, "*", `\*`, "?", `\?`, "[", `\[`, "]", `\]`)

// nodeView is a node's key: {"online":N,"users":[...],"truncated":bool}.
// A node of an earlier version writes the bare count.
type nodeView struct {
	Online    int        `json:"online"`
	Users     []nodeUser `json:"users,omitempty"`
	Truncated bool       `json:"truncated,omitempty"`
}

type nodeUser struct {
	Name   string `json:"name"`
	UserID string `json:"userId,omitempty"`
	Since  int64  `json:"since"` // Unix milliseconds
}

// Sync publishes local, this node's view of room, and returns the
// cluster's.
func (p *Presence) Sync(ctx context.Context, room string, local chat.PresenceView) (chat.PresenceView, error) {
	if room != chat.GlobalRoom {
		views, err := p.SyncRooms(ctx, []chat.RoomView{{Room: room, View: local}})
		if err != nil {
			return chat.PresenceView{}, err
		}
		return views[0], nil
	}
	b, err := encodeView(local)
	if err != nil {
		return chat.PresenceView{}, err
	}
	views, err := p.syncGlobal(ctx, b)
	if err != nil {
		return chat.PresenceView{}, err
	}
	if len(views) == 0 {
		return local, nil
	}
	return mergeViews(views), nil
}

// SyncRooms syncs rooms other than the global one in one pipeline (on a
// Redis Cluster, one per master holding them); see Presence.
func (p *Presence) SyncRooms(ctx context.Context, rooms []chat.RoomView) ([]chat.PresenceView, error) {
	c := p.c
	now, err := p.redisNow(ctx)
	if err != nil {
		return nil, err
	}
	ttl := max(c.o.PresenceTTL.Milliseconds(), 1)
	type job struct {
		view  []byte
		write bool
		all   *goredis.MapStringStringCmd
	}
	jobs := make([]job, len(rooms))
	pipe := c.client.Pipeline()
	p.mu.Lock()
	for i, r := range rooms {
		if r.Room == chat.GlobalRoom {
			p.mu.Unlock()
			return nil, errors.New("sync presence: the global room is synced alone")
		}
		b, err := encodeView(r.View)
		if err != nil {
			p.mu.Unlock()
			return nil, err
		}
		last, ok := p.written[r.Room]
		jobs[i].view = b
		jobs[i].write = !ok || !bytes.Equal(last.view, b) || now-last.at >= ttl/2
		if jobs[i].write {
			key := p.roomKey(r.Room)
			pipe.HSet(ctx, key, c.nodeID, strconv.FormatInt(now, 10)+" "+string(b))
			pipe.PExpire(ctx, key, time.Duration(ttl)*time.Millisecond)
		}
		jobs[i].all = pipe.HGetAll(ctx, p.roomKey(r.Room))
	}
	p.mu.Unlock()
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("sync presence of %d rooms: %w", len(rooms), err)
	}
	out := make([]chat.PresenceView, len(rooms))
	var stale []string // key, field pairs
	p.mu.Lock()
	for i, r := range rooms {
		j := jobs[i]
		mine := strconv.FormatInt(now, 10) + " " + string(j.view)
		if !j.write {
			mine = strconv.FormatInt(p.written[r.Room].at, 10) + " " + string(j.view)
		}
		var views []string
		seen := false
		for field, v := range j.all.Val() {
			at, view, ok := strings.Cut(v, " ")
			stamp, err := strconv.ParseInt(at, 10, 64)
			if !ok || err != nil || now-stamp > ttl {
				// Not counted. Removed once surely dead: a live node
				// rewrites its view every half TTL, and one that
				// finds it gone (seen below) writes it again.
				if !ok || err != nil || now-stamp > 2*ttl {
					stale = append(stale, p.roomKey(r.Room), field)
				}
				continue
			}
			if field == c.nodeID {
				// Ours as we wrote it; else someone removed or replaced it.
				seen = v == mine
				continue
			}
			views = append(views, view)
		}
		// This node's own view counts as it is now, whatever the hash
		// held; one that was not there as written is written next time.
		views = append(views, string(j.view))
		switch {
		case !seen || r.View.Online == 0 && !r.View.Truncated:
			delete(p.written, r.Room)
		case j.write:
			p.written[r.Room] = written{view: j.view, at: now}
		}
		out[i] = mergeViews(views)
	}
	p.mu.Unlock()
	if len(stale) > 0 {
		// Views of stopped nodes: best effort, a later sync retries.
		pipe := c.client.Pipeline()
		for i := 0; i < len(stale); i += 2 {
			pipe.HDel(ctx, stale[i], stale[i+1])
		}
		_, _ = pipe.Exec(ctx)
	}
	return out, nil
}

// redisNow returns Redis's clock in Unix milliseconds: this node's clock
// plus the offset read from TIME at most presenceClockEvery ago.
func (p *Presence) redisNow(ctx context.Context) (int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	local := time.Now()
	if p.offsetAt.IsZero() || local.Sub(p.offsetAt) >= presenceClockEvery {
		t, err := p.c.client.Time(ctx).Result()
		if err != nil {
			return 0, fmt.Errorf("read Redis's clock: %w", err)
		}
		// The reply left Redis about half a round trip ago.
		after := time.Now()
		p.offset = t.Sub(local.Add(after.Sub(local) / 2))
		p.offsetAt, local = after, after
	}
	return local.Add(p.offset).UnixMilli(), nil
}

// encodeView is a node's view as written: {"online":N,"users":[...],
// "truncated":bool}.
func encodeView(local chat.PresenceView) ([]byte, error) {
	mine := nodeView{Online: local.Online, Truncated: local.Truncated}
	for _, u := range local.Users {
		mine.Users = append(mine.Users, nodeUser{Name: u.Name, UserID: u.UserID, Since: u.Since.UnixMilli()})
	}
	b, err := json.Marshal(mine)
	if err != nil {
		return nil, fmt.Errorf("encode presence: %w", err)
	}
	return b, nil
}

// mergeViews is the cluster's view from the nodes' (unreadable ones
// skipped): the counts summed, the users merged.
func mergeViews(views []string) chat.PresenceView {
	var out chat.PresenceView
	var lists [][]chat.OnlineUser
	for _, s := range views {
		nv, ok := parseNodeView(s)
		if !ok {
			continue
		}
		out.Online += nv.Online
		out.Truncated = out.Truncated || nv.Truncated
		users := make([]chat.OnlineUser, 0, len(nv.Users))
		for _, u := range nv.Users {
			users = append(users, chat.OnlineUser{Name: u.Name, UserID: u.UserID, Since: time.UnixMilli(u.Since).UTC()})
		}
		lists = append(lists, users)
	}
	if !out.Truncated {
		out.Users, _ = chat.MergeUsers(-1, lists...)
	}
	return out
}

// syncGlobal writes this node's view of the global room, b, and returns
// the views of every node alive.
func (p *Presence) syncGlobal(ctx context.Context, b []byte) ([]string, error) {
	c := p.c
	if err := c.client.Set(ctx, p.key(c.nodeID), b, c.o.PresenceTTL).Err(); err != nil {
		return nil, fmt.Errorf("publish presence: %w", err)
	}
	var keys []string
	// The keys live on one node (their hash tag's, on a cluster).
	node, err := c.nodeFor(ctx, p.key(c.nodeID))
	if err != nil {
		return nil, fmt.Errorf("list presence keys: %w", err)
	}
	iter := node.Scan(ctx, 0, globEscape.Replace(p.key(""))+"*", 100).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return nil, fmt.Errorf("list presence keys: %w", err)
	}
	if len(keys) == 0 {
		return nil, nil
	}
	vals, err := c.client.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, fmt.Errorf("read presence: %w", err)
	}
	views := make([]string, 0, len(vals))
	for _, v := range vals {
		if s, ok := v.(string); ok { // nil: expired between SCAN and MGET
			views = append(views, s)
		}
	}
	return views, nil
}

// parseNodeView reads a node's key: the JSON view, or an earlier node's
// bare count.
func parseNodeView(s string) (nodeView, bool) {
	if n, err := strconv.Atoi(s); err == nil {
		return nodeView{Online: max(n, 0)}, true
	}
	var nv nodeView
	if err := json.Unmarshal([]byte(s), &nv); err != nil || nv.Online < 0 {
		return nodeView{}, false
	}
	return nv, true
}

// Leave removes this node's view of the rooms at once (graceful
// shutdown).
func (p *Presence) Leave(ctx context.Context, rooms ...string) error {
	// One key a command: the keys of several rooms need not share a slot.
	var first error
	for _, r := range rooms {
		var err error
		if r == chat.GlobalRoom {
			err = p.c.client.Del(ctx, p.key(p.c.nodeID)).Err()
		} else {
			p.mu.Lock()
			delete(p.written, r)
			p.mu.Unlock()
			err = p.c.client.HDel(ctx, p.roomKey(r), p.c.nodeID).Err()
		}
		if err != nil && first == nil {
			first = err
		}
	}
	return first
}
