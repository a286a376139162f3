package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scalable-chat-go/bench/internal/procfs"
	"github.com/scalable-chat-go/bench/internal/report"
)

func TestShares(t *testing.T) {
	tests := []struct {
		n       int64
		senders int
		want    string
	}{
		{100, 4, "[25 25 25 25]"}, {10, 3, "[4 3 3]"}, {2, 4, "[1 1 0 0]"}, {7, 1, "[7]"},
	}
	for _, tt := range tests {
		got := shares(tt.n, tt.senders)
		var total int64
		for _, v := range got {
			total += v
		}
		if fmt.Sprint(got) != tt.want || total != tt.n {
			t.Errorf("shares(%d, %d) = %v, want %s", tt.n, tt.senders, got, tt.want)
		}
	}
}

func TestAppendAckedMessage(t *testing.T) {
	got := string(appendAckedMessage(nil, 42, 3, 30))
	want := `4242["event:message",{"message":"pipeline|3|42|xxxxxxxxxxxxxxxx","username":"bench"}]`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	// A text shorter than its stamp is the stamp.
	if got := string(appendAckedMessage([]byte("junk"), 7, 0, 1)); got != `junk427["event:message",{"message":"pipeline|0|7|","username":"bench"}]` {
		t.Errorf("got %s", got)
	}
}

func TestParseAck(t *testing.T) {
	tests := []struct {
		frame string
		want  ack
		isAck bool
	}{
		{`4317[{"ok":true,"id":"0196f2d0-7a4c-7000-8000-000000000000"}]`, ack{id: 17, ok: true}, true},
		{`430[{"ok":false,"error":{"code":"unavailable","reason":"the log is full"}}]`, ack{id: 0, code: "unavailable"}, true},
		{`43123[{"ok":false}]`, ack{id: 123}, true},
		{`42["message",{"message":"\"ok\":true","username":"bench"}]`, ack{}, false},
		{`43[{"ok":true}]`, ack{}, false},        // no id
		{`4312{"ok":true}`, ack{}, false},        // no array
		{`43/chat,5[{"ok":true}]`, ack{}, false}, // another namespace
		{`3`, ack{}, false},
		{`43123456789012345678901[{"ok":true}]`, ack{}, false}, // id too long
	}
	for _, tt := range tests {
		got, isAck := parseAck([]byte(tt.frame))
		if isAck != tt.isAck || got != tt.want {
			t.Errorf("parseAck(%s) = %+v, %v; want %+v, %v", tt.frame, got, isAck, tt.want, tt.isAck)
		}
	}
}

// TestLoadRunHandler feeds a sender's handler the frames a server would
// send: acknowledgements free window slots, warm-up ones are counted
// apart, refusals by code, and broadcasts and unknown ids change nothing.
func TestLoadRunHandler(t *testing.T) {
	r := newLoadRun(2, 2, 5, 10) // 2 senders, 2 warm-up each, 3 + 2 measured
	if fmt.Sprint(r.shares) != "[3 2]" || len(r.senders[0].sentAt) != 5 || len(r.senders[1].sentAt) != 4 {
		t.Fatalf("shares %v, ids %d and %d", r.shares, len(r.senders[0].sentAt), len(r.senders[1].sentAt))
	}
	h := r.handler(0)
	for range 5 {
		r.senders[0].slots <- struct{}{}
	}
	for _, f := range []string{
		`430[{"ok":true,"id":"a"}]`,
		`431[{"ok":false,"error":{"code":"unavailable","reason":"full"}}]`,
		`432[{"ok":true,"id":"b"}]`,
		`433[{"ok":false,"error":{"code":"not_stored","reason":"x"}}]`,
		`434[{"ok":true,"id":"c"}]`,
		`435[{"ok":true,"id":"out of range"}]`,
		`42["message",{"message":"pipeline|0|2|x","username":"bench"}]`,
	} {
		h([]byte(f))
	}
	if r.warmAcked.Load() != 2 || r.acked.Load() != 2 || r.nacked.Load() != 1 {
		t.Errorf("warm-up %d, acked %d, refused %d", r.warmAcked.Load(), r.acked.Load(), r.nacked.Load())
	}
	if got := fmt.Sprint(r.refusedMap()); got != "map[not_stored:1 unavailable:1]" || r.refusedTotal() != 2 {
		t.Errorf("refused %s", got)
	}
	if len(r.senders[0].slots) != 0 {
		t.Errorf("%d slots still taken after 5 acknowledgements", len(r.senders[0].slots))
	}
	if r.lastAck.Load() <= 0 || r.hist.Merge().N != 3 {
		t.Errorf("last ack %d, %d latencies", r.lastAck.Load(), r.hist.Merge().N)
	}
}

