package sqlstore_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scalable-chat-go/server/chat"
	"github.com/scalable-chat-go/server/chat/chattest"
	"github.com/scalable-chat-go/server/sqlstore"
	"github.com/scalable-chat-go/server/sqlstore/pgtest"
)

const migrationsDir = "../../prisma-compat/migrations"

var quiet = slog.New(slog.DiscardHandler)

func openPostgres(t *testing.T, dbURL string, o sqlstore.PostgresOptions) *sqlstore.Store {
	t.Helper()
	if o.Logger == nil {
		o.Logger = quiet
	}
	s, err := sqlstore.OpenPostgres(context.Background(), dbURL, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestPostgresBanStoreContract(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	var mu sync.Mutex
	n := 0
	chattest.TestBanStore(t, func(t *testing.T) chat.BanStore {
		mu.Lock()
		n++
		schema := fmt.Sprintf("bans %d", n)
		mu.Unlock()
		return openPostgres(t, pgtest.WithParams(t, db, "schema", schema), sqlstore.PostgresOptions{})
	})
}

// The Store contract on PostgreSQL. Each subtest gets its own schema of one
// database, through Prisma's ?schema= parameter; the server creates and
// migrates it.
func TestPostgresStoreContract(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	var mu sync.Mutex
	n := 0
	chattest.TestStore(t, func(t *testing.T) chat.Store {
		mu.Lock()
		n++
		schema := fmt.Sprintf("contract %d", n)
		mu.Unlock()
		return openPostgres(t, pgtest.WithParams(t, db, "schema", schema), sqlstore.PostgresOptions{})
	}, chattest.StoreOptions{
		Unstorable: func(id string) chat.Message { return chattest.Msg(id, "a NUL byte \x00 in text", 2) },
	})
}

// The RoomStore contract on PostgreSQL. Each subtest gets its own schema
// of one database; another node is another Store on the same schema.
func TestPostgresRoomStoreContract(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	var mu sync.Mutex
	n := 0
	chattest.TestRoomStore(t, func(t *testing.T) (chattest.RoomEngine, func() chattest.RoomEngine) {
		mu.Lock()
		n++
		schemaURL := pgtest.WithParams(t, db, "schema", fmt.Sprintf("rooms %d", n))
		mu.Unlock()
		return openPostgres(t, schemaURL, sqlstore.PostgresOptions{}), func() chattest.RoomEngine {
			return openPostgres(t, schemaURL, sqlstore.PostgresOptions{})
		}
	})
}

// prismaDeploy does to dbURL what `prisma migrate deploy` does for the
// named migration folders, statement by statement as the fixture describes
// (its CREATE TABLE, then per migration: INSERT, the script, two UPDATEs).
func prismaDeploy(t *testing.T, dbURL string, names ...string) {
	t.Helper()
	f := pgtest.ReadFixture(t, "testdata/prisma_migrations.json")
	c := pgtest.Connect(t, dbURL)
	ctx := context.Background()
	var exists bool
	if err := c.QueryRow(ctx, `SELECT to_regclass('_prisma_migrations') IS NOT NULL`).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if !exists {
		if _, err := c.Exec(ctx, f.CreateTableSQL); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range names {
		script, err := os.ReadFile(filepath.Join(migrationsDir, name, "migration.sql"))
		if err != nil {
			t.Fatal(err)
		}
		var id string
		if err := c.QueryRow(ctx, `INSERT INTO _prisma_migrations (id, checksum, started_at, migration_name)
			VALUES (gen_random_uuid(), encode(sha256($1::bytea), 'hex'), clock_timestamp(), $2) RETURNING id`, script, name).Scan(&id); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Exec(ctx, string(script)); err != nil {
			t.Fatal(err)
		}
		for _, u := range []string{`UPDATE _prisma_migrations SET applied_steps_count = applied_steps_count + 1 WHERE id = $1`,
			`UPDATE _prisma_migrations SET finished_at = clock_timestamp() WHERE id = $1`} {
			if _, err := c.Exec(ctx, u, id); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func migrationRows(t *testing.T, dbURL string) []string {
	t.Helper()
	c := pgtest.Connect(t, dbURL)
	rows, err := c.Query(context.Background(), `SELECT concat_ws(' | ', id, checksum, finished_at, migration_name, logs,
		rolled_back_at, started_at, applied_steps_count) FROM _prisma_migrations ORDER BY started_at`)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

func migrationNames(t *testing.T) []string {
	t.Helper()
	names, err := sqlstore.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 4 {
		t.Fatalf("embedded migrations %v, want the init, the index, identity and moderation, and rooms", names)
	}
	return names
}

// The server records its migrations in _prisma_migrations exactly as
// Prisma does: the table as Prisma's CREATE TABLE makes it, the rows as
// the fixture says `prisma migrate deploy` writes them.
func TestPostgresMigrationsAreRecordedAsPrismaDoes(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	openPostgres(t, db, sqlstore.PostgresOptions{})
	f := pgtest.ReadFixture(t, "testdata/prisma_migrations.json")
	got := withoutSettings(pgtest.Dump(t, db, "-t", "_prisma_migrations"))
	want := withoutSettings(strings.ReplaceAll(f.PgDump, "\n\n", "\n"))
	if got != want {
		t.Errorf("pg_dump of _prisma_migrations differs from Prisma's:\n--- want\n%s--- got\n%s", want, got)
	}
	pgtest.CheckPrismaMigrations(t, db, f, migrationsDir)

	// A second start applies nothing and changes no row.
	before := migrationRows(t, db)
	openPostgres(t, db, sqlstore.PostgresOptions{})
	if after := migrationRows(t, db); strings.Join(after, "\n") != strings.Join(before, "\n") {
		t.Fatalf("a restart changed _prisma_migrations:\n%s\n---\n%s", before, after)
	}
}

func withoutSettings(dump string) string {
	var keep []string
	for _, l := range strings.Split(dump, "\n") {
		if l == "" || strings.HasPrefix(l, "SET ") || strings.HasPrefix(l, "SELECT pg_catalog.set_config") {
			continue
		}
		keep = append(keep, l)
	}
	return strings.Join(keep, "\n")
}

// A database that Prisma migrated is used as it is: the server applies only
// what is missing and leaves Prisma's rows and data alone.
func TestPostgresPrismaMadeDatabaseIsUsedAsIs(t *testing.T) {
	t.Parallel()
	names := migrationNames(t)
	for _, tc := range []struct {
		name       string
		byPrisma   []string // migrations `prisma migrate deploy` applied
		resolved   bool     // the init was baselined with `migrate resolve --applied` instead
		wantNewRow []string // rows the server adds
	}{
		{"production history (init only)", names[:1], false, names[1:]},
		{"every migration by Prisma", names, false, nil},
		{"init and index by Prisma", names[:2], false, names[2:]},
		{"every migration but rooms by Prisma (the version before rooms)", names[:3], false, names[3:]},
		{"init baselined with migrate resolve --applied", nil, true, names[1:]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db := pgtest.NewDatabase(t)
			prismaDeploy(t, db, tc.byPrisma...)
			if tc.resolved {
				script, _ := os.ReadFile(filepath.Join(migrationsDir, names[0], "migration.sql"))
				pgtest.Exec(t, db, string(script)) // prismaDeploy made _prisma_migrations
				c := pgtest.Connect(t, db)
				if _, err := c.Exec(context.Background(), `INSERT INTO _prisma_migrations (id, checksum, logs, started_at,
					finished_at, migration_name) VALUES (gen_random_uuid(), encode(sha256($1::bytea), 'hex'), '', now(), now(), $2)`,
					script, names[0]); err != nil {
					t.Fatal(err)
				}
			}
			// A row Prisma Client wrote (its id is a UUID v4, created_at its own).
			pgtest.Exec(t, db, `INSERT INTO messages (id, content, username, created_at)
				VALUES ('2b0e3c1e-8d8b-4b7e-9a55-0f6f4f4a1c01', 'from prisma', 'ada', '2023-12-18 10:00:00.123')`)
			before := migrationRows(t, db)
			s := openPostgres(t, db, sqlstore.PostgresOptions{})
			after := migrationRows(t, db)
			if len(after) != len(before)+len(tc.wantNewRow) || strings.Join(after[:len(before)], "\n") != strings.Join(before, "\n") {
				t.Fatalf("_prisma_migrations before:\n%s\nafter:\n%s", strings.Join(before, "\n"), strings.Join(after, "\n"))
			}
			for i, name := range tc.wantNewRow {
				if !strings.Contains(after[len(before)+i], " | "+name+" | ") {
					t.Errorf("new row %q, want migration %s", after[len(before)+i], name)
				}
			}
			m, err := s.Find(context.Background(), "2b0e3c1e-8d8b-4b7e-9a55-0f6f4f4a1c01")
			if err != nil || m.Text != "from prisma" || m.Username != "ada" ||
				!m.CreatedAt.Equal(time.Date(2023, 12, 18, 10, 0, 0, 123e6, time.UTC)) {
				t.Fatalf("Prisma's row read back as %+v, %v", m, err)
			}
		})
	}
}

// A schema difference that matters stops the start with what differs;
// one that does not (an extra index, a nullable extra column) does not.
func TestPostgresSchemaDifferences(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	for i, tc := range []struct {
		name, alter string
		want        string // "" means the start succeeds
	}{
		{"extra index", `CREATE INDEX messages_username_idx ON messages (username)`, ""},
		{"nullable extra column", `ALTER TABLE messages ADD COLUMN room text`, ""},
		{"extra column with a default", `ALTER TABLE messages ADD COLUMN edited boolean NOT NULL DEFAULT false`, ""},
		{"no default on created_at", `ALTER TABLE messages ALTER COLUMN created_at DROP DEFAULT`, ""},
		{"missing column", `ALTER TABLE messages DROP COLUMN username`, `column "username" is missing`},
		{"timestamptz", `ALTER TABLE messages ALTER COLUMN created_at TYPE timestamptz(3)`,
			`column "created_at" is timestamp(3) with time zone, want timestamp(3) without time zone`},
		{"other precision", `ALTER TABLE messages ALTER COLUMN created_at TYPE timestamp(6)`, `column "created_at" is timestamp(6) without time zone`},
		{"varchar content", `ALTER TABLE messages ALTER COLUMN content TYPE varchar(191)`, `column "content" is character varying(191), want text`},
		{"nullable username", `ALTER TABLE messages ALTER COLUMN username DROP NOT NULL`, `column "username" may be NULL`},
		{"no primary key", `ALTER TABLE messages DROP CONSTRAINT messages_pkey`, `no primary key or unique index on "id"`},
		{"required extra column", `ALTER TABLE messages ADD COLUMN room text NOT NULL`, `extra column "room" is NOT NULL without a default`},
		{"two differences", `ALTER TABLE messages DROP COLUMN content; ALTER TABLE messages ALTER COLUMN id TYPE varchar(36)`,
			`column "id" is character varying(36), want text; column "content" is missing`},
	} {
		for _, skip := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/MIGRATE=%v", tc.name, map[bool]string{false: "on", true: "off"}[skip]), func(t *testing.T) {
				schemaURL := pgtest.WithParams(t, db, "schema", fmt.Sprintf("s%d_%v", i, skip))
				first, err := sqlstore.OpenPostgres(context.Background(), schemaURL, sqlstore.PostgresOptions{Logger: quiet})
				if err != nil {
					t.Fatal(err)
				}
				first.Close()
				var s *sqlstore.Store
				pgtest.Exec(t, pgtest.WithParams(t, db, "search_path", fmt.Sprintf("s%d_%v", i, skip)), tc.alter)
				s, err = sqlstore.OpenPostgres(context.Background(), schemaURL, sqlstore.PostgresOptions{SkipMigrations: skip, Logger: quiet})
				if tc.want == "" {
					if err != nil {
						t.Fatalf("start refused: %v", err)
					}
					s.Close()
					return
				}
				var se *sqlstore.SchemaError
				if !errors.As(err, &se) || !strings.Contains(err.Error(), tc.want) {
					if s != nil {
						s.Close()
					}
					t.Fatalf("err = %v, want a SchemaError saying %q", err, tc.want)
				}
			})
		}
	}
}

// What the server refuses at start, and says why.
func TestPostgresStartRefusals(t *testing.T) {
	t.Parallel()
	names := migrationNames(t)
	init, err := os.ReadFile(filepath.Join(migrationsDir, names[0], "migration.sql"))
	if err != nil {
		t.Fatal(err)
	}
	moderation, err := os.ReadFile(filepath.Join(migrationsDir, names[2], "migration.sql"))
	if err != nil {
		t.Fatal(err)
	}
	rooms, err := os.ReadFile(filepath.Join(migrationsDir, names[3], "migration.sql"))
	if err != nil {
		t.Fatal(err)
	}
	f := pgtest.ReadFixture(t, "testdata/prisma_migrations.json")
	for _, tc := range []struct {
		name  string
		setup []string
		skip  bool
		want  string // "" means the start succeeds
	}{
		{"MIGRATE=off on an empty database", nil, true, "the table does not exist"},
		{"tables without a migration history", []string{string(init)}, false, "has no _prisma_migrations table"},
		{"the same with MIGRATE=off", []string{string(init)}, true, `column "user_id" is missing`},
		{"MIGRATE=off before rooms", []string{string(init), string(moderation)}, true,
			`column "room_id" is missing (want text; prisma-compat's migration 20261207120000_rooms); table "users" is missing`},
		{"MIGRATE=off on every table", []string{string(init), string(moderation), string(rooms)}, true, ""},
		{"another app's table without a history", []string{"CREATE TABLE accounts (id int)"}, false, "tables accounts"},
		{"a failed migration", []string{f.CreateTableSQL, `INSERT INTO _prisma_migrations (id, checksum, migration_name, started_at)
			VALUES ('1c8b8c2e-3a7f-4f0e-8f7e-6a2b9b7c1d00', 'x', '20231217073044_init', '2024-01-01T00:00:00Z')`},
			false, "the `20231217073044_init` migration started at 2024-01-01T00:00:00Z failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db := pgtest.NewDatabase(t)
			if len(tc.setup) > 0 {
				pgtest.Exec(t, db, tc.setup...)
			}
			s, err := sqlstore.OpenPostgres(context.Background(), db, sqlstore.PostgresOptions{SkipMigrations: tc.skip, Logger: quiet})
			if s != nil {
				defer s.Close()
			}
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// The server waits for Prisma's migration lock while someone else holds
// it, and gives up after LockTimeout with a message naming the lock.
func TestPostgresMigrationLock(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	holder := pgtest.Connect(t, db)
	ctx := context.Background()
	if _, err := holder.Exec(ctx, "SELECT pg_advisory_lock(72707369)"); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	_, err := sqlstore.OpenPostgres(ctx, db, sqlstore.PostgresOptions{LockTimeout: 300 * time.Millisecond, Logger: quiet})
	if err == nil || !strings.Contains(err.Error(), "SELECT pg_advisory_lock(72707369)") || !strings.Contains(err.Error(), "MIGRATE_LOCK_TIMEOUT") {
		t.Fatalf("err = %v, want a lock timeout naming the lock and the setting", err)
	}
	if took := time.Since(start); took < 300*time.Millisecond || took > 5*time.Second {
		t.Errorf("gave up after %v, want about 300ms", took)
	}
	var waiting int
	if err := holder.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 72707369 AND NOT granted`).Scan(&waiting); err != nil {
		t.Fatal(err)
	}
	if waiting != 0 {
		t.Errorf("%d sessions still wait for the lock after the timeout", waiting)
	}

	opened := make(chan error, 1)
	go func() {
		s, err := sqlstore.OpenPostgres(ctx, db, sqlstore.PostgresOptions{Logger: quiet})
		if err == nil {
			s.Close()
		}
		opened <- err
	}()
	select {
	case err := <-opened:
		t.Fatalf("migrated while the lock was held (err %v)", err)
	case <-time.After(time.Second):
	}
	if _, err := holder.Exec(ctx, "SELECT pg_advisory_unlock(72707369)"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-opened:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("still waiting 10 s after the lock was released")
	}
	// The lock is not held any more (the migration's session is closed).
	var free bool
	if err := holder.QueryRow(ctx, "SELECT pg_try_advisory_lock(72707369)").Scan(&free); err != nil || !free {
		t.Fatalf("the lock is still held after the migration: %v %v", free, err)
	}
}

// Prisma-style URL parameters work against the real server: a schema whose
// name needs quoting, a pool size, and Prisma-only parameters dropped.
func TestPostgresPrismaStyleURL(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	u := pgtest.WithParams(t, db, "schema", `Chat "Room"`, "connection_limit", "2", "pool_timeout", "5", "socket_timeout", "9")
	s := openPostgres(t, u, sqlstore.PostgresOptions{})
	if _, err := s.SaveBatch(context.Background(), []chat.Message{chattest.Msg("a", "x", 1)}); err != nil {
		t.Fatal(err)
	}
	c := pgtest.Connect(t, db)
	var n int
	if err := c.QueryRow(context.Background(), `SELECT count(*) FROM "Chat ""Room""".messages`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("rows in the URL's schema: %d, %v", n, err)
	}
	sqlDB, _ := s.DB().DB()
	if max := sqlDB.Stats().MaxOpenConnections; max != 2 {
		t.Errorf("pool size %d, want connection_limit=2", max)
	}
}

// One transaction per batch, idempotent, and a batch of 10,000 (ten
// default batches) with every tenth row already stored.
func TestPostgresSaveBatchLargeOverlap(t *testing.T) {
	t.Parallel()
	s := openPostgres(t, pgtest.NewDatabase(t), sqlstore.PostgresOptions{})
	ctx := context.Background()
	var first, all []chat.Message
	for i := range 10_000 {
		m := chattest.Msg(fmt.Sprintf("m%05d", i), fmt.Sprintf("text %d", i), i)
		all = append(all, m)
		if i%10 == 0 {
			first = append(first, m)
		}
	}
	for _, b := range [][]chat.Message{first, all, all} {
		if rej, err := s.SaveBatch(ctx, b); err != nil || len(rej) != 0 {
			t.Fatalf("SaveBatch: %v %v", rej, err)
		}
	}
	got, err := s.Recent(ctx, chat.GlobalRoom, 20_000, nil)
	if err != nil || len(got) != 10_000 || got[0].ID != "m09999" {
		t.Fatalf("stored %d (%v)", len(got), err)
	}
}
