package sqlstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"gorm.io/gorm/clause"

	"github.com/scalable-chat-go/server/chat"
	"github.com/scalable-chat-go/server/sqlstore"
	"github.com/scalable-chat-go/server/sqlstore/pgtest"
)

// refRow is the messages table for the GORM reference writes.
type refRow struct {
	ID        string    `gorm:"column:id;primaryKey"`
	Content   string    `gorm:"column:content"`
	Username  string    `gorm:"column:username"`
	CreatedAt time.Time `gorm:"column:created_at"`
}

func (refRow) TableName() string { return "messages" }

// BenchmarkPostgresSaveBatch writes batches of 1000 new messages (the
// default BATCH_SIZE) with Store.SaveBatch and, in the same loop and on
// equal batches, with three references, each into its own schema of one
// database (so every table grows alike):
//
//   - temp: COPY into a temporary table, then INSERT ... SELECT ... ON
//     CONFLICT (id) DO NOTHING, in one transaction;
//   - gorm: GORM CreateInBatches(1000) with ON CONFLICT (id) DO NOTHING
//     (the SQLite store's way);
//   - row: one committed INSERT per message, the original server's way
//     (timed on the first 50 messages of each batch).
//
// Each batch is then written again (a replay: every id already stored),
// by SaveBatch and by the temp way. It reports rows/s of each and our
// ratios. Run it with
//
//	go test -run '^$' -bench PostgresSaveBatch -benchtime 200x ./sqlstore/
func BenchmarkPostgresSaveBatch(b *testing.B) {
	db := pgtest.NewDatabase(b)
	ctx := context.Background()
	open := func(schema string) *sqlstore.Store {
		s, err := sqlstore.OpenPostgres(ctx, pgtest.WithParams(b, db, "schema", schema), sqlstore.PostgresOptions{Logger: quiet})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = s.Close() })
		return s
	}
	ours, gormRef, rowRef := open("ours"), open("gorm"), open("row")
	open("temp")
	temp := pgtest.Connect(b, pgtest.WithParams(b, db, "search_path", "temp"))
	if _, err := temp.Exec(ctx, `CREATE TEMPORARY TABLE chat_batch (id text, content text, username text,
		created_at timestamp(3)) ON COMMIT DELETE ROWS`); err != nil {
		b.Fatal(err)
	}
	tempWrite := func(batch []chat.Message) {
		tx, err := temp.Begin(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"pg_temp", "chat_batch"}, []string{"id", "content", "username", "created_at"},
			pgx.CopyFromSlice(len(batch), func(i int) ([]any, error) {
				return []any{batch[i].ID, batch[i].Text, batch[i].Username, batch[i].CreatedAt}, nil
			})); err != nil {
			b.Fatal(err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO messages (id, content, username, created_at)
			SELECT id, content, username, created_at FROM pg_temp.chat_batch ON CONFLICT (id) DO NOTHING`); err != nil {
			b.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			b.Fatal(err)
		}
	}
	save := func(batch []chat.Message) {
		if rej, err := ours.SaveBatch(ctx, batch); err != nil || len(rej) > 0 {
			b.Fatal(rej, err)
		}
	}
	timed := func(d *time.Duration, f func()) {
		start := time.Now()
		f()
		*d += time.Since(start)
	}

	const size, perRow = 1000, 50
	var oursT, tempT, gormT, rowT, oursReplayT, tempReplayT time.Duration
	base := time.Now().UTC().Truncate(time.Millisecond)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		batch := make([]chat.Message, size)
		rows := make([]refRow, size)
		for j := range batch {
			n := i*size + j
			batch[j] = chat.Message{ID: fmt.Sprintf("bench-%09d", n), Text: fmt.Sprintf("message number %d, of a typical length for a chat", n),
				Username: "bencher", CreatedAt: base.Add(time.Duration(n) * time.Millisecond)}
			rows[j] = refRow{ID: batch[j].ID, Content: batch[j].Text, Username: batch[j].Username, CreatedAt: batch[j].CreatedAt}
		}
		timed(&oursT, func() { save(batch) })
		timed(&tempT, func() { tempWrite(batch) })
		timed(&gormT, func() {
			if err := gormRef.DB().WithContext(ctx).Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "id"}}, DoNothing: true}).
				CreateInBatches(&rows, size).Error; err != nil {
				b.Fatal(err)
			}
		})
		timed(&rowT, func() {
			for j := range perRow {
				if err := rowRef.DB().WithContext(ctx).Create(&rows[j]).Error; err != nil {
					b.Fatal(err)
				}
			}
		})
		timed(&oursReplayT, func() { save(batch) })
		timed(&tempReplayT, func() { tempWrite(batch) })
	}
	b.StopTimer()
	rate := func(d time.Duration, per int) float64 { return float64(b.N*per) / d.Seconds() }
	ours1, temp1, gorm1, row1 := rate(oursT, size), rate(tempT, size), rate(gormT, size), rate(rowT, perRow)
	b.ReportMetric(ours1, "rows/s")
	b.ReportMetric(temp1, "temp-rows/s")
	b.ReportMetric(gorm1, "gorm-rows/s")
	b.ReportMetric(row1, "row-rows/s")
	b.ReportMetric(ours1/temp1, "x-temp")
	b.ReportMetric(ours1/gorm1, "x-gorm")
	b.ReportMetric(ours1/row1, "x-row")
	b.ReportMetric(rate(oursReplayT, size), "replay-rows/s")
	b.ReportMetric(rate(oursReplayT, size)/rate(tempReplayT, size), "replay-x-temp")
	b.ReportMetric(0, "ns/op") // the loop times several writers: read the metrics
}
