package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scalable-chat-go/server/config"
	"github.com/scalable-chat-go/server/sqlstore/pgtest"
	"github.com/scalable-chat-go/server/testkit"
)

// dashboardPath is the Grafana dashboard of the repository.
var dashboardPath = filepath.Join("..", "..", "..", "deploy", "grafana", "chat-server.json")

// TestDashboardQueriesOnlyRegisteredMetrics reads every PromQL expression
// of the Grafana dashboard and checks that each metric it names is one the
// server registers, in one of its two shapes: with Kafka (PostgreSQL,
// Redis, Kafka, the Admin UI) and without (the direct writer to the store):
// a renamed or removed metric fails here, not on an operator's screen.
// Registered, not scraped: a labelled metric appears in /metrics only once
// it has a value (no loss, no series of chat_messages_lost_total).
func TestDashboardQueriesOnlyRegisteredMetrics(t *testing.T) {
	exprs := dashboardExprs(t)
	if len(exprs) < 20 {
		t.Fatalf("only %d expressions in %s", len(exprs), dashboardPath)
	}
	registered := registeredMetrics(t, true)
	for n := range registeredMetrics(t, false) {
		registered[n] = true
	}
	used := map[string]bool{}
	for _, e := range exprs {
		names := metricNames(e)
		if len(names) == 0 {
			t.Errorf("no metric found in %q", e)
		}
		for _, n := range names {
			used[n] = true
			if !registered[n] && !registered[histogramBase(n)] {
				t.Errorf("%q queries %s, which the server does not register", e, n)
			}
		}
	}
	// The list: connections, deliveries, store write latency, queue
	// depths, Kafka lag, losses, Redis state.
	for _, want := range []string{"chat_connections", "chat_deliveries_total", "chat_store_write_seconds_bucket",
		"chat_log_queue_depth", "chat_kafka_producer_buffer", "chat_cluster_publish_queue", "chat_kafka_consumer_lag",
		"chat_messages_lost_total", "chat_redis_up"} {
		if !used[want] {
			t.Errorf("the dashboard does not show %s", want)
		}
	}
}

// dashboardExprs returns the dashboard's PromQL: every panel target's
// expr, and the queries of its template variables.
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	var out []string
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			if tg.Expr == "" {
				t.Errorf("panel %q has a target without expr", p.Title)
			}
			out = append(out, tg.Expr)
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		if q, ok := v.Query.(map[string]any); ok {
			if s, ok := q["query"].(string); ok {
				out = append(out, s)
			}
		}
	}
	return out
}

var (
	selectorName = regexp.MustCompile(`([a-zA-Z_:][a-zA-Z0-9_:]*)\{`)
	labelValues  = regexp.MustCompile(`label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)`)
)

// metricNames are the metrics an expression selects: the dashboard writes
// every selector with its label matchers (name{...}); label_values(name...)
// in template queries.
func metricNames(expr string) []string {
	var out []string
	for _, m := range selectorName.FindAllStringSubmatch(expr, -1) {
		out = append(out, m[1])
	}
	for _, m := range labelValues.FindAllStringSubmatch(expr, -1) {
		out = append(out, m[1])
	}
	return out
}

// histogramBase is a histogram's name for one of its series.
func histogramBase(name string) string {
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if strings.HasSuffix(name, suffix) {
			return strings.TrimSuffix(name, suffix)
		}
	}
	return name
}

// registeredMetrics runs the server in this process with PostgreSQL, Redis
// and the Admin UI, and Kafka when withKafka, and returns the names of the
// metrics it registered.
func registeredMetrics(t *testing.T, withKafka bool) map[string]bool {
	t.Helper()
	redisURL, brokers := testkit.Service(t, "REDIS_URL", "Redis"), testkit.Service(t, "KAFKA_BROKERS", "Kafka")
	suffix := fmt.Sprintf("%d", time.Now().UnixNano())
	env := map[string]string{
		"HOST": "127.0.0.1", "PORT": fmt.Sprint(testkit.FreePort(t)), "DATA_DIR": t.TempDir(),
		"DATABASE_URL": pgtest.NewDatabase(t), "REDIS_URL": redisURL, "REDIS_KEY_PREFIX": "dashboard" + suffix,
		"ADMIN_UI": "noauth", "SHUTDOWN_TIMEOUT": "5s",
	}
	if withKafka {
		env["KAFKA_BROKERS"], env["KAFKA_TOPIC"], env["KAFKA_GROUP"], env["KAFKA_PARTITIONS"] = brokers, "dashboard"+suffix, "dashboard"+suffix, "1"
	}
	cfg, err := config.FromLookup(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	ready := make(chan *prometheus.Registry, 1)
	onReady = func(r *prometheus.Registry) { ready <- r }
	defer func() { onReady = nil }()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("the server stopped with %v", err)
		}
	}()
	var reg *prometheus.Registry
	select {
	case reg = <-ready:
	case err := <-done:
		t.Fatalf("the server stopped before it was ready: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("the server was not ready within 60 s")
	}
	descs := make(chan *prometheus.Desc, 1024)
	go func() { reg.Describe(descs); close(descs) }()
	fqName := regexp.MustCompile(`fqName: "([^"]+)"`)
	names := map[string]bool{}
	for d := range descs {
		if m := fqName.FindStringSubmatch(d.String()); m != nil {
			names[m[1]] = true
		}
	}
	if (withKafka && !names["chat_kafka_consumer_lag"]) || (!withKafka && !names["chat_log_queue_depth"]) || !names["chat_redis_up"] {
		list := make([]string, 0, len(names))
		for n := range names {
			list = append(list, n)
		}
		sort.Strings(list)
		t.Fatalf("the engines' metrics are missing from %v", list)
	}
	return names
}