func TestPollInterval(t *testing.T) {
	for _, tt := range []struct {
		coarse      time.Duration
		done, total float64
		want        time.Duration
	}{
		{100 * time.Millisecond, 0, 1000, finePoll},
		{100 * time.Millisecond, 1, 1000, 100 * time.Millisecond},
		{100 * time.Millisecond, 899, 1000, 100 * time.Millisecond},
		{100 * time.Millisecond, 900, 1000, finePoll},
		{100 * time.Millisecond, 1200, 1000, finePoll},
		{2 * time.Millisecond, 950, 1000, 2 * time.Millisecond},
		{100 * time.Millisecond, 5, 0, 100 * time.Millisecond},
		{100 * time.Millisecond, 0, 0, finePoll},
	} {
		if got := pollInterval(tt.coarse, tt.done, tt.total); got != tt.want {
			t.Errorf("pollInterval(%v, %v, %v) = %v, want %v", tt.coarse, tt.done, tt.total, got, tt.want)
		}
	}
}

func TestThin(t *testing.T) {
	var ps []report.Point
	for i := range 1000 {
		ps = append(ps, report.Point{X: float64(i), Y: float64(i)})
	}
	got := thin(ps, 300)
	if len(got) != 300 || got[0].X != 0 || got[len(got)-1].X != 999 {
		t.Errorf("%d points, from %v to %v", len(got), got[0], got[len(got)-1])
	}
	for i := 1; i < len(got); i++ {
		if got[i].X <= got[i-1].X {
			t.Fatalf("not increasing at %d", i)
		}
	}
	if got := thin(ps[:10], 300); len(got) != 10 {
		t.Errorf("a short series is kept whole: %d", len(got))
	}
}

func TestBackendCPU(t *testing.T) {
	c := func(ms int) procfs.CPU { return procfs.CPU{User: time.Duration(ms) * time.Millisecond} }
	before := map[int]procfs.CPU{1: c(100), 2: c(50), 3: c(10)}
	after := map[int]procfs.CPU{1: c(150), 2: c(50), 4: c(30)} // 3 ended, 4 started
	if got := backendCPU(before, after); got != 80*time.Millisecond {
		t.Errorf("backendCPU = %v, want 80ms", got)
	}
}

func TestAccount(t *testing.T) {
	t0 := time.Now()
	w0 := window{at: t0, sys: procfs.CPU{User: time.Second}, machine: procfs.Machine{Busy: 10 * time.Second},
		db: map[int]procfs.CPU{7: {System: time.Second}}}
	w1 := window{at: t0.Add(2 * time.Second), sys: procfs.CPU{User: 2 * time.Second, System: time.Second},
		self: procfs.CPU{User: 200 * time.Millisecond}, machine: procfs.Machine{Busy: 13 * time.Second},
		db: map[int]procfs.CPU{7: {System: 1500 * time.Millisecond}}}
	var pt PipelinePoint
	account(&pt, w0, w1, 100_000)
	if pt.ServerCPUSec != 2 || pt.ServerCores != 1 || pt.ServerCPUPerUs != 20 || pt.BenchCores != 0.1 || pt.MachineCores != 1.5 {
		t.Errorf("server %v s, %v cores, %v µs/msg; bench %v cores; machine %v cores", pt.ServerCPUSec, pt.ServerCores, pt.ServerCPUPerUs, pt.BenchCores, pt.MachineCores)
	}
	if pt.DBCPUSec == nil || *pt.DBCPUSec != 0.5 || *pt.DBCPUPerUs != 5 {
		t.Errorf("database %v s, %v µs/msg", pt.DBCPUSec, pt.DBCPUPerUs)
	}
	if d := pt.OtherCores - 0.15; d > 1e-9 || d < -1e-9 { // 1.5 - 1 - 0.1 - 0.25
		t.Errorf("other %v cores, want 0.15", pt.OtherCores)
	}
}

