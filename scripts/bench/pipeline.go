package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/scalable-chat-go/bench/internal/procfs"
	"github.com/scalable-chat-go/bench/internal/report"
	"github.com/scalable-chat-go/bench/internal/server"
	"github.com/scalable-chat-go/bench/internal/services"
)

// Bounds and targets of the pipeline mode.
const (
	maxMessages       = 2_000_000
	maxWindow         = 10_000
	maxStepTime       = 30 * time.Minute
	maxPipelineNodes  = 8
	pipelineWarmup    = 10 // acknowledged messages per sender before the measurement
	maxSeriesPoints   = 300
	consumerFixture   = "original-consumer.js"
	sqliteTarget      = 20_000  // messages/s into SQLite (issue 8)
	kafkaToPGTarget   = 100_000 // messages/s from Kafka into PostgreSQL (issue 8)
	storedMetric      = "chat_messages_stored_total"
	consumedMetric    = "chat_kafka_consumed_total"
	producedMetric    = "chat_kafka_produced_total"
	pipelineStoreBoth = "postgres,sqlite"
)

type pipelineFlags struct {
	common
	stores      []string
	messages    int
	senders     int
	window      int
	text        int
	nodes       int
	consumers   int
	partitions  int
	refMax      time.Duration
	stepTimeout time.Duration
	poll        time.Duration
	databaseURL string
	kafka       string
	keep        bool
	readBuffer  int
	profile     time.Duration
}

// PipelineResult is the JSON of a pipeline run.
type PipelineResult struct {
	Meta   Meta            `json:"meta"`
	Points []PipelinePoint `json:"points"`
}

// Steps of a pipeline run.
const (
	// StepSQLite: Socket.IO senders → our node → direct writer → SQLite.
	StepSQLite = "sqlite"
	// StepKafka: Socket.IO senders → our nodes → Kafka → their consumer
	// group → PostgreSQL (this also fills the topic the consumer steps
	// read).
	StepKafka = "kafka-postgres"
	// StepConsumer: a consumer alone, from a pre-filled topic into an
	// empty PostgreSQL database (ours, and the reference).
	StepConsumer = "consumer"
)

// PipelinePoint is one step of one system.
type PipelinePoint struct {
	Step   string `json:"step"`
	Server string `json:"server"`
	Label  string `json:"label"`
	// Path says what the messages went through.
	Path  string `json:"path"`
	Nodes int    `json:"nodes"`
	Error string `json:"error,omitempty"`

	// Messages is the measured messages (load steps) or the records the
	// consumer had to store (consumer steps).
	Messages int64 `json:"messages"`
	// Stored is how many were stored in the window; Rows and DistinctIDs
	// what the database holds at the end (PostgreSQL; warm-up included).
	Stored      int64 `json:"stored"`
	Rows        int64 `json:"rows,omitempty"`
	DistinctIDs int64 `json:"distinct_ids,omitempty"`

	// StoredPerSec is the step's figure: load steps, measured messages
	// over first send → last of them stored; consumer steps, records over
	// first row → last row (the sustained rate once it consumes).
	StoredPerSec float64 `json:"stored_per_sec"`
	WindowSec    float64 `json:"window_sec"`
	// TotalSec (consumer steps) is from the process being ready to the
	// last row: joining the group included.
	TotalSec float64 `json:"total_sec,omitempty"`
	// Target is the rate for this step (0: none).
	Target float64 `json:"target,omitempty"`
	// Complete is false when a consumer step stopped at its bound
	// (-ref-max) before storing every record.
	Complete bool `json:"complete"`

	// Load steps: the acknowledgements ({ok: true} once durable: in
	// SQLite, or acknowledged by the broker), their rate over first send →
	// last acknowledgement, and send → acknowledgement latency.
	AckedPerSec float64  `json:"acked_per_sec,omitempty"`
	AckLatency  *Latency `json:"ack_latency_ms,omitempty"`
	Senders     int      `json:"senders,omitempty"`
	Window      int      `json:"window,omitempty"`
	// Refused counts negative acknowledgements by code, and `error`
	// events.
	Refused map[string]int64 `json:"refused,omitempty"`

	// CPU over the window: the measured processes (summed over nodes),
	// and PostgreSQL's backends serving the step's database.
	ServerCPUSec   float64  `json:"server_cpu_sec"`
	ServerCores    float64  `json:"server_cores"`
	ServerCPUPerUs float64  `json:"server_cpu_per_message_us"`
	DBCPUSec       *float64 `json:"db_cpu_sec,omitempty"`
	DBCPUPerUs     *float64 `json:"db_cpu_per_message_us,omitempty"`
	ServerRSSMB    float64  `json:"server_rss_mb"`
	BenchCores     float64  `json:"bench_cores"`
	MachineCores   float64  `json:"machine_cores"`
	OtherCores     float64  `json:"other_cores"`
	BusyBefore     float64  `json:"busy_before,omitempty"`
	NotQuiet       bool     `json:"not_quiet,omitempty"`

	// Series is rows stored against seconds since the step's start (first
	// measured send, or the consumer ready), for the chart.
	Series []report.Point `json:"series,omitempty"`
	// Profile is the file of our node's CPU profile (-server-profile).
	Profile string `json:"profile,omitempty"`
}

