package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scalable-chat-go/bench/internal/stamp"
)

func TestCommandLineMistakes(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		want  string
		usage bool
	}{
		{"no mode", nil, "no mode given", true},
		{"unknown mode", []string{"stress"}, `unknown mode "stress"`, true},
		{"no nodes", []string{"cluster", "-nodes", "0"}, "-nodes 0", true},
		{"too many nodes", []string{"cluster", "-nodes", "17"}, "-nodes 17", true},
		{"unknown adapter", []string{"cluster", "-adapter", "classic"}, `-adapter "classic"`, true},
		{"redis not on loopback", []string{"cluster", "-redis-url", "redis://cache.example.org:6379"}, "not a loopback address", true},
		{"no redis", []string{"cluster", "-redis-url="}, "cluster needs Redis", false},
		{"cluster load checked", []string{"cluster", "-receivers", "0"}, "-receivers 0", true},
		{"unknown backend", []string{"cluster", "-on", "redis,memcached"}, `-on "redis,memcached"`, true},
		{"no redis cluster", []string{"cluster", "-on", "cluster", "-redis-cluster="}, "-on cluster needs a Redis Cluster", false},
		{"cluster not on loopback", []string{"cluster", "-on", "redis,cluster", "-redis-cluster", "10.1.2.3:7000"}, "not a loopback address", true},
		{"unknown store", []string{"pipeline", "-stores", "sqlite,mysql"}, `store "mysql"`, true},
		{"store twice", []string{"pipeline", "-stores", "sqlite,sqlite"}, `store "sqlite" given twice`, true},
		{"pipeline without ours", []string{"pipeline", "-servers", "node"}, "include go", true},
		{"no messages", []string{"pipeline", "-messages", "0"}, "-messages 0", true},
		{"too many messages", []string{"pipeline", "-messages", "2000001"}, "-messages 2000001", true},
		{"no window", []string{"pipeline", "-window", "0"}, "-window 0", true},
		{"too many consumers", []string{"pipeline", "-consumers", "9"}, "-consumers 9", true},
		{"poll too fast", []string{"pipeline", "-poll", "100us"}, "-poll 100µs", true},
		{"profile too long", []string{"pipeline", "-server-profile", "2m"}, "-server-profile 2m0s", true},
		{"pipeline read buffer", []string{"pipeline", "-read-buffer", "10"}, "-read-buffer 10", true},
		{"no services", []string{"pipeline", "-database-url=", "-kafka-brokers="}, "needs PostgreSQL and Kafka", false},
		{"rooms on no nodes", []string{"rooms", "-nodes", "0"}, "-nodes 0", true},
		{"unknown subscription", []string{"rooms", "-nodes", "3", "-subscription", "dynamic,sharded"}, `-subscription "dynamic,sharded"`, true},
		{"rooms across nodes without redis", []string{"rooms", "-nodes", "3", "-redis-url="}, "-nodes 3 needs Redis", false},
		{"rooms across nodes without a store", []string{"rooms", "-nodes", "3", "-redis-url", "redis://127.0.0.1:6379", "-database-url="}, "needs PostgreSQL for ours", false},
		{"rooms' redis not on loopback", []string{"rooms", "-nodes", "2", "-redis-url", "redis://cache.example.org:6379"}, "not a loopback address", true},
		{"database not on loopback", []string{"pipeline", "-database-url", "postgresql://chat@db.example.org/chat", "-kafka-brokers", "127.0.0.1:59092"}, "not a loopback address", true},
		{"broker not on loopback", []string{"pipeline", "-database-url", "postgresql://chat@127.0.0.1/chat", "-kafka-brokers", "kafka.example.org:9092"}, "not a loopback address", true},
		{"unknown flag", []string{"fanout", "-receviers", "10"}, "flag provided but not defined", true},
		{"stray argument", []string{"idle", "5000"}, `unexpected argument "5000"`, true},
		{"no receivers", []string{"fanout", "-receivers", "0"}, "-receivers 0", true},
		{"too many receivers", []string{"fanout", "-receivers", "50001"}, "-receivers 50001", true},
		{"zero rate", []string{"fanout", "-rates", "10,0"}, `rate "0"`, true},
		{"rate not a number", []string{"fanout", "-rates", "fast"}, `rate "fast"`, true},
		{"too fast", []string{"fanout", "-rates", "10001"}, `rate "10001"`, true},
		{"too long", []string{"fanout", "-duration", "3m"}, "-duration 3m0s", true},
		{"no drain", []string{"fanout", "-drain", "0s"}, "-drain 0s", true},
		{"text too long", []string{"fanout", "-text", "5000"}, "-text 5000", true},
		{"too many senders", []string{"fanout", "-senders", "101"}, "-senders 101", true},
		{"too many connections", []string{"idle", "-conns", "60001"}, "-conns 60001", true},
		{"hold too long", []string{"idle", "-hold", "1h"}, "-hold 1h0m0s", true},
		{"unknown server", []string{"idle", "-servers", "go,python"}, `unknown server "python"`, true},
		{"server twice", []string{"idle", "-servers", "go,go"}, `server "go" given twice`, true},
		{"bad env", []string{"fanout", "-env", "NOEQUALS"}, `-env "NOEQUALS"`, true},
		{"quiet beyond the machine", []string{"fanout", "-quiet", "1000"}, "-quiet 1000", true},
		{"bad repo", []string{"idle", "-repo", os.TempDir()}, "no server/cmd/chat-server", true},
		{"live with the reference", []string{"live", "-servers", "go,node"}, "measures ours only", true},
		{"live, one connection", []string{"live", "-conns", "1"}, "-conns 1", true},
		{"live, more typists than connections", []string{"live", "-conns", "10", "-typists", "5,11"}, "-typists 11", true},
		{"live, typists not numbers", []string{"live", "-typists", "many"}, `"many" is not a whole number`, true},
		{"live, churn too high", []string{"live", "-churn", "500"}, "-churn 500", true},
		{"live, too long", []string{"live", "-duration", "3m"}, "-duration 3m0s", true},
		{"rooms, no clients", []string{"rooms", "-clients", "0"}, "-clients 0", true},
		{"rooms, more rooms than clients", []string{"rooms", "-clients", "10", "-rooms", "5,20"}, "-rooms 20", true},
		{"rooms, rooms not numbers", []string{"rooms", "-rooms", "ten"}, `"ten" is not a whole number`, true},
		{"rooms, nothing to measure", []string{"rooms", "-rooms=", "-mem-conns", "0"}, "nothing to measure", true},
		{"rooms, no rate", []string{"rooms", "-rate", "0"}, "-rate 0", true},
		{"rooms, too many senders", []string{"rooms", "-senders", "101"}, "-senders 101", true},
		{"rooms, one room in the memory step", []string{"rooms", "-mem-rooms", "1"}, "-mem-rooms 1", true},
		{"rooms, pool smaller than the rooms", []string{"rooms", "-mem-rooms", "10", "-mem-pool", "5"}, "-mem-pool 5", true},
		{"rooms, too many sockets", []string{"rooms", "-mem-conns", "20001"}, "-mem-conns 20001", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := run(context.Background(), tt.args, &out, &errOut)
			if err == nil {
				t.Fatal("want an error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q, want it to mention %q", err, tt.want)
			}
			var ue usageError
			if errors.As(err, &ue) != tt.usage {
				t.Fatalf("usage error: %v, want %v (%v)", errors.As(err, &ue), tt.usage, err)
			}
		})
	}
}

