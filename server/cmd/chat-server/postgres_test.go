package main

import (
	"context"
	"fmt"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scalable-chat-go/server/sqlstore/pgtest"
)

const (
	migrationsDir = "../../../prisma-compat/migrations"
	fixturePath   = "../../sqlstore/testdata/prisma_migrations.json"
)

// The schema the server makes, after serving traffic, is the schema that
// applying prisma-compat's files with psql makes (with Prisma's
// _prisma_migrations table), and its _prisma_migrations rows are the ones
// `prisma migrate deploy` writes.
func TestPostgresSchemaIsTheMigrationFiles(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	p := start(t, "", "DATABASE_URL="+pgtest.WithParams(t, db, "schema", "public"), "RATE_LIMIT_PER_SEC=0")
	a := dialSIO(t, p.URL, "websocket")
	for i := range 20 {
		if ack := a.ack(fmt.Sprintf(`{"message":"pg %d","username":"writer %d"}`, i, i%3)); ack["ok"] != true {
			t.Fatalf("ack %v", ack)
		}
	}
	b := dialSIO(t, p.URL, "polling")
	for i := range 20 {
		if m := b.message(); m.Message != fmt.Sprintf("pg %d", i) || m.Username != fmt.Sprintf("writer %d", i%3) {
			t.Fatalf("history[%d] = %+v", i, m)
		}
	}
	var page struct{ Messages []wire }
	if code := p.getJSON(t, "/api/messages?limit=200", &page); code != 200 || len(page.Messages) != 20 || page.Messages[0].Message != "pg 19" {
		t.Fatalf("/api/messages %d %+v", code, page)
	}
	if code := p.stop(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	var stored int
	if err := pgtest.Connect(t, db).QueryRow(context.Background(),
		`SELECT count(*) FROM messages WHERE content LIKE 'pg %' AND username LIKE 'writer %'`).Scan(&stored); err != nil || stored != 20 {
		t.Fatalf("stored %d, %v", stored, err)
	}

	f := pgtest.ReadFixture(t, fixturePath)
	ref := pgtest.NewDatabase(t)
	pgtest.Psql(t, ref, "-c", f.CreateTableSQL)
	files := migrationFiles(t)
	for _, file := range files {
		pgtest.Psql(t, ref, "-f", file)
	}
	if got, want := pgtest.Dump(t, db), pgtest.Dump(t, ref); got != want {
		t.Errorf("pg_dump --schema-only differs:\n--- psql with the migration files\n%s--- the Go server\n%s", want, got)
	}
	pgtest.CheckPrismaMigrations(t, db, f, migrationsDir)
}

// migrationFiles returns prisma-compat's migration scripts, in order; at
// least the four known when this was written (so a wrong folder fails).
func migrationFiles(t *testing.T) []string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(migrationsDir, "*", "migration.sql"))
	if len(files) < 4 {
		t.Fatalf("migration files %v", files)
	}
	return files
}

// Two nodes started at once on an empty database migrate it once, and
// both serve.
func TestPostgresTwoNodesMigrateOnce(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	env := []string{"DATABASE_URL=" + db, "RATE_LIMIT_PER_SEC=0", "LOG_LEVEL=debug"}
	n1, n2 := launch(t, "", env...), launch(t, "", env...)
	n1.awaitReady()
	n2.awaitReady()
	want := len(migrationFiles(t))
	applied := strings.Count(n1.logs.String(), "applied migration") + strings.Count(n2.logs.String(), "applied migration")
	if applied != want {
		t.Fatalf("%d \"applied migration\" lines, want %d (each migration once):\n%s\n----\n%s", applied, want, n1.logs, n2.logs)
	}
	for i, n := range []*proc{n1, n2} {
		for _, line := range strings.Split(n.logs.String(), "\n") {
			if strings.Contains(line, "took the migration lock") || strings.Contains(line, "applied migration") {
				t.Logf("node %d: %s", i+1, line)
			}
		}
	}
	var rows, names int
	if err := pgtest.Connect(t, db).QueryRow(context.Background(),
		`SELECT count(*), count(DISTINCT migration_name) FROM _prisma_migrations`).Scan(&rows, &names); err != nil || rows != want || names != want {
		t.Fatalf("_prisma_migrations: %d rows, %d names, %v", rows, names, err)
	}
	a := dialSIO(t, n1.URL, "websocket")
	if ack := a.ack(`{"message":"stored by node 1","username":"n1"}`); ack["ok"] != true {
		t.Fatalf("ack %v", ack)
	}
	var page struct{ Messages []wire }
	if code := n2.getJSON(t, "/api/messages", &page); code != 200 || len(page.Messages) != 1 || page.Messages[0].Message != "stored by node 1" {
		t.Fatalf("node 2 reads %d %+v", code, page)
	}
}

