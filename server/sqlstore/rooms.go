package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/scalable-chat-go/server/chat"
)

// The rooms (chat.RoomStore) live in the tables users, rooms and
// room_members of prisma-compat's rooms migration.
//
// Guarantees, on SQLite and on PostgreSQL, from any number of Stores
// (nodes) on one database:
//   - a pair of users has one live direct room: rooms.(direct_a, direct_b)
//     is unique, a < b; OpenDirect inserts with ON CONFLICT DO NOTHING and
//     reads back the winner. A deleted direct room gives its pair up.
//   - membership changes of a room are serialised on the room's row
//     (SELECT ... FOR UPDATE on PostgreSQL; on SQLite every transaction
//     takes the write lock as it begins, see OpenSQLite): AddMember never
//     adds to a room that RemoveMember deleted, and a room has one owner
//     after any interleaving of removals.
//   - a read position only moves forward in history order (created_at,
//     id): one conditional UPDATE, which PostgreSQL re-checks on the row's
//     newest version when writers race.

var _ chat.RoomStore = (*Store)(nil)

// errInvalid wraps what a caller of the RoomStore got wrong (a missing id,
// an unknown kind): a bug of the caller, never stored.
var errInvalid = errors.New("invalid room store call")

// nameKey is the key of a room's name for searches in any case.
func nameKey(name string) string { return strings.ToLower(name) }

// roomRow is a row of rooms as read back.
type roomRow struct {
	ID        string     `gorm:"column:id"`
	Name      string     `gorm:"column:name"`
	Kind      string     `gorm:"column:kind"`
	CreatedBy string     `gorm:"column:created_by"`
	CreatedAt time.Time  `gorm:"column:created_at"`
	DeletedAt *time.Time `gorm:"column:deleted_at"`
}

func (r roomRow) room() chat.Room {
	out := chat.Room{ID: r.ID, Name: r.Name, Kind: chat.RoomKind(r.Kind), CreatedBy: r.CreatedBy, CreatedAt: r.CreatedAt.UTC()}
	if r.DeletedAt != nil {
		out.DeletedAt = r.DeletedAt.UTC()
	}
	return out
}

const roomColumns = `rooms.id, rooms.name, rooms.kind, rooms.created_by, rooms.created_at, rooms.deleted_at`

// memberRow is a row of room_members as read back.
type memberRow struct {
	RoomID   string    `gorm:"column:room_id"`
	UserID   string    `gorm:"column:user_id"`
	Role     string    `gorm:"column:role"`
	JoinedAt time.Time `gorm:"column:joined_at"`
	ReadUpTo *string   `gorm:"column:read_up_to"`
}

func (r memberRow) member() chat.Member {
	return chat.Member{RoomID: r.RoomID, UserID: r.UserID, Role: chat.MemberRole(r.Role), JoinedAt: r.JoinedAt.UTC(), ReadUpTo: deref(r.ReadUpTo)}
}

const memberColumns = `room_id, user_id, role, joined_at, read_up_to`

// ms is t in whole milliseconds, as both databases keep it (PostgreSQL's
// timestamp(3) would round, SQLite's text truncates: truncate first).
func (s *Store) ms(t time.Time) dbTime { return s.dialect.toDB(t.UTC().Truncate(time.Millisecond)) }

// first scans the first row of q into dst, reporting whether there was one.
func first(q *gorm.DB, dst any) (bool, error) {
	res := q.Scan(dst)
	return res.RowsAffected > 0, res.Error
}

// SaveUser records u: inserted, or its name and last seen updated; a call
// with an older LastSeen than the stored one changes nothing, so racing
// nodes keep the newest.
func (s *Store) SaveUser(ctx context.Context, u chat.UserRecord) error {
	if u.ID == "" {
		return fmt.Errorf("%w: a user without an id", errInvalid)
	}
	err := s.db.WithContext(ctx).Exec(`INSERT INTO users (id, name, last_seen) VALUES (?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET name = excluded.name, last_seen = excluded.last_seen
		WHERE users.last_seen <= excluded.last_seen`, u.ID, u.Name, s.ms(u.LastSeen)).Error
	if err != nil {
		return fmt.Errorf("save user %q: %w", u.ID, err)
	}
	return nil
}

