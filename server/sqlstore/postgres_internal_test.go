package sqlstore

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
	"gorm.io/gorm"

	"github.com/scalable-chat-go/server/chat"
	"github.com/scalable-chat-go/server/sqlstore/pgtest"
)

const prismaCompat = "../../prisma-compat/migrations"

// The embedded migrations are prisma-compat's, byte for byte (go generate
// copies them).
func TestEmbeddedMigrationsArePrismaCompats(t *testing.T) {
	var want []string
	err := filepath.WalkDir(prismaCompat, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(prismaCompat, p)
			want = append(want, filepath.ToSlash(rel))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	err = fs.WalkDir(migrationFiles, "migrations", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			got = append(got, strings.TrimPrefix(p, "migrations/"))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("embedded files %v, prisma-compat has %v: run go generate ./sqlstore", got, want)
	}
	for _, name := range want {
		a, _ := os.ReadFile(filepath.Join(prismaCompat, name))
		b, _ := fs.ReadFile(migrationFiles, "migrations/"+name)
		if !bytes.Equal(a, b) {
			t.Errorf("embedded %s differs from prisma-compat's: run go generate ./sqlstore", name)
		}
	}
}

// The bookkeeping table is created with Prisma's own statement, and the
// migration files are the ones Prisma generates for the schema (their
// checksums as the research notes computed them).
func TestMigrationsMatchPrisma(t *testing.T) {
	f := pgtest.ReadFixture(t, "testdata/prisma_migrations.json")
	if createMigrationsTable != f.CreateTableSQL {
		t.Errorf("CREATE TABLE _prisma_migrations differs from Prisma's:\n%s", pgtest.Describe(f.CreateTableSQL, createMigrationsTable))
	}
	ms, err := embeddedMigrations()
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ name, sum string }{
		{"20231217073044_init", "2848d31d7b525d3545d0c2daaf734e211389bcaea7d0384567bb600588aa12d0"},
		{"20261127005204_messages_created_at_id_index", "c14cef308b4cd6d4d69d9b0e69e8ab066055ccf2c7e74d4f33021d012d771d60"},
	}
	if len(ms) != len(want) {
		t.Fatalf("migrations %+v", ms)
	}
	for i, w := range want {
		if ms[i].name != w.name || ms[i].checksum != w.sum {
			t.Errorf("migration %d = %s %s, want %s %s", i, ms[i].name, ms[i].checksum, w.name, w.sum)
		}
	}
	// Prisma's checksum rule: "hello", and line endings changed by git.
	if checksum("hello") != "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824" {
		t.Error("checksum is not SHA-256 hex")
	}
	crlf := strings.ReplaceAll(ms[0].script, "\n", "\r\n")
	if !matchesChecksum(crlf, ms[0].checksum) || !matchesChecksum(ms[0].script, checksum(crlf)) || matchesChecksum(ms[0].script+" ", ms[0].checksum) {
		t.Error("matchesChecksum does not follow Prisma's line-ending tolerance")
	}
}

func TestParsePostgresURL(t *testing.T) {
	for _, tc := range []struct {
		url      string
		schema   string
		maxConns int
		ignored  []string
		params   map[string]string // runtime params expected on the config
		wantErr  string
		bouncer  bool
	}{
		{url: "postgresql://chat:pw@db.example:5432/chat", schema: "public", params: map[string]string{"search_path": `"public"`}},
		{url: "postgresql://chat:pw@db.example/chat?schema=app&connection_limit=7&pool_timeout=20&socket_timeout=5",
			schema: "app", maxConns: 7, ignored: []string{"pool_timeout", "socket_timeout"}, params: map[string]string{"search_path": `"app"`}},
		{url: "postgres://u@h/d?schema=My%20%22Schema%22", schema: `My "Schema"`, params: map[string]string{"search_path": `"My ""Schema"""`}},
		{url: "postgresql://u:p@h/d?application_name=chat&sslmode=disable", schema: "public", params: map[string]string{"application_name": "chat"}},
		{url: "postgresql://u:p@h/d?pgbouncer=true&statement_cache_size=0", schema: "public", bouncer: true, ignored: []string{"statement_cache_size"}},
		{url: "postgresql://u:p@h/d?schema=", wantErr: "schema= is empty"},
		{url: "postgresql://u:p@h/d?connection_limit=0", wantErr: "connection_limit"},
		{url: "postgresql://u:p@h/d?sslidentity=id.p12&sslpassword=secret", wantErr: "sslidentity"},
		// Prisma's sslcert is the server's CA certificate: libpq's sslrootcert.
		{url: "postgresql://u:p@h/d?sslmode=require&sslcert=/nonexistent/ca.pem", wantErr: "CA file"},
		{url: "mysql://u:p@h/d", wantErr: "not a PostgreSQL URL"},
		{url: "not a url", wantErr: "not a PostgreSQL URL"},
		{url: "postgresql://u:p@h:notaport/d", wantErr: "not a PostgreSQL URL"},
	} {
		t.Run(tc.url, func(t *testing.T) {
			u, err := parsePostgresURL(tc.url)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), ":p@") || strings.Contains(err.Error(), "secret") {
					t.Fatalf("the error shows the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if u.schema != tc.schema || u.maxConns != tc.maxConns || !slices.Equal(u.ignored, tc.ignored) || u.pgbouncer != tc.bouncer {
				t.Fatalf("got schema %q conns %d ignored %v pgbouncer %v", u.schema, u.maxConns, u.ignored, u.pgbouncer)
			}
			for k, v := range tc.params {
				if got := u.config.RuntimeParams[k]; got != v {
					t.Errorf("runtime param %s = %q, want %q", k, got, v)
				}
			}
			for _, prismaOnly := range []string{"schema", "connection_limit", "pool_timeout", "socket_timeout", "pgbouncer", "statement_cache_size"} {
				if _, ok := u.config.RuntimeParams[prismaOnly]; ok {
					t.Errorf("Prisma's %s would reach PostgreSQL as a setting", prismaOnly)
				}
			}
		})
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"postgresql://chat:s3cret@db:5432/chat?schema=public":       "postgresql://chat:xxxxx@db:5432/chat?schema=public",
		"postgresql://chat@db/chat":                                 "postgresql://chat@db/chat",
		"postgresql://db/chat?user=chat&password=s3cret":            "postgresql://db/chat?password=xxxxx&user=chat",
		"postgresql://chat:p%ss#w@rd@db/chat":                       "postgresql://chat:xxxxx@db/chat",
		"host=db user=chat password=s3cret dbname=chat":             "host=db user=chat password=xxxxx dbname=chat",
		"host=db password='s3 cret' dbname=chat":                    "host=db password=xxxxx dbname=chat",
		"postgresql://u:p@h/d?sslkey=k&sslpassword=s3cret&schema=x": "postgresql://u:xxxxx@h/d?schema=x&sslkey=k&sslpassword=xxxxx",
	} {
		got := RedactURL(in)
		if got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
		if strings.Contains(got, "s3cret") || strings.Contains(got, "s3 cret") || strings.Contains(got, "rd@") {
			t.Errorf("RedactURL(%q) leaks the password: %q", in, got)
		}
	}
}

