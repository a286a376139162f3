package services

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Postgres is a connection to the PostgreSQL server of DATABASE_URL, as
// its role (scripts/services' `chat` may create databases).
type Postgres struct {
	admin string
	conn  *pgx.Conn
}

// PostgresHost checks that a PostgreSQL URL points at loopback.
func PostgresHost(rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("parse the PostgreSQL URL: %w", err)
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return fmt.Errorf("scheme %q: want postgresql://", u.Scheme)
	}
	return Loopback(u.Hostname())
}

// ConnectPostgres connects to adminURL (a loopback server).
func ConnectPostgres(ctx context.Context, adminURL string) (*Postgres, error) {
	if err := PostgresHost(adminURL); err != nil {
		return nil, err
	}
	c, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	return &Postgres{admin: adminURL, conn: c}, nil
}

// Close ends the connection.
func (p *Postgres) Close(ctx context.Context) error { return p.conn.Close(ctx) }

var dbName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// CreateDatabase creates an empty database and returns its URL: the admin
// URL with the database name replaced (its parameters kept).
func (p *Postgres) CreateDatabase(ctx context.Context, name string) (string, error) {
	if !dbName.MatchString(name) {
		return "", fmt.Errorf("database name %q: want lower-case letters, digits and _", name)
	}
	if _, err := p.conn.Exec(ctx, `CREATE DATABASE "`+name+`"`); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	return WithDatabase(p.admin, name)
}

// WithDatabase returns rawURL naming database name instead.
func WithDatabase(rawURL, name string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", fmt.Errorf("parse the PostgreSQL URL: %w", err)
	}
	u.Path = "/" + name
	return u.String(), nil
}

// DropDatabase ends this role's sessions on database name and drops it,
// retrying while sessions linger (a plain DROP: a role that is not a
// superuser cannot end autovacuum with WITH (FORCE)).
func (p *Postgres) DropDatabase(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		if _, err := p.conn.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
			WHERE datname = $1 AND usename = current_user AND pid <> pg_backend_pid()`, name); err != nil {
			return fmt.Errorf("drop database %s: %w", name, err)
		}
		_, err := p.conn.Exec(ctx, `DROP DATABASE IF EXISTS "`+name+`"`)
		var pe *pgconn.PgError
		if err == nil || !errors.As(err, &pe) || pe.Code != "55006" { // object_in_use
			if err != nil {
				return fmt.Errorf("drop database %s: %w", name, err)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("drop database %s: %w", name, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Backends returns the process ids of the server processes serving
// database name (other than this connection's).
func (p *Postgres) Backends(ctx context.Context, name string) ([]int, error) {
	rows, err := p.conn.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`, name)
	if err != nil {
		return nil, fmt.Errorf("backends of %s: %w", name, err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return nil, fmt.Errorf("backends of %s: %w", name, err)
	}
	out := make([]int, len(pids))
	for i, v := range pids {
		out[i] = int(v)
	}
	return out, nil
}

// Exec runs sql on database name (a connection of its own).
func (p *Postgres) Exec(ctx context.Context, name, sql string) error {
	u, err := WithDatabase(p.admin, name)
	if err != nil {
		return err
	}
	c, err := pgx.Connect(ctx, u)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", name, err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, sql); err != nil {
		return fmt.Errorf("on %s: %w", name, err)
	}
	return nil
}

// Rows returns the row count and the distinct ids of table messages in
// database name.
func (p *Postgres) Rows(ctx context.Context, name string) (rows, ids int64, err error) {
	u, err := WithDatabase(p.admin, name)
	if err != nil {
		return 0, 0, err
	}
	c, err := pgx.Connect(ctx, u)
	if err != nil {
		return 0, 0, fmt.Errorf("connect to %s: %w", name, err)
	}
	defer c.Close(ctx)
	if err := c.QueryRow(ctx, `SELECT count(*), count(DISTINCT id) FROM messages`).Scan(&rows, &ids); err != nil {
		return 0, 0, fmt.Errorf("count the messages of %s: %w", name, err)
	}
	return rows, ids, nil
}
