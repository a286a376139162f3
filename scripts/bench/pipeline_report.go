package main

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/scalable-chat-go/bench/internal/report"
	"github.com/scalable-chat-go/bench/internal/server"
)

// targetText says whether rate meets target ("" when there is none).
func targetText(rate, target float64) string {
	if target <= 0 {
		return ""
	}
	verdict := "met"
	if rate < target {
		verdict = "**not met**"
	}
	return fmt.Sprintf("≥ %s: %s", report.Num(target), verdict)
}

// pipelineTables renders a pipeline run: the load steps (accepted →
// stored), then the consumers on the pre-filled topic side by side with
// their ratios.
func pipelineTables(points []PipelinePoint) string {
	var b strings.Builder
	var notes []string
	load := report.Table{
		Header: []string{"path", "nodes", "messages", "stored/s", "target", "acked/s", "ack p50 ms", "ack p99 ms",
			"server cores", "µs CPU/msg", "PostgreSQL µs/msg", "bench cores"},
		Right: []bool{false, true, true, true, false, true, true, true, true, true, true, true},
	}
	cons := report.Table{
		Header: []string{"consumer", "records stored", "stored/s (sustained)", "target", "all stored after s",
			"consumer cores", "µs CPU/record", "PostgreSQL µs/record"},
		Right: []bool{false, true, true, false, true, true, true, true},
	}
	var ours, ref *PipelinePoint
	for i := range points {
		p := &points[i]
		if p.Error != "" {
			notes = append(notes, fmt.Sprintf("%s, %s failed: %s", p.Label, p.Path, firstLine(p.Error)))
		}
		if p.NotQuiet {
			notes = append(notes, fmt.Sprintf("%s, %s started on a busy machine (%.2f cores busy; -quiet gave up)", p.Label, p.Path, p.BusyBefore))
		}
		if p.Error == "" && p.OtherCores > 0.25 {
			notes = append(notes, fmt.Sprintf("%s, %s: %.2f cores busy outside the measured processes, PostgreSQL's backends and the bench (Kafka, other work): other work may have disturbed this step",
				p.Label, p.Path, p.OtherCores))
		}
		if p.Profile != "" {
			notes = append(notes, fmt.Sprintf("%s, %s: CPU profile `%s` (go tool pprof -top)", p.Label, p.Path, filepath.Base(p.Profile)))
		}
		if len(p.Refused) > 0 {
			var parts []string
			for _, k := range sortedKeys(p.Refused) {
				parts = append(parts, fmt.Sprintf("%d %s", p.Refused[k], k))
			}
			notes = append(notes, fmt.Sprintf("%s, %s: refused %s (not retried)", p.Label, p.Path, strings.Join(parts, ", ")))
		}
		switch p.Step {
		case StepSQLite, StepKafka:
			if p.Error != "" {
				load.Rows = append(load.Rows, []string{p.Path, fmt.Sprint(p.Nodes), report.Num(float64(p.Messages)), "failed", "", "", "", "", "", "", "", ""})
				continue
			}
			var p50, p99 string
			if p.AckLatency != nil {
				p50, p99 = report.Num(p.AckLatency.P50), report.Num(p.AckLatency.P99)
			}
			load.Rows = append(load.Rows, []string{p.Path, fmt.Sprint(p.Nodes), report.Num(float64(p.Messages)),
				"**" + report.Num(p.StoredPerSec) + "**", targetText(p.StoredPerSec, p.Target), report.Num(p.AckedPerSec), p50, p99,
				report.Num(p.ServerCores), report.Num(p.ServerCPUPerUs), opt(p.DBCPUPerUs), report.Num(p.BenchCores)})
		case StepConsumer:
			label := p.Label
			if p.Nodes > 1 {
				label += fmt.Sprintf(", %d nodes", p.Nodes)
			}
			if p.Error != "" {
				cons.Rows = append(cons.Rows, []string{label, "failed", "", "", "", "", "", ""})
				continue
			}
			stored := fmt.Sprintf("%d of %d", p.Stored, p.Messages)
			if !p.Complete {
				stored += " (stopped)"
			}
			cons.Rows = append(cons.Rows, []string{label, stored, "**" + report.Num(p.StoredPerSec) + "**",
				targetText(p.StoredPerSec, p.Target), report.Num(p.TotalSec), report.Num(p.ServerCores),
				report.Num(p.ServerCPUPerUs), opt(p.DBCPUPerUs)})
			switch server.Kind(p.Server) {
			case server.Go:
				ours = p
			case server.Node:
				ref = p
			}
		}
	}
	if ours != nil && ref != nil && ours.Error == "" && ref.Error == "" {
		cons.Rows = append(cons.Rows, []string{"**ours/reference**", "", "**" + report.Ratio(ours.StoredPerSec, ref.StoredPerSec) + "**", "",
			"", report.Ratio(ours.ServerCores, ref.ServerCores), "**" + report.Ratio(ours.ServerCPUPerUs, ref.ServerCPUPerUs) + "**",
			ratioOpt(ours.DBCPUPerUs, ref.DBCPUPerUs)})
	}
	if len(load.Rows) > 0 {
		b.WriteString("#### Accepted → stored\n\n")
		b.WriteString(load.Markdown())
		b.WriteString("\nSenders emit their share as fast as their windows allow, every message with an acknowledgement callback " +
			"(sent once durable: committed to SQLite, or acknowledged by the broker). stored/s: measured messages over the time from " +
			"the first measured send to the last one stored (SQLite: its acknowledgement; Kafka: counted by the consumer group's " +
			"chat_kafka_consumed_total, every row then checked in PostgreSQL); acked/s over first send → last acknowledgement; " +
			"ack latency: send → acknowledgement. CPU over the same window: our nodes summed, and PostgreSQL's backends serving " +
			"the step's database.\n\n")
	}
	if len(cons.Rows) > 0 {
		b.WriteString("#### Kafka → PostgreSQL from a pre-filled topic: our consumer against the original's design\n\n")
		b.WriteString(cons.Markdown())
		b.WriteString("\nThe same topic (filled by the load step above), each consumer in a group of its own into an empty " +
			"database with the same table. stored/s: records over the time from the first reading that saw a row to the one " +
			"that saw the last (every -poll); all stored after: from the process being ready (joining the group included); CPU (the consumer's and PostgreSQL's backends') from ready to the last row, per record. " +
			"Reference: kafkajs eachMessage, one INSERT per record (server/e2e/fixtures/original-consumer.js).\n\n")
	}
	for _, n := range notes {
		b.WriteString("- " + n + "\n")
	}
	return b.String()
}

