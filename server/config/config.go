// Package config reads the server's settings from the environment (and a
// .env file) once, at start-up, into one typed struct. A bad value stops the
// start with a message naming the variable and what it expected.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/joho/godotenv"
)

// Config is every setting of the server. The README lists each variable
// with its default and how it maps to the original server.
type Config struct {
	Host string // HOST
	Port int    // PORT

	CORSOrigins       []string      // CORS_ORIGINS
	PingInterval      time.Duration // PING_INTERVAL
	PingTimeout       time.Duration // PING_TIMEOUT
	MaxHTTPBufferSize int64         // MAX_HTTP_BUFFER_SIZE

	MaxMessageLength  int // MAX_MESSAGE_LENGTH
	MaxUsernameLength int // MAX_USERNAME_LENGTH

	RateLimitPerSec     float64        // RATE_LIMIT_PER_SEC
	RateLimitBurst      int            // RATE_LIMIT_BURST
	MaxConnections      int            // MAX_CONNECTIONS
	MaxConnectionsPerIP int            // MAX_CONNECTIONS_PER_IP
	TrustedProxies      []netip.Prefix // TRUSTED_PROXIES
	SendQueueLimit      int            // SEND_QUEUE_LIMIT

	// HTTPIdleTimeout is how long a keep-alive connection may wait for its
	// next request (HTTP_IDLE_TIMEOUT).
	HTTPIdleTimeout time.Duration
	// HTTPBodyTimeout is the longest a request's body may take to arrive,
	// from the end of its header (HTTP_BODY_TIMEOUT): the session layer's
	// bound on polling POSTs, and the HTTP server's on any other body. It
	// is not a read timeout of the whole request: a long-poll GET is held
	// longer.
	HTTPBodyTimeout time.Duration
	// HTTPMaxConnsPerIP bounds the open TCP connections of one client
	// address, counted when accepted, before any HTTP
	// (HTTP_MAX_CONNS_PER_IP; 0: no limit). Connections from
	// TRUSTED_PROXIES are not counted.
	HTTPMaxConnsPerIP int

	HistoryLimit      int           // HISTORY_LIMIT (0 disables)
	HistoryRingSize   int           // HISTORY_RING_SIZE
	RecoveryWindow    time.Duration // CONNECTION_RECOVERY_WINDOW (0 disables)
	PresenceInterval  time.Duration // PRESENCE_INTERVAL
	ConnectTimeout    time.Duration // CONNECT_TIMEOUT
	PresenceListLimit int           // PRESENCE_LIST_LIMIT
	TypingRatePerSec  float64       // TYPING_RATE_PER_SEC
	TypingTimeout     time.Duration // TYPING_TIMEOUT

	DataDir     string        // DATA_DIR
	WriteBuffer int           // WRITE_BUFFER
	BatchSize   int           // BATCH_SIZE
	BatchWait   time.Duration // BATCH_WAIT
	DBRetryMax  time.Duration // DB_RETRY_MAX

	DatabaseURL string // DATABASE_URL
	Migrate     bool   // MIGRATE
	// MigrateLockTimeout bounds the wait for the migration lock.
	MigrateLockTimeout  time.Duration // MIGRATE_LOCK_TIMEOUT
	RedisURL            string        // REDIS_URL
	RedisClusterNodes   []string      // REDIS_CLUSTER_NODES (seeds of a Redis Cluster; see rediscluster.go)
	RedisPasswd         string        // REDIS_PASSWD
	RedisCAFile         string        // REDIS_CA_FILE
	RedisAdapterMode    string        // REDIS_ADAPTER_MODE
	RedisKeyPrefix      string        // REDIS_KEY_PREFIX
	RedisRequestTimeout time.Duration // REDIS_REQUEST_TIMEOUT
	RedisPublishBuffer  int           // REDIS_PUBLISH_BUFFER

	KafkaBrokers     []string      // KAFKA_BROKERS
	KafkaTopic       string        // KAFKA_TOPIC
	KafkaPartitions  int           // KAFKA_PARTITIONS
	KafkaDLQTopic    string        // KAFKA_DLQ_TOPIC
	KafkaGroup       string        // KAFKA_GROUP
	KafkaConsumer    bool          // KAFKA_CONSUMER
	KafkaUsername    string        // KAFKA_USERNAME
	KafkaPasswd      string        // KAFKA_PASSWD
	KafkaCAFile      string        // KAFKA_CA_FILE ("" when unset and the default file is missing)
	KafkaCompression string        // KAFKA_COMPRESSION
	KafkaRetryMax    time.Duration // KAFKA_RETRY_MAX
	ProducerBuffer   int           // PRODUCER_BUFFER

	// AdminUI is the Socket.IO Admin UI's /admin namespace (ADMIN_UI...).
	AdminUI AdminUI

	// Identity and moderation.
	AuthJWTSecret string        // AUTH_JWT_SECRET (HS256; at least 32 bytes)
	AuthJWKSURL   string        // AUTH_JWKS_URL (RS256, ES256, EdDSA keys)
	AuthIssuer    string        // AUTH_ISSUER
	AuthAudience  string        // AUTH_AUDIENCE
	AuthMode      string        // AUTH_MODE: off, optional, required
	AuthClockSkew time.Duration // AUTH_CLOCK_SKEW
	AuthGuest     bool          // AUTH_GUEST
	AuthGuestTTL  time.Duration // AUTH_GUEST_TTL
	AdminToken    string        // ADMIN_TOKEN (at least 32 bytes)
	BanRefresh    time.Duration // BAN_REFRESH_INTERVAL
	// MetricsAddr serves /metrics and the profiler apart from the public
	// port (METRICS_ADDR); "" serves /metrics on the public port.
	MetricsAddr string

	PprofAddr       string        // PPROF_ADDR (empty: off)
	ShutdownTimeout time.Duration // SHUTDOWN_TIMEOUT
	LogLevel        slog.Level    // LOG_LEVEL
	LogFormat       string        // LOG_FORMAT

	// EnvFiles are the .env files that were read, for the start-up log.
	EnvFiles []string
}