type storesFlag struct{ stores *[]string }

func (f storesFlag) String() string {
	if f.stores == nil {
		return ""
	}
	return strings.Join(*f.stores, ",")
}

func (f storesFlag) Set(v string) error {
	var out []string
	for _, p := range strings.Split(v, ",") {
		p = strings.TrimSpace(p)
		if p != "postgres" && p != "sqlite" {
			return fmt.Errorf("store %q: want postgres or sqlite", p)
		}
		if slices.Contains(out, p) {
			return fmt.Errorf("store %q given twice", p)
		}
		out = append(out, p)
	}
	*f.stores = out
	return nil
}

func runPipeline(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := pipelineFlags{stores: strings.Split(pipelineStoreBoth, ",")}
	fs := flag.NewFlagSet("pipeline", flag.ContinueOnError)
	fs.SetOutput(stderr)
	f.register(fs)
	fs.Var(storesFlag{&f.stores}, "stores", "what to measure, comma separated: postgres (through Kafka, and the consumer against the reference), sqlite (the embedded default)")
	fs.IntVar(&f.messages, "messages", 100_000, fmt.Sprintf("messages the senders emit per load step (1..%d)", maxMessages))
	fs.IntVar(&f.senders, "senders", 4, fmt.Sprintf("sending connections, spread over the nodes (1..%d); they receive every broadcast too", maxSenders))
	fs.IntVar(&f.window, "window", 2000, fmt.Sprintf("messages a sender may have unacknowledged (1..%d)", maxWindow))
	fs.IntVar(&f.text, "text", 120, "message text length, characters")
	fs.IntVar(&f.nodes, "nodes", 1, fmt.Sprintf("our nodes in the Kafka load step, sharing the topic, group and database (1..%d)", maxPipelineNodes))
	fs.IntVar(&f.consumers, "consumers", 1, fmt.Sprintf("our nodes in the consumer step (1..%d); the reference is one process", maxPipelineNodes))
	fs.IntVar(&f.partitions, "partitions", 6, "partitions of the run's topic (KAFKA_PARTITIONS)")
	fs.DurationVar(&f.refMax, "ref-max", 30*time.Second, "longest the reference consumer runs (its rate is over what it stored by then)")
	fs.DurationVar(&f.stepTimeout, "step-timeout", 5*time.Minute, "bound of each step's wait for acknowledgements and rows")
	fs.DurationVar(&f.poll, "poll", 100*time.Millisecond, "how often the stored counters (/metrics) are read; every 5ms until the first and for the last tenth")
	fs.StringVar(&f.databaseURL, "database-url", os.Getenv("DATABASE_URL"), "PostgreSQL on loopback whose role may create databases (default $DATABASE_URL)")
	fs.StringVar(&f.kafka, "kafka-brokers", os.Getenv("KAFKA_BROKERS"), "Kafka brokers on loopback (default $KAFKA_BROKERS)")
	fs.IntVar(&f.readBuffer, "read-buffer", 64<<10, "bench read buffer per sender, bytes (they read every broadcast)")
	fs.DurationVar(&f.profile, "server-profile", 0, "take a CPU profile of our (first) node over this long from the start of each of our steps' measurement, into <out>/<name>-<step>.pprof (0: none; up to 1m)")
	fs.BoolVar(&f.keep, "keep", false, "keep the run's databases (default: dropped at the end)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: go run ./scripts/bench pipeline [flags]\n\n"+
			"Messages/s from accepted to stored: into SQLite (the embedded default), through Kafka into\n"+
			"PostgreSQL, and our consumer against the original's design (kafkajs, one INSERT per record)\n"+
			"on the same pre-filled topic.\n\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := f.check(); err != nil {
		return err
	}
	if err := f.checkPipeline(); err != nil {
		return err
	}
	postgres := slices.Contains(f.stores, "postgres")
	var brokers []string
	if postgres {
		if f.databaseURL == "" || f.kafka == "" {
			return errors.New(`pipeline -stores postgres needs PostgreSQL and Kafka: set DATABASE_URL and KAFKA_BROKERS (start them with: eval "$(scripts/services up postgres kafka)"), or measure only -stores sqlite`)
		}
		if err := services.PostgresHost(f.databaseURL); err != nil {
			return usagef("-database-url: %v", err)
		}
		var err error
		if brokers, err = services.KafkaBrokers(f.kafka); err != nil {
			return usagef("-kafka-brokers: %v", err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()

	s, cleanup, err := f.start(ctx, "pipeline", args, f.senders+(f.nodes+f.consumers)*fdMargin, stderr)
	if err != nil {
		return err
	}
	defer cleanup()
	s.meta.Params = map[string]any{
		"stores": f.stores, "messages": f.messages, "senders": f.senders, "window": f.window, "text": f.text,
		"nodes": f.nodes, "consumers": f.consumers, "partitions": f.partitions, "ref_max": f.refMax.String(),
		"poll": f.poll.String(), "warmup_per_sender": pipelineWarmup, "quiet": f.quiet,
	}
	s.meta.Servers["go_server_step_env"] = "load steps add " + strings.Join(pipelineLoadEnv, " ") +
		"; the PostgreSQL steps DATABASE_URL (a fresh database each), KAFKA_BROKERS, KAFKA_TOPIC (fresh per run), KAFKA_GROUP (fresh per step), KAFKA_PARTITIONS"
	if slices.Contains(f.servers, server.Node) {
		script := filepath.Join(f.repo, "server", "e2e", "fixtures", consumerFixture)
		s.meta.Servers["node_consumer"] = fmt.Sprintf("%s (kafkajs %s, pg %s): eachMessage, one INSERT per record",
			s.launcher.Rel(script), s.meta.Servers["node_kafkajs"], s.meta.Servers["node_pg"])
	}

	p := &pipeline{s: s, f: &f, brokers: brokers, run: runName()}
	var res PipelineResult
	res.Meta = s.meta
	failed := 0
	add := func(pt PipelinePoint, err error) {
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			failed++
			pt.Error = err.Error()
			fmt.Fprintf(stderr, "%s, %s failed: %v\n", pt.Label, pt.Path, err)
		}
		res.Points = append(res.Points, pt)
	}
	if slices.Contains(f.stores, "sqlite") {
		add(p.sqlite(ctx))
	}
	if postgres && ctx.Err() == nil {
		if err := p.postgres(ctx, add); err != nil && ctx.Err() == nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return fmt.Errorf("pipeline: %w", ctx.Err())
	}
	title := fmt.Sprintf("pipeline: %s messages from %s (at most %d unacknowledged each), %d-character texts",
		report.Num(float64(f.messages)), plural(f.senders, "sender"), f.window, f.text)
	md := s.header(title) + pipelineTables(res.Points)
	svg := pipelineChart(title, res.Points)
	return s.publish(stdout, res, md, svg, tally{steps: len(res.Points), failed: failed})
}

func (f *pipelineFlags) checkPipeline() error {
	switch {
	case len(f.stores) == 0:
		return usagef("-stores: none given")
	case !slices.Contains(f.servers, server.Go):
		return usagef("-servers %s: the pipeline mode measures our server (it also fills the topic the reference reads); include go", serversFlag{&f.servers})
	case f.messages < 1 || f.messages > maxMessages:
		return usagef("-messages %d: want 1..%d", f.messages, maxMessages)
	case f.senders < 1 || f.senders > maxSenders:
		return usagef("-senders %d: want 1..%d", f.senders, maxSenders)
	case f.window < 1 || f.window > maxWindow:
		return usagef("-window %d: want 1..%d", f.window, maxWindow)
	case f.text < 1 || f.text > maxText:
		return usagef("-text %d: want 1..%d", f.text, maxText)
	case f.nodes < 1 || f.nodes > maxPipelineNodes:
		return usagef("-nodes %d: want 1..%d", f.nodes, maxPipelineNodes)
	case f.consumers < 1 || f.consumers > maxPipelineNodes:
		return usagef("-consumers %d: want 1..%d", f.consumers, maxPipelineNodes)
	case f.partitions < 1 || f.partitions > 1000:
		return usagef("-partitions %d: want 1..1000", f.partitions)
	case f.refMax <= 0 || f.refMax > maxStepTime:
		return usagef("-ref-max %s: want (0, %s]", f.refMax, maxStepTime)
	case f.stepTimeout <= 0 || f.stepTimeout > maxStepTime:
		return usagef("-step-timeout %s: want (0, %s]", f.stepTimeout, maxStepTime)
	case f.readBuffer < 256 || f.readBuffer > 1<<20:
		return usagef("-read-buffer %d: want 256..1048576", f.readBuffer)
	case f.profile < 0 || f.profile > time.Minute:
		return usagef("-server-profile %s: want 0..1m", f.profile)
	case f.poll < time.Millisecond || f.poll > time.Second:
		return usagef("-poll %s: want 1ms..1s", f.poll)
	}
	return nil
}

// runName names a run's databases and topic: the time and a random suffix,
// so that runs never share them.
func runName() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return time.Now().UTC().Format("20060102150405") + "_" + hex.EncodeToString(b[:])
}

// pipeline is a run's state.
type pipeline struct {
	s       *session
	f       *pipelineFlags
	brokers []string
	run     string
	pg      *services.Postgres
}

// pipelineLoadEnv is what the pipeline's load steps add to the load
// settings: each sender receives every broadcast at the full rate (tens of
// thousands of frames a second), more than the default slow-client guard
// lets one client have queued at the moment it checks (SEND_QUEUE_LIMIT
// 1000 frames, a write window of 50 ms: about 20,000 frames a second), so
// the senders would be cut as slow although they keep up. The pipeline
// measures storing, not the fan-out.
var pipelineLoadEnv = []string{"SEND_QUEUE_LIMIT=100000"}

// sqlite measures the embedded default: one node, no DATABASE_URL, no
// Kafka; an acknowledgement means the message is committed to SQLite.
func (p *pipeline) sqlite(ctx context.Context) (PipelinePoint, error) {
	pt := PipelinePoint{Step: StepSQLite, Server: string(server.Go), Label: server.Go.Label(),
		Path: "Socket.IO → direct writer → SQLite", Nodes: 1, Target: sqliteTarget}
	sys, err := p.startGo(ctx, &pt, 1, pipelineLoadEnv)
	if err != nil {
		return pt, err
	}
	defer p.stop(sys, &err)
	err = p.load(ctx, &pt, sys, "", storedMetric)
	return pt, err
}

// postgres runs the three PostgreSQL steps: the load through Kafka (which
// fills the topic), then our consumer and the reference's on that topic,
// each into an empty database of its own.
func (p *pipeline) postgres(ctx context.Context, add func(PipelinePoint, error)) error {
	pg, err := services.ConnectPostgres(ctx, p.f.databaseURL)
	if err != nil {
		return err
	}
	p.pg = pg
	defer pg.Close(context.Background())
	topic := "bench-" + strings.ReplaceAll(p.run, "_", "-")
	var dbs []string
	defer func() {
		if p.f.keep {
			fmt.Fprintf(p.s.log, "kept the databases %s\n", strings.Join(dbs, ", "))
			return
		}
		for _, db := range dbs {
			if err := pg.DropDatabase(context.Background(), db); err != nil {
				fmt.Fprintf(p.s.log, "%v\n", err)
			}
		}
	}()
	newDB := func(role string) (name, url string, err error) {
		name = "bench_" + p.run + "_" + role
		url, err = pg.CreateDatabase(ctx, name)
		if err == nil {
			dbs = append(dbs, name)
		}
		return name, url, err
	}
	kafkaEnv := func(url, group string) []string {
		return []string{"DATABASE_URL=" + url, "KAFKA_BROKERS=" + strings.Join(p.brokers, ","), "KAFKA_TOPIC=" + topic,
			"KAFKA_GROUP=" + group, "KAFKA_PARTITIONS=" + strconv.Itoa(p.f.partitions)}
	}

	// 1. The load through Kafka; it fills the topic.
	pt := PipelinePoint{Step: StepKafka, Server: string(server.Go), Label: server.Go.Label(),
		Path: "Socket.IO → Kafka → consumer group → PostgreSQL", Nodes: p.f.nodes}
	records, err := func() (records int64, err error) {
		db, url, err := newDB("load")
		if err != nil {
			return 0, err
		}
		sys, err := p.startGo(ctx, &pt, p.f.nodes, append(kafkaEnv(url, "bench-"+p.run+"-load"), pipelineLoadEnv...))
		if err != nil {
			return 0, err
		}
		defer p.stop(sys, &err)
		if err := p.load(ctx, &pt, sys, db, consumedMetric); err != nil {
			return 0, err
		}
		produced, err := sum(ctx, sys, producedMetric)
		if err != nil {
			return 0, err
		}
		return int64(produced), nil
	}()
	add(pt, err)
	if err != nil {
		return nil // the consumer steps have no topic to read
	}
	fmt.Fprintf(p.s.log, "topic %s holds %d records\n", topic, records)

	// 2. Our consumer alone on the pre-filled topic (checkPipeline made
	// sure ours is measured).
	{
		pt := PipelinePoint{Step: StepConsumer, Server: string(server.Go), Label: server.Go.Label(),
			Path: "Kafka (pre-filled) → consumer group → PostgreSQL", Nodes: p.f.consumers, Target: kafkaToPGTarget}
		err := func() (err error) {
			db, url, err := newDB("ours")
			if err != nil {
				return err
			}
			pt.Messages = records
			sys, err := p.startGo(ctx, &pt, p.f.consumers, kafkaEnv(url, "bench-"+p.run+"-ours"))
			if err != nil {
				return err
			}
			defer p.stop(sys, &err)
			return p.consume(ctx, &pt, sys, db, records, p.f.stepTimeout)
		}()
		add(pt, err)
	}

	// 3. The reference: the original's design on the same topic.
	if slices.Contains(p.f.servers, server.Node) {
		pt := PipelinePoint{Step: StepConsumer, Server: string(server.Node), Label: server.Node.Label(),
			Path: "Kafka (pre-filled) → kafkajs eachMessage → one INSERT each → PostgreSQL", Nodes: 1}
		err := func() (err error) {
			db, url, err := newDB("ref")
			if err != nil {
				return err
			}
			if err := p.migrate(ctx, db); err != nil {
				return err
			}
			pt.Messages = records
			env := kafkaEnv(url, "bench-"+p.run+"-ref")
			script := filepath.Join(p.f.repo, "server", "e2e", "fixtures", consumerFixture)
			sys, err := p.startSystem(ctx, &pt, server.Node, 1, server.StartOptions{Env: env, Script: script})
			if err != nil {
				return err
			}
			defer p.stop(sys, &err)
			return p.consume(ctx, &pt, sys, db, records, p.f.refMax)
		}()
		add(pt, err)
	}
	return nil
}

// migrate applies the repository's Prisma migrations (prisma-compat/
// migrations/*/migration.sql, in order) to database db: the table the
// reference writes is exactly the one our server migrates.
func (p *pipeline) migrate(ctx context.Context, db string) error {
	files, err := migrationFiles(filepath.Join(p.f.repo, "prisma-compat", "migrations"))
	if err != nil {
		return err
	}
	for _, file := range files {
		sql, err := os.ReadFile(file)
		if err != nil {
			return fmt.Errorf("read migration: %w", err)
		}
		if err := p.pg.Exec(ctx, db, string(sql)); err != nil {
			return fmt.Errorf("apply %s: %w", p.s.launcher.Rel(file), err)
		}
	}
	return nil
}

// migrationFiles lists dir/*/migration.sql in the order of the folders'
// names (Prisma's: a timestamp first).
func migrationFiles(dir string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*", "migration.sql"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no migrations in %s", dir)
	}
	slices.Sort(files)
	return files, nil
}