// FindUser returns the user with id, or chat.ErrNotFound.
func (s *Store) FindUser(ctx context.Context, id string) (chat.UserRecord, error) {
	var r struct {
		ID       string    `gorm:"column:id"`
		Name     string    `gorm:"column:name"`
		LastSeen time.Time `gorm:"column:last_seen"`
	}
	found, err := first(s.db.WithContext(ctx).Raw(`SELECT id, name, last_seen FROM users WHERE id = ?`, id), &r)
	switch {
	case err != nil:
		return chat.UserRecord{}, fmt.Errorf("find user %q: %w", id, err)
	case !found:
		return chat.UserRecord{}, chat.ErrNotFound
	}
	return chat.UserRecord{ID: r.ID, Name: r.Name, LastSeen: r.LastSeen.UTC()}, nil
}

// checkRoom refuses a room the store cannot keep.
func checkRoom(r chat.Room) error {
	switch {
	case r.ID == "" || r.ID == chat.GlobalRoom:
		return fmt.Errorf("%w: room id %q", errInvalid, r.ID)
	case r.CreatedAt.IsZero():
		return fmt.Errorf("%w: room %s has no creation time", errInvalid, r.ID)
	}
	return nil
}

// CreateRoom stores r (public or private: a direct room is OpenDirect's)
// and its members in one transaction. A member's RoomID may be left ""; a
// zero JoinedAt is r.CreatedAt; a zero Role is member.
func (s *Store) CreateRoom(ctx context.Context, r chat.Room, members []chat.Member) error {
	if err := checkRoom(r); err != nil {
		return err
	}
	if r.Kind != chat.RoomPublic && r.Kind != chat.RoomPrivate {
		return fmt.Errorf("%w: CreateRoom of kind %q (public or private; a direct room is opened with OpenDirect)", errInvalid, r.Kind)
	}
	for i, m := range members {
		switch {
		case m.RoomID != "" && m.RoomID != r.ID:
			return fmt.Errorf("%w: member %d is of room %q, not %q", errInvalid, i, m.RoomID, r.ID)
		case m.UserID == "":
			return fmt.Errorf("%w: member %d has no user id", errInvalid, i)
		}
	}
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Exec(`INSERT INTO rooms (id, name, name_key, kind, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
			r.ID, r.Name, nameKey(r.Name), string(r.Kind), r.CreatedBy, s.ms(r.CreatedAt)).Error; err != nil {
			return err
		}
		for _, m := range members {
			if m.JoinedAt.IsZero() {
				m.JoinedAt = r.CreatedAt
			}
			if m.Role == "" {
				m.Role = chat.RoomMember
			}
			if _, err := s.insertMember(tx, r.ID, m); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("create room %s with %d members: %w", r.ID, len(members), err)
	}
	return nil
}

// insertMember inserts m into roomID unless the user is a member already,
// and reports whether it did.
func (s *Store) insertMember(tx *gorm.DB, roomID string, m chat.Member) (bool, error) {
	res := tx.Exec(`INSERT INTO room_members (room_id, user_id, role, joined_at, read_up_to) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (room_id, user_id) DO NOTHING`, roomID, m.UserID, string(m.Role), s.ms(m.JoinedAt), nullable(m.ReadUpTo))
	return res.RowsAffected > 0, res.Error
}

// OpenDirect returns the live direct room of a and b, or stores r as it,
// with both as members: see chat.RoomStore. Opening it again makes a user
// who had left it a member again.
func (s *Store) OpenDirect(ctx context.Context, r chat.Room, a, b string) (chat.Room, bool, error) {
	if a == "" || b == "" || a == b {
		return chat.Room{}, false, fmt.Errorf("%w: a direct room of %q and %q (two distinct users)", errInvalid, a, b)
	}
	if err := checkRoom(r); err != nil {
		return chat.Room{}, false, err
	}
	lo, hi := min(a, b), max(a, b)
	r.Kind = chat.RoomDirect
	r.CreatedAt = r.CreatedAt.UTC().Truncate(time.Millisecond)
	r.DeletedAt = time.Time{}
	both := func(tx *gorm.DB, roomID string) error {
		for _, u := range []string{lo, hi} {
			if _, err := s.insertMember(tx, roomID, chat.Member{UserID: u, Role: chat.RoomMember, JoinedAt: r.CreatedAt}); err != nil {
				return err
			}
		}
		return nil
	}
	// Most calls find the room: no transaction, no write but the
	// memberships' (none when both are members).
	existing, found, err := s.findDirect(ctx, lo, hi)
	if err != nil {
		return chat.Room{}, false, err
	}
	created := false
	if !found {
		err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			res := tx.Exec(`INSERT INTO rooms (id, name, name_key, kind, created_by, created_at, direct_a, direct_b)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (direct_a, direct_b) DO NOTHING`,
				r.ID, r.Name, nameKey(r.Name), string(r.Kind), r.CreatedBy, s.ms(r.CreatedAt), lo, hi)
			if res.Error != nil || res.RowsAffected == 0 {
				return res.Error // another call stored the pair's room first
			}
			created = true
			return both(tx, r.ID)
		})
		if err != nil {
			return chat.Room{}, false, fmt.Errorf("open the direct room of %q and %q: %w", lo, hi, err)
		}
		if created {
			return r, true, nil
		}
		if existing, found, err = s.findDirect(ctx, lo, hi); err != nil {
			return chat.Room{}, false, err
		} else if !found {
			// The winner's room was deleted in between: a caller may try again.
			return chat.Room{}, false, fmt.Errorf("open the direct room of %q and %q: it was deleted while it was opened", lo, hi)
		}
	}
	if err := both(s.db.WithContext(ctx), existing.ID); err != nil {
		return chat.Room{}, false, fmt.Errorf("open the direct room of %q and %q: %w", lo, hi, err)
	}
	return existing, false, nil
}

// findDirect returns the live direct room of lo < hi.
func (s *Store) findDirect(ctx context.Context, lo, hi string) (chat.Room, bool, error) {
	var r roomRow
	found, err := first(s.db.WithContext(ctx).Raw(`SELECT `+roomColumns+` FROM rooms WHERE direct_a = ? AND direct_b = ?`, lo, hi), &r)
	if err != nil {
		return chat.Room{}, false, fmt.Errorf("find the direct room of %q and %q: %w", lo, hi, err)
	}
	return r.room(), found, nil
}

// FindRoom returns the room with id, deleted or not, or chat.ErrNotFound.
// Every room:join reads one: it is a prepared statement, scanned without
// GORM, whose statement and reflection were 43% of what a join allocated
// (5 of 12 KB, heap profile of the rooms bench's memory step).
func (s *Store) FindRoom(ctx context.Context, id string) (chat.Room, error) {
	stmt, err := s.findRoomStmt(ctx)
	if err != nil {
		return chat.Room{}, fmt.Errorf("find room %q: %w", id, err)
	}
	var r roomRow
	var deleted sql.NullTime
	err = stmt.QueryRowContext(ctx, id).Scan(&r.ID, &r.Name, &r.Kind, &r.CreatedBy, &r.CreatedAt, &deleted)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return chat.Room{}, chat.ErrNotFound
	case err != nil:
		return chat.Room{}, fmt.Errorf("find room %q: %w", id, err)
	}
	if deleted.Valid {
		r.DeletedAt = &deleted.Time
	}
	return r.room(), nil
}

// findRoomStmt prepares FindRoom's statement once (again after a failure).
func (s *Store) findRoomStmt(ctx context.Context) (*sql.Stmt, error) {
	s.findRoomMu.Lock()
	defer s.findRoomMu.Unlock()
	if s.findRoom != nil {
		return s.findRoom, nil
	}
	db, err := s.db.DB()
	if err != nil {
		return nil, err
	}
	placeholder := "?"
	if _, ok := s.dialect.(pgDialect); ok {
		placeholder = "$1"
	}
	stmt, err := db.PrepareContext(ctx, `SELECT `+roomColumns+` FROM rooms WHERE id = `+placeholder)
	if err != nil {
		return nil, err
	}
	s.findRoom = stmt
	return stmt, nil
}

// DeleteRoom marks the room deleted at at (false when it was already), and
// gives a direct room's pair up, so that the pair may open another.
func (s *Store) DeleteRoom(ctx context.Context, id string, at time.Time) (bool, error) {
	res := s.db.WithContext(ctx).Exec(`UPDATE rooms SET deleted_at = ?, direct_a = NULL, direct_b = NULL
		WHERE id = ? AND deleted_at IS NULL`, s.ms(at), id)
	if res.Error != nil {
		return false, fmt.Errorf("delete room %q: %w", id, res.Error)
	}
	if res.RowsAffected > 0 {
		return true, nil
	}
	if _, err := s.FindRoom(ctx, id); err != nil {
		return false, err
	}
	return false, nil
}

// lockRoom reads the room with id in tx, locking its row until tx ends:
// the membership changes of a room happen one at a time.
func (s *Store) lockRoom(tx *gorm.DB, id string) (roomRow, error) {
	q := `SELECT ` + roomColumns + ` FROM rooms WHERE id = ?`
	if _, ok := s.dialect.(pgDialect); ok {
		q += ` FOR UPDATE`
	}
	var r roomRow
	found, err := first(tx.Raw(q, id), &r)
	switch {
	case err != nil:
		return roomRow{}, err
	case !found:
		return roomRow{}, chat.ErrNotFound
	}
	return r, nil
}

// AddMember adds m (a zero JoinedAt is now, a zero Role member); false
// when the user is a member already. A room that does not exist, or was
// deleted, is chat.ErrNotFound; a direct room's members are its pair
// (OpenDirect), so adding to one is refused.
func (s *Store) AddMember(ctx context.Context, m chat.Member) (bool, error) {
	if m.RoomID == "" || m.UserID == "" {
		return false, fmt.Errorf("%w: a member without a room or a user id", errInvalid)
	}
	if m.JoinedAt.IsZero() {
		m.JoinedAt = time.Now()
	}
	if m.Role == "" {
		m.Role = chat.RoomMember
	}
	var added bool
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		r, err := s.lockRoom(tx, m.RoomID)
		switch {
		case err != nil:
			return err
		case r.DeletedAt != nil:
			return chat.ErrNotFound
		case chat.RoomKind(r.Kind) == chat.RoomDirect:
			return fmt.Errorf("%w: room %s is a direct room: its members are its pair", errInvalid, r.ID)
		}
		added, err = s.insertMember(tx, m.RoomID, m)
		return err
	})
	if errors.Is(err, chat.ErrNotFound) {
		return false, err
	} else if err != nil {
		return false, fmt.Errorf("add %q to room %q: %w", m.UserID, m.RoomID, err)
	}
	return added, nil
}

// RemoveMember removes userID from roomID in one transaction, under the
// room's lock: see chat.RoomStore. The oldest remaining member (by
// joined_at, then user id) becomes the owner when the owner leaves; a
// private room left empty is deleted; a public or direct one stays.
func (s *Store) RemoveMember(ctx context.Context, roomID, userID string, at time.Time) (removed bool, newOwner string, deleted bool, err error) {
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		room, err := s.lockRoom(tx, roomID)
		if err != nil {
			return err
		}
		var role string
		if found, err := first(tx.Raw(`SELECT role FROM room_members WHERE room_id = ? AND user_id = ?`, roomID, userID), &role); err != nil || !found {
			return err
		}
		if err := tx.Exec(`DELETE FROM room_members WHERE room_id = ? AND user_id = ?`, roomID, userID).Error; err != nil {
			return err
		}
		removed = true
		var next string
		found, err := first(tx.Raw(`SELECT user_id FROM room_members WHERE room_id = ? ORDER BY joined_at, user_id LIMIT 1`, roomID), &next)
		switch {
		case err != nil:
			return err
		case found && chat.MemberRole(role) == chat.RoomOwner:
			newOwner = next
			return tx.Exec(`UPDATE room_members SET role = ? WHERE room_id = ? AND user_id = ?`, string(chat.RoomOwner), roomID, next).Error
		case !found && chat.RoomKind(room.Kind) == chat.RoomPrivate && room.DeletedAt == nil:
			deleted = true
			return tx.Exec(`UPDATE rooms SET deleted_at = ? WHERE id = ?`, s.ms(at), roomID).Error
		}
		return nil
	})
	if errors.Is(err, chat.ErrNotFound) {
		return false, "", false, err
	} else if err != nil {
		return false, "", false, fmt.Errorf("remove %q from room %q: %w", userID, roomID, err)
	}
	return removed, newOwner, deleted, nil
}

// Member returns userID's membership of roomID, or chat.ErrNotFound.
func (s *Store) Member(ctx context.Context, roomID, userID string) (chat.Member, error) {
	var r memberRow
	found, err := first(s.db.WithContext(ctx).Raw(`SELECT `+memberColumns+` FROM room_members WHERE room_id = ? AND user_id = ?`, roomID, userID), &r)
	switch {
	case err != nil:
		return chat.Member{}, fmt.Errorf("find %q in room %q: %w", userID, roomID, err)
	case !found:
		return chat.Member{}, chat.ErrNotFound
	}
	return r.member(), nil
}

// Members returns the members of roomID, oldest first (then by user id);
// chat.ErrNotFound when there is no such room.
func (s *Store) Members(ctx context.Context, roomID string) ([]chat.Member, error) {
	var rows []memberRow
	if err := s.db.WithContext(ctx).Raw(`SELECT `+memberColumns+` FROM room_members WHERE room_id = ?
		ORDER BY joined_at, user_id`, roomID).Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("read the members of room %q: %w", roomID, err)
	}
	if len(rows) == 0 {
		if _, err := s.FindRoom(ctx, roomID); err != nil {
			return nil, err
		}
	}
	out := make([]chat.Member, len(rows))
	for i, r := range rows {
		out[i] = r.member()
	}
	return out, nil
}

// RoomsOf returns the live rooms userID is a member of, oldest membership
// first (then by room id).
func (s *Store) RoomsOf(ctx context.Context, userID string) ([]chat.Room, error) {
	var rows []roomRow
	if err := s.db.WithContext(ctx).Raw(`SELECT `+roomColumns+` FROM room_members m JOIN rooms ON rooms.id = m.room_id
		WHERE m.user_id = ? AND rooms.deleted_at IS NULL ORDER BY m.joined_at, rooms.id`, userID).Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("read the rooms of %q: %w", userID, err)
	}
	return rooms(rows), nil
}

func rooms(rows []roomRow) []chat.Room {
	out := make([]chat.Room, len(rows))
	for i, r := range rows {
		out[i] = r.room()
	}
	return out
}

// likeEscaper makes a prefix match itself only in LIKE ... ESCAPE '\'.
var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

// PublicRooms returns up to limit live public rooms whose name starts with
// prefix in any case (both lower-cased by Go: name_key), ordered by that
// key then id, after the room with id after: see chat.RoomStore. An after
// that is no room is chat.ErrNotFound. The index (kind, name_key, id)
// serves the order and the page.
func (s *Store) PublicRooms(ctx context.Context, prefix, after string, limit int) ([]chat.Room, error) {
	if limit <= 0 {
		return nil, nil
	}
	q := s.db.WithContext(ctx).Table("rooms").Select(roomColumns).
		Where("kind = ? AND deleted_at IS NULL", string(chat.RoomPublic))
	if prefix != "" {
		q = q.Where(`name_key LIKE ? ESCAPE '\'`, likeEscaper.Replace(nameKey(prefix))+"%")
	}
	if after != "" {
		var key string
		found, err := first(s.db.WithContext(ctx).Raw(`SELECT name_key FROM rooms WHERE id = ?`, after), &key)
		switch {
		case err != nil:
			return nil, fmt.Errorf("read the public rooms after %q: %w", after, err)
		case !found:
			return nil, chat.ErrNotFound
		}
		q = q.Where("(name_key, id) > (?, ?)", key, after)
	}
	var rows []roomRow
	if err := q.Order("name_key, id").Limit(limit).Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("read the public rooms (prefix %q): %w", prefix, err)
	}
	return rooms(rows), nil
}