func TestSourceAddr(t *testing.T) {
	if sourceAddr(5, 100) != nil {
		t.Fatal("a small run lets the kernel choose")
	}
	tests := []struct {
		i    int
		want string
	}{{0, "127.0.0.1"}, {perSourceAddr - 1, "127.0.0.1"}, {perSourceAddr, "127.0.0.2"}, {3*perSourceAddr + 7, "127.0.0.4"}}
	for _, tt := range tests {
		got := sourceAddr(tt.i, 60000)
		if !got.Equal(net.ParseIP(tt.want)) || !got.IsLoopback() {
			t.Errorf("sourceAddr(%d) = %v, want %s", tt.i, got, tt.want)
		}
	}
}

func TestSentPerSender(t *testing.T) {
	tests := []struct {
		sent, warm int64
		senders    int
		want       []int64
	}{
		{100, 0, 1, []int64{100}},
		{100, 25, 2, []int64{50, 50}},
		// Warm-up messages 0..24 go round the senders first: the measured
		// ones start at sender 25 mod 3 = 1.
		{100, 25, 3, []int64{33, 34, 33}},
		{4, 10, 3, []int64{1, 2, 1}},
		{0, 7, 2, []int64{0, 0}},
	}
	for _, tt := range tests {
		got := sentPerSender(tt.sent, tt.warm, tt.senders)
		if fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("sentPerSender(%d, %d, %d) = %v, want %v", tt.sent, tt.warm, tt.senders, got, tt.want)
		}
	}
}

func TestRouting(t *testing.T) {
	ids := []string{"a", "b", "c", "d"}
	// 10 clients over 4 rooms: 3, 3, 2, 2.
	rt := newRouting(ids, 10, 2, 3)
	if lo, hi := rt.roomSizes(); lo != 2 || hi != 3 || rt.of[5] != 1 || rt.of[9] != 1 {
		t.Fatalf("sizes %d..%d, client 5 in room %d, client 9 in room %d", lo, hi, rt.of[5], rt.of[9])
	}
	// Message k goes from sender k mod 2 to room k mod 4; the measured ones
	// start at k = 3 (three warm-up messages): sender 1 sends k = 3, 5, 7, ...
	// (rooms 3, 1, 3, ...), sender 0 sends k = 4, 6, 8, ... (rooms 0, 2, 0, ...).
	for _, tt := range []struct {
		sender, seq int64
		room        int
	}{{1, 0, 3}, {1, 1, 1}, {1, 2, 3}, {0, 0, 0}, {0, 1, 2}, {0, 2, 0}} {
		if got := rt.room(tt.sender, tt.seq); got != tt.room {
			t.Errorf("room(sender %d, seq %d) = %d, want %d", tt.sender, tt.seq, got, tt.room)
		}
	}
	if !rt.delivers(3, stamp.Stamp{Sender: 1, Seq: 0}) || rt.delivers(2, stamp.Stamp{Sender: 1, Seq: 0}) || rt.delivers(3, stamp.Stamp{Sender: 2}) {
		t.Error("delivers: client 3 is in room 3, client 2 is not; there is no sender 2")
	}
	for _, tt := range []struct {
		rooms, senders, j int
		want              string
	}{
		{100, 10, 3, "[3 13 23 33 43 53 63 73 83 93]"},
		{10, 10, 3, "[3]"},
		{4, 6, 1, "[1 3]"}, // gcd 2
		{3, 10, 7, "[0 1 2]"},
		{2, 4, 3, "[1]"},
	} {
		if got := fmt.Sprint(senderRooms(tt.rooms, tt.senders, tt.j)); got != tt.want {
			t.Errorf("senderRooms(%d, %d, %d) = %s, want %s", tt.rooms, tt.senders, tt.j, got, tt.want)
		}
	}
	// Every message a sender sends goes to a room it is in.
	for _, shape := range [][2]int{{100, 10}, {10, 10}, {4, 6}, {3, 10}, {7, 3}} {
		n, senders := shape[0], shape[1]
		for k := range 200 {
			if !slices.Contains(senderRooms(n, senders, k%senders), k%n) {
				t.Fatalf("%d rooms, %d senders: message %d goes to room %d, which sender %d is not in", n, senders, k, k%n, k%senders)
			}
		}
	}
}

