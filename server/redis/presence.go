package redis

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/scalable-chat-go/server/chat"
)

// Presence tells who is online in each room on every Go node of the
// cluster: each node writes its own view of a room (its connection count
// and its users there) to a key of the room that expires after
// PresenceTTL, and the cluster's view of the room is the merge of its keys
// alive. A crashed node stops refreshing its keys and drops out within the
// TTL. Nodes running Node's adapters publish nothing, so their clients are
// not counted.
//
// On one server, the global room's keys are prefix:presence:<node>, as
// before rooms, so that nodes of both versions count each other during a
// rolling upgrade; another room's are prefix:room-presence:<room>:<node>,
// which the global room's pattern does not match. On a Redis Cluster, a
// room's keys are prefix:presence:{<room>}:<node>: the hash tag puts them
// in one slot, so one node's SCAN lists them all and one MGET reads them.
type Presence struct{ c *Cluster }

var _ chat.Presence = (*Presence)(nil)

// Presence returns the cluster's presence.
func (c *Cluster) Presence() *Presence { return &Presence{c: c} }

// key is the key of node's view of room; key(room, "*") the pattern of the
// room's keys.
func (p *Presence) key(room, node string) string {
	if p.c.cluster != nil {
		return p.c.o.KeyPrefix + ":presence:{" + room + "}:" + node
	}
	if room == chat.GlobalRoom {
		return p.c.o.KeyPrefix + ":presence:" + node
	}
	return p.c.o.KeyPrefix + ":room-presence:" + room + ":" + node
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
	c := p.c
	mine := nodeView{Online: local.Online, Truncated: local.Truncated}
	for _, u := range local.Users {
		mine.Users = append(mine.Users, nodeUser{Name: u.Name, UserID: u.UserID, Since: u.Since.UnixMilli()})
	}
	b, err := json.Marshal(mine)
	if err != nil {
		return chat.PresenceView{}, fmt.Errorf("encode presence: %w", err)
	}
	if err := c.client.Set(ctx, p.key(room, c.nodeID), b, c.o.PresenceTTL).Err(); err != nil {
		return chat.PresenceView{}, fmt.Errorf("publish presence: %w", err)
	}
	var keys []string
	// The keys of the room live on one node (its hash tag's, on a cluster).
	node, err := c.nodeFor(ctx, p.key(room, c.nodeID))
	if err != nil {
		return chat.PresenceView{}, fmt.Errorf("list presence keys: %w", err)
	}
	iter := node.Scan(ctx, 0, globEscape.Replace(p.key(room, ""))+"*", 100).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return chat.PresenceView{}, fmt.Errorf("list presence keys: %w", err)
	}
	if len(keys) == 0 {
		return local, nil
	}
	vals, err := c.client.MGet(ctx, keys...).Result()
	if err != nil {
		return chat.PresenceView{}, fmt.Errorf("read presence: %w", err)
	}
	var out chat.PresenceView
	var lists [][]chat.OnlineUser
	for _, v := range vals {
		s, ok := v.(string)
		if !ok {
			continue // expired between SCAN and MGET
		}
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
		if err := p.c.client.Del(ctx, p.key(r, p.c.nodeID)).Err(); err != nil && first == nil {
			first = err
		}
	}
	return first
}
