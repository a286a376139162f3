package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/glebarez/go-sqlite"
	gormsqlite "github.com/glebarez/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/scalable-chat-go/server/chat"
)

// sqliteSchema is the `messages` table of the Prisma model, in SQLite's
// words, with the history index of prisma-compat's second migration and
// the tables of its third (tombstones, bans).
const sqliteSchema = `
CREATE TABLE IF NOT EXISTS "messages" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "content" TEXT NOT NULL,
    "username" TEXT NOT NULL,
    "created_at" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "user_id" TEXT
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
`

// sqliteAddUserID adds messages.user_id to a database file made before it
// existed (SQLite has no ADD COLUMN IF NOT EXISTS).
const sqliteAddUserID = `ALTER TABLE "messages" ADD COLUMN "user_id" TEXT`

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
	var hasUserID int64
	if err := db.WithContext(ctx).Raw(`SELECT count(*) FROM pragma_table_info('messages') WHERE name = 'user_id'`).Scan(&hasUserID).Error; err != nil {
		_ = sqlDB.Close()
		return nil, fmt.Errorf("read the messages columns in %s: %w", path, err)
	}
	if hasUserID == 0 {
		if err := db.WithContext(ctx).Exec(sqliteAddUserID).Error; err != nil {
			_ = sqlDB.Close()
			return nil, fmt.Errorf("add messages.user_id in %s: %w", path, err)
		}
	}
	return &Store{db: db, dialect: sqliteDialect{}}, nil
}

type sqliteDialect struct{}

func (sqliteDialect) toDB(t time.Time) dbTime { return dbTime{t: t, asText: true} }

// insert writes 1000 rows a statement: 5 bind variables a row, and SQLite
// allows 32766 a statement.
func (d sqliteDialect) insert(ctx context.Context, db *gorm.DB, batch []chat.Message) error {
	return insertRows(ctx, db, d, batch, 1000)
}

func (sqliteDialect) isDataError(err error) bool {
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
