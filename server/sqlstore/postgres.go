package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/scalable-chat-go/server/chat"
)

// PostgresOptions configure OpenPostgres. Zero fields take their defaults.
type PostgresOptions struct {
	// SkipMigrations leaves the schema as it is (MIGRATE=off): the
	// messages table must exist already. It is checked either way.
	SkipMigrations bool
	// LockTimeout bounds the wait for the migration lock
	// (MIGRATE_LOCK_TIMEOUT; default 10 s, as Prisma's).
	LockTimeout time.Duration
	// MaxConns bounds the connection pool (default: the URL's
	// connection_limit, else 2 × CPUs + 1, Prisma's default).
	MaxConns int
	// Logger receives the migration and schema notes (slog.Default()
	// when nil).
	Logger *slog.Logger
}

// OpenPostgres opens the chat Store on the PostgreSQL database at rawURL,
// a Prisma-style URL (postgresql://user:password@host:port/db?schema=public;
// see parsePostgresURL for the parameters).
//
// Unless o.SkipMigrations, it first applies prisma-compat's migrations that
// the database lacks, exactly as `prisma migrate deploy` would: under
// Prisma's advisory lock (so Go nodes and Prisma never migrate at once),
// recorded in _prisma_migrations. A database that Prisma migrated is used
// as it is. Then it checks the messages table: a difference that matters
// (a missing column, another type, no unique id) stops the start with a
// *SchemaError saying what differs; an extra index does not. It never runs
// GORM's AutoMigrate.
//
// Errors and logs never contain the password.
func OpenPostgres(ctx context.Context, rawURL string, o PostgresOptions) (*Store, error) {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	if o.LockTimeout <= 0 {
		o.LockTimeout = 10 * time.Second
	}
	where := RedactURL(rawURL)
	u, err := parsePostgresURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL %s: %w", where, err)
	}
	if u.pgbouncer && !o.SkipMigrations {
		return nil, fmt.Errorf("DATABASE_URL %s has pgbouncer=true: migrations need a session (an advisory lock), which a "+
			"transaction-pooling PgBouncer does not keep; migrate through a direct URL (one node, or `prisma migrate deploy`) "+
			"and start the nodes behind PgBouncer with MIGRATE=off", where)
	}
	if len(u.ignored) > 0 {
		log.Info("ignoring Prisma-only URL parameters", "params", u.ignored)
	}
	maxConns := o.MaxConns
	if maxConns <= 0 {
		maxConns = u.maxConns
	}
	if maxConns <= 0 {
		maxConns = 2*runtime.NumCPU() + 1
	}
	sqlDB := stdlib.OpenDB(*u.config)
	sqlDB.SetMaxOpenConns(maxConns)
	sqlDB.SetMaxIdleConns(maxConns)
	sqlDB.SetConnMaxIdleTime(5 * time.Minute)
	sqlDB.SetConnMaxLifetime(time.Hour)
	fail := func(err error) (*Store, error) {
		_ = sqlDB.Close()
		return nil, err
	}
	if err := sqlDB.PingContext(ctx); err != nil {
		return fail(fmt.Errorf("connect to PostgreSQL at %s: %w", where, err))
	}
	if !o.SkipMigrations {
		if _, err := migrate(ctx, sqlDB, u.schema, o.LockTimeout, log); err != nil {
			return fail(fmt.Errorf("migrate PostgreSQL at %s: %w", where, err))
		}
	}
	warnings, err := checkSchema(ctx, sqlDB)
	if err != nil {
		return fail(fmt.Errorf("PostgreSQL at %s: %w", where, err))
	}
	for _, w := range warnings {
		log.Warn(w)
	}
	db, err := gorm.Open(postgres.New(postgres.Config{Conn: sqlDB}), &gorm.Config{
		Logger:                 logger.Default.LogMode(logger.Silent),
		SkipDefaultTransaction: true,
		DisableAutomaticPing:   true,
	})
	if err != nil {
		return fail(fmt.Errorf("open GORM on PostgreSQL: %w", err))
	}
	return &Store{db: db, dialect: pgDialect{}}, nil
}

type pgDialect struct {
	// noCopy skips the COPY fast path, so that the Store contract also
	// runs on the fallback alone (TestPostgresStoreContractWithoutCopy).
	noCopy bool
}

