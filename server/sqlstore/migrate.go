package sqlstore

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// The migrations are prisma-compat/migrations, copied here because go:embed
// cannot reach outside the module; TestEmbeddedMigrationsArePrismaCompats
// checks that the copy is byte for byte the same.
//
//go:generate sh -c "rm -rf migrations && cp -R ../../prisma-compat/migrations migrations"
//go:embed migrations
var migrationFiles embed.FS

// The bookkeeping below does what `prisma migrate deploy` does on
// PostgreSQL, so that Prisma and the Go server share one migration history
// and one lock. It follows Prisma's schema engine (prisma/prisma-engines):
//
//   - schema-engine/connectors/sql-schema-connector/src/flavour/postgres.rs:
//     acquire_lock (SELECT pg_advisory_lock(72707369), 10 s timeout) and
//     create_migrations_table (the CREATE TABLE below, verbatim);
//   - schema-engine/connectors/sql-schema-connector/src/sql_migration_persistence.rs:
//     initialize (create the table only in an empty schema, else P3005),
//     record_migration_started_impl (INSERT id = UUID v4, checksum,
//     started_at = client UTC now, migration_name), record_successful_step
//     (applied_steps_count + 1), record_migration_finished (finished_at =
//     client UTC now), record_failed_step (logs);
//   - schema-engine/core/src/commands/apply_migrations.rs: the order (lock,
//     initialize, list rows by started_at, stop on a failed row (P3009),
//     apply what has no row that is not rolled back, each script as one
//     simple query);
//   - schema-engine/connectors/schema-connector/src/checksum.rs: checksum =
//     lowercase hex SHA-256 of the script.
//
// testdata/prisma_migrations.json holds what Prisma writes, and the tests
// compare the Go server's table and rows with it.

// prismaLockKey is the key of the session advisory lock Prisma's migrate
// takes: "72707369 is a unique number we chose to identify Migrate".
const prismaLockKey = 72707369

// createMigrationsTable is Prisma's create_migrations_table for PostgreSQL,
// verbatim.
const createMigrationsTable = `CREATE TABLE _prisma_migrations (
    id                      VARCHAR(36) PRIMARY KEY NOT NULL,
    checksum                VARCHAR(64) NOT NULL,
    finished_at             TIMESTAMPTZ,
    migration_name          VARCHAR(255) NOT NULL,
    logs                    TEXT,
    rolled_back_at          TIMESTAMPTZ,
    started_at              TIMESTAMPTZ NOT NULL DEFAULT now(),
    applied_steps_count     INTEGER NOT NULL DEFAULT 0
);
`

// migration is one folder of prisma-compat/migrations.
type migration struct {
	name     string // the folder's name, e.g. 20231217073044_init
	script   string // migration.sql
	checksum string
}

// checksum is Prisma's render_checksum: lowercase hex SHA-256.
func checksum(script string) string {
	sum := sha256.Sum256([]byte(script))
	return hex.EncodeToString(sum[:])
}

// matchesChecksum is Prisma's script_matches_checksum: line endings may
// have been changed by git since the migration was recorded.
func matchesChecksum(script, sum string) bool {
	for _, s := range []string{script, strings.ReplaceAll(script, "\r\n", "\n"), strings.ReplaceAll(script, "\n", "\r\n")} {
		if checksum(s) == sum {
			return true
		}
	}
	return false
}

// embeddedMigrations reads the migration folders in name order (Prisma
// sorts them with localeCompare, the same order for its
// YYYYMMDDHHMMSS_name names) and checks migration_lock.toml.
func embeddedMigrations() ([]migration, error) {
	if err := checkLockFile(); err != nil {
		return nil, err
	}
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, fmt.Errorf("read the embedded migrations: %w", err)
	}
	var ms []migration
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		b, err := fs.ReadFile(migrationFiles, path.Join("migrations", e.Name(), "migration.sql"))
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", e.Name(), err)
		}
		ms = append(ms, migration{name: e.Name(), script: string(b), checksum: checksum(string(b))})
	}
	return ms, nil
}

// checkLockFile refuses a migration_lock.toml for another provider, as
// Prisma does (P3019). A missing file is fine.
func checkLockFile() error {
	b, err := fs.ReadFile(migrationFiles, "migrations/migration_lock.toml")
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	if provider := lockFileProvider(b); provider != "postgresql" {
		return fmt.Errorf("migration_lock.toml names provider %q, not postgresql (as Prisma's P3019)", provider)
	}
	return nil
}

