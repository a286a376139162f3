package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/glebarez/go-sqlite"
	gormsqlite "github.com/glebarez/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/scalable-chat-go/server/chat"
)

// sqliteSchema is the `messages` table of the Prisma model, in SQLite's
// words, with the history index of prisma-compat's second migration, the
// tables of its third (tombstones, bans) and of its fourth (users, rooms,
// memberships). The indexes on columns that later migrations added come
// after them (sqliteIndexes), once a file made before has the columns.
const sqliteSchema = `
CREATE TABLE IF NOT EXISTS "messages" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "content" TEXT NOT NULL,
    "username" TEXT NOT NULL,
    "created_at" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "user_id" TEXT,
    "room_id" TEXT
);
CREATE INDEX IF NOT EXISTS "messages_created_at_id_idx" ON "messages"("created_at", "id");
CREATE TABLE IF NOT EXISTS "message_deletions" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "deleted_by" TEXT NOT NULL,
    "deleted_at" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE IF NOT EXISTS "bans" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "user_id" TEXT,
    "username" TEXT,
    "ip" TEXT,
    "reason" TEXT NOT NULL DEFAULT '',
    "created_by" TEXT NOT NULL,
    "created_at" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "expires_at" DATETIME,
    "lifted_at" DATETIME
);
CREATE TABLE IF NOT EXISTS "users" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "name" TEXT NOT NULL,
    "last_seen" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE IF NOT EXISTS "rooms" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "name" TEXT NOT NULL,
    "name_key" TEXT NOT NULL,
    "kind" TEXT NOT NULL,
    "created_by" TEXT NOT NULL,
    "created_at" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "deleted_at" DATETIME,
    "direct_a" TEXT,
    "direct_b" TEXT
);
CREATE INDEX IF NOT EXISTS "rooms_kind_name_key_id_idx" ON "rooms"("kind", "name_key", "id");
CREATE UNIQUE INDEX IF NOT EXISTS "rooms_direct_a_direct_b_key" ON "rooms"("direct_a", "direct_b");
CREATE TABLE IF NOT EXISTS "room_members" (
    "room_id" TEXT NOT NULL,
    "user_id" TEXT NOT NULL,
    "role" TEXT NOT NULL,
    "joined_at" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "read_up_to" TEXT,
    PRIMARY KEY ("room_id", "user_id"),
    FOREIGN KEY ("room_id") REFERENCES "rooms"("id") ON DELETE CASCADE ON UPDATE CASCADE
);
CREATE INDEX IF NOT EXISTS "room_members_user_id_idx" ON "room_members"("user_id");
`

// sqliteAddedColumns are the messages columns added after the first
// release, each with the statement that adds it to a database file made
// before it existed (SQLite has no ADD COLUMN IF NOT EXISTS).
var sqliteAddedColumns = []struct{ name, add string }{
	{"user_id", `ALTER TABLE "messages" ADD COLUMN "user_id" TEXT`},
	{"room_id", `ALTER TABLE "messages" ADD COLUMN "room_id" TEXT`},
}

// sqliteIndexes are the indexes on added columns: the history of a room.
const sqliteIndexes = `
CREATE INDEX IF NOT EXISTS "messages_room_id_created_at_id_idx" ON "messages"("room_id", "created_at", "id");
`

// sqliteTimeLayout stores times as SQLite's own date-time text, UTC, with a
// fixed three-digit fraction so that text order is time order.
const sqliteTimeLayout = "2006-01-02 15:04:05.000"

// OpenSQLite opens (creating when missing) the SQLite database file at path
// and its `messages` table. The file is written in WAL mode with full
// synchronous commits: a committed batch survives a crash of the process.
func OpenSQLite(ctx context.Context, path string) (*Store, error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("create the data directory %s: %w", dir, err)
		}
	}
	q := url.Values{}
	for _, p := range []string{"busy_timeout(10000)", "journal_mode(WAL)", "synchronous(FULL)", "foreign_keys(1)"} {
		q.Add("_pragma", p)
	}
	// Every transaction takes the write lock when it begins, waiting for it
	// as long as busy_timeout allows. A deferred one that reads, then
	// writes, fails at once (SQLITE_BUSY) when another connection wrote in
	// between; the rooms' read-then-write transactions rely on this.
	q.Set("_txlock", "immediate")
	db, err := gorm.Open(gormsqlite.Open("file:"+path+"?"+q.Encode()), &gorm.Config{
		Logger:                 logger.Default.LogMode(logger.Silent),
		SkipDefaultTransaction: true,
	})
	if err != nil {
		return nil, fmt.Errorf("open SQLite database %s: %w", path, err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, err
	}
	// One writer at a time is all SQLite allows; readers share WAL snapshots.
	sqlDB.SetMaxOpenConns(4)
	if err := db.WithContext(ctx).Exec(sqliteSchema).Error; err != nil {
		_ = sqlDB.Close()
		return nil, fmt.Errorf("create the messages table in %s: %w", path, err)
	}
	for _, c := range sqliteAddedColumns {
		var has int64
		if err := db.WithContext(ctx).Raw(`SELECT count(*) FROM pragma_table_info('messages') WHERE name = ?`, c.name).Scan(&has).Error; err != nil {
			_ = sqlDB.Close()
			return nil, fmt.Errorf("read the messages columns in %s: %w", path, err)
		}
		if has == 0 {
			if err := db.WithContext(ctx).Exec(c.add).Error; err != nil {
				_ = sqlDB.Close()
				return nil, fmt.Errorf("add messages.%s in %s: %w", c.name, path, err)
			}
		}
	}
	if err := db.WithContext(ctx).Exec(sqliteIndexes).Error; err != nil {
		_ = sqlDB.Close()
		return nil, fmt.Errorf("create the room history index in %s: %w", path, err)
	}
	return &Store{db: db, dialect: &sqliteDialect{db: sqlDB}}, nil
}

