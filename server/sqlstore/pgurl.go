package sqlstore

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgURL is what OpenPostgres takes from a DATABASE_URL.
type pgURL struct {
	config *pgx.ConnConfig
	// schema is Prisma's `schema` parameter (default public): the search
	// path of every connection, where the tables live.
	schema string
	// maxConns is Prisma's `connection_limit`, 0 when absent.
	maxConns int
	// pgbouncer is Prisma's `pgbouncer=true`: no named prepared statements,
	// and no session state to rely on (so no migration lock).
	pgbouncer bool
	// ignored names the Prisma parameters that mean nothing to this server.
	ignored []string
}

// prismaOnly are Prisma connection-URL parameters that tune Prisma's own
// engine (pool, timeouts, statement cache); the Go server drops them.
var prismaOnly = []string{
	"pool_timeout", "socket_timeout", "statement_cache_size", "max_connection_lifetime",
	"max_idle_connection_lifetime", "single_use_connections", "sslaccept",
}

// parsePostgresURL reads a PostgreSQL URL in Prisma's style
// (postgresql://user:password@host:port/db?schema=public&connection_limit=5)
// or libpq's. Prisma's own parameters are translated or dropped, as
// PostgreSQL would refuse them as unknown settings:
//
//   - schema: the search path (quoted, as Prisma sets it), default public;
//   - connection_limit: the pool size;
//   - sslcert without sslkey: Prisma's name for the server's CA
//     certificate, libpq's sslrootcert (with sslkey it is libpq's client
//     certificate);
//   - pgbouncer=true: unnamed prepared statements only;
//   - sslidentity (a PKCS#12 client certificate): refused, with a hint;
//   - connect_timeout: as libpq's, default 5 s as Prisma's;
//   - the rest of Prisma's (pool_timeout, socket_timeout, ...): dropped.
//
// Errors never contain the password.
func parsePostgresURL(raw string) (pgURL, error) {
	if unescaped(raw) {
		// Said without the URL: its password is in there, cut where the
		// reserved character ended the authority.
		return pgURL{}, errors.New("DATABASE_URL has a '#', or an '@' after its host: " +
			"percent-encode a password that holds @, /, ? or # (@ as %40, / as %2F, ? as %3F, # as %23)")
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Host == "" && u.Query().Get("host") == "" {
		return pgURL{}, errors.New("not a PostgreSQL URL: want postgresql://user:password@host:port/database?schema=public")
	}
	q := u.Query()
	out := pgURL{schema: "public"}
	if q.Has("schema") {
		out.schema = q.Get("schema")
		if out.schema == "" {
			return pgURL{}, errors.New("schema= is empty: name the schema (Prisma's default is public)")
		}
		q.Del("schema")
	}
	if q.Has("connection_limit") {
		n, err := strconv.Atoi(q.Get("connection_limit"))
		if err != nil || n < 1 {
			return pgURL{}, fmt.Errorf("connection_limit=%q: want a whole number >= 1", q.Get("connection_limit"))
		}
		out.maxConns = n
		q.Del("connection_limit")
	}
	if q.Has("sslidentity") {
		return pgURL{}, errors.New("sslidentity (a PKCS#12 client certificate) is not supported: convert it to PEM " +
			"(openssl pkcs12 -in identity.p12 -clcerts -nokeys -out client.crt; openssl pkcs12 -in identity.p12 -nocerts -nodes -out client.key) " +
			"and pass sslcert=client.crt&sslkey=client.key&sslrootcert=ca.crt")
	}
	if q.Has("sslcert") && !q.Has("sslkey") && !q.Has("sslrootcert") {
		q.Set("sslrootcert", q.Get("sslcert"))
		q.Del("sslcert")
	}
	if q.Get("sslaccept") == "strict" && (q.Get("sslmode") == "require" || q.Get("sslmode") == "") {
		q.Set("sslmode", "verify-full")
	}
	if q.Has("pgbouncer") {
		out.pgbouncer = q.Get("pgbouncer") == "true"
		q.Del("pgbouncer")
		if out.pgbouncer {
			q.Set("default_query_exec_mode", "exec")
		}
	}
	for _, name := range prismaOnly {
		if q.Has(name) {
			out.ignored = append(out.ignored, name)
			q.Del(name)
		}
	}
	slices.Sort(out.ignored)
	u.RawQuery = q.Encode()
	cfg, err := pgx.ParseConfig(u.String())
	if err != nil {
		// pgconn's parse errors quote the URL with its password hidden, but
		// not sslpassword.
		return pgURL{}, redactError(err, u, q)
	}
	if !q.Has("connect_timeout") {
		cfg.ConnectTimeout = 5 * time.Second // Prisma's default
	}
	cfg.RuntimeParams["search_path"] = quoteIdent(out.schema)
	out.config = cfg
	return out, nil
}

// unescaped reports whether a URL's password was written with a reserved
// character as it is: a '#' (a PostgreSQL URL has no fragment, so the rest
// of the URL would be dropped, or read as a host and port), or an '@' after
// the authority (in the path, or in a parameter's name), where what the URL
// names as its host is the start of the password. An '@' in a parameter's
// value (user=me@example.com) is left alone.
func unescaped(raw string) bool {
	if !strings.Contains(raw, "://") {
		return false // libpq's key=value form
	}
	rest := afterAuthority(raw)
	if strings.Contains(rest, "#") {
		return true
	}
	path, query, _ := strings.Cut(rest, "?")
	if strings.Contains(path, "@") {
		return true
	}
	for pair := range strings.SplitSeq(query, "&") {
		if key, _, _ := strings.Cut(pair, "="); strings.Contains(key, "@") {
			return true
		}
	}
	return false
}

// afterAuthority returns what follows the authority (user, password,
// host, port) of a URL: its path, query and fragment.
func afterAuthority(raw string) string {
	_, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return ""
	}
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		return rest[i:]
	}
	return ""
}