func (pgDialect) toDB(t time.Time) dbTime { return dbTime{t: t} }

// insert stores batch in one statement, so in one transaction. The fast
// path is COPY straight into messages, PostgreSQL's quickest way in; it
// fails as a whole on an id already stored (a retry after a lost commit
// acknowledgement, a replay), and then the idempotent statement stores the
// batch: INSERT ... SELECT FROM unnest(arrays) ... ON CONFLICT (id) DO
// NOTHING, one round trip with the batch as six array parameters.
//
// Measured against COPY into a temporary table then INSERT ... SELECT ...
// ON CONFLICT, in one transaction (see BenchmarkPostgresSaveBatch): both
// paths are faster, need no session state (they work behind a
// transaction-pooling PgBouncer) and take fewer round trips.
//
// The rows go in id order. Two batches that share ids (a replay next to
// the live consumer, overlapping writers) then wait for each other's ids in
// one order, never in a cycle: in arrival order, one batch could hold an
// id the other waits for while waiting for one the other holds, and
// PostgreSQL would abort one with a deadlock (40P01).
func (d pgDialect) insert(ctx context.Context, db *gorm.DB, batch []chat.Message) error {
	batch = slices.Clone(batch)
	slices.SortStableFunc(batch, func(a, b chat.Message) int { return strings.Compare(a.ID, b.ID) })
	sqlDB, err := db.DB()
	if err != nil {
		return err
	}
	conn, err := sqlDB.Conn(ctx)
	if err != nil {
		return fmt.Errorf("take a connection: %w", err)
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		c := dc.(*stdlib.Conn).Conn()
		if !d.noCopy {
			err := copyBatch(ctx, c, batch)
			var pe *pgconn.PgError
			if err == nil || !errors.As(err, &pe) || pe.Code != "23505" {
				return err
			}
		}
		return insertBatch(ctx, c, batch)
	})
}

var batchColumns = []string{"id", "content", "username", "created_at", "user_id", "room_id"}

// copyBatch stores batch with COPY, a statement of its own: all or nothing.
func copyBatch(ctx context.Context, c *pgx.Conn, batch []chat.Message) error {
	n, err := c.CopyFrom(ctx, pgx.Identifier{"messages"}, batchColumns,
		pgx.CopyFromSlice(len(batch), func(i int) ([]any, error) {
			m := batch[i]
			return []any{m.ID, m.Text, m.Username, m.CreatedAt.UTC(), nullable(m.UserID), nullable(m.Room)}, nil
		}))
	if err != nil {
		return fmt.Errorf("copy %d rows: %w", len(batch), err)
	}
	if n != int64(len(batch)) {
		return fmt.Errorf("copy: %d of %d rows", n, len(batch))
	}
	return nil
}

// insertBatchSQL stores the rows of six parallel arrays, skipping the ids
// already stored (and repeated ids of the batch after their first).
const insertBatchSQL = `INSERT INTO messages (id, content, username, created_at, user_id, room_id)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamp(3)[], $5::text[], $6::text[])
ON CONFLICT (id) DO NOTHING`

func insertBatch(ctx context.Context, c *pgx.Conn, batch []chat.Message) error {
	ids, texts, users, times := make([]string, len(batch)), make([]string, len(batch)), make([]string, len(batch)), make([]time.Time, len(batch))
	userIDs, roomIDs := make([]*string, len(batch)), make([]*string, len(batch))
	for i, m := range batch {
		ids[i], texts[i], users[i], times[i] = m.ID, m.Text, m.Username, m.CreatedAt.UTC()
		userIDs[i], roomIDs[i] = nullable(m.UserID), nullable(m.Room)
	}
	if _, err := c.Exec(ctx, insertBatchSQL, ids, texts, users, times, userIDs, roomIDs); err != nil {
		return fmt.Errorf("insert %d rows: %w", len(batch), err)
	}
	return nil
}

// isDataError: SQLSTATE class 22 (data exception: a NUL byte or invalid
// UTF-8 in text, 22021), class 23 (integrity constraint) and 54000 (a value
// too large for an index row) refuse the row itself.
func (pgDialect) isDataError(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	return len(pe.Code) == 5 && (pe.Code[:2] == "22" || pe.Code[:2] == "23" || pe.Code == "54000")
}