// runServer runs the binary to its exit and returns its exit code and
// output.
func runServer(t *testing.T, env ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(binary)
	cmd.Env = append([]string{"HOST=127.0.0.1", "PORT=0", "DATA_DIR=" + t.TempDir()}, env...)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out := make(chan []byte, 1)
	go func() { b, _ := cmd.CombinedOutput(); out <- b }()
	select {
	case b := <-out:
		return cmd.ProcessState.ExitCode(), string(b)
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		t.Fatalf("still running after 60 s:\n%s", <-out)
		return 0, ""
	}
}

// What stops the start on PostgreSQL says what is wrong, and never shows
// the password.
func TestPostgresStartErrors(t *testing.T) {
	t.Parallel()
	admin, err := url.Parse(pgtest.AdminURL(t))
	if err != nil {
		t.Fatal(err)
	}
	wrongPassword := *admin
	wrongPassword.User = url.UserPassword(admin.User.Username(), "Wr0ng-Pa55word")
	noSchema := pgtest.NewDatabase(t)
	altered := pgtest.NewDatabase(t)
	pgtest.Psql(t, altered, "-f", filepath.Join(migrationsDir, "20231217073044_init", "migration.sql"),
		"-c", "ALTER TABLE messages DROP COLUMN username")
	for _, tc := range []struct {
		name, url string
		env       []string
		want      []string
		secret    string
	}{
		{"wrong password", wrongPassword.String(), nil, []string{"password authentication failed", ":xxxxx@"}, "Wr0ng-Pa55word"},
		{"not a PostgreSQL URL", "mysql://root:My5ql-Secret@localhost/chat", nil, []string{"not a PostgreSQL URL", "root:xxxxx@"}, "My5ql-Secret"},
		{"PKCS#12 identity", pgtest.WithParams(t, admin.String(), "sslidentity", "id.p12", "sslpassword", "P12-Secret"), nil, []string{"sslidentity", "sslpassword=xxxxx"}, "P12-Secret"},
		{"MIGRATE=off on an empty database", noSchema, []string{"MIGRATE=off"}, []string{"the table does not exist"}, ""},
		{"a column missing", altered, []string{"MIGRATE=off"}, []string{`column \"username\" is missing`}, ""},
		{"PgBouncer with migrations", pgtest.WithParams(t, noSchema, "pgbouncer", "true"), nil, []string{"pgbouncer=true", "MIGRATE=off"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, out := runServer(t, append([]string{"DATABASE_URL=" + tc.url}, tc.env...)...)
			if code != 1 {
				t.Fatalf("exit code %d, want 1:\n%s", code, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if tc.secret != "" && strings.Contains(out, tc.secret) {
				t.Errorf("output shows the password:\n%s", out)
			}
		})
	}
	t.Run("a start logs the URL without the password", func(t *testing.T) {
		t.Parallel()
		p := start(t, "", "DATABASE_URL="+pgtest.NewDatabase(t))
		logs := p.logs.String()
		pw, _ := admin.User.Password()
		if !strings.Contains(logs, "store=postgres") || !strings.Contains(logs, admin.User.Username()+":xxxxx@") ||
			strings.Contains(logs, admin.User.Username()+":"+pw+"@") {
			t.Fatalf("start-up log:\n%s", logs)
		}
	})
}