// History reads use the (created_at, id) index: no sequential scan, no
// sort, for the first page and for a page before a cursor.
func TestPostgresHistoryReadsUseTheIndex(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	s, err := OpenPostgres(context.Background(), db, PostgresOptions{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for b := range 5 {
		batch := make([]chat.Message, 4000)
		for i := range batch {
			n := b*4000 + i
			batch[i] = chat.Message{ID: fmt.Sprintf("m%06d", n), Text: "history", Username: "u", CreatedAt: base.Add(time.Duration(n) * time.Millisecond)}
		}
		if _, err := s.SaveBatch(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.db.Exec("ANALYZE messages").Error; err != nil {
		t.Fatal(err)
	}
	cur := chat.Cursor{CreatedAt: base.Add(10_000 * time.Millisecond), ID: "m010000"}
	for name, c := range map[string]*chat.Cursor{"first page": nil, "before a cursor": &cur} {
		query := s.db.ToSQL(func(tx *gorm.DB) *gorm.DB {
			var rows []readRow
			return s.recentQuery(tx, 50, c).Find(&rows)
		})
		var plan []string
		if err := s.db.Raw("EXPLAIN " + query).Scan(&plan).Error; err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		text := strings.Join(plan, "\n")
		if !strings.Contains(text, "Index Scan Backward using messages_created_at_id_idx") || strings.Contains(text, "Seq Scan") || strings.Contains(text, "Sort") {
			t.Errorf("%s: %s\nplan:\n%s", name, query, text)
		}
	}
}

// A migration whose script fails is recorded as Prisma records it (logs
// set, no steps, not finished), its changes are rolled back, and the next
// start refuses to migrate (Prisma's P3009).
func TestPostgresFailedMigrationIsRecorded(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	pgtest.Exec(t, db, createMigrationsTable)
	u, err := parsePostgresURL(db)
	if err != nil {
		t.Fatal(err)
	}
	sqlDB := stdlib.OpenDB(*u.config)
	defer sqlDB.Close()
	ctx := context.Background()
	conn, err := sqlDB.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bad := migration{name: "20260101000000_bad", script: "CREATE TABLE half_done (id int);\nSELECT 1/0;\n"}
	bad.checksum = checksum(bad.script)
	err = applyMigration(ctx, conn, bad)
	conn.Close()
	if err == nil || !strings.Contains(err.Error(), "division by zero") || !strings.Contains(err.Error(), "migrate resolve --rolled-back 20260101000000_bad") {
		t.Fatalf("err = %v", err)
	}
	var logs string
	var steps int
	var finished, tableLeft bool
	if err := sqlDB.QueryRow(`SELECT logs, applied_steps_count, finished_at IS NOT NULL, to_regclass('half_done') IS NOT NULL
		FROM _prisma_migrations`).Scan(&logs, &steps, &finished, &tableLeft); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs, "division by zero") || steps != 0 || finished || tableLeft {
		t.Fatalf("recorded logs %q steps %d finished %v, half-applied table left %v", logs, steps, finished, tableLeft)
	}
	_, err = OpenPostgres(ctx, db, PostgresOptions{Logger: slog.New(slog.DiscardHandler)})
	if err == nil || !strings.Contains(err.Error(), "20260101000000_bad") || !strings.Contains(err.Error(), "P3009") {
		t.Fatalf("next start: %v", err)
	}
}