// The placement across nodes: even rooms on their home node, odd ones
// on two; every sender on the home of its rooms when the nodes divide
// gcd(rooms, senders); and the events each node must receive.
func TestRoomsPlacement(t *testing.T) {
	ids := make([]string, 300)
	rt := newRouting(ids, 1000, 15, 0)
	pl := newPlacement(rt, 3)
	for r := range ids {
		var on []int
		for n, held := range pl.holders[r] {
			if held {
				on = append(on, n)
			}
		}
		want := []int{r % 3}
		if r%2 == 1 {
			want = []int{r % 3, (r%3 + 1) % 3}
			slices.Sort(want)
		}
		if !slices.Equal(on, want) {
			t.Fatalf("room %d is held by nodes %v, want %v", r, on, want)
		}
	}
	for i, r := range rt.of {
		if n := pl.client[i]; !pl.holders[r][n] {
			t.Fatalf("client %d of room %d is on node %d, which does not hold it", i, r, n)
		}
	}
	for j := range 15 {
		for _, r := range senderRooms(300, 15, j) {
			if pl.sender[j] != r%3 {
				t.Fatalf("sender %d is on node %d, room %d's home is %d", j, pl.sender[j], r, r%3)
			}
		}
	}
	// 600 messages: each from its room's home; an odd room's reach its
	// second node, an even room's no other.
	var c CrossNode
	pl.expect(&c, 600)
	if c.All != 1200 || c.Held != 300 {
		t.Fatalf("held %d of %d, want 300 of 1200", c.Held, c.All)
	}
}

func TestRoomsTables(t *testing.T) {
	point := func(server, label string, p99, cpu float64) RoomsPoint {
		return RoomsPoint{FanoutPoint: FanoutPoint{Server: server, Label: label, Rate: 100, DeliveriesPerSec: 1000,
			LatencyMs: Latency{P50: 1, P95: 2, P99: p99, Max: 9}, CPUPerDeliveryUs: cpu, ServerCores: 0.1, ServerRSSMB: 50,
			UserPerDeliveryUs: cpu / 2, SysPerDeliveryUs: cpu / 2},
			Rooms: 100, RoomSizeMin: 10, RoomSizeMax: 10}
	}
	ours, ref := point("go", "ours (Go)", 3, 60), point("node", "reference (Node)", 6, 80)
	ours.WrongRoom = 4
	uneven := point("go", "ours (Go)", 3, 60)
	uneven.Rooms, uneven.RoomSizeMin, uneven.RoomSizeMax, uneven.Error = 3, 3, 4, "connect clients: refused\nmore"
	md := roomsTable([]RoomsPoint{ours, ref, uneven})
	for _, want := range []string{"100 rooms of 10", "**0.50**", "**0.75**", "4 messages reached clients not in their room",
		"3 rooms  ", "ours (Go), 3 rooms failed: connect clients: refused", "µs user", "µs system"} {
		if !strings.Contains(md, want) {
			t.Errorf("table lacks %q:\n%s", want, md)
		}
	}
	if got := shapeText(uneven); got != "3 rooms of 3-4" {
		t.Errorf("shapeText = %q", got)
	}
	mem := roomsMemTable([]RoomsMemPoint{
		{Server: "go", Label: "ours (Go)", Conns: 5000, Pool: 100, Rooms: 10, OneKB: 3, ManyKB: 4.5, ExtraKB: 1.5, ExtraSettledKB: 0.8,
			OneLiveKB: ptr(2), ExtraLiveKB: ptr(0.7), HoldSec: 5},
		{Server: "node", Label: "reference (Node)", Conns: 5000, Pool: 100, Rooms: 10, OneKB: 18, ManyKB: 21, ExtraKB: 3, ExtraSettledKB: 2, HoldSec: 5},
	})
	mem += roomsMemTable([]RoomsMemPoint{{Server: "go", Label: "ours (Go)", Error: "open connections: refused"}})
	for _, want := range []string{"5000 sockets over 100 public rooms, 1 room each, then 10", "+9 rooms, KB/socket", "**+1.50**", "+0.80",
		" 0.50 |", " 0.40 |", "read 5s after", "ours (Go), memory step failed: open connections: refused"} {
		if !strings.Contains(mem, want) {
			t.Errorf("memory table lacks %q:\n%s", want, mem)
		}
	}
	if roomsMemTable(nil) != "" || roomsTable(nil) != "" {
		t.Error("no step, no table")
	}
}