// startGo starts n of our nodes with env (and their profiler with
// -server-profile).
func (p *pipeline) startGo(ctx context.Context, pt *PipelinePoint, n int, env []string) (*system, error) {
	return p.startSystem(ctx, pt, server.Go, n, server.StartOptions{Env: env, Pprof: p.f.profile > 0})
}

// profile starts, with -server-profile, a CPU profile of sys's first node
// (ours only); the returned function waits for it and writes it into the
// results folder, naming the file in pt.
func (p *pipeline) profile(ctx context.Context, pt *PipelinePoint, sys *system) func() {
	if p.f.profile <= 0 || sys.kind != server.Go {
		return func() {}
	}
	type result struct {
		data []byte
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		data, err := sys.nodes[0].CPUProfile(ctx, p.f.profile)
		ch <- result{data, err}
	}()
	return func() {
		r := <-ch
		if r.err == nil {
			path := filepath.Join(p.f.out, fmt.Sprintf("%s-%s-%s.pprof", p.f.name, pt.Step, pt.Server))
			if r.err = os.MkdirAll(p.f.out, 0o755); r.err == nil {
				r.err = os.WriteFile(path, r.data, 0o644)
			}
			if r.err == nil {
				pt.Profile = path
				fmt.Fprintf(p.s.log, "CPU profile of %s, %s: %s\n", pt.Label, pt.Path, path)
			}
		}
		if r.err != nil {
			fmt.Fprintf(p.s.log, "CPU profile of %s, %s: %v\n", pt.Label, pt.Path, r.err)
		}
	}
}