// pipelineColors tells the series of the chart apart.
var pipelineColors = map[string]string{
	StepSQLite:                 "#2ca02c",
	StepKafka:                  "#9467bd",
	StepConsumer + "/go":       "#1f77b4",
	StepConsumer + "/node":     "#ff7f0e",
	StepConsumer + "/fallback": "#7f7f7f",
}

// stepNames are the chart's short names of the load steps.
var stepNames = map[string]string{StepSQLite: "SQLite (direct writer)", StepKafka: "through Kafka to PostgreSQL"}

// pipelineChart draws rows stored against time: the load steps from the
// first measured send, the consumers from being ready.
func pipelineChart(title string, points []PipelinePoint) []byte {
	var loadS, consS []report.Series
	for _, p := range points {
		if p.Error != "" || len(p.Series) == 0 {
			continue
		}
		switch p.Step {
		case StepSQLite, StepKafka:
			loadS = append(loadS, report.Series{Name: stepNames[p.Step], Color: pipelineColors[p.Step], Points: p.Series})
		case StepConsumer:
			c, ok := pipelineColors[StepConsumer+"/"+p.Server]
			if !ok {
				c = pipelineColors[StepConsumer+"/fallback"]
			}
			consS = append(consS, report.Series{Name: p.Label, Color: c, Points: p.Series})
		}
	}
	var panels []report.Panel
	if len(loadS) > 0 {
		panels = append(panels, report.Panel{Title: "accepted → stored", XLabel: "seconds since the first measured send",
			YLabel: "messages stored", Series: loadS})
	}
	if len(consS) > 0 {
		panels = append(panels, report.Panel{Title: "Kafka → PostgreSQL, pre-filled topic", XLabel: "seconds since the consumer was ready",
			YLabel: "records stored", Series: consS})
	}
	if len(panels) == 0 {
		return nil
	}
	return report.SVG(title, panels)
}