func TestFanoutTable(t *testing.T) {
	points := []FanoutPoint{
		{Server: "go", Label: "ours (Go)", Rate: 70, DeliveriesPerSec: 56000, LatencyMs: Latency{P50: 700, P95: 2000, P99: 2500, Max: 2600}, CPUPerDeliveryUs: 21, ServerCores: 1.2},
		{Server: "node", Label: "reference (Node)", Rate: 70, DeliveriesPerSec: 70000, LatencyMs: Latency{P50: 7, P95: 50, P99: 100, Max: 150}, CPUPerDeliveryUs: 7, ServerCores: 0.5, Missing: 10, LossPct: 0.01, OtherCores: 0.5},
		{Server: "go", Label: "ours (Go)", Rate: 150, Error: "connect receivers: refused\nmore"},
		{Server: "node", Label: "reference (Node)", Rate: 150, DeliveriesPerSec: 150000, Dropped: 2, SendLagMaxMs: 80},
	}
	md := fanoutTable(points)
	for _, want := range []string{
		"70 | ours (Go)", "| **ours/reference** |", "**25.00**", "**3.00**", "0.80", "10 (0.01%)",
		"150 | ours (Go)", "failed", "ours (Go) at 150 msgs/s failed: connect receivers: refused",
		"2 receivers dropped", "80 ms behind its schedule", "0.50 cores busy outside",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("table lacks %q:\n%s", want, md)
		}
	}
	if strings.Count(md, "ours/reference") != 1 {
		t.Errorf("a ratio row only where both servers have figures:\n%s", md)
	}
	if strings.Contains(md, "redis cores") {
		t.Errorf("a fanout table has no Redis column:\n%s", md)
	}
	svg := string(fanoutChart("t", points, 1000))
	for _, want := range []string{"deliveries per second", "p99 latency", "offered", "ours (Go)", "reference (Node)"} {
		if !strings.Contains(svg, want) {
			t.Errorf("chart lacks %q", want)
		}
	}
}

func TestClusterTable(t *testing.T) {
	points := []FanoutPoint{
		{Server: "go", Label: "ours (Go)", Rate: 100, Nodes: 3, DeliveriesPerSec: 100000, CPUPerDeliveryUs: 3, UserPerDeliveryUs: 2, SysPerDeliveryUs: 1,
			ServerCores: 0.3, RedisCores: ptr(0.02)},
		{Server: "node", Label: "reference (Node)", Rate: 100, Nodes: 3, DeliveriesPerSec: 100000, CPUPerDeliveryUs: 6, UserPerDeliveryUs: 5, SysPerDeliveryUs: 1,
			ServerCores: 0.6, RedisCores: ptr(0.04)},
		{Server: "go", Label: "ours (Go)", Rate: 200, Nodes: 3, Error: "node exited"},
	}
	md := fanoutTable(points)
	for _, want := range []string{"| µs user | µs system | redis cores | bench cores |", "0.020 |", "**0.50** |    0.40 |      1.00 |        0.50 |",
		"|    200 | ours (Go)          |       failed |"} {
		if !strings.Contains(md, want) {
			t.Errorf("table lacks %q:\n%s", want, md)
		}
	}
	for i, line := range strings.Split(strings.TrimSpace(md[:strings.Index(md, "\n\n")]), "\n") {
		if n := strings.Count(line, "|"); n != 15 {
			t.Errorf("line %d has %d cells, want 14: %s", i, n-1, line)
		}
	}
}

// On one Redis and on a Redis Cluster in one run: each backend's rows,
// then ours on the cluster against ours on one Redis.
func TestClusterTableOnTwoBackends(t *testing.T) {
	points := []FanoutPoint{
		{Server: "go", Label: "ours (Go), one Redis", Backend: "redis", Rate: 100, DeliveriesPerSec: 100000, CPUPerDeliveryUs: 3, ServerCores: 0.3, RedisCores: ptr(0.02), LatencyMs: Latency{P99: 10}},
		{Server: "node", Label: "reference (Node), one Redis", Backend: "redis", Rate: 100, DeliveriesPerSec: 100000, CPUPerDeliveryUs: 6, ServerCores: 0.6, RedisCores: ptr(0.04), LatencyMs: Latency{P99: 20}},
		{Server: "go", Label: "ours (Go), Redis Cluster", Backend: "cluster", Rate: 100, DeliveriesPerSec: 100000, CPUPerDeliveryUs: 3.3, ServerCores: 0.33, RedisCores: ptr(0.06), LatencyMs: Latency{P99: 12}},
		{Server: "node", Label: "reference (Node), Redis Cluster", Backend: "cluster", Rate: 100, DeliveriesPerSec: 100000, CPUPerDeliveryUs: 6, ServerCores: 0.6, RedisCores: ptr(0.08), LatencyMs: Latency{P99: 24}},
	}
	md := fanoutTable(points)
	rows := strings.Split(md[:strings.Index(md, "\n\n")], "\n")
	var labels []string
	for _, r := range rows[2:] {
		labels = append(labels, strings.TrimSpace(strings.Split(r, "|")[2]))
	}
	want := []string{"ours (Go), one Redis", "reference (Node), one Redis", "**ours/reference**",
		"ours (Go), Redis Cluster", "reference (Node), Redis Cluster", "**ours/reference**", "**ours: cluster/one Redis**"}
	if strings.Join(labels, ";") != strings.Join(want, ";") {
		t.Fatalf("rows %q, want %q:\n%s", labels, want, md)
	}
	// cluster/one Redis: p99 12/10, CPU per delivery 3.3/3, Redis 0.06/0.02.
	if last := rows[len(rows)-1]; !strings.Contains(last, "**1.20**") || !strings.Contains(last, "**1.10**") || !strings.Contains(last, "3.00") {
		t.Errorf("cluster/one Redis row: %s", last)
	}
}

