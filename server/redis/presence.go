package redis

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/scalable-chat-go/server/chat"
)

// Presence tells who is online in each room on every Go node of the
// cluster: each node writes its own view of a room (its connection count
// and its users there), refreshed on every sync, and the cluster's view of
// the room is the merge of the views written within PresenceTTL. A
// crashed node stops refreshing and drops out within the TTL. Nodes
// running Node's adapters publish nothing, so their clients are not
// counted.
//
// The global room keeps the keys it had before rooms, one per node,
// prefix:presence:<node> with the TTL as their expiry, so that nodes of
// both versions count each other during a rolling upgrade; reading them
// takes a SCAN, once a second per node. Every other room is one hash,
// prefix:room-presence:<room>, a field per node: a sync reads and writes
// only that key, so its cost follows the room's nodes, not the keyspace
// (a SCAN per room per second would walk the whole keyspace as many
// times as a node holds rooms). On a Redis Cluster the global room's keys
// are prefix:presence:{global}:<node>, one slot for the SCAN.
type Presence struct{ c *Cluster }

var _ chat.Presence = (*Presence)(nil)

// Presence returns the cluster's presence.
func (c *Cluster) Presence() *Presence { return &Presence{c: c} }

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

// syncRoom writes this node's view (ARGV[2]) of a room under its field
// (ARGV[1]), stamped with Redis's own clock, and returns the views
// written within ARGV[3] milliseconds, deleting the older ones (their
// nodes stopped). Redis's clock, not the nodes': their clocks may
// disagree by more than the TTL. The key expires with the TTL too, so a
// room every node left leaves nothing behind.
var syncRoom = goredis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[3])
redis.call('HSET', KEYS[1], ARGV[1], now .. ' ' .. ARGV[2])
redis.call('PEXPIRE', KEYS[1], ttl)
local all = redis.call('HGETALL', KEYS[1])
local out = {}
for i = 1, #all, 2 do
  local at, view = string.match(all[i + 1], '^(%d+) (.*)$')
  if at and now - tonumber(at) <= ttl then
    out[#out + 1] = view
  else
    redis.call('HDEL', KEYS[1], all[i])
  end
end
return out
`)

// Sync publishes local, this node's view of room, and returns the
// cluster's.
func (p *Presence) Sync(ctx context.Context, room string, local chat.PresenceView) (chat.PresenceView, error) {
	c := p.c
	mine := nodeView{Online: local.Online, Truncated: local.Truncated}
	for _, u := range local.Users {
		mine.Users = append(mine.Users, nodeUser{Name: u.Name, UserID: u.UserID, Since: u.Since.UnixMilli()})
	}
	b, err := json.Marshal(mine)
	if err != nil {
		return chat.PresenceView{}, fmt.Errorf("encode presence: %w", err)
	}
	var views []string
	if room == chat.GlobalRoom {
		views, err = p.syncGlobal(ctx, b)
	} else {
		views, err = syncRoom.Run(ctx, c.client, []string{p.roomKey(room)},
			c.nodeID, b, max(c.o.PresenceTTL.Milliseconds(), 1)).StringSlice()
		if err != nil {
			err = fmt.Errorf("sync presence: %w", err)
		}
	}
	if err != nil {
		return chat.PresenceView{}, err
	}
	if len(views) == 0 {
		return local, nil
	}
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
	return out, nil
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
			err = p.c.client.HDel(ctx, p.roomKey(r), p.c.nodeID).Err()
		}
		if err != nil && first == nil {
			first = err
		}
	}
	return first
}