// Addr is the address to listen on.
func (c Config) Addr() string {
	return fmt.Sprintf("%s:%d", c.Host, c.Port)
}

// Load reads the .env files (the working directory's, then server/.env
// under it, then the one beside the executable; a variable already set in
// the environment wins, and an earlier file wins over a later one), then
// the environment.
func Load() (Config, error) {
	var files []string
	candidates := []string{".env", filepath.Join("server", ".env")}
	if exe, err := os.Executable(); err == nil {
		candidates = append(candidates, filepath.Join(filepath.Dir(exe), ".env"))
	}
	seen := map[string]bool{}
	for _, f := range candidates {
		abs, err := filepath.Abs(f)
		if err != nil || seen[abs] {
			continue
		}
		seen[abs] = true
		if _, err := os.Stat(abs); err != nil {
			continue
		}
		if err := godotenv.Load(abs); err != nil {
			return Config{}, fmt.Errorf("read %s: %w", abs, err)
		}
		files = append(files, abs)
	}
	c, err := FromLookup(os.LookupEnv)
	c.EnvFiles = files
	return c, err
}

// FromLookup parses the settings from lookup (os.LookupEnv, or a map in
// tests). It reports every bad variable at once.
func FromLookup(lookup func(string) (string, bool)) (Config, error) {
	p := parser{lookup: lookup}
	c := Config{
		Host:              p.str("HOST", "0.0.0.0"),
		Port:              p.intIn("PORT", 8000, 0, 65535),
		CORSOrigins:       p.list("CORS_ORIGINS", []string{"*"}),
		PingInterval:      p.duration("PING_INTERVAL", 25*time.Second, time.Millisecond),
		PingTimeout:       p.duration("PING_TIMEOUT", 20*time.Second, time.Millisecond),
		MaxHTTPBufferSize: int64(p.intIn("MAX_HTTP_BUFFER_SIZE", 64<<10, 1024, 100<<20)),

		MaxMessageLength:  p.intIn("MAX_MESSAGE_LENGTH", 2000, 1, 1_000_000),
		MaxUsernameLength: p.intIn("MAX_USERNAME_LENGTH", 64, 1, 10_000),

		RateLimitPerSec:     p.float("RATE_LIMIT_PER_SEC", 20),
		RateLimitBurst:      p.intIn("RATE_LIMIT_BURST", 40, 1, 1_000_000),
		MaxConnections:      p.intIn("MAX_CONNECTIONS", 100_000, 0, 10_000_000),
		MaxConnectionsPerIP: p.intIn("MAX_CONNECTIONS_PER_IP", 256, 0, 10_000_000),
		TrustedProxies:      p.prefixes("TRUSTED_PROXIES"),
		SendQueueLimit:      p.intIn("SEND_QUEUE_LIMIT", 1000, 1, 10_000_000),

		HistoryLimit:      p.intIn("HISTORY_LIMIT", 50, 0, 10_000),
		HistoryRingSize:   p.intIn("HISTORY_RING_SIZE", 1000, 1, 10_000_000),
		RecoveryWindow:    p.duration("CONNECTION_RECOVERY_WINDOW", 2*time.Minute, 0),
		PresenceInterval:  p.duration("PRESENCE_INTERVAL", time.Second, 10*time.Millisecond),
		ConnectTimeout:    p.duration("CONNECT_TIMEOUT", 45*time.Second, 10*time.Millisecond),
		PresenceListLimit: p.intIn("PRESENCE_LIST_LIMIT", 1000, 0, 100_000),
		TypingRatePerSec:  p.float("TYPING_RATE_PER_SEC", 5),
		TypingTimeout:     p.duration("TYPING_TIMEOUT", 5*time.Second, 100*time.Millisecond),

		DataDir:     p.str("DATA_DIR", "./data"),
		WriteBuffer: p.intIn("WRITE_BUFFER", 100_000, 1, 100_000_000),
		BatchSize:   p.intIn("BATCH_SIZE", 1000, 1, 100_000),
		BatchWait:   p.duration("BATCH_WAIT", 50*time.Millisecond, 0),
		DBRetryMax:  p.duration("DB_RETRY_MAX", 60*time.Second, 10*time.Millisecond),

		DatabaseURL: p.str("DATABASE_URL", ""),
		Migrate:     p.onOff("MIGRATE", true),
		// Prisma's migrate waits 10 s for the same lock.
		MigrateLockTimeout: p.duration("MIGRATE_LOCK_TIMEOUT", 10*time.Second, 100*time.Millisecond),
		RedisURL:           p.str("REDIS_URL", ""),
		RedisPasswd:        p.str("REDIS_PASSWD", ""),

		RedisCAFile:         p.str("REDIS_CA_FILE", ""),
		RedisAdapterMode:    p.oneOf("REDIS_ADAPTER_MODE", "sharded", "sharded", "streams"),
		RedisKeyPrefix:      p.str("REDIS_KEY_PREFIX", "socket.io"),
		RedisRequestTimeout: p.duration("REDIS_REQUEST_TIMEOUT", 5*time.Second, 10*time.Millisecond),
		RedisPublishBuffer:  p.intIn("REDIS_PUBLISH_BUFFER", 10_000, 1, 10_000_000),

		KafkaBrokers:     p.list("KAFKA_BROKERS", nil),
		KafkaTopic:       p.topic("KAFKA_TOPIC", "MESSAGES"),
		KafkaPartitions:  p.intIn("KAFKA_PARTITIONS", 6, 1, 10_000),
		KafkaGroup:       p.str("KAFKA_GROUP", "default"),
		KafkaConsumer:    p.onOff("KAFKA_CONSUMER", true),
		KafkaUsername:    p.str("KAFKA_USERNAME", "avnadmin"),
		KafkaPasswd:      p.str("KAFKA_PASSWD", ""),
		KafkaCAFile:      p.file("KAFKA_CA_FILE", DefaultKafkaCAFile),
		KafkaCompression: p.oneOf("KAFKA_COMPRESSION", "gzip", "none", "gzip", "snappy", "lz4", "zstd"),
		KafkaRetryMax:    p.duration("KAFKA_RETRY_MAX", 5*time.Second, 10*time.Millisecond),
		ProducerBuffer:   p.intIn("PRODUCER_BUFFER", 100_000, 1, 100_000_000),

		PprofAddr:       p.str("PPROF_ADDR", ""),
		ShutdownTimeout: p.duration("SHUTDOWN_TIMEOUT", 15*time.Second, time.Millisecond),
		LogLevel:        p.level("LOG_LEVEL", slog.LevelInfo),
		LogFormat:       p.oneOf("LOG_FORMAT", "text", "text", "json"),
	}
	c.RedisClusterNodes = p.redisClusterNodes("REDIS_CLUSTER_NODES", c.RedisURL)
	c.AdminUI = p.adminUI()
	c.HTTPIdleTimeout = p.duration("HTTP_IDLE_TIMEOUT", 60*time.Second, 10*time.Millisecond)
	c.HTTPBodyTimeout = p.duration("HTTP_BODY_TIMEOUT", 10*time.Second, 10*time.Millisecond)
	// By default twice the sessions an address may have, plus 64: a
	// polling session holds up to two connections (its GET and a POST), a
	// WebSocket one until the session layer takes it over, and the rest is
	// room for handshakes and API calls. No session limit, no connection
	// limit.
	httpConns := 0
	if c.MaxConnectionsPerIP > 0 {
		httpConns = 2*c.MaxConnectionsPerIP + 64
	}
	c.HTTPMaxConnsPerIP = p.intIn("HTTP_MAX_CONNS_PER_IP", httpConns, 0, 10_000_000)
	if c.HTTPMaxConnsPerIP > 0 && c.HTTPMaxConnsPerIP < c.MaxConnectionsPerIP {
		p.fail("HTTP_MAX_CONNS_PER_IP", strconv.Itoa(c.HTTPMaxConnsPerIP),
			fmt.Sprintf("0 or at least MAX_CONNECTIONS_PER_IP (%d): each polling session holds a connection", c.MaxConnectionsPerIP))
	}
	if c.HistoryRingSize < c.HistoryLimit {
		p.fail("HISTORY_RING_SIZE", strconv.Itoa(c.HistoryRingSize), fmt.Sprintf("at least HISTORY_LIMIT (%d)", c.HistoryLimit))
	}
	c.KafkaDLQTopic = p.topic("KAFKA_DLQ_TOPIC", c.KafkaTopic+".DLQ")
	if c.KafkaTopic == c.KafkaDLQTopic {
		p.fail("KAFKA_DLQ_TOPIC", c.KafkaDLQTopic, "a topic other than KAFKA_TOPIC")
	}
	if len(c.KafkaGroup) > 255 {
		p.fail("KAFKA_GROUP", c.KafkaGroup, "a group id of at most 255 characters")
	}
	c.AuthJWTSecret = p.str("AUTH_JWT_SECRET", "")
	if c.AuthJWTSecret != "" && len(c.AuthJWTSecret) < 32 {
		p.fail("AUTH_JWT_SECRET", "(hidden)", "a secret of at least 32 bytes (openssl rand -hex 32)")
	}
	c.AuthJWKSURL = p.str("AUTH_JWKS_URL", "")
	if c.AuthJWKSURL != "" {
		if u, err := url.Parse(c.AuthJWKSURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			p.fail("AUTH_JWKS_URL", c.AuthJWKSURL, "an http(s) URL of a JWKS document")
		}
	}
	c.AuthIssuer = p.str("AUTH_ISSUER", "")
	c.AuthAudience = p.str("AUTH_AUDIENCE", "")
	keyed := c.AuthJWTSecret != "" || c.AuthJWKSURL != ""
	defMode := "off"
	if keyed {
		defMode = "required"
	}
	c.AuthMode = p.oneOf("AUTH_MODE", defMode, "off", "optional", "required")
	if c.AuthMode != "off" && !keyed {
		p.fail("AUTH_MODE", c.AuthMode, "off unless AUTH_JWT_SECRET or AUTH_JWKS_URL is set (tokens need a key)")
	}
	c.AuthClockSkew = p.duration("AUTH_CLOCK_SKEW", 30*time.Second, 0)
	if c.AuthClockSkew > 5*time.Minute {
		p.fail("AUTH_CLOCK_SKEW", c.AuthClockSkew.String(), "at most 5m")
	}
	c.AuthGuest = p.onOff("AUTH_GUEST", false)
	if c.AuthGuest && c.AuthJWTSecret == "" {
		p.fail("AUTH_GUEST", "on", "off unless AUTH_JWT_SECRET is set (guest tokens are signed with it)")
	}
	c.AuthGuestTTL = p.duration("AUTH_GUEST_TTL", time.Hour, time.Minute)
	if c.AuthGuestTTL > 7*24*time.Hour {
		p.fail("AUTH_GUEST_TTL", c.AuthGuestTTL.String(), "at most 168h")
	}
	c.AdminToken = p.str("ADMIN_TOKEN", "")
	if c.AdminToken != "" && len(c.AdminToken) < 32 {
		p.fail("ADMIN_TOKEN", "(hidden)", "a token of at least 32 bytes (openssl rand -hex 32)")
	}
	c.BanRefresh = p.duration("BAN_REFRESH_INTERVAL", 30*time.Second, 100*time.Millisecond)
	c.MetricsAddr = p.str("METRICS_ADDR", "")
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			p.fail("METRICS_ADDR", c.MetricsAddr, "host:port, e.g. 127.0.0.1:9090")
		}
	}
	if c.RateLimitPerSec < 0 {
		p.fail("RATE_LIMIT_PER_SEC", fmt.Sprint(c.RateLimitPerSec), "a number >= 0 (0 disables the limit)")
	}
	if c.TypingRatePerSec < 0 {
		p.fail("TYPING_RATE_PER_SEC", fmt.Sprint(c.TypingRatePerSec), "a number >= 0 (0 disables the limit)")
	}
	return c, errors.Join(p.errs...)
}

