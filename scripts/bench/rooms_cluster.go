package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/scalable-chat-go/bench/internal/report"
	"github.com/scalable-chat-go/bench/internal/server"
	"github.com/scalable-chat-go/bench/internal/services"
)

// The rooms mode across nodes (-nodes above 1): every server runs -nodes
// nodes sharing one Redis, in each Redis subscription mode of
// -subscription, and the clients sit so that each room's members are on
// one node or two:
//
//   - room r's home is node r mod N; an even room's clients are all there,
//     an odd room's alternate between its home and the next node;
//   - sender j is on node (j mod g) mod N, g = gcd(rooms, senders): with N
//     dividing g (300 rooms, 15 senders, 3 nodes) every sender sits on the
//     home of every room it sends to.
//
// What a node receives from the others is counted by the node itself (ours:
// chat_cluster_room_events_received_total; the reference fixture counts
// its adapter's messages), and set beside what it should receive: the
// events, sent from another node, of the rooms it holds (a member there).

// Subscription modes, as both servers name them (REDIS_SUBSCRIPTION_MODE).
const (
	subDynamic = "dynamic"
	subStatic  = "static"
)

// roomsCluster is what the steps across nodes share.
type roomsCluster struct {
	redisURL string
	redisPID int
	pg       *services.Postgres // ours: a fresh database per step
	run      string
	log      io.Writer
}

// CrossNode is what the nodes of a step received from each other.
type CrossNode struct {
	// Received: events of rooms the nodes received from other nodes,
	// summed over the nodes; Dropped: those of rooms with no member on the
	// node that received them.
	Received int64 `json:"received"`
	Dropped  int64 `json:"dropped"`
	// Held: the events sent from another node to a room the node holds,
	// summed over the nodes: what routing by room must deliver.
	Held int64 `json:"held"`
	// All: every event sent from another node, summed over the nodes: what
	// a node subscribed to everything receives.
	All int64 `json:"all"`
	// Ratio is Received / Held.
	Ratio float64 `json:"ratio"`
	// RedisBytesPerMsg: Redis's network bytes in and out over the sent
	// messages (warm-up included), and its CPU per measured message.
	RedisInPerMsg    float64  `json:"redis_in_bytes_per_msg"`
	RedisOutPerMsg   float64  `json:"redis_out_bytes_per_msg"`
	RedisCPUPerMsgUs *float64 `json:"redis_cpu_per_msg_us,omitempty"`
}

// placement says which node each connection of a step sits on.
type placement struct {
	nodes   int
	rt      *routing
	client  []int // by client
	sender  []int // by sender
	holders [][]bool
}

func newPlacement(rt *routing, nodes int) *placement {
	rooms, senders := len(rt.ids), int(rt.senders)
	pl := &placement{nodes: nodes, rt: rt, client: make([]int, len(rt.of)), sender: make([]int, senders), holders: make([][]bool, rooms)}
	for r := range pl.holders {
		pl.holders[r] = make([]bool, nodes)
	}
	for i, r := range rt.of {
		home := r % nodes
		if r%2 == 1 && (i/rooms)%2 == 1 {
			home = (home + 1) % nodes
		}
		pl.client[i] = home
		pl.holders[r][home] = true
	}
	g := gcd(rooms, senders)
	for j := range pl.sender {
		pl.sender[j] = (j % g) % nodes
		for _, r := range senderRooms(rooms, senders, j) {
			pl.holders[r][pl.sender[j]] = true
		}
	}
	return pl
}

// urls returns the URL of each of n connections placed by node.
func (pl *placement) urls(nodes []string, node []int) []string {
	out := make([]string, len(node))
	for i, n := range node {
		out[i] = nodes[n]
	}
	return out
}

// expect fills c's Held and All for messages 0..sent-1 (message k to room
// k mod R from sender k mod S).
func (pl *placement) expect(c *CrossNode, sent int64) {
	rooms, senders := int64(len(pl.rt.ids)), pl.rt.senders
	for k := range sent {
		r, from := k%rooms, pl.sender[k%senders]
		for n := range pl.nodes {
			if n == from {
				continue
			}
			c.All++
			if pl.holders[r][n] {
				c.Held++
			}
		}
	}
}

// crossCounts reads what the nodes of sys received from the others, summed.
func crossCounts(ctx context.Context, sys *system) (received, dropped int64, err error) {
	for _, p := range sys.nodes {
		var rec, drop float64
		if sys.kind == server.Go {
			m, err := p.Metrics(ctx, "chat_cluster_room_events_received_total", "chat_cluster_room_events_dropped_total")
			if err != nil {
				return 0, 0, err
			}
			rec, drop = m["chat_cluster_room_events_received_total"], m["chat_cluster_room_events_dropped_total"]
		} else {
			var out struct{ Received, Dropped float64 }
			if err := getJSON(ctx, p.URL+"/bench/cluster", &out); err != nil {
				return 0, 0, fmt.Errorf("the reference's cluster counts: %w", err)
			}
			rec, drop = out.Received, out.Dropped
		}
		received += int64(rec)
		dropped += int64(drop)
	}
	return received, dropped, nil
}