// sqliteRowsPerInsert is the most rows one INSERT writes: 6 bind variables
// a row, and SQLite allows 32766 a statement.
const sqliteRowsPerInsert = 1000

// sqliteCachedInserts is the largest INSERT kept prepared. Batches are small
// under a light load, where the cost per message matters most; a large
// batch pays its one parse over many rows.
const sqliteCachedInserts = 64

type sqliteDialect struct {
	db *sql.DB

	mu    sync.Mutex
	stmts map[int]*sql.Stmt // the INSERT of n rows, n ≤ sqliteCachedInserts
}

func (*sqliteDialect) toDB(t time.Time) dbTime { return dbTime{t: t, asText: true} }

// insert writes a batch of up to sqliteRowsPerInsert rows as one INSERT in
// autocommit, which is one transaction: an explicit one would cost a BEGIN,
// a COMMIT and a statement journal (the copy of every page the statement
// touches, kept to undo a multi-row statement that fails inside a
// transaction). A larger batch is several INSERTs in one transaction.
// BenchmarkSQLiteSaveBatch measures it against the GORM transaction.
func (d *sqliteDialect) insert(ctx context.Context, _ *gorm.DB, batch []chat.Message) error {
	if len(batch) <= sqliteRowsPerInsert {
		return d.insertPart(ctx, nil, batch)
	}
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	for start := 0; start < len(batch); start += sqliteRowsPerInsert {
		if err := d.insertPart(ctx, tx, batch[start:min(start+sqliteRowsPerInsert, len(batch))]); err != nil {
			_ = tx.Rollback()
			return err
		}
	}
	return tx.Commit()
}

// insertPart runs one INSERT ... ON CONFLICT (id) DO NOTHING of part, in
// tx, or in autocommit when tx is nil.
func (d *sqliteDialect) insertPart(ctx context.Context, tx *sql.Tx, part []chat.Message) error {
	args := make([]any, 0, 6*len(part))
	for _, m := range part {
		args = append(args, m.ID, m.Text, m.Username, m.CreatedAt.UTC().Format(sqliteTimeLayout), nullable(m.UserID), nullable(m.Room))
	}
	if len(part) > sqliteCachedInserts {
		var err error
		if tx != nil {
			_, err = tx.ExecContext(ctx, sqliteInsert(len(part)), args...)
		} else {
			_, err = d.db.ExecContext(ctx, sqliteInsert(len(part)), args...)
		}
		return err
	}
	stmt, err := d.stmt(ctx, len(part))
	if err != nil {
		return err
	}
	if tx != nil {
		stmt = tx.StmtContext(ctx, stmt)
		defer stmt.Close()
	}
	_, err = stmt.ExecContext(ctx, args...)
	return err
}

// stmt returns the prepared INSERT of n rows, preparing it the first time.
func (d *sqliteDialect) stmt(ctx context.Context, n int) (*sql.Stmt, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if s, ok := d.stmts[n]; ok {
		return s, nil
	}
	s, err := d.db.PrepareContext(ctx, sqliteInsert(n))
	if err != nil {
		return nil, err
	}
	if d.stmts == nil {
		d.stmts = make(map[int]*sql.Stmt)
	}
	d.stmts[n] = s
	return s, nil
}

// sqliteInsert is the INSERT of n messages, ids already stored skipped.
func sqliteInsert(n int) string {
	var b strings.Builder
	b.WriteString(`INSERT INTO "messages" ("id","content","username","created_at","user_id","room_id") VALUES `)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("(?,?,?,?,?,?)")
	}
	b.WriteString(` ON CONFLICT ("id") DO NOTHING`)
	return b.String()
}

func (*sqliteDialect) isDataError(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_CONSTRAINT, sqlite3.SQLITE_MISMATCH, sqlite3.SQLITE_TOOBIG, sqlite3.SQLITE_RANGE:
		return true
	}
	return false
}
