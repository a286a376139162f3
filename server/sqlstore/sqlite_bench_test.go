package sqlstore_test

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/scalable-chat-go/server/chat"
	"github.com/scalable-chat-go/server/sqlstore"
)

// sqliteRefRow is the messages table for the GORM reference writes.
type sqliteRefRow struct {
	ID        string  `gorm:"column:id;primaryKey"`
	Content   string  `gorm:"column:content"`
	Username  string  `gorm:"column:username"`
	CreatedAt string  `gorm:"column:created_at"`
	UserID    *string `gorm:"column:user_id"`
	RoomID    *string `gorm:"column:room_id"`
}

func (sqliteRefRow) TableName() string { return "messages" }

// cpuTime is the process's user and system time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSQLiteSaveBatch writes batches of new room messages with
// Store.SaveBatch and, in the same loop and on equal batches into a file of
// its own, with the reference: the store's earlier way, a GORM transaction
// of INSERT ... ON CONFLICT (id) DO NOTHING. Batches of 6 are a light load
// (100 messages a second, BATCH_WAIT 50 ms); 1000 is BATCH_SIZE. It reports
// the process's CPU time a row (user and system, fsync included) and the
// wall time a batch of each, and their ratios. Run it with
//
//	go test -run '^$' -bench SQLiteSaveBatch -benchtime 2000x ./sqlstore/
func BenchmarkSQLiteSaveBatch(b *testing.B) {
	for _, size := range []int{6, 1000} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			ctx := context.Background()
			open := func(name string) *sqlstore.Store {
				s, err := sqlstore.OpenSQLite(ctx, filepath.Join(b.TempDir(), name+".db"))
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { _ = s.Close() })
				return s
			}
			ours, ref := open("ours"), open("gorm")
			room := "0193a1c2-7d4e-7000-8000-000000000001"
			var oursCPU, refCPU, oursWall, refWall time.Duration
			timed := func(cpu, wall *time.Duration, f func()) {
				c, w := cpuTime(b), time.Now()
				f()
				*cpu += cpuTime(b) - c
				*wall += time.Since(w)
			}
			base := time.Now().UTC().Truncate(time.Millisecond)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				batch := make([]chat.Message, size)
				rows := make([]sqliteRefRow, size)
				for j := range batch {
					n := i*size + j
					m := chat.Message{ID: fmt.Sprintf("0193a1c2-7d4e-7000-8000-%012x", n),
						Text: fmt.Sprintf("message number %d, of a typical length for a chat", n), Username: "bencher",
						UserID: "user-1", Room: room, CreatedAt: base.Add(time.Duration(n) * time.Millisecond)}
					batch[j] = m
					rows[j] = sqliteRefRow{ID: m.ID, Content: m.Text, Username: m.Username,
						CreatedAt: m.CreatedAt.Format("2006-01-02 15:04:05.000"), UserID: &batch[j].UserID, RoomID: &batch[j].Room}
				}
				timed(&oursCPU, &oursWall, func() {
					if rej, err := ours.SaveBatch(ctx, batch); err != nil || len(rej) > 0 {
						b.Fatal(rej, err)
					}
				})
				timed(&refCPU, &refWall, func() {
					if err := ref.DB().WithContext(ctx).Transaction(func(tx *gorm.DB) error {
						return tx.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "id"}}, DoNothing: true}).Create(&rows).Error
					}); err != nil {
						b.Fatal(err)
					}
				})
			}
			b.StopTimer()
			var stored int64
			if err := ours.DB().Raw(`SELECT count(*) FROM messages`).Scan(&stored).Error; err != nil || stored != int64(b.N*size) {
				b.Fatalf("stored %d of %d: %v", stored, b.N*size, err)
			}
			perRow := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(b.N*size) }
			perBatch := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(b.N) }
			b.ReportMetric(perRow(oursCPU), "µs-CPU/row")
			b.ReportMetric(perRow(refCPU), "gorm-µs-CPU/row")
			b.ReportMetric(perRow(oursCPU)/perRow(refCPU), "CPU-x-gorm")
			b.ReportMetric(perBatch(oursWall), "µs/batch")
			b.ReportMetric(perBatch(refWall), "gorm-µs/batch")
			b.ReportMetric(perBatch(oursWall)/perBatch(refWall), "wall-x-gorm")
			b.ReportMetric(0, "ns/op") // the loop times two writers: read the metrics
		})
	}
}

// BenchmarkSQLiteFindRoom reads a room by id, as every room:join does,
// with Store.FindRoom and, in the same loop, with the reference: the
// store's earlier GORM query and scan. It reports the allocations and the
// bytes of each a read, and their ratios. Run it with
//
//	go test -run '^$' -bench SQLiteFindRoom -benchtime 20000x ./sqlstore/
func BenchmarkSQLiteFindRoom(b *testing.B) {
	ctx := context.Background()
	s, err := sqlstore.OpenSQLite(ctx, filepath.Join(b.TempDir(), "rooms.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	room := chat.Room{ID: "room-1", Name: "lobby", Kind: chat.RoomPublic, CreatedBy: "u-1", CreatedAt: time.Now().UTC().Truncate(time.Millisecond)}
	if err := s.CreateRoom(ctx, room, []chat.Member{{RoomID: room.ID, UserID: "u-1", Role: chat.RoomOwner, JoinedAt: room.CreatedAt}}); err != nil {
		b.Fatal(err)
	}
	type refRoom struct {
		ID, Name, Kind, CreatedBy string
		CreatedAt                 time.Time
		DeletedAt                 *time.Time
	}
	db := s.DB()
	measure := func(read func() error) (allocs, bytes float64) {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range b.N {
			if err := read(); err != nil {
				b.Fatal(err)
			}
		}
		runtime.ReadMemStats(&after)
		n := float64(b.N)
		return float64(after.Mallocs-before.Mallocs) / n, float64(after.TotalAlloc-before.TotalAlloc) / n
	}
	b.ResetTimer()
	oa, ob := measure(func() error { _, err := s.FindRoom(ctx, room.ID); return err })
	ra, rb := measure(func() error {
		var r refRoom
		return db.WithContext(ctx).Raw(`SELECT id, name, kind, created_by, created_at, deleted_at FROM rooms WHERE id = ?`, room.ID).Scan(&r).Error
	})
	b.ReportMetric(oa, "allocs/read")
	b.ReportMetric(ob, "B/read")
	b.ReportMetric(ra, "gorm-allocs/read")
	b.ReportMetric(rb, "gorm-B/read")
	b.ReportMetric(ob/rb, "B-ratio")
}