func (p *pipeline) startSystem(ctx context.Context, pt *PipelinePoint, k server.Kind, n int, o server.StartOptions) (*system, error) {
	busy, quiet, err := p.s.waitQuiet(ctx)
	if err != nil {
		return nil, err
	}
	pt.BusyBefore, pt.NotQuiet = busy, !quiet
	return startSystem(ctx, p.s, k, n, o)
}

// stop stops sys; when the step failed, the error gets the log of a node
// that had exited.
func (p *pipeline) stop(sys *system, err *error) {
	if *err != nil {
		if log := sys.exited(); log != "" {
			*err = fmt.Errorf("%w\n%s", *err, log)
		}
	}
	_ = sys.stop(p.s)
}

// sum returns a metric summed over the system's nodes.
func sum(ctx context.Context, sys *system, name string) (float64, error) {
	var total float64
	for _, n := range sys.nodes {
		v, err := n.Metrics(ctx, name)
		if err != nil {
			return 0, err
		}
		x, ok := v[name]
		if !ok {
			return 0, fmt.Errorf("%s server (pid %d) has no metric %s", n.Kind, n.PID, name)
		}
		total += x
	}
	return total, nil
}

// window is what a step measures its processes by: their CPU, the
// bench's, the machine's and the database backends', at one moment.
type window struct {
	at      time.Time
	sys     procfs.CPU
	self    procfs.CPU
	machine procfs.Machine
	db      map[int]procfs.CPU // backend pid → CPU
}