// MarkRead moves userID's read position in roomID to upTo when upTo comes
// after it in history order, in one UPDATE; see chat.RoomStore. A message
// that is not the room's, or a user who is not a member, is
// chat.ErrNotFound.
func (s *Store) MarkRead(ctx context.Context, roomID, userID, upTo string) (bool, error) {
	db := s.db.WithContext(ctx)
	var ok int
	if found, err := first(db.Raw(`SELECT 1 FROM messages WHERE id = ? AND room_id = ?`, upTo, roomID), &ok); err != nil {
		return false, fmt.Errorf("read message %q of room %q: %w", upTo, roomID, err)
	} else if !found {
		return false, chat.ErrNotFound
	}
	res := db.Exec(`UPDATE room_members SET read_up_to = ? WHERE room_id = ? AND user_id = ?
		AND (read_up_to IS NULL OR NOT EXISTS (SELECT 1 FROM messages p WHERE p.id = room_members.read_up_to
			AND (p.created_at, p.id) >= (SELECT n.created_at, n.id FROM messages n WHERE n.id = ?)))`, upTo, roomID, userID, upTo)
	if res.Error != nil {
		return false, fmt.Errorf("mark %q read up to %q in room %q: %w", userID, upTo, roomID, res.Error)
	}
	if res.RowsAffected > 0 {
		return true, nil
	}
	if _, err := s.Member(ctx, roomID, userID); err != nil {
		return false, err
	}
	return false, nil
}

