// Package pgtest gives tests a PostgreSQL database of their own on the
// server that DATABASE_URL names (scripts/services starts one), dropped when
// the test ends, so that tests run in parallel. A test that needs
// PostgreSQL fails, never skips, when DATABASE_URL is missing.
package pgtest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/scalable-chat-go/server/testkit"
)

// AdminURL returns DATABASE_URL, or fails the test with how to get one
// (skips it under -short: see testkit.Service).
func AdminURL(t testing.TB) string {
	t.Helper()
	return testkit.Service(t, "DATABASE_URL", "PostgreSQL")
}

var unsafeName = regexp.MustCompile(`[^a-z0-9]+`)

// NewDatabase creates an empty database for t (owned by DATABASE_URL's
// role), drops it when t ends, and returns its URL: DATABASE_URL with the
// database name replaced.
func NewDatabase(t testing.TB) string {
	t.Helper()
	admin := AdminURL(t)
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := unsafeName.ReplaceAllString(strings.ToLower(t.Name()), "_")
	if len(name) > 40 {
		name = name[:40]
	}
	name = "t_" + name + "_" + hex.EncodeToString(b[:])
	Exec(t, admin, `CREATE DATABASE "`+name+`"`)
	t.Cleanup(func() {
		if err := dropDatabase(admin, name); err != nil {
			t.Errorf("drop test database %s: %v", name, err)
		}
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("DATABASE_URL: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

// dropDatabase ends this role's sessions on database name and drops it.
// Not DROP ... WITH (FORCE): a role that is not a superuser cannot end an
// autovacuum worker that way (SQLSTATE 42501), while a plain DROP DATABASE
// stops autovacuum itself; it is retried while sessions linger.
func dropDatabase(admin, name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, admin)
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	for {
		if _, err := c.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
			WHERE datname = $1 AND usename = current_user AND pid <> pg_backend_pid()`, name); err != nil {
			return err
		}
		_, err := c.Exec(ctx, `DROP DATABASE IF EXISTS "`+name+`"`)
		var pe *pgconn.PgError
		if err == nil || !errors.As(err, &pe) || pe.Code != "55006" { // object_in_use
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// WithParams returns dbURL with the query parameters added or replaced
// (pairs of name and value).
func WithParams(t testing.TB, dbURL string, pairs ...string) string {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	for i := 0; i+1 < len(pairs); i += 2 {
		q.Set(pairs[i], pairs[i+1])
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// Connect opens a pgx connection to dbURL (a libpq-style URL: no Prisma
// parameters), closed when t ends.
func Connect(t testing.TB, dbURL string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("connect to PostgreSQL: %v", err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

// Exec runs each statement on dbURL (simple protocol, so a statement may
// hold several commands), failing t on an error.
func Exec(t testing.TB, dbURL string, statements ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("connect to PostgreSQL: %v", err)
	}
	defer c.Close(ctx)
	for _, s := range statements {
		if _, err := c.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// Tool returns the path of a PostgreSQL client program (pg_dump, psql):
// from PATH, else the newest under /usr/lib/postgresql.
func Tool(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/" + name)
	if len(matches) == 0 {
		t.Fatalf("%s not found in PATH or /usr/lib/postgresql/*/bin: install Debian's postgresql-client", name)
	}
	return matches[len(matches)-1]
}

// Dump returns `pg_dump --schema-only` of dbURL without what differs
// between two dumps of equal schemas (comments, blank lines, the random
// \restrict key of recent pg_dump versions).
func Dump(t testing.TB, dbURL string, args ...string) string {
	t.Helper()
	cmd := exec.Command(Tool(t, "pg_dump"), append([]string{"--schema-only", "--no-owner", "-d", dbURL}, args...)...)
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("pg_dump: %v\n%s", err, stderr)
	}
	var keep []string
	for _, line := range strings.Split(string(out), "\n") {
		if line == "" || strings.HasPrefix(line, "--") || strings.HasPrefix(line, `\restrict`) || strings.HasPrefix(line, `\unrestrict`) {
			continue
		}
		keep = append(keep, line)
	}
	return strings.Join(keep, "\n") + "\n"
}

// Psql runs psql on dbURL with ON_ERROR_STOP and the arguments (-f FILE,
// -c SQL), failing t on an error.
func Psql(t testing.TB, dbURL string, args ...string) {
	t.Helper()
	cmd := exec.Command(Tool(t, "psql"), append([]string{"-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dbURL}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("psql %v: %v\n%s", args, err, out)
	}
}

// Fixture is testdata/prisma_migrations.json of package sqlstore: what
// Prisma's migrate writes on PostgreSQL.
type Fixture struct {
	CreateTableSQL string `json:"create_table_sql_verbatim"`
	PgDump         string `json:"pg_dump_schema_only"`
	Row            map[string]struct {
		Rule  string          `json:"rule"`
		Value json.RawMessage `json:"value"`
	} `json:"row_after_successful_deploy"`
}

// ReadFixture reads the fixture at path.
func ReadFixture(t testing.TB, path string) Fixture {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f Fixture
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if f.CreateTableSQL == "" || f.PgDump == "" || len(f.Row) != 8 {
		t.Fatalf("%s: incomplete fixture", path)
	}
	return f
}

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// CheckPrismaMigrations checks that _prisma_migrations in dbURL holds one
// row per migration folder of migrationsDir, in order, each as the fixture
// says `prisma migrate deploy` writes it (ids and times by rule).
func CheckPrismaMigrations(t testing.TB, dbURL string, f Fixture, migrationsDir string) {
	t.Helper()
	entries, err := os.ReadDir(migrationsDir)
	if err != nil {
		t.Fatal(err)
	}
	var names, sums []string
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(migrationsDir, e.Name(), "migration.sql"))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		names = append(names, e.Name())
		sums = append(sums, hex.EncodeToString(sum[:]))
	}
	c := Connect(t, dbURL)
	rows, err := c.Query(context.Background(), `SELECT id, checksum, finished_at, migration_name, logs, rolled_back_at,
		started_at, applied_steps_count FROM _prisma_migrations ORDER BY started_at`)
	if err != nil {
		t.Fatal(err)
	}
	type rec struct {
		id, checksum, name   string
		finished, rolledBack *time.Time
		logs                 *string
		started              time.Time
		steps                int
	}
	var got []rec
	for rows.Next() {
		var r rec
		if err := rows.Scan(&r.id, &r.checksum, &r.finished, &r.name, &r.logs, &r.rolledBack, &r.started, &r.steps); err != nil {
			t.Fatal(err)
		}
		got = append(got, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(names) {
		t.Fatalf("_prisma_migrations has %d rows, want one per migration %v: %+v", len(got), names, got)
	}
	var prevStart time.Time
	for i, r := range got {
		for col, want := range f.Row {
			var ok bool
			switch want.Rule {
			case "uuid_v4":
				ok = uuidV4.MatchString(r.id)
			case "sha256_hex_of_migration_sql":
				ok = r.checksum == sums[i]
			case "not_null_not_before_started_at":
				ok = r.finished != nil && !r.finished.Before(r.started)
			case "migration_directory_name":
				ok = r.name == names[i]
			case "not_null_in_migration_order":
				ok = !r.started.Before(prevStart) && (r.finished == nil || i+1 >= len(got) || !got[i+1].started.Before(*r.finished))
			case "":
				var v any
				_ = json.Unmarshal(want.Value, &v)
				switch col {
				case "logs":
					ok = v == nil && r.logs == nil
				case "rolled_back_at":
					ok = v == nil && r.rolledBack == nil
				case "applied_steps_count":
					ok = v == float64(r.steps)
				default:
					t.Fatalf("fixture: no check for column %s", col)
				}
			default:
				t.Fatalf("fixture: unknown rule %q for %s", want.Rule, col)
			}
			if !ok {
				t.Errorf("_prisma_migrations row %d (%s): column %s breaks the fixture's rule %q%s: %+v",
					i, r.name, col, want.Rule, string(want.Value), r)
			}
		}
		prevStart = r.started
	}
}
