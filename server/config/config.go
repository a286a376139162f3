// Package config reads the server's settings from the environment (and a
// .env file) once, at start-up, into one typed struct. A bad value stops the
// start with a message naming the variable and what it expected.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/joho/godotenv"
)

// Config is every setting of the server. Each is defined once, in
// settings.go, which the settings reference (docs/settings.md, made by
// `go generate ./config`) is generated from.
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

	HistoryLimit        int           // HISTORY_LIMIT (0 disables)
	HistoryRingSize     int           // HISTORY_RING_SIZE
	RoomHistoryRingSize int           // ROOM_HISTORY_RING_SIZE
	RecoveryWindow      time.Duration // CONNECTION_RECOVERY_WINDOW (0 disables)
	PresenceInterval    time.Duration // PRESENCE_INTERVAL
	ConnectTimeout      time.Duration // CONNECT_TIMEOUT
	PresenceListLimit   int           // PRESENCE_LIST_LIMIT
	TypingRatePerSec    float64       // TYPING_RATE_PER_SEC
	TypingTimeout       time.Duration // TYPING_TIMEOUT

	RoomsPerUser      int // ROOMS_PER_USER_MAX
	RoomMembersMax    int // ROOM_MEMBERS_MAX
	RoomsAnonymousMax int // ROOMS_ANONYMOUS_MAX
	RoomNameMaxLength int // ROOM_NAME_MAX_LENGTH
	RoomCreatesPerMin int // ROOM_CREATE_RATE_PER_MIN
	DMOpensPerMin     int // DM_OPEN_RATE_PER_MIN

	DataDir     string        // DATA_DIR
	WriteBuffer int           // WRITE_BUFFER
	BatchSize   int           // BATCH_SIZE
	BatchWait   time.Duration // BATCH_WAIT
	DBRetryMax  time.Duration // DB_RETRY_MAX

	DatabaseURL string // DATABASE_URL
	Migrate     bool   // MIGRATE
	// MigrateLockTimeout bounds the wait for the migration lock.
	MigrateLockTimeout    time.Duration // MIGRATE_LOCK_TIMEOUT
	RedisURL              string        // REDIS_URL
	RedisClusterNodes     []string      // REDIS_CLUSTER_NODES (seeds of a Redis Cluster; see rediscluster.go)
	RedisPasswd           string        // REDIS_PASSWD
	RedisCAFile           string        // REDIS_CA_FILE
	RedisAdapterMode      string        // REDIS_ADAPTER_MODE
	RedisSubscriptionMode string        // REDIS_SUBSCRIPTION_MODE
	RedisKeyPrefix        string        // REDIS_KEY_PREFIX
	RedisRequestTimeout   time.Duration // REDIS_REQUEST_TIMEOUT
	RedisPublishBuffer    int           // REDIS_PUBLISH_BUFFER
	ClientIDTTL           time.Duration // CLIENT_ID_TTL
	ResumeLogSize         int           // RESUME_LOG_SIZE
	RedisEarlyAfter       time.Duration // REDIS_EARLY_AFTER

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
	// AuthMaxKeysPerToken is the most JWKS keys one token is tried against
	// (AUTH_MAX_KEYS_PER_TOKEN).
	AuthMaxKeysPerToken int
	AuthGuest           bool          // AUTH_GUEST
	AuthGuestTTL        time.Duration // AUTH_GUEST_TTL
	// AuthGuestMaxLifetime bounds a guest session's renewals
	// (AUTH_GUEST_MAX_LIFETIME); AuthGuestSignInsPerMin and
	// AuthGuestNamesPerIP bound the sign-ins a minute and the names held of
	// one client address (AUTH_GUEST_SIGNINS_PER_MIN,
	// AUTH_GUEST_NAMES_PER_IP; 0: no limit).
	AuthGuestMaxLifetime   time.Duration
	AuthGuestSignInsPerMin int
	AuthGuestNamesPerIP    int
	AdminToken             string        // ADMIN_TOKEN (at least 32 bytes)
	BanRefresh             time.Duration // BAN_REFRESH_INTERVAL
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
// tests), each as its definition says (settings.go). It reports every bad
// variable at once.
func FromLookup(lookup func(string) (string, bool)) (Config, error) {
	p := parser{lookup: lookup}
	var c Config
	for _, d := range definitions {
		d.read(&p, d.Name, &c)
	}
	for _, d := range definitions {
		if d.check != nil {
			d.check(&p, &c)
		}
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
	// adminUIMode is ADMIN_UI as read, for the check of its credentials.
	adminUIMode string
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