// TestSmoke runs every mode for real, tiny and bounded, against both
// servers: our chat-server built from this repository and the Node
// reference (npm ci in server/e2e when its packages are missing). Node and
// npm are required, and the cluster and pipeline modes need the services of
// scripts/services (REDIS_URL, DATABASE_URL, KAFKA_BROKERS): without them
// it fails.
func TestSmoke(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	defer func() {
		if t.Failed() {
			t.Logf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
		}
	}()

	t.Run("fanout", func(t *testing.T) {
		err := run(ctx, []string{"fanout", "-receivers", "20", "-senders", "2", "-rates", "50", "-duration", "2s",
			"-warmup", "500ms", "-drain", "5s", "-out", out, "-name", "smoke-fanout"}, &stdout, &stderr)
		if err != nil {
			t.Fatal(err)
		}
		var res FanoutResult
		readJSON(t, filepath.Join(out, "smoke-fanout.json"), &res)
		if len(res.Points) != 2 || res.Points[0].Server != "go" || res.Points[1].Server != "node" {
			t.Fatalf("want one point per server, ours first: %+v", res.Points)
		}
		for _, p := range res.Points {
			if p.Error != "" {
				t.Fatalf("%s: %s", p.Label, p.Error)
			}
			if p.Sent != 100 || p.Expected != 2000 || p.Delivered != 2000 || p.Missing != 0 || p.Duplicates != 0 || p.OutOfOrder != 0 {
				t.Errorf("%s: sent %d, expected %d, delivered %d, missing %d, duplicates %d, out of order %d",
					p.Label, p.Sent, p.Expected, p.Delivered, p.Missing, p.Duplicates, p.OutOfOrder)
			}
			if p.Dropped != 0 || p.Refused != 0 {
				t.Errorf("%s: %d receivers dropped, %d messages refused", p.Label, p.Dropped, p.Refused)
			}
			l := p.LatencyMs
			if !(l.P50 > 0 && l.P50 <= l.P95 && l.P95 <= l.P99 && l.P99 <= l.Max && l.Max < 5000) {
				t.Errorf("%s: implausible latencies %+v", p.Label, l)
			}
			if math.Abs(p.DeliveriesPerSec-1000) > 150 {
				t.Errorf("%s: %v deliveries/s, offered 1000", p.Label, p.DeliveriesPerSec)
			}
			if !(p.ServerCPUSec > 0 && p.CPUPerDeliveryUs > 0 && p.BenchCPUSec > 0 && p.ServerRSSMB > 1) {
				t.Errorf("%s: server CPU %v s (%v µs/delivery), bench CPU %v s, RSS %v MB", p.Label, p.ServerCPUSec, p.CPUPerDeliveryUs, p.BenchCPUSec, p.ServerRSSMB)
			}
		}
		if g := res.Points[0].Goroutines; g == nil || *g < 10 {
			t.Errorf("our server's goroutines from /metrics: %v", g)
		}
		if res.Meta.Servers["node_socket.io"] == "" || res.Meta.Servers["go_server"] == "" {
			t.Errorf("versions missing from the report: %v", res.Meta.Servers)
		}
		md, err := os.ReadFile(filepath.Join(out, "smoke-fanout.md"))
		if err != nil || !strings.Contains(string(md), "**ours/reference**") {
			t.Errorf("Markdown table without the ratio row: %v\n%s", err, md)
		}
		if svg, err := os.ReadFile(filepath.Join(out, "smoke-fanout.svg")); err != nil || !bytes.HasPrefix(svg, []byte("<svg")) {
			t.Errorf("chart: %v", err)
		}
	})

	t.Run("storm", func(t *testing.T) {
		if testing.Short() {
			t.Skip("needs Redis (REDIS_URL): -short runs only the tests that need no service")
		}
		if os.Getenv("REDIS_URL") == "" {
			t.Fatal(`REDIS_URL is not set: the storm mode needs the real Redis. Start it with: eval "$(scripts/services up redis)" (or run scripts/test)`)
		}
		err := run(ctx, []string{"storm", "-clients", "30", "-before", "5", "-missed", "10",
			"-out", out, "-name", "smoke-storm"}, &stdout, &stderr)
		if err != nil {
			t.Fatal(err)
		}
		var res StormResult
		readJSON(t, filepath.Join(out, "smoke-storm.json"), &res)
		if len(res.Storms) != 4 {
			t.Fatalf("want resume and fresh, to the other node and the restarted one: %+v", res.Storms)
		}
		for _, p := range res.Storms {
			owed := 10
			if p.Reconnect == "fresh" {
				owed = 15
			}
			// No bound on the CPU: /proc counts it in 10 ms ticks, and a
			// 30-client storm of 30 ms may read 0 (CI saw it).
			if p.CaughtUp != 30 || p.Owed != owed || p.Extra != 0 || p.StormMS <= 0 || p.ServerCPUMS < 0 {
				t.Errorf("%s/%s: %+v", p.To, p.Reconnect, p)
			}
			if p.Reconnect == "resume" && (p.Resumed != 30 || p.ResumeGaps != 0) {
				t.Errorf("%s/resume: resumed %v, gaps %v; want 30 exact resumes", p.To, p.Resumed, p.ResumeGaps)
			}
		}
	})

	t.Run("live", func(t *testing.T) {
		err := run(ctx, []string{"live", "-conns", "20", "-typists", "5", "-churn", "2", "-duration", "2s", "-settle", "1500ms",
			"-out", out, "-name", "smoke-live"}, &stdout, &stderr)
		if err != nil {
			t.Fatal(err)
		}
		var res LiveResult
		readJSON(t, filepath.Join(out, "smoke-live.json"), &res)
		if len(res.Points) != 3 || res.Points[0].Step != "idle" || res.Points[1].Typists != 5 || res.Points[2].Churn != 2 {
			t.Fatalf("want idle, typing and churn steps: %+v", res.Points)
		}
		idle, typing, churn := res.Points[0], res.Points[1], res.Points[2]
		if idle.TypingReceived != 0 || idle.Dropped != 0 {
			t.Errorf("idle: %+v", idle)
		}
		// Every typing event the server forwards reaches the 19 others.
		if typing.TypingSent == 0 || typing.TypingReceived == 0 || typing.TypingReceived%19 != 0 ||
			typing.ServerDeliveries["typing"] != float64(typing.TypingReceived) {
			t.Errorf("typing: sent %d, received %d, server deliveries %v", typing.TypingSent, typing.TypingReceived, typing.ServerDeliveries)
		}
		if churn.Joins == 0 || churn.Leaves == 0 || churn.Presence == 0 || churn.PresenceMB <= 0 || churn.Dropped != 0 {
			t.Errorf("churn: %+v", churn)
		}
		// So little load can take less than a clock tick of CPU: only the
		// memory is sure to show.
		if !(typing.ServerCores >= 0 && typing.RSSMB > 1) {
			t.Errorf("typing: server cores %v, RSS %v", typing.ServerCores, typing.RSSMB)
		}
	})

	t.Run("cluster", func(t *testing.T) {
		if testing.Short() {
			t.Skip("needs Redis (REDIS_URL): -short runs only the tests that need no service")
		}
		for _, v := range []string{"REDIS_URL", "REDIS_CLUSTER_NODES"} {
			if os.Getenv(v) == "" {
				t.Fatalf(`%s is not set: the cluster mode needs the real Redis and Redis Cluster. Start them with: eval "$(scripts/services up redis redis-cluster)" (or run scripts/test)`, v)
			}
		}
		// On one Redis, then on the Redis Cluster.
		err := run(ctx, []string{"cluster", "-on", "redis,cluster", "-nodes", "2", "-receivers", "20", "-rates", "50", "-duration", "2s",
			"-warmup", "500ms", "-drain", "5s", "-out", out, "-name", "smoke-cluster"}, &stdout, &stderr)
		if err != nil {
			t.Fatal(err)
		}
		var res FanoutResult
		readJSON(t, filepath.Join(out, "smoke-cluster.json"), &res)
		if order := orderOf(res.Points, func(p FanoutPoint) string { return p.Server + "/" + p.Backend }); order != "go/redis node/redis go/cluster node/cluster" {
			t.Fatalf("want one point per server and backend, ours first, one Redis first: %v", order)
		}
		for _, p := range res.Points {
			if p.Error != "" {
				t.Fatalf("%s: %s", p.Label, p.Error)
			}
			// Two senders, one per node: every message crosses Redis to
			// half of the receivers.
			if p.Nodes != 2 || p.Senders != 2 {
				t.Errorf("%s: %d nodes, %d senders", p.Label, p.Nodes, p.Senders)
			}
			if p.Sent != 100 || p.Delivered != 2000 || p.Missing != 0 || p.Duplicates != 0 || p.OutOfOrder != 0 || p.Dropped != 0 {
				t.Errorf("%s: sent %d, delivered %d, missing %d, duplicates %d, out of order %d, dropped %d",
					p.Label, p.Sent, p.Delivered, p.Missing, p.Duplicates, p.OutOfOrder, p.Dropped)
			}
			if !(p.ServerCPUSec > 0 && p.RedisCPUSec != nil && *p.RedisCPUSec >= 0 && p.RedisCores != nil) {
				t.Errorf("%s: server CPU %v s, Redis CPU %v", p.Label, p.ServerCPUSec, p.RedisCPUSec)
			}
		}
		if g := res.Points[0].Goroutines; g == nil || *g < 20 {
			t.Errorf("our two nodes' goroutines, summed: %v", g)
		}
	})

	t.Run("pipeline", func(t *testing.T) {
		if testing.Short() {
			t.Skip("needs PostgreSQL and Kafka (DATABASE_URL, KAFKA_BROKERS): -short runs only the tests that need no service")
		}
		for _, v := range []string{"DATABASE_URL", "KAFKA_BROKERS"} {
			if os.Getenv(v) == "" {
				t.Fatalf(`%s is not set: the pipeline mode needs the real PostgreSQL and Kafka. Start them with: eval "$(scripts/services up postgres kafka)" (or run scripts/test)`, v)
			}
		}
		err := run(ctx, []string{"pipeline", "-messages", "2000", "-senders", "2", "-window", "200", "-partitions", "2",
			"-ref-max", "30s", "-step-timeout", "1m", "-server-profile", "1s", "-out", out, "-name", "smoke-pipeline"}, &stdout, &stderr)
		if err != nil {
			t.Fatal(err)
		}
		var res PipelineResult
		readJSON(t, filepath.Join(out, "smoke-pipeline.json"), &res)
		if len(res.Points) != 4 {
			t.Fatalf("want 4 steps (SQLite, Kafka, our consumer, the reference): %+v", res.Points)
		}
		warm := int64(2 * pipelineWarmup)
		for i, want := range []struct{ step, server string }{{StepSQLite, "go"}, {StepKafka, "go"}, {StepConsumer, "go"}, {StepConsumer, "node"}} {
			p := res.Points[i]
			if p.Step != want.step || p.Server != want.server || p.Error != "" {
				t.Fatalf("step %d: %s of %s, error %q; want %s of %s", i, p.Step, p.Server, p.Error, want.step, want.server)
			}
			if !p.Complete || p.StoredPerSec <= 0 || p.ServerCPUSec <= 0 || len(p.Series) == 0 {
				t.Errorf("%s %s: complete %v, %v stored/s, CPU %v s, %d series points", p.Step, p.Server, p.Complete, p.StoredPerSec, p.ServerCPUSec, len(p.Series))
			}
			if wantProfile := p.Server == "go"; (p.Profile != "") != wantProfile {
				t.Errorf("%s %s: profile %q", p.Step, p.Server, p.Profile)
			} else if wantProfile {
				if st, err := os.Stat(p.Profile); err != nil || st.Size() == 0 {
					t.Errorf("%s: profile %v", p.Step, err)
				}
			}
			switch p.Step {
			case StepSQLite, StepKafka:
				if p.Messages != 2000 || p.Stored != 2000 || len(p.Refused) != 0 || p.AckLatency == nil || p.AckedPerSec <= 0 {
					t.Errorf("%s: %d messages, %d stored, refused %v, ack latency %v", p.Step, p.Messages, p.Stored, p.Refused, p.AckLatency)
				}
			case StepConsumer:
				// Every record of the topic (warm-up included) is one row.
				if p.Messages != 2000+warm || p.Stored != p.Messages || p.Rows != p.Messages || p.DistinctIDs != p.Messages {
					t.Errorf("%s consumer: %d records, %d stored, %d rows, %d ids", p.Server, p.Messages, p.Stored, p.Rows, p.DistinctIDs)
				}
				if p.DBCPUSec == nil {
					t.Errorf("%s consumer: no PostgreSQL CPU", p.Server)
				}
			}
		}
		if p := res.Points[1]; p.Rows != 2000+warm || p.DBCPUSec == nil {
			t.Errorf("Kafka step: %d rows, PostgreSQL CPU %v", p.Rows, p.DBCPUSec)
		}
		md, err := os.ReadFile(filepath.Join(out, "smoke-pipeline.md"))
		if err != nil || !strings.Contains(string(md), "**ours/reference**") || !strings.Contains(string(md), "original-consumer.js") {
			t.Errorf("Markdown without the ratio row or the reference: %v\n%s", err, md)
		}
		if svg, err := os.ReadFile(filepath.Join(out, "smoke-pipeline.svg")); err != nil || !bytes.HasPrefix(svg, []byte("<svg")) {
			t.Errorf("chart: %v", err)
		}
	})

	t.Run("rooms", func(t *testing.T) {
		// 20 clients in 4 rooms of 5, then in 2 rooms of 10; 3 senders (in
		// 4 and 2 rooms, gcd 1: every sender in every room); then 60 sockets
		// in 1 room, then in 3.
		err := run(ctx, []string{"rooms", "-clients", "20", "-rooms", "4,2", "-senders", "3", "-rate", "30", "-duration", "2s",
			"-warmup", "500ms", "-drain", "5s", "-mem-conns", "60", "-mem-rooms", "3", "-mem-pool", "5", "-mem-hold", "200ms",
			"-out", out, "-name", "smoke-rooms"}, &stdout, &stderr)
		if err != nil {
			t.Fatal(err)
		}
		var res RoomsResult
		readJSON(t, filepath.Join(out, "smoke-rooms.json"), &res)
		if len(res.Points) != 4 || res.Points[0].Server != "go" || res.Points[1].Server != "node" || res.Points[2].Rooms != 2 {
			t.Fatalf("want ours then the reference, 4 rooms then 2: %+v", res.Points)
		}
		for _, p := range res.Points {
			if p.Error != "" {
				t.Fatalf("%s, %d rooms: %s", p.Label, p.Rooms, p.Error)
			}
			// 60 messages, each to the 5 or 10 clients of its room.
			if want := 60 * int64(20/p.Rooms); p.Sent != 60 || p.Expected != want || p.Delivered != want || p.Missing != 0 ||
				p.Duplicates != 0 || p.OutOfOrder != 0 || p.WrongRoom != 0 || p.Dropped != 0 || p.Refused != 0 {
				t.Errorf("%s, %d rooms: sent %d, expected %d (want %d), delivered %d, missing %d, duplicates %d, out of order %d, wrong room %d, dropped %d, refused %d",
					p.Label, p.Rooms, p.Sent, p.Expected, want, p.Delivered, p.Missing, p.Duplicates, p.OutOfOrder, p.WrongRoom, p.Dropped, p.Refused)
			}
			if !(p.ServerCPUSec > 0 && p.CPUPerDeliveryUs > 0 && p.UserPerDeliveryUs+p.SysPerDeliveryUs > 0 && p.ServerRSSMB > 1 && p.LatencyMs.P99 > 0) {
				t.Errorf("%s, %d rooms: CPU %v s, %v µs/delivery (%v user, %v system), RSS %v MB, p99 %v ms",
					p.Label, p.Rooms, p.ServerCPUSec, p.CPUPerDeliveryUs, p.UserPerDeliveryUs, p.SysPerDeliveryUs, p.ServerRSSMB, p.LatencyMs.P99)
			}
		}
		if len(res.Memory) != 2 {
			t.Fatalf("want a memory step per server: %+v", res.Memory)
		}
		for _, m := range res.Memory {
			if m.Error != "" || m.Conns != 60 || m.Rooms != 3 || m.Dropped != 0 || !(m.BaseRSSMB > 1 && m.OneRSSMB > 1 && m.ManyRSSMB > 1) {
				t.Errorf("memory step: %+v", m)
			}
		}
		if res.Memory[0].ExtraLiveKB == nil || res.Memory[0].OneLiveKB == nil || *res.Memory[0].OneLiveKB <= 0 || res.Memory[1].ExtraLiveKB != nil {
			t.Errorf("the live heap is ours only: %v, %v; %v", res.Memory[0].OneLiveKB, res.Memory[0].ExtraLiveKB, res.Memory[1].ExtraLiveKB)
		}
		if !strings.HasSuffix(res.Meta.Servers["node_server"], "rooms-server.js") {
			t.Errorf("the reference is %q, want the rooms fixture", res.Meta.Servers["node_server"])
		}
		if env := res.Meta.Servers["go_server_step_env"]; !strings.Contains(env, "ADMIN_TOKEN=(hidden)") || !strings.Contains(env, "ROOMS_ANONYMOUS_MAX=5") {
			t.Errorf("our step settings: %q", env)
		}
	})

	t.Run("rooms across nodes", func(t *testing.T) {
		if testing.Short() {
			t.Skip("needs Redis and PostgreSQL (REDIS_URL, DATABASE_URL): -short runs only the tests that need no service")
		}
		for _, v := range []string{"REDIS_URL", "DATABASE_URL"} {
			if os.Getenv(v) == "" {
				t.Fatalf(`%s is not set: rooms across nodes need the real Redis and PostgreSQL. Start them with: eval "$(scripts/services up redis postgres)" (or run scripts/test)`, v)
			}
		}
		// 2 nodes, 4 rooms of 4: rooms 0 and 2 on node 0 with their sender,
		// rooms 1 and 3 on node 1 with theirs and half their members on
		// node 0. Routing by room brings node 0 the odd rooms' events and
		// node 1 none; one channel for all brings each node every event of
		// the other's.
		err := run(ctx, []string{"rooms", "-nodes", "2", "-clients", "16", "-rooms", "4", "-senders", "2", "-rate", "20", "-duration", "2s",
			"-warmup", "500ms", "-drain", "5s", "-mem-conns", "0", "-out", out, "-name", "smoke-rooms-nodes"}, &stdout, &stderr)
		if err != nil {
			t.Fatal(err)
		}
		var res RoomsResult
		readJSON(t, filepath.Join(out, "smoke-rooms-nodes.json"), &res)
		if order := orderOf(res.Points, func(p RoomsPoint) string { return p.Server + "/" + p.Subscription }); order != "go/dynamic node/dynamic go/static node/static" {
			t.Fatalf("want each server in each mode, ours first, dynamic first: %v", order)
		}
		for _, p := range res.Points {
			if p.Error != "" {
				t.Fatalf("%s: %s", p.Label, p.Error)
			}
			c := p.Cross
			if c == nil || p.Nodes != 2 || p.Missing != 0 || p.WrongRoom != 0 || p.Delivered != p.Expected || p.Sent != 40 {
				t.Fatalf("%s: %d nodes, sent %d, delivered %d of %d, missing %d, wrong room %d, cross-node %+v",
					p.Label, p.Nodes, p.Sent, p.Delivered, p.Expected, p.Missing, p.WrongRoom, c)
			}
			// 50 messages with the warm-up's, half of them to odd rooms.
			if c.Held != 25 || c.All != 50 {
				t.Errorf("%s: expected %d held and %d in all, want 25 and 50", p.Label, c.Held, c.All)
			}
			want, dropped := c.Held, int64(0)
			if p.Subscription == "static" {
				want, dropped = c.All, c.All-c.Held
			}
			if c.Received != want || c.Dropped != dropped {
				t.Errorf("%s: the nodes received %d (%d dropped), want %d (%d dropped)", p.Label, c.Received, c.Dropped, want, dropped)
			}
			if c.RedisInPerMsg <= 0 || c.RedisOutPerMsg <= 0 || c.RedisCPUPerMsgUs == nil {
				t.Errorf("%s: Redis per message: %v bytes in, %v out, %v µs", p.Label, c.RedisInPerMsg, c.RedisOutPerMsg, c.RedisCPUPerMsgUs)
			}
		}
	})

	t.Run("idle", func(t *testing.T) {
		err := run(ctx, []string{"idle", "-conns", "50", "-hold", "1s", "-settle", "200ms", "-out", out, "-name", "smoke-idle"}, &stdout, &stderr)
		if err != nil {
			t.Fatal(err)
		}
		var res IdleResult
		readJSON(t, filepath.Join(out, "smoke-idle.json"), &res)
		if len(res.Points) != 2 {
			t.Fatalf("want one point per server: %+v", res.Points)
		}
		for _, p := range res.Points {
			if p.Connected != 50 || p.Dropped != 0 {
				t.Errorf("%s: %d connected, %d dropped", p.Label, p.Connected, p.Dropped)
			}
			if !(p.RSSMB > 1 && p.BaseRSSMB > 1) || math.IsNaN(p.RSSPerConnKB) {
				t.Errorf("%s: RSS %v MB (empty %v MB)", p.Label, p.RSSMB, p.BaseRSSMB)
			}
		}
		ours := res.Points[0]
		// None per idle WebSocket: the goroutines the server has are its
		// own (loops, flushers, workers), whatever the connections.
		if g := ours.GoroutinesPerConn; g == nil || *g < -0.5 || *g > 0.5 {
			t.Errorf("our goroutines per connection: %v", g)
		}
		if res.Points[1].GoroutinesPerConn != nil {
			t.Errorf("the reference has no goroutines")
		}
	})
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// orderOf names the points in order, each by key, separated by spaces.
func orderOf[T any](points []T, key func(T) string) string {
	names := make([]string, len(points))
	for i, p := range points {
		names[i] = key(p)
	}
	return strings.Join(names, " ")
}