// DefaultKafkaCAFile is where the original server read its Kafka CA
// certificate; KAFKA_CA_FILE defaults to it when the file exists.
const DefaultKafkaCAFile = "/etc/secrets/ca.pem"

var topicName = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)

type parser struct {
	lookup func(string) (string, bool)
	errs   []error
}

func (p *parser) fail(name, value, want string) {
	p.errs = append(p.errs, fmt.Errorf("%s=%q: want %s", name, value, want))
}

func (p *parser) raw(name string) (string, bool) {
	v, ok := p.lookup(name)
	v = strings.TrimSpace(v)
	return v, ok && v != ""
}

func (p *parser) str(name, def string) string {
	if v, ok := p.raw(name); ok {
		return v
	}
	return def
}

func (p *parser) intIn(name string, def, lo, hi int) int {
	v, ok := p.raw(name)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(strings.ReplaceAll(v, "_", ""))
	if err != nil || n < lo || n > hi {
		p.fail(name, v, fmt.Sprintf("a whole number from %d to %d", lo, hi))
		return def
	}
	return n
}

func (p *parser) float(name string, def float64) float64 {
	v, ok := p.raw(name)
	if !ok {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		p.fail(name, v, "a number")
		return def
	}
	return f
}

// duration accepts a Go duration ("25s", "1m30s") or a whole number of
// milliseconds, as the Node server's options were given.
func (p *parser) duration(name string, def, least time.Duration) time.Duration {
	v, ok := p.raw(name)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		ms, err2 := strconv.ParseInt(v, 10, 64)
		if err2 != nil {
			p.fail(name, v, "a duration like 500ms, 25s or 2m (or a number of milliseconds)")
			return def
		}
		d = time.Duration(ms) * time.Millisecond
	}
	if d < 0 || (d != 0 && d < least) || (d == 0 && least > 0) {
		p.fail(name, v, fmt.Sprintf("a duration of at least %v", least))
		return def
	}
	return d
}

