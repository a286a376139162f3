package kafka_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scalable-chat-go/server/chat"
	"github.com/scalable-chat-go/server/chat/chattest"
	"github.com/scalable-chat-go/server/sqlstore"
	"github.com/scalable-chat-go/server/sqlstore/pgtest"
)

// BenchmarkPipelineIntoPostgres sends b.N messages through the whole
// pipeline (the producer Log, the broker, one consumer group member with
// BATCH_SIZE 1000 into PostgreSQL) and, in the same run, writes the same
// messages straight into PostgreSQL with Store.SaveBatch in batches of 1000
// (what the embedded direct writer does without Kafka): the reference. It
// reports messages a second acknowledged by the broker, stored through the
// pipeline, and stored by the reference, and the ratio. Run it with
//
//	go test -run '^$' -bench PipelineIntoPostgres -benchtime 100000x ./kafka/
func BenchmarkPipelineIntoPostgres(b *testing.B) {
	n := b.N
	msgs := make([]chat.Message, n)
	for i := range msgs {
		msgs[i] = chattest.Msg(fmt.Sprintf("bench-%07d", i), fmt.Sprintf("benchmark message number %d, about as long as a chat line", i), i)
	}
	ctx := context.Background()

	// The pipeline.
	pipeDB := pgtest.NewDatabase(b)
	store, err := sqlstore.OpenPostgres(ctx, pipeDB, sqlstore.PostgresOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = store.Close() })
	p := newPipeline(b, store, pipelineOptions{partitions: 6, buffer: n + 1, batchSize: 1000}).log
	count := pgtest.Connect(b, pipeDB)
	rows := func() int {
		var c int
		if err := count.QueryRow(ctx, `SELECT count(*) FROM messages`).Scan(&c); err != nil {
			b.Fatal(err)
		}
		return c
	}
	// Warm up: the topic exists, the group has its partitions.
	warm := chattest.Msg("warm-up", "warm up", 0)
	done := make(chan error, 1)
	if err := p.Append(warm, func(err error) { done <- err }); err != nil {
		b.Fatal(err)
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	for rows() < 1 {
		time.Sleep(20 * time.Millisecond)
	}

	b.ResetTimer()
	start := time.Now()
	var acked atomic.Int64
	allAcked := make(chan struct{})
	for _, m := range msgs {
		if err := p.Append(m, func(err error) {
			if err != nil {
				b.Error(err)
			}
			if acked.Add(1) == int64(n) {
				close(allAcked)
			}
		}); err != nil {
			b.Fatal(err)
		}
	}
	<-allAcked
	ackedIn := time.Since(start)
	for rows() < n+1 {
		time.Sleep(5 * time.Millisecond)
	}
	storedIn := time.Since(start)
	b.StopTimer()

	// The reference: the same messages straight into PostgreSQL.
	refStore, err := sqlstore.OpenPostgres(ctx, pgtest.NewDatabase(b), sqlstore.PostgresOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = refStore.Close() })
	refStart := time.Now()
	for i := 0; i < n; i += 1000 {
		if _, err := refStore.SaveBatch(ctx, msgs[i:min(i+1000, n)]); err != nil {
			b.Fatal(err)
		}
	}
	refIn := time.Since(refStart)

	rate := func(d time.Duration) float64 { return float64(n) / d.Seconds() }
	b.ReportMetric(rate(ackedIn), "acked/s")
	b.ReportMetric(rate(storedIn), "stored/s")
	b.ReportMetric(rate(refIn), "ref-stored/s")
	b.ReportMetric(rate(storedIn)/rate(refIn), "ratio")
	b.Logf("%d messages: broker acknowledged all in %v (%.0f/s); all in PostgreSQL through Kafka in %v (%.0f/s); "+
		"reference SaveBatch(1000) straight into PostgreSQL %v (%.0f/s); pipeline/reference %.2f",
		n, ackedIn.Round(time.Millisecond), rate(ackedIn), storedIn.Round(time.Millisecond), rate(storedIn),
		refIn.Round(time.Millisecond), rate(refIn), rate(storedIn)/rate(refIn))
}