func TestMigrationFiles(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"20261127005204_index", "20231217073044_init"} {
		if err := os.MkdirAll(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name, "migration.sql"), []byte("SELECT 1;"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_ = os.WriteFile(filepath.Join(dir, "migration_lock.toml"), nil, 0o644)
	got, err := migrationFiles(dir)
	if err != nil || len(got) != 2 || !strings.Contains(got[0], "_init") || !strings.Contains(got[1], "_index") {
		t.Errorf("migrationFiles = %v, %v", got, err)
	}
	if _, err := migrationFiles(t.TempDir()); err == nil {
		t.Error("no migrations: want an error")
	}
	// The repository's own, which the reference's database gets.
	repo, err := findRepo()
	if err != nil {
		t.Fatal(err)
	}
	got, err = migrationFiles(filepath.Join(repo, "prisma-compat", "migrations"))
	if err != nil || len(got) < 2 || !strings.Contains(got[0], "20231217073044_init") {
		t.Errorf("the repository's migrations: %v, %v", got, err)
	}
}

func TestTargetText(t *testing.T) {
	for _, tt := range []struct {
		rate, target float64
		want         string
	}{{25000, 20000, "≥ 20k: met"}, {19999, 20000, "≥ 20k: **not met**"}, {5, 0, ""}, {100000, 100000, "≥ 100k: met"}} {
		if got := targetText(tt.rate, tt.target); got != tt.want {
			t.Errorf("targetText(%v, %v) = %q, want %q", tt.rate, tt.target, got, tt.want)
		}
	}
}

func TestPipelineTables(t *testing.T) {
	lat := &Latency{P50: 150, P99: 300}
	points := []PipelinePoint{
		{Step: StepSQLite, Server: "go", Label: "ours (Go)", Path: "Socket.IO → direct writer → SQLite", Nodes: 1, Messages: 100000,
			StoredPerSec: 39200, Target: sqliteTarget, AckedPerSec: 39200, AckLatency: lat, ServerCores: 1.3, ServerCPUPerUs: 34},
		{Step: StepKafka, Server: "go", Label: "ours (Go)", Path: "Socket.IO → Kafka → consumer group → PostgreSQL", Nodes: 2, Messages: 100000,
			StoredPerSec: 28500, AckedPerSec: 30700, AckLatency: lat, DBCPUPerUs: ptr(3.5), Refused: map[string]int64{"unavailable": 3}},
		{Step: StepConsumer, Server: "go", Label: "ours (Go)", Path: "Kafka (pre-filled) → consumer group → PostgreSQL", Nodes: 1,
			Messages: 100040, Stored: 100040, Complete: true, StoredPerSec: 90000, Target: kafkaToPGTarget, ServerCPUPerUs: 2, DBCPUPerUs: ptr(4), ServerCores: 0.3},
		{Step: StepConsumer, Server: "node", Label: "reference (Node)", Path: "Kafka (pre-filled) → kafkajs", Nodes: 1,
			Messages: 100040, Stored: 60000, StoredPerSec: 2000, ServerCPUPerUs: 100, DBCPUPerUs: ptr(100), ServerCores: 0.3, OtherCores: 0.5},
	}
	for i := range points {
		points[i].Series = []report.Point{{X: 0, Y: 0}, {X: 1, Y: points[i].StoredPerSec}}
	}
	md := pipelineTables(points)
	for _, want := range []string{
		"#### Accepted → stored", "| **39.2k** | ≥ 20k: met ", "|     2 |", "|              3.50 |",
		"#### Kafka → PostgreSQL from a pre-filled topic", "100040 of 100040", "**90k** |", "≥ 100k: **not met**",
		"60000 of 100040 (stopped)", "| **ours/reference** |", "**45.00**", "**0.02**", "0.04",
		"refused 3 unavailable (not retried)", "0.50 cores busy outside",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("tables lack %q:\n%s", want, md)
		}
	}
	svg := string(pipelineChart("t", points))
	for _, want := range []string{"accepted → stored", "pre-filled topic", "SQLite (direct writer)", "reference (Node)"} {
		if !strings.Contains(svg, want) {
			t.Errorf("chart lacks %q", want)
		}
	}
	// A failed step is a row that says so, and a note.
	md = pipelineTables([]PipelinePoint{{Step: StepConsumer, Server: "go", Label: "ours (Go)", Path: "p", Error: "no record stored\nlog"}})
	if !strings.Contains(md, "| ours (Go) |         failed |") || !strings.Contains(md, "ours (Go), p failed: no record stored\n") || strings.Contains(md, "ours/reference") {
		t.Errorf("failed step:\n%s", md)
	}
}