func (p *parser) list(name string, def []string) []string {
	v, ok := p.raw(name)
	if !ok {
		return def
	}
	var out []string
	for _, item := range strings.Split(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

func (p *parser) prefixes(name string) []netip.Prefix {
	var out []netip.Prefix
	for _, item := range p.list(name, nil) {
		if pre, err := netip.ParsePrefix(item); err == nil {
			out = append(out, pre.Masked())
			continue
		}
		a, err := netip.ParseAddr(item)
		if err != nil {
			p.fail(name, item, "IP addresses or CIDR ranges, comma separated (10.0.0.0/8,127.0.0.1)")
			continue
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out
}

// topic is a Kafka topic name: letters, digits, '.', '_', '-'.
func (p *parser) topic(name, def string) string {
	v := p.str(name, def)
	if !topicName.MatchString(v) || v == "." || v == ".." {
		p.fail(name, v, "a Kafka topic name: 1 to 249 letters, digits, '.', '_' or '-'")
		return def
	}
	return v
}

// file is the path of a readable file. Unset, it is def when that file
// exists, else "".
func (p *parser) file(name, def string) string {
	v, ok := p.raw(name)
	if !ok {
		if _, err := os.Stat(def); err == nil {
			return def
		}
		return ""
	}
	if st, err := os.Stat(v); err != nil || st.IsDir() {
		p.fail(name, v, "the path of a readable file")
		return ""
	}
	return v
}

func (p *parser) onOff(name string, def bool) bool {
	v, ok := p.raw(name)
	if !ok {
		return def
	}
	switch strings.ToLower(v) {
	case "on", "true", "1", "yes":
		return true
	case "off", "false", "0", "no":
		return false
	}
	p.fail(name, v, "on or off")
	return def
}

func (p *parser) oneOf(name, def string, allowed ...string) string {
	v, ok := p.raw(name)
	if !ok {
		return def
	}
	for _, a := range allowed {
		if strings.EqualFold(v, a) {
			return a
		}
	}
	p.fail(name, v, "one of "+strings.Join(allowed, ", "))
	return def
}

func (p *parser) level(name string, def slog.Level) slog.Level {
	v, ok := p.raw(name)
	if !ok {
		return def
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(v)); err != nil {
		p.fail(name, v, "debug, info, warn or error")
		return def
	}
	return l
}