func getJSON(ctx context.Context, url string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	if err != nil {
		return err
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, res.Status)
	}
	return json.Unmarshal(data, v)
}

// env returns the settings of a step's nodes of kind k: the shared Redis
// on a fresh key prefix, the subscription mode, and for ours a fresh
// PostgreSQL database (rooms across nodes need a shared store: without
// one each node has its own SQLite, and rooms are refused).
func (cl *roomsCluster) env(ctx context.Context, k server.Kind, step int, mode string) (env []string, cleanup func(), err error) {
	env = []string{"REDIS_URL=" + cl.redisURL, "REDIS_KEY_PREFIX=" + keyPrefix(cl.run, step), "REDIS_SUBSCRIPTION_MODE=" + mode}
	if k != server.Go {
		return env, func() {}, nil
	}
	name := fmt.Sprintf("bench_%s_%d", cl.run, step)
	url, err := cl.pg.CreateDatabase(ctx, name)
	if err != nil {
		return nil, nil, err
	}
	return append(env, "DATABASE_URL="+url), func() {
		if err := cl.pg.DropDatabase(context.Background(), name); err != nil {
			fmt.Fprintf(cl.log, "%v\n", err)
		}
	}, nil
}

// roomsClusterTable sets, per shape and mode, what the nodes received from
// each other beside what they should, and what Redis spent per message.
func roomsClusterTable(points []RoomsPoint) string {
	t := report.Table{
		Header: []string{"shape", "server", "mode", "cross-node events received", "of rooms held", "received/held", "every event",
			"dropped", "Redis µs CPU/msg", "Redis bytes in/msg", "Redis bytes out/msg"},
		Right: []bool{false, false, false, true, true, true, true, true, true, true, true},
	}
	for _, p := range points {
		if p.Error != "" || p.Cross == nil {
			continue
		}
		c := p.Cross
		t.Rows = append(t.Rows, []string{shapeText(p), p.Server, p.Subscription, fmt.Sprint(c.Received), fmt.Sprint(c.Held),
			"**" + report.Ratio(float64(c.Received), float64(c.Held)) + "**", fmt.Sprint(c.All), fmt.Sprint(c.Dropped),
			opt(c.RedisCPUPerMsgUs), report.Num(c.RedisInPerMsg), report.Num(c.RedisOutPerMsg)})
	}
	if len(t.Rows) == 0 {
		return ""
	}
	n := points[0].Nodes
	return fmt.Sprintf("\n#### Across %d nodes: what each node receives from the others\n\n", n) + t.Markdown() +
		"\ncross-node events received: events of rooms a node received from the other nodes through Redis, summed over the nodes, " +
		"from the warm-up's first message to the end of the drain (ours: chat_cluster_room_events_received_total; the reference: its adapter's messages from other nodes); " +
		"of rooms held: the events sent from another node to a room with a member on the node (what it must receive); " +
		"every event: each event sent from another node, once per node (what a node subscribed to every room receives); " +
		"dropped: events received for a room with no member on the node. " +
		"Redis: its process's CPU over the measured messages, and its network bytes (INFO stats) over every message sent, warm-up included; " +
		"ours also stores every message in PostgreSQL (rooms across nodes need a shared store), whose cost is not in these figures.\n"
}

// modeLabel is a point's label with its subscription mode.
func modeLabel(k server.Kind, mode string) string {
	if mode == "" {
		return k.Label()
	}
	return fmt.Sprintf("%s, %s", k.Label(), mode)
}

// parseSubscriptions checks -subscription.
func parseSubscriptions(list string) ([]string, error) {
	var out []string
	for _, m := range strings.Split(list, ",") {
		m = strings.TrimSpace(m)
		if m != subDynamic && m != subStatic {
			return nil, usagef("-subscription %q: want dynamic, static, or both, comma separated", list)
		}
		out = append(out, m)
	}
	return out, nil
}

// crossNow reads the nodes' counts (received, dropped) and Redis's network
// bytes (in, out).
func crossNow(ctx context.Context, sys *system, cl *roomsCluster) (out [4]int64, err error) {
	if out[0], out[1], err = crossCounts(ctx, sys); err != nil {
		return out, err
	}
	out[2], out[3], err = services.RedisNetBytes(ctx, cl.redisURL)
	return out, err
}

// settledCross is crossNow once the counts stop moving: the drain waits
// for the clients' deliveries, not for the events a node drops, which may
// still be on their way.
func settledCross(ctx context.Context, sys *system, cl *roomsCluster) ([4]int64, error) {
	last, err := crossNow(ctx, sys, cl)
	for deadline := time.Now().Add(3 * time.Second); err == nil && time.Now().Before(deadline); {
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return last, err
		}
		var now [4]int64
		if now, err = crossNow(ctx, sys, cl); err == nil && now[0] == last[0] && now[1] == last[1] {
			return now, nil
		}
		last = now
	}
	return last, err
}