// lockFileProvider returns the provider a migration_lock.toml names.
func lockFileProvider(b []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), "=")
		if ok && strings.TrimSpace(key) == "provider" {
			return strings.Trim(strings.TrimSpace(value), `"`)
		}
	}
	return ""
}

// migrationRow is a row of _prisma_migrations.
type migrationRow struct {
	id, checksum, name   string
	finished, rolledBack sql.NullTime
	started              time.Time
}

// migrate applies the embedded migrations that the database lacks, under
// Prisma's advisory lock, on one connection of db, and records them as
// Prisma does. It returns the names it applied.
func migrate(ctx context.Context, db *sql.DB, schema string, lockTimeout time.Duration, log *slog.Logger) (applied []string, err error) {
	ms, err := embeddedMigrations()
	if err != nil {
		return nil, err
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect to migrate: %w", err)
	}
	// The lock lives as long as this session: close the connection rather
	// than give it back to the pool, so no lock can outlive the migration.
	defer func() {
		_ = conn.Raw(func(dc any) error { return dc.(*stdlib.Conn).Close() })
		_ = conn.Close()
	}()

	if err := lockMigrations(ctx, conn, lockTimeout, log); err != nil {
		return nil, err
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_, _ = conn.ExecContext(uctx, fmt.Sprintf("SELECT pg_advisory_unlock(%d)", prismaLockKey))
	}()

	// Prisma creates the schema of the URL when it is missing.
	var current sql.NullString
	if err := conn.QueryRowContext(ctx, "SELECT current_schema()").Scan(&current); err != nil {
		return nil, fmt.Errorf("read the current schema: %w", err)
	}
	if !current.Valid {
		if _, err := conn.ExecContext(ctx, "CREATE SCHEMA IF NOT EXISTS "+quoteIdent(schema)); err != nil {
			return nil, fmt.Errorf("create schema %q: %w", schema, err)
		}
		log.Info("created the schema", "schema", schema)
	}
	if err := initMigrationsTable(ctx, conn); err != nil {
		return nil, err
	}
	rows, err := listMigrationRows(ctx, conn)
	if err != nil {
		return nil, err
	}
	var failed []string
	done := map[string]bool{}
	for _, r := range rows {
		if !r.finished.Valid && !r.rolledBack.Valid {
			failed = append(failed, fmt.Sprintf("the `%s` migration started at %s failed", r.name, r.started.UTC().Format(time.RFC3339)))
		}
		if !r.rolledBack.Valid {
			done[r.name] = true
		}
	}
	if len(failed) > 0 {
		return nil, fmt.Errorf("_prisma_migrations records failed migrations, so no new migration is applied (as Prisma's P3009): %s; "+
			"fix the database, then mark each one with `prisma migrate resolve --rolled-back NAME` (or --applied NAME)",
			strings.Join(failed, "; "))
	}
	known := map[string]migration{}
	for _, m := range ms {
		known[m.name] = m
	}
	for _, r := range rows {
		m, ok := known[r.name]
		switch {
		case !ok && !r.rolledBack.Valid:
			log.Info("the database has a migration this server does not know; left as it is", "migration", r.name)
		case ok && !r.rolledBack.Valid && !matchesChecksum(m.script, r.checksum):
			log.Warn("a recorded migration differs from this server's copy (edited after it was applied?)",
				"migration", r.name, "recorded_checksum", r.checksum, "checksum", m.checksum)
		}
	}
	for _, m := range ms {
		if done[m.name] {
			continue
		}
		if err := applyMigration(ctx, conn, m); err != nil {
			return applied, err
		}
		applied = append(applied, m.name)
		log.Info("applied migration", "migration", m.name)
	}
	return applied, nil
}

// lockMigrations takes Prisma's migration lock, waiting at most timeout.
// lock_timeout makes PostgreSQL itself give up the wait, so no waiting
// backend is left behind.
func lockMigrations(ctx context.Context, conn *sql.Conn, timeout time.Duration, log *slog.Logger) error {
	if _, err := conn.ExecContext(ctx, fmt.Sprintf("SET lock_timeout = %d", timeout.Milliseconds())); err != nil {
		return fmt.Errorf("set lock_timeout: %w", err)
	}
	start := time.Now()
	lctx, cancel := context.WithTimeout(ctx, timeout+5*time.Second)
	defer cancel()
	_, err := conn.ExecContext(lctx, fmt.Sprintf("SELECT pg_advisory_lock(%d)", prismaLockKey))
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "55P03" || errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		return fmt.Errorf("timed out after %s waiting for the migration lock (SELECT pg_advisory_lock(%d)): another node or `prisma migrate` "+
			"is migrating this database, or a session still holds the lock (see pg_locks where objid = %d); "+
			"start again later, or raise MIGRATE_LOCK_TIMEOUT", timeout, prismaLockKey, prismaLockKey)
	}
	if err != nil {
		return fmt.Errorf("take the migration lock: %w", err)
	}
	level := slog.LevelDebug
	if waited := time.Since(start); waited > 100*time.Millisecond {
		level = slog.LevelInfo
	}
	log.Log(ctx, level, "took the migration lock", "waited", time.Since(start).Round(time.Microsecond))
	if _, err := conn.ExecContext(ctx, "RESET lock_timeout"); err != nil {
		return fmt.Errorf("reset lock_timeout: %w", err)
	}
	return nil
}