// Unread counts, up to max, the messages of roomID after userID's read
// position: neither the user's own, nor deleted ones, nor any of a deleted
// room. A user who is not a member is chat.ErrNotFound. The (room_id,
// created_at, id) index serves it, and the count stops at max rows.
func (s *Store) Unread(ctx context.Context, roomID, userID string, max int) (int, error) {
	m, err := s.Member(ctx, roomID, userID)
	if err != nil || max <= 0 {
		return 0, err
	}
	q := `SELECT 1 FROM messages m WHERE m.room_id = ? AND (m.user_id IS NULL OR m.user_id <> ?)
		AND NOT EXISTS (SELECT 1 FROM message_deletions d WHERE d.id = m.id)
		AND NOT EXISTS (SELECT 1 FROM rooms r WHERE r.id = ? AND r.deleted_at IS NOT NULL)`
	args := []any{roomID, userID, roomID}
	if m.ReadUpTo != "" {
		q += ` AND (m.created_at, m.id) > (SELECT p.created_at, p.id FROM messages p WHERE p.id = ?)`
		args = append(args, m.ReadUpTo)
	}
	var n int
	if err := s.db.WithContext(ctx).Raw(`SELECT count(*) FROM (`+q+` LIMIT ?) unread`, append(args, max)...).Scan(&n).Error; err != nil {
		return 0, fmt.Errorf("count the unread messages of %q in room %q: %w", userID, roomID, err)
	}
	return n, nil
}