// mark reads the window figures now (db: the step's database, "" none).
func (p *pipeline) mark(ctx context.Context, sys *system, db string) (window, error) {
	w := window{at: time.Now()}
	var err error
	if w.sys, err = sys.cpu(); err != nil {
		return w, err
	}
	w.self, _ = procfs.ReadCPU(0)
	w.machine, _ = procfs.ReadMachine()
	if db != "" {
		pids, err := p.pg.Backends(ctx, db)
		if err != nil {
			return w, err
		}
		w.db = map[int]procfs.CPU{}
		for _, pid := range pids {
			if c, err := procfs.ReadCPU(pid); err == nil {
				w.db[pid] = c
			}
		}
	}
	return w, nil
}

// account fills the CPU figures of pt over w0 → w1 for n messages.
func account(pt *PipelinePoint, w0, w1 window, n int64) {
	wall := w1.at.Sub(w0.at).Seconds()
	if wall <= 0 {
		return
	}
	cpu := w1.sys.Sub(w0.sys).Total().Seconds()
	pt.ServerCPUSec, pt.ServerCores = cpu, cpu/wall
	self := w1.self.Sub(w0.self).Total().Seconds()
	pt.BenchCores = self / wall
	pt.MachineCores = w1.machine.Sub(w0.machine).Busy.Seconds() / wall
	if n > 0 {
		pt.ServerCPUPerUs = cpu / float64(n) * 1e6
	}
	if w1.db != nil {
		db := backendCPU(w0.db, w1.db).Seconds()
		pt.DBCPUSec = &db
		if n > 0 {
			pt.DBCPUPerUs = ptr(db / float64(n) * 1e6)
		}
	}
	pt.OtherCores = max(pt.MachineCores-pt.ServerCores-pt.BenchCores-opt0(pt.DBCPUSec)/wall, 0)
}

// backendCPU is the CPU the backends used between two readings: a backend
// that appeared in between counts whole (it started during the window).
func backendCPU(before, after map[int]procfs.CPU) time.Duration {
	var d time.Duration
	for pid, c := range after {
		d += c.Sub(before[pid]).Total()
	}
	return d
}

func opt0(v *float64) float64 {
	if v == nil {
		return 0
	}
	return *v
}
