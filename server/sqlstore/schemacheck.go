package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// wantColumns is the messages table of prisma-compat's schema, in
// PostgreSQL's own type names (format_type).
var wantColumns = []struct{ name, typ string }{
	{"id", "text"},
	{"content", "text"},
	{"username", "text"},
	{"created_at", "timestamp(3) without time zone"},
}

// laterColumns are the nullable messages columns of later migrations, and
// laterTables their tables: the server reads and writes them all.
var (
	laterColumns = []struct{ name, migration string }{
		{"user_id", "20261203130000_identity_and_moderation"},
		{"room_id", "20261207120000_rooms"},
	}
	laterTables = []struct{ name, migration string }{
		{"message_deletions", "20261203130000_identity_and_moderation"},
		{"bans", "20261203130000_identity_and_moderation"},
		{"users", "20261207120000_rooms"},
		{"rooms", "20261207120000_rooms"},
		{"room_members", "20261207120000_rooms"},
	}
)

// historyIndex is the index of prisma-compat's second migration.
const historyIndex = "messages_created_at_id_idx"

// SchemaError reports how the database's messages table differs from
// prisma-compat's schema in a way the server cannot work with.
type SchemaError struct {
	Schema      string
	Differences []string
}

func (e *SchemaError) Error() string {
	return fmt.Sprintf("the messages table in schema %q does not match prisma-compat/schema.prisma: %s",
		e.Schema, strings.Join(e.Differences, "; "))
}

// checkSchema compares the messages table of the current schema with
// prisma-compat's. What matters is what the server reads and writes: each
// column, its type, NOT NULL, and a unique index on id alone (ON CONFLICT
// (id) needs it). Extra indexes, and extra columns that may stay NULL or
// have a default, are fine. It returns warnings for what only slows the
// server down (no index for history reads).
func checkSchema(ctx context.Context, db *sql.DB) (warnings []string, err error) {
	var schema sql.NullString
	if err := db.QueryRowContext(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
		return nil, fmt.Errorf("read the current schema: %w", err)
	}
	if !schema.Valid {
		return nil, &SchemaError{Schema: "(none)", Differences: []string{
			"the schema of the URL (schema=...) does not exist: create it, or run the migrations (MIGRATE=on)"}}
	}
	var oid int64
	var kind string
	err = db.QueryRowContext(ctx, `SELECT c.oid, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = current_schema() AND c.relname = 'messages'`).Scan(&oid, &kind)
	if err == sql.ErrNoRows {
		return nil, &SchemaError{Schema: schema.String, Differences: []string{
			"the table does not exist: run the migrations (MIGRATE=on, or `prisma migrate deploy`)"}}
	} else if err != nil {
		return nil, fmt.Errorf("look for the messages table: %w", err)
	}
	if kind != "r" && kind != "p" {
		return nil, &SchemaError{Schema: schema.String, Differences: []string{fmt.Sprintf("messages is not a table (relkind %q)", kind)}}
	}

	type column struct {
		typ            string
		notNull, isDef bool
		num            int
	}
	cols := map[string]column{}
	var order []string
	rows, err := db.QueryContext(ctx, `SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
			a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> '', a.attnum
		FROM pg_attribute a WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`, oid)
	if err != nil {
		return nil, fmt.Errorf("read the messages columns: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var c column
		if err := rows.Scan(&name, &c.typ, &c.notNull, &c.isDef, &c.num); err != nil {
			return nil, fmt.Errorf("read the messages columns: %w", err)
		}
		cols[name] = c
		order = append(order, name)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the messages columns: %w", err)
	}

	var diffs []string
	wanted := map[string]bool{}
	for _, w := range wantColumns {
		wanted[w.name] = true
		c, ok := cols[w.name]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("column %q is missing (want %s NOT NULL)", w.name, w.typ))
		case c.typ != w.typ:
			diffs = append(diffs, fmt.Sprintf("column %q is %s, want %s", w.name, c.typ, w.typ))
		case !c.notNull:
			diffs = append(diffs, fmt.Sprintf("column %q may be NULL, want NOT NULL", w.name))
		}
	}
	for _, name := range order {
		if c := cols[name]; !wanted[name] && c.notNull && !c.isDef {
			diffs = append(diffs, fmt.Sprintf("extra column %q is NOT NULL without a default, so the server's inserts would fail", name))
		}
	}

	var uniqueID, history bool
	if id, ok := cols["id"]; ok {
		err := db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = $1 AND i.indisunique
			AND i.indnkeyatts = 1 AND i.indkey[0] = $2 AND i.indpred IS NULL AND i.indexprs IS NULL)`, oid, id.num).Scan(&uniqueID)
		if err != nil {
			return nil, fmt.Errorf("read the messages indexes: %w", err)
		}
		if !uniqueID {
			diffs = append(diffs, `no primary key or unique index on "id" alone (want CONSTRAINT "messages_pkey" PRIMARY KEY ("id"))`)
		}
	}
	for _, c := range laterColumns {
		if have, ok := cols[c.name]; !ok {
			diffs = append(diffs, fmt.Sprintf(`column %q is missing (want text; prisma-compat's migration %s)`, c.name, c.migration))
		} else if have.typ != "text" {
			diffs = append(diffs, fmt.Sprintf(`column %q is %s, want text`, c.name, have.typ))
		}
	}
	for _, table := range laterTables {
		var exists bool
		if err := db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = current_schema() AND c.relname = $1 AND c.relkind IN ('r', 'p'))`, table.name).Scan(&exists); err != nil {
			return nil, fmt.Errorf("look for the %s table: %w", table.name, err)
		}
		if !exists {
			diffs = append(diffs, fmt.Sprintf("table %q is missing (prisma-compat's migration %s)", table.name, table.migration))
		}
	}
	if len(diffs) > 0 {
		return nil, &SchemaError{Schema: schema.String, Differences: diffs}
	}
	err = db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
		JOIN pg_am am ON am.oid = ic.relam
		WHERE i.indrelid = $1 AND am.amname = 'btree' AND i.indpred IS NULL AND i.indexprs IS NULL AND i.indnkeyatts >= 2
		AND i.indkey[0] = $2 AND i.indkey[1] = $3)`, oid, cols["created_at"].num, cols["id"].num).Scan(&history)
	if err != nil {
		return nil, fmt.Errorf("read the messages indexes: %w", err)
	}
	if !history {
		warnings = append(warnings, fmt.Sprintf("no index on messages (created_at, id): history reads scan the table; "+
			"apply prisma-compat's migration that creates %s (MIGRATE=on, or `prisma migrate deploy`)", historyIndex))
	}
	return warnings, nil
}
