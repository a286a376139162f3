// Package sqlstore is the chat Store on SQL databases through GORM: SQLite
// (pure Go, no cgo) for the embedded default, and PostgreSQL on the
// original server's Prisma schema (the `messages` table of the Prisma model
// Message, migrated as `prisma migrate deploy` does; see OpenPostgres).
//
// Guarantees: SaveBatch writes a batch in one transaction and is idempotent
// by id (INSERT ... ON CONFLICT (id) DO NOTHING; on PostgreSQL a COPY
// first, and that insert when an id is already stored); a row the database
// refuses for its data is isolated by splitting the batch, reported, and
// never blocks the others.
// Recent pages one room newest first on (created_at, id), which an index
// covers (room_id, created_at, id), leaving out the messages with a
// tombstone (table message_deletions; a tombstone may be stored before its
// message and hides it all the same) and every message of a deleted room.
// A message of the global room has a NULL room_id, as every row the
// original server wrote.
// Bans live in the table bans (see BanStore); users, rooms and memberships
// in the tables users, rooms and room_members (see RoomStore).
package sqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"sync"
	"time"

	"gorm.io/gorm"

	"github.com/scalable-chat-go/server/chat"
)

// Store is a chat.Store on a GORM database.
type Store struct {
	db      *gorm.DB
	dialect dialect

	// findRoom is FindRoom's statement, prepared on first use.
	findRoomMu sync.Mutex
	findRoom   *sql.Stmt
}

// dialect holds what differs between databases.
type dialect interface {
	// toDB converts a message time to the column's value.
	toDB(t time.Time) dbTime
	// insert stores batch in one transaction, skipping ids already stored.
	insert(ctx context.Context, db *gorm.DB, batch []chat.Message) error
	// isDataError reports whether err refuses the data itself (retrying
	// cannot help), rather than an outage or a timeout.
	isDataError(err error) bool
}

// nullable is s, or NULL when s is empty.
func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// dbTime is a message time on its way to the database: a time value, or
// for SQLite a fixed-width text (see sqliteTimeLayout).
type dbTime struct {
	t      time.Time
	asText bool
}

// Value implements driver.Valuer.
func (d dbTime) Value() (driver.Value, error) {
	if d.asText {
		return d.t.UTC().Format(sqliteTimeLayout), nil
	}
	return d.t.UTC(), nil
}

// GormDataType names the column type for GORM.
func (dbTime) GormDataType() string { return "time" }

// readRow is row as read back.
type readRow struct {
	ID        string    `gorm:"column:id"`
	Content   string    `gorm:"column:content"`
	Username  string    `gorm:"column:username"`
	CreatedAt time.Time `gorm:"column:created_at"`
	UserID    *string   `gorm:"column:user_id"`
	RoomID    *string   `gorm:"column:room_id"`
}

func (readRow) TableName() string { return "messages" }

func (r readRow) message() chat.Message {
	return chat.Message{ID: r.ID, Text: r.Content, Username: r.Username, CreatedAt: r.CreatedAt.UTC(),
		UserID: deref(r.UserID), Room: deref(r.RoomID)}
}

// SaveBatch stores batch in one transaction, idempotently by id. See the
// package documentation for how refused rows are handled.
func (s *Store) SaveBatch(ctx context.Context, batch []chat.Message) ([]chat.Rejected, error) {
	if len(batch) == 0 {
		return nil, nil
	}
	err := s.dialect.insert(ctx, s.db, batch)
	if err == nil || !s.dialect.isDataError(err) {
		if err != nil {
			return nil, fmt.Errorf("store batch of %d: %w", len(batch), err)
		}
		return nil, nil
	}
	if len(batch) == 1 {
		return []chat.Rejected{{Message: batch[0], Reason: err.Error()}}, nil
	}
	// Split to isolate the refused rows; the halves are stored on their own.
	half := len(batch) / 2
	left, err := s.SaveBatch(ctx, batch[:half])
	if err != nil {
		return nil, err
	}
	right, err := s.SaveBatch(ctx, batch[half:])
	if err != nil {
		return left, err
	}
	return append(left, right...), nil
}

// Recent returns up to limit messages of room (chat.GlobalRoom, or a
// room's id), newest first, strictly before cur; none of a deleted room.
func (s *Store) Recent(ctx context.Context, room string, limit int, cur *chat.Cursor) ([]chat.Message, error) {
	if limit <= 0 {
		return nil, nil
	}
	var rows []readRow
	if err := s.recentQuery(s.db.WithContext(ctx), room, limit, cur).Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("read %d recent messages of room %q: %w", limit, room, err)
	}
	out := make([]chat.Message, len(rows))
	for i, r := range rows {
		out[i] = r.message()
	}
	return out, nil
}

// recentQuery selects a page of Recent; the (room_id, created_at, id) index
// serves the room, the order and the row comparison (the global room's
// page is its room_id IS NULL part).
func (s *Store) recentQuery(db *gorm.DB, room string, limit int, cur *chat.Cursor) *gorm.DB {
	q := db.Model(&readRow{}).Where("NOT EXISTS (SELECT 1 FROM message_deletions d WHERE d.id = messages.id)")
	if room == chat.GlobalRoom || room == "" {
		q = q.Where("room_id IS NULL")
	} else {
		q = q.Where("room_id = ? AND NOT EXISTS (SELECT 1 FROM rooms r WHERE r.id = ? AND r.deleted_at IS NOT NULL)", room, room)
	}
	if cur != nil {
		q = q.Where("(created_at, id) < (?, ?)", s.dialect.toDB(cur.CreatedAt), cur.ID)
	}
	return q.Order("created_at DESC, id DESC").Limit(limit)
}

// Find returns the message with id, or chat.ErrNotFound.
func (s *Store) Find(ctx context.Context, id string) (chat.Message, error) {
	var r readRow
	err := s.db.WithContext(ctx).Where("id = ?", id).Take(&r).Error
	switch {
	case errors.Is(err, gorm.ErrRecordNotFound):
		return chat.Message{}, chat.ErrNotFound
	case err != nil:
		return chat.Message{}, fmt.Errorf("find message %q: %w", id, err)
	}
	return r.message(), nil
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	return sqlDB.PingContext(ctx)
}

// Close closes the database.
func (s *Store) Close() error {
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	return sqlDB.Close()
}

// DB returns the GORM handle, for tests and tools.
func (s *Store) DB() *gorm.DB { return s.db }
