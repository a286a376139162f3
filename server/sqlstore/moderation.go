package sqlstore

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm/clause"

	"github.com/scalable-chat-go/server/chat"
)

// deletionRow maps a tombstone onto the table message_deletions (Prisma
// model MessageDeletion).
type deletionRow struct {
	ID        string `gorm:"column:id;primaryKey"`
	DeletedBy string `gorm:"column:deleted_by"`
	DeletedAt dbTime `gorm:"column:deleted_at"`
}

func (deletionRow) TableName() string { return "message_deletions" }

// SaveDeletions stores tombstones in one transaction; the first tombstone
// of a message stays (see chat.Store).
func (s *Store) SaveDeletions(ctx context.Context, batch []chat.Deletion) error {
	if len(batch) == 0 {
		return nil
	}
	rows := make([]deletionRow, len(batch))
	for i, d := range batch {
		rows[i] = deletionRow{ID: d.ID, DeletedBy: d.By, DeletedAt: s.dialect.toDB(d.At)}
	}
	err := s.db.WithContext(ctx).Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "id"}}, DoNothing: true}).
		CreateInBatches(&rows, 1000).Error
	if err != nil {
		return fmt.Errorf("store %d tombstones: %w", len(batch), err)
	}
	return nil
}

// banRow maps a ban onto the table bans (Prisma model Ban).
type banRow struct {
	ID        string  `gorm:"column:id;primaryKey"`
	UserID    *string `gorm:"column:user_id"`
	Username  *string `gorm:"column:username"`
	IP        *string `gorm:"column:ip"`
	Reason    string  `gorm:"column:reason"`
	CreatedBy string  `gorm:"column:created_by"`
	CreatedAt dbTime  `gorm:"column:created_at"`
	ExpiresAt *dbTime `gorm:"column:expires_at"`
}

func (banRow) TableName() string { return "bans" }

type banReadRow struct {
	ID        string     `gorm:"column:id"`
	UserID    *string    `gorm:"column:user_id"`
	Username  *string    `gorm:"column:username"`
	IP        *string    `gorm:"column:ip"`
	Reason    string     `gorm:"column:reason"`
	CreatedBy string     `gorm:"column:created_by"`
	CreatedAt time.Time  `gorm:"column:created_at"`
	ExpiresAt *time.Time `gorm:"column:expires_at"`
}

func (banReadRow) TableName() string { return "bans" }

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

var _ chat.BanStore = (*Store)(nil)

// SaveBan stores b; a ban stored under its id before stays as it is.
func (s *Store) SaveBan(ctx context.Context, b chat.Ban) error {
	r := banRow{ID: b.ID, UserID: nullable(b.UserID), Username: nullable(b.Username), IP: nullable(b.IP),
		Reason: b.Reason, CreatedBy: b.By, CreatedAt: s.dialect.toDB(b.CreatedAt)}
	if !b.Until.IsZero() {
		t := s.dialect.toDB(b.Until)
		r.ExpiresAt = &t
	}
	if err := s.db.WithContext(ctx).Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "id"}}, DoNothing: true}).
		Create(&r).Error; err != nil {
		return fmt.Errorf("store ban %s: %w", b.ID, err)
	}
	return nil
}

// LiftBan ends the ban with id at at; false when no ban in force has it.
func (s *Store) LiftBan(ctx context.Context, id string, at time.Time) (bool, error) {
	t := s.dialect.toDB(at)
	res := s.db.WithContext(ctx).Model(&banReadRow{}).
		Where("id = ? AND lifted_at IS NULL AND (expires_at IS NULL OR expires_at > ?)", id, t).
		Update("lifted_at", t)
	if res.Error != nil {
		return false, fmt.Errorf("lift ban %s: %w", id, res.Error)
	}
	return res.RowsAffected > 0, nil
}

// ActiveBans returns the bans in force at now.
func (s *Store) ActiveBans(ctx context.Context, now time.Time) ([]chat.Ban, error) {
	var rows []banReadRow
	if err := s.db.WithContext(ctx).Where("lifted_at IS NULL AND (expires_at IS NULL OR expires_at > ?)", s.dialect.toDB(now)).
		Order("created_at DESC, id").Limit(100_000).Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("read bans: %w", err)
	}
	out := make([]chat.Ban, len(rows))
	for i, r := range rows {
		out[i] = chat.Ban{ID: r.ID, UserID: deref(r.UserID), Username: deref(r.Username), IP: deref(r.IP), Reason: r.Reason,
			By: r.CreatedBy, CreatedAt: r.CreatedAt.UTC()}
		if r.ExpiresAt != nil {
			out[i].Until = r.ExpiresAt.UTC()
		}
	}
	return out, nil
}