// redactedError is an error whose text had the URL's secrets replaced by
// xxxxx; Unwrap gives the original.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// redactError returns err with every secret of the URL u (query q) hidden
// in its text: the password and the password and sslpassword parameters,
// as they were given and as they are escaped in a URL.
func redactError(err error, u *url.URL, q url.Values) error {
	var secrets []string
	if pw, ok := u.User.Password(); ok {
		secrets = append(secrets, pw)
	}
	secrets = append(secrets, q["password"]...)
	secrets = append(secrets, q["sslpassword"]...)
	var forms []string
	for _, s := range secrets {
		for _, form := range []string{url.QueryEscape(s), url.PathEscape(s), s} {
			if form != "" && !slices.Contains(forms, form) {
				forms = append(forms, form)
			}
		}
	}
	if len(forms) == 0 {
		return err
	}
	// Longest first: where forms overlap, the longest is replaced whole.
	slices.SortStableFunc(forms, func(a, b string) int { return len(b) - len(a) })
	pairs := make([]string, 0, 2*len(forms))
	for _, form := range forms {
		pairs = append(pairs, form, "xxxxx")
	}
	msg := strings.NewReplacer(pairs...).Replace(err.Error())
	return &redactedError{msg: msg, err: err}
}

// quoteIdent quotes a PostgreSQL identifier.
func quoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

var dsnPassword = regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)

// RedactURL returns a database URL fit for logs: the password, in the user
// part or in a password or sslpassword parameter, is replaced by xxxxx.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Opaque != "" || strings.ContainsAny(afterAuthority(raw), "@#") {
		// Not a URL (perhaps libpq's key=value form), or one whose password
		// is not percent-encoded: a '/', '?' or '#' in it ends the
		// authority early, and the rest of the password is read as the
		// path, the query or a fragment. Hide whatever could be a password.
		if i := strings.Index(raw, "://"); i >= 0 {
			rest := raw[i+3:]
			if at := strings.LastIndex(rest, "@"); at >= 0 {
				if c := strings.Index(rest[:at], ":"); c >= 0 {
					raw = raw[:i+3] + rest[:c] + ":xxxxx" + rest[at:]
				}
			}
		}
		return dsnPassword.ReplaceAllString(raw, "${1}xxxxx")
	}
	q := u.Query()
	changed := false
	for _, k := range []string{"password", "sslpassword"} {
		if q.Has(k) {
			q.Set(k, "xxxxx")
			changed = true
		}
	}
	if changed {
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}