// initMigrationsTable creates _prisma_migrations in an empty schema, and
// refuses a schema that has tables but no migration history, as Prisma's
// initialize does (P3005).
func initMigrationsTable(ctx context.Context, conn *sql.Conn) error {
	var tables []string
	rows, err := conn.QueryContext(ctx, `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') ORDER BY c.relname`)
	if err != nil {
		return fmt.Errorf("list the tables: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return err
		}
		tables = append(tables, name)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("list the tables: %w", err)
	}
	for _, t := range tables {
		if t == "_prisma_migrations" {
			return nil
		}
	}
	if len(tables) > 0 {
		return fmt.Errorf("the schema is not empty (tables %s) but has no _prisma_migrations table, so it was not made by "+
			"`prisma migrate` (as Prisma's P3005): baseline it first (`prisma migrate resolve --applied 20231217073044_init` "+
			"once the tables match that migration), or start with MIGRATE=off to use the messages table as it is",
			strings.Join(tables, ", "))
	}
	if _, err := conn.ExecContext(ctx, createMigrationsTable); err != nil {
		return fmt.Errorf("create _prisma_migrations: %w", err)
	}
	return nil
}

func listMigrationRows(ctx context.Context, conn *sql.Conn) ([]migrationRow, error) {
	rows, err := conn.QueryContext(ctx, `SELECT id, checksum, finished_at, migration_name, rolled_back_at, started_at
		FROM _prisma_migrations ORDER BY started_at ASC`)
	if err != nil {
		return nil, fmt.Errorf("read _prisma_migrations: %w", err)
	}
	defer rows.Close()
	var out []migrationRow
	for rows.Next() {
		var r migrationRow
		if err := rows.Scan(&r.id, &r.checksum, &r.finished, &r.name, &r.rolledBack, &r.started); err != nil {
			return nil, fmt.Errorf("read _prisma_migrations: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// applyMigration records m as started, runs its script, and records the
// outcome, as Prisma's apply_migrations does. The script goes as one
// simple-protocol query (no arguments), which PostgreSQL runs as one
// implicit transaction; the bookkeeping statements commit on their own.
func applyMigration(ctx context.Context, conn *sql.Conn, m migration) error {
	id := uuid.NewString()
	if _, err := conn.ExecContext(ctx,
		`INSERT INTO _prisma_migrations (id, checksum, started_at, migration_name) VALUES ($1, $2, $3, $4)`,
		id, m.checksum, time.Now().UTC(), m.name); err != nil {
		return fmt.Errorf("record migration %s as started: %w", m.name, err)
	}
	if _, err := conn.ExecContext(ctx, m.script); err != nil {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, lerr := conn.ExecContext(lctx, `UPDATE _prisma_migrations SET logs = $1 WHERE id = $2`, err.Error(), id); lerr != nil {
			return fmt.Errorf("apply migration %s: %w (and recording the failure: %v)", m.name, err, lerr)
		}
		return fmt.Errorf("apply migration %s: %w; it is recorded as failed in _prisma_migrations: fix the database, "+
			"then `prisma migrate resolve --rolled-back %s`", m.name, err, m.name)
	}
	if _, err := conn.ExecContext(ctx,
		`UPDATE _prisma_migrations SET applied_steps_count = applied_steps_count + 1 WHERE id = $1`, id); err != nil {
		return fmt.Errorf("record migration %s's step: %w", m.name, err)
	}
	if _, err := conn.ExecContext(ctx,
		`UPDATE _prisma_migrations SET finished_at = $1 WHERE id = $2`, time.Now().UTC(), id); err != nil {
		return fmt.Errorf("record migration %s as finished: %w", m.name, err)
	}
	return nil
}
