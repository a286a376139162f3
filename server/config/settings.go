package config

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"time"
)

// definitions is every setting of the server, each declared once: how it
// is read into Config, and what the settings reference says of it. They
// are read in this order, so a default computed from other settings comes
// after them; checks across settings run once every setting is read.
//
// Defaults are written as typed values, and the reference shows them as
// read; a default computed from other settings says how, in words.
var definitions = []definition{
	def(sectionServer, "PORT", intIn(8000, 0, 65535, func(c *Config) *int { return &c.Port }),
		"HTTP port", "same"),
	def(sectionServer, "HOST", str("0.0.0.0", func(c *Config) *string { return &c.Host }),
		"address to listen on", "(all interfaces)"),
	def(sectionServer, "CORS_ORIGINS", list([]string{"*"}, func(c *Config) *[]string { return &c.CORSOrigins }),
		"allowed browser origins, comma separated; also checked on WebSocket upgrades", "origin `*`, allowed headers `*`"),
	def(sectionServer, "PING_INTERVAL", duration(25*time.Second, time.Millisecond, func(c *Config) *time.Duration { return &c.PingInterval }),
		"Engine.IO heartbeat: a ping every interval", "socket.io's default"),
	def(sectionServer, "PING_TIMEOUT", duration(20*time.Second, time.Millisecond, func(c *Config) *time.Duration { return &c.PingTimeout }),
		"a session whose pong has not come within it after a ping is closed", "socket.io's default"),
	def(sectionServer, "MAX_HTTP_BUFFER_SIZE", int64In(64<<10, 1024, 100<<20, func(c *Config) *int64 { return &c.MaxHTTPBufferSize }),
		"largest frame or polling request, bytes; larger closes that connection", "1 MB (socket.io's default)"),
	def(sectionServer, "CONNECT_TIMEOUT", duration(45*time.Second, 10*time.Millisecond, func(c *Config) *time.Duration { return &c.ConnectTimeout }),
		"a session that connected no Socket.IO namespace within it is closed", "socket.io's `connectTimeout`"),

	def(sectionLimits, "MAX_MESSAGE_LENGTH", intIn(2000, 1, 1_000_000, func(c *Config) *int { return &c.MaxMessageLength }),
		"longest message, in Unicode code points", "none"),
	def(sectionLimits, "MAX_USERNAME_LENGTH", intIn(64, 1, 10_000, func(c *Config) *int { return &c.MaxUsernameLength }),
		"longest username, in code points", "none"),
	def(sectionLimits, "RATE_LIMIT_PER_SEC", rate(20, func(c *Config) *float64 { return &c.RateLimitPerSec }),
		"messages per connection and second (a token bucket; unknown events and deletions count too); `0` disables", "none"),
	def(sectionLimits, "RATE_LIMIT_BURST", intIn(40, 1, 1_000_000, func(c *Config) *int { return &c.RateLimitBurst }),
		"the bucket's size: messages a connection may send at once", "none"),
	def(sectionLimits, "MAX_CONNECTIONS", intIn(100_000, 0, 10_000_000, func(c *Config) *int { return &c.MaxConnections }),
		"Engine.IO sessions on this node; `0` no limit", "none"),
	def(sectionLimits, "MAX_CONNECTIONS_PER_IP", intIn(256, 0, 10_000_000, func(c *Config) *int { return &c.MaxConnectionsPerIP }),
		"sessions from one client address; `0` no limit", "none"),
	def(sectionLimits, "TRUSTED_PROXIES", prefixes(func(c *Config) *[]netip.Prefix { return &c.TrustedProxies }),
		"proxies whose `X-Forwarded-For` gives the client address", "-"),
	def(sectionLimits, "HTTP_MAX_CONNS_PER_IP", intFrom(
		"2 × `MAX_CONNECTIONS_PER_IP` + 64 (`0` when that is `0`)", defaultHTTPConns, 0, 10_000_000,
		func(c *Config) *int { return &c.HTTPMaxConnsPerIP }),
		"open TCP connections from one client address, counted as accepted, before any HTTP: idle keep-alive ones, "+
			"long-polls and requests still arriving alike; one more is reset at once (`chat_http_connections_refused_total`). "+
			"A WebSocket connection counts until the session layer takes its descriptor over, then as a session "+
			"(`MAX_CONNECTIONS_PER_IP`). Connections from `TRUSTED_PROXIES` are not counted. "+
			"At least `MAX_CONNECTIONS_PER_IP`; `0` no limit", "none").
		then(func(p *parser, c *Config) {
			if c.HTTPMaxConnsPerIP > 0 && c.HTTPMaxConnsPerIP < c.MaxConnectionsPerIP {
				p.fail("HTTP_MAX_CONNS_PER_IP", strconv.Itoa(c.HTTPMaxConnsPerIP),
					fmt.Sprintf("0 or at least MAX_CONNECTIONS_PER_IP (%d): each polling session holds a connection", c.MaxConnectionsPerIP))
			}
		}),
	def(sectionLimits, "HTTP_IDLE_TIMEOUT", duration(60*time.Second, 10*time.Millisecond, func(c *Config) *time.Duration { return &c.HTTPIdleTimeout }),
		"how long a keep-alive connection may wait for its next request", "5 s (Node's keep-alive timeout)"),
	def(sectionLimits, "HTTP_BODY_TIMEOUT", duration(10*time.Second, 10*time.Millisecond, func(c *Config) *time.Duration { return &c.HTTPBodyTimeout }),
		"longest a request body may take to arrive; then a polling session is closed, and any other request's "+
			"connection (a long-poll GET has no body: it is held as the heartbeat says)", "none"),
	def(sectionLimits, "SEND_QUEUE_LIMIT", intIn(1000, 1, 10_000_000, func(c *Config) *int { return &c.SendQueueLimit }),
		"packets waiting for one client; a client whose queue stays above it for a second (or passes ten times it) "+
			"is disconnected, and catches up when it reconnects", "unbounded"),

	def(sectionHistory, "HISTORY_LIMIT", intIn(50, 0, 10_000, func(c *Config) *int { return &c.HistoryLimit }),
		"messages a newcomer receives; `0` disables", "none (no history)"),
	def(sectionHistory, "HISTORY_RING_SIZE", intIn(1000, 1, 10_000_000, func(c *Config) *int { return &c.HistoryRingSize }),
		"recently broadcast messages kept in memory to cover the store's lag; at least `HISTORY_LIMIT`", "-").
		then(func(p *parser, c *Config) {
			if c.HistoryRingSize < c.HistoryLimit {
				p.fail("HISTORY_RING_SIZE", strconv.Itoa(c.HistoryRingSize), fmt.Sprintf("at least HISTORY_LIMIT (%d)", c.HistoryLimit))
			}
		}),
	def(sectionHistory, "ROOM_HISTORY_RING_SIZE", intIn(100, 1, 10_000_000, func(c *Config) *int { return &c.RoomHistoryRingSize }),
		"the same for each other room a node holds, grown as its messages come (a node may hold every room; "+
			"a full ring of 100 takes about 35 KB); `HISTORY_LIMIT` when that is larger", "-"),
	def(sectionHistory, "CONNECTION_RECOVERY_WINDOW", duration(2*time.Minute, 0, func(c *Config) *time.Duration { return &c.RecoveryWindow }),
		"how long a dropped client's session is kept for recovery; `0` disables", "-"),
	def(sectionHistory, "PRESENCE_INTERVAL", duration(time.Second, 10*time.Millisecond, func(c *Config) *time.Duration { return &c.PresenceInterval }),
		"most often `presence` (and `presence:join`/`presence:leave`) is sent", "-"),
	def(sectionHistory, "PRESENCE_LIST_LIMIT", intIn(1000, 0, 100_000, func(c *Config) *int { return &c.PresenceListLimit }),
		"most users `presence` and `GET /api/presence` list; above it only the count", "-"),
	def(sectionHistory, "TYPING_RATE_PER_SEC", rate(5, func(c *Config) *float64 { return &c.TypingRatePerSec }),
		"`typing` events per connection and second (bursts of twice it); `0` disables", "-"),
	def(sectionHistory, "TYPING_TIMEOUT", duration(5*time.Second, 100*time.Millisecond, func(c *Config) *time.Duration { return &c.TypingTimeout }),
		"a typing not renewed within it ends (`typing: false` to the others)", "-"),

	def(sectionRooms, "ROOMS_PER_USER_MAX", intIn(200, 1, 1_000_000, func(c *Config) *int { return &c.RoomsPerUser }),
		"rooms a verified user may be a member of (direct rooms included)", "- (one global room)"),
	def(sectionRooms, "ROOM_MEMBERS_MAX", intIn(1000, 2, 10_000_000, func(c *Config) *int { return &c.RoomMembersMax }),
		"members of a private room", "-"),
	def(sectionRooms, "ROOMS_ANONYMOUS_MAX", intIn(20, 0, 100_000, func(c *Config) *int { return &c.RoomsAnonymousMax }),
		"public rooms a socket without a verified identity may join besides the global one; `0`: none", "-"),
	def(sectionRooms, "ROOM_NAME_MAX_LENGTH", intIn(64, 1, 10_000, func(c *Config) *int { return &c.RoomNameMaxLength }),
		"longest room name, in code points", "-"),
	def(sectionRooms, "ROOM_CREATE_RATE_PER_MIN", intIn(10, 1, 1_000_000, func(c *Config) *int { return &c.RoomCreatesPerMin }),
		"rooms a user may create a minute, on one node", "-"),
	def(sectionRooms, "DM_OPEN_RATE_PER_MIN", intIn(30, 1, 1_000_000, func(c *Config) *int { return &c.DMOpensPerMin }),
		"direct rooms a user may open a minute, on one node (opening one it has already is free)", "-"),

	def(sectionAdmin, "ADMIN_UI", adminUIMode(),
		"`on`: serve the Socket.IO Admin UI's namespace `/admin` with `ADMIN_UI_USERNAME` and `ADMIN_UI_PASSWORD_HASH` "+
			"(both required); `noauth`: without a password (anyone who reaches the port sees the sockets and can "+
			"disconnect them)", "`instrument()` of `@socket.io/admin-ui`").
		then(checkAdminUI),
	def(sectionAdmin, "ADMIN_UI_USERNAME", str("", func(c *Config) *string { return &c.AdminUI.Username }),
		"the Admin UI's user name", "`auth.username`"),
	def(sectionAdmin, "ADMIN_UI_PASSWORD_HASH", str("", func(c *Config) *string { return &c.AdminUI.PasswordHash }),
		"bcrypt hash of its password (`$2a$`, `$2b$`, `$2y$`: `htpasswd -nbBC 10 '' PASSWORD | cut -c2-`, or bcryptjs); "+
			"checked at start; in a `.env` file, quote it with single quotes", "`auth.password` (a bcrypt hash too)").
		then(checkAdminUIHash),
	def(sectionAdmin, "ADMIN_UI_SOCKETS_LIMIT", intIn(10_000, 1, 1_000_000, func(c *Config) *int { return &c.AdminUI.SocketsLimit }),
		"most sockets of one namespace of one node the Admin UI lists", "-"),
	def(sectionAdmin, "ADMIN_UI_SIGNIN_BACKOFF_MAX", duration(5*time.Minute, time.Second, func(c *Config) *time.Duration { return &c.AdminUI.SignInBackoffMax }),
		"longest wait between Admin UI sign-in attempts from one client address: from its third failure in a row, "+
			"1 s doubling up to it (per node; an IPv6 address counts as its /64)", "-"),

	def(sectionStore, "DATA_DIR", str("./data", func(c *Config) *string { return &c.DataDir }),
		"where the embedded store keeps `chat.db` (SQLite)", "-"),
	def(sectionStore, "WRITE_BUFFER", intIn(100_000, 1, 100_000_000, func(c *Config) *int { return &c.WriteBuffer }),
		"accepted messages waiting for the store; past it new messages get `unavailable`", "-"),
	def(sectionStore, "BATCH_SIZE", intIn(1000, 1, 100_000, func(c *Config) *int { return &c.BatchSize }),
		"most messages per store transaction", "one INSERT per message"),
	def(sectionStore, "BATCH_WAIT", duration(50*time.Millisecond, 0, func(c *Config) *time.Duration { return &c.BatchWait }),
		"longest a batch waits to fill (`0`: write what is there at once)", "-"),
	def(sectionStore, "DB_RETRY_MAX", duration(60*time.Second, 10*time.Millisecond, func(c *Config) *time.Duration { return &c.DBRetryMax }),
		"longest back-off between store retries during an outage", "60 s pause"),

	def(sectionPostgres, "DATABASE_URL", str("", func(c *Config) *string { return &c.DatabaseURL }),
		"PostgreSQL instead of SQLite: `postgresql://user:password@host:port/db?schema=public`, the original's Prisma "+
			"URL as it is", "same name"),
	def(sectionPostgres, "MIGRATE", onOff(true, func(c *Config) *bool { return &c.Migrate }),
		"apply prisma-compat's migrations at start (as `prisma migrate deploy` does); `off` only checks the schema",
		"- (`prisma migrate deploy`)"),
	// Prisma's migrate waits 10 s for the same lock.
	def(sectionPostgres, "MIGRATE_LOCK_TIMEOUT", duration(10*time.Second, 100*time.Millisecond, func(c *Config) *time.Duration { return &c.MigrateLockTimeout }),
		"longest wait for the migration lock another node or Prisma holds; then the start stops", "Prisma's 10 s"),

	def(sectionRedis, "REDIS_URL", str("", func(c *Config) *string { return &c.RedisURL }),
		"`redis://[user:password@]host:port[/db]` or `rediss://...`: the nodes form one cluster through it", "hard-coded Aiven host"),
	def(sectionRedis, "REDIS_CLUSTER_NODES", redisSeeds(func(c *Config) *[]string { return &c.RedisClusterNodes }),
		"seeds of a Redis Cluster, comma separated: `host:port`, or `redis://[user:password@]host:port` / `rediss://...` "+
			"URLs, which then give every node's scheme (TLS) and credentials and must agree; selects cluster mode, and "+
			"refuses a `REDIS_URL` beside it (see [On a Redis Cluster](operators.md#on-a-redis-cluster))", "-"),
	def(sectionRedis, "REDIS_PASSWD", str("", func(c *Config) *string { return &c.RedisPasswd }),
		"password (user `default`) when `REDIS_URL` (or the seeds) carry none", "same name"),
	def(sectionRedis, "REDIS_CA_FILE", str("", func(c *Config) *string { return &c.RedisCAFile }),
		"PEM file of CAs to trust for `rediss://` (on a cluster, for every node)", "-"),
	def(sectionRedis, "REDIS_ADAPTER_MODE", oneOf("sharded", []string{"sharded", "streams"}, func(c *Config) *string { return &c.RedisAdapterMode }),
		"`sharded` (SSUBSCRIBE/SPUBLISH, Redis 7+, as Node's `createShardedAdapter`) or `streams` (as "+
			"`@socket.io/redis-streams-adapter`: nothing is lost across nodes during a Redis outage)", "Pub/Sub channel `MESSAGES`"),
	def(sectionRedis, "REDIS_SUBSCRIPTION_MODE", oneOf("dynamic", []string{"dynamic", "static"}, func(c *Config) *string { return &c.RedisSubscriptionMode }),
		"sharded mode: `dynamic` gives each room a channel a node subscribes to while it holds a member, as Node's default; "+
			"`static` sends every room on the namespace's channel, to share rooms with Node servers in `subscriptionMode: \"static\"`", "-"),
	def(sectionRedis, "REDIS_KEY_PREFIX", str("socket.io", func(c *Config) *string { return &c.RedisKeyPrefix }),
		"prefix of the channels, stream and keys (Node's adapters use the same default)", "-"),
	def(sectionRedis, "REDIS_REQUEST_TIMEOUT", duration(5*time.Second, 10*time.Millisecond, func(c *Config) *time.Duration { return &c.RedisRequestTimeout }),
		"bound of every Redis command and cluster request", "-"),
	def(sectionRedis, "REDIS_PUBLISH_BUFFER", intIn(10_000, 1, 10_000_000, func(c *Config) *int { return &c.RedisPublishBuffer }),
		"messages waiting to be published to the other nodes while Redis is unreachable; past it the oldest are "+
			"dropped, counted and logged", "-"),
	def(sectionRedis, "CLIENT_ID_TTL", duration(10*time.Minute, time.Second, func(c *Config) *time.Duration { return &c.ClientIDTTL }),
		"how long Redis remembers a message's `clientId` for the whole cluster: a retry within it, on any node, "+
			"is not broadcast again; past it, each node still remembers its own latest 100,000", "-"),
	def(sectionRedis, "RESUME_LOG_SIZE", intIn(10_000, 1, 10_000_000, func(c *Config) *int { return &c.ResumeLogSize }),
		"streams mode: how many of the cluster's latest messages each node keeps (and reads from the stream when it "+
			"starts) for the clients that come back; one away longer resumes inexactly, counted in `chat_resume_gaps_total`", "-"),
	def(sectionRedis, "REDIS_EARLY_AFTER", duration(time.Second, 0, func(c *Config) *time.Duration { return &c.RedisEarlyAfter }),
		"streams mode: how long a node waits for its own message to come back from the stream, while Redis answers, "+
			"before it delivers it to its own clients at once (when a publication to Redis fails, at once); "+
			"`0` delivers at once always", "-"),

	def(sectionKafka, "KAFKA_BROKERS", list(nil, func(c *Config) *[]string { return &c.KafkaBrokers }),
		"Kafka bootstrap brokers, comma separated (`host:port,...`); selects the Kafka log; needs `DATABASE_URL`", "hard-coded host"),
	def(sectionKafka, "KAFKA_TOPIC", topic("MESSAGES", func(c *Config) *string { return &c.KafkaTopic }),
		"topic of the messages", "`MESSAGES`"),
	def(sectionKafka, "KAFKA_PARTITIONS", intIn(6, 1, 10_000, func(c *Config) *int { return &c.KafkaPartitions }),
		"partitions of the topic and of the dead-letter topic when the node creates them (an existing topic is left as it is)",
		"(auto-created)"),
	def(sectionKafka, "KAFKA_DLQ_TOPIC", topicFrom("`KAFKA_TOPIC` + `.DLQ`", func(c *Config) string { return c.KafkaTopic + ".DLQ" },
		func(c *Config) *string { return &c.KafkaDLQTopic }),
		"dead-letter topic: records that cannot be decoded or stored, with the reason; not `KAFKA_TOPIC`", "none (the record was lost)").
		then(func(p *parser, c *Config) {
			if c.KafkaTopic == c.KafkaDLQTopic {
				p.fail("KAFKA_DLQ_TOPIC", c.KafkaDLQTopic, "a topic other than KAFKA_TOPIC")
			}
		}),
	def(sectionKafka, "KAFKA_GROUP", str("default", func(c *Config) *string { return &c.KafkaGroup }),
		"consumer group (at most 255 characters); a new group starts from the oldest record", "`default`, from the beginning").
		then(func(p *parser, c *Config) {
			if len(c.KafkaGroup) > 255 {
				p.fail("KAFKA_GROUP", c.KafkaGroup, "a group id of at most 255 characters")
			}
		}),
	def(sectionKafka, "KAFKA_CONSUMER", onOff(true, func(c *Config) *bool { return &c.KafkaConsumer }),
		"`off`: this node only produces (another node's consumer stores)", "every node consumed"),
	def(sectionKafka, "KAFKA_USERNAME", str("avnadmin", func(c *Config) *string { return &c.KafkaUsername }),
		"SASL PLAIN user", "`avnadmin`"),
	def(sectionKafka, "KAFKA_PASSWD", str("", func(c *Config) *string { return &c.KafkaPasswd }),
		"SASL PLAIN password; SASL is on when it is set", "same name"),
	def(sectionKafka, "KAFKA_CA_FILE", file(DefaultKafkaCAFile, func(c *Config) *string { return &c.KafkaCAFile }),
		"PEM CA certificates; set, it turns TLS on (a path that does not exist stops the start)", "`/etc/secrets/ca.pem`"),
	def(sectionKafka, "KAFKA_COMPRESSION", oneOf("gzip", []string{"none", "gzip", "snappy", "lz4", "zstd"}, func(c *Config) *string { return &c.KafkaCompression }),
		"record batch codec (kafkajs reads only `gzip` and `none` without plugins)", "none"),
	def(sectionKafka, "KAFKA_RETRY_MAX", duration(5*time.Second, 10*time.Millisecond, func(c *Config) *time.Duration { return &c.KafkaRetryMax }),
		"longest back-off between attempts to reach the broker again (producer and consumer group)", "kafkajs defaults"),
	def(sectionKafka, "PRODUCER_BUFFER", intIn(100_000, 1, 100_000_000, func(c *Config) *int { return &c.ProducerBuffer }),
		"accepted messages waiting for the broker's acknowledgement; past it new messages get `unavailable` "+
			"(nothing is broadcast)", "unbounded"),

	def(sectionIdentity, "AUTH_JWT_SECRET", str("", func(c *Config) *string { return &c.AuthJWTSecret }),
		"HS256 key of client tokens (at least 32 bytes); signs guest tokens too", "-").
		then(func(p *parser, c *Config) {
			if c.AuthJWTSecret != "" && len(c.AuthJWTSecret) < 32 {
				p.fail("AUTH_JWT_SECRET", "(hidden)", "a secret of at least 32 bytes (openssl rand -hex 32)")
			}
		}),
	def(sectionIdentity, "AUTH_JWKS_URL", str("", func(c *Config) *string { return &c.AuthJWKSURL }),
		"`http(s)` URL of a JWKS document whose RS256, ES256 and EdDSA keys verify client tokens", "-").
		then(func(p *parser, c *Config) {
			if c.AuthJWKSURL == "" {
				return
			}
			if u, err := url.Parse(c.AuthJWKSURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				p.fail("AUTH_JWKS_URL", c.AuthJWKSURL, "an http(s) URL of a JWKS document")
			}
		}),
	def(sectionIdentity, "AUTH_ISSUER", str("", func(c *Config) *string { return &c.AuthIssuer }),
		"when set, a token's `iss` must be it", "-"),
	def(sectionIdentity, "AUTH_AUDIENCE", str("", func(c *Config) *string { return &c.AuthAudience }),
		"when set, a token's `aud` must hold it", "-"),
	def(sectionIdentity, "AUTH_MODE", oneOfFrom("`off` without a key, `required` with one (`AUTH_JWT_SECRET` or `AUTH_JWKS_URL`)",
		defaultAuthMode, []string{"off", "optional", "required"}, func(c *Config) *string { return &c.AuthMode }),
		"`off` (no token is read: the original protocol), `optional` (anonymous clients still chat, `verified: false`), "+
			"`required`; `off` unless a key is set", "-").
		then(func(p *parser, c *Config) {
			if c.AuthMode != "off" && !keyed(c) {
				p.fail("AUTH_MODE", c.AuthMode, "off unless AUTH_JWT_SECRET or AUTH_JWKS_URL is set (tokens need a key)")
			}
		}),
	def(sectionIdentity, "AUTH_CLOCK_SKEW", duration(30*time.Second, 0, func(c *Config) *time.Duration { return &c.AuthClockSkew }),
		"how far a token's `exp`, `nbf` and `iat` may be off (at most 5m)", "-").
		then(func(p *parser, c *Config) {
			if c.AuthClockSkew > 5*time.Minute {
				p.fail("AUTH_CLOCK_SKEW", c.AuthClockSkew.String(), "at most 5m")
			}
		}),
	def(sectionIdentity, "AUTH_GUEST", onOff(false, func(c *Config) *bool { return &c.AuthGuest }),
		"guest sign-in (`POST /api/session`); needs `AUTH_JWT_SECRET`", "-").
		then(func(p *parser, c *Config) {
			if c.AuthGuest && c.AuthJWTSecret == "" {
				p.fail("AUTH_GUEST", "on", "off unless AUTH_JWT_SECRET is set (guest tokens are signed with it)")
			}
		}),
	def(sectionIdentity, "AUTH_GUEST_TTL", duration(time.Hour, time.Minute, func(c *Config) *time.Duration { return &c.AuthGuestTTL }),
		"how long a guest token lives (at most 168h)", "-").
		then(func(p *parser, c *Config) {
			if c.AuthGuestTTL > 7*24*time.Hour {
				p.fail("AUTH_GUEST_TTL", c.AuthGuestTTL.String(), "at most 168h")
			}
		}),
	def(sectionIdentity, "AUTH_GUEST_MAX_LIFETIME", durationFrom("`24h`, or `AUTH_GUEST_TTL` when longer",
		func(c *Config) time.Duration { return max(24*time.Hour, c.AuthGuestTTL) }, time.Minute,
		func(c *Config) *time.Duration { return &c.AuthGuestMaxLifetime }),
		"how long a guest session may be renewed (the same user id); then the guest signs in afresh; at least `AUTH_GUEST_TTL`", "-").
		then(func(p *parser, c *Config) {
			if c.AuthGuestMaxLifetime < c.AuthGuestTTL {
				p.fail("AUTH_GUEST_MAX_LIFETIME", c.AuthGuestMaxLifetime.String(), fmt.Sprintf("at least AUTH_GUEST_TTL (%v)", c.AuthGuestTTL))
			}
		}),
	def(sectionIdentity, "AUTH_GUEST_SIGNINS_PER_MIN", intIn(20, 0, 1_000_000, func(c *Config) *int { return &c.AuthGuestSignInsPerMin }),
		"guest sign-ins (renewals included) from one client address a minute, on one node; `0` no limit", "-"),
	def(sectionIdentity, "AUTH_GUEST_NAMES_PER_IP", intIn(20, 0, 1_000_000, func(c *Config) *int { return &c.AuthGuestNamesPerIP }),
		"guest names one client address holds at once, cluster-wide; `0` no limit", "-"),
	def(sectionIdentity, "AUTH_MAX_KEYS_PER_TOKEN", intIn(4, 1, 64, func(c *Config) *int { return &c.AuthMaxKeysPerToken }),
		"most JWKS keys one token is tried against (those of its `kid`, or of its algorithm without one)", "-"),
	def(sectionIdentity, "ADMIN_TOKEN", str("", func(c *Config) *string { return &c.AdminToken }),
		"bearer token of the API's administrator (at least 32 bytes): may delete and ban", "-").
		then(func(p *parser, c *Config) {
			if c.AdminToken != "" && len(c.AdminToken) < 32 {
				p.fail("ADMIN_TOKEN", "(hidden)", "a token of at least 32 bytes (openssl rand -hex 32)")
			}
		}),
	def(sectionIdentity, "BAN_REFRESH_INTERVAL", duration(30*time.Second, 100*time.Millisecond, func(c *Config) *time.Duration { return &c.BanRefresh }),
		"how often a node reads the bans in force from the store again (bans it missed while the cluster link was down)", "-"),

	def(sectionOperations, "SHUTDOWN_TIMEOUT", duration(15*time.Second, time.Millisecond, func(c *Config) *time.Duration { return &c.ShutdownTimeout }),
		"graceful shutdown bound (SIGINT/SIGTERM)", "-"),
	def(sectionOperations, "LOG_LEVEL", level(slog.LevelInfo, func(c *Config) *slog.Level { return &c.LogLevel }),
		"least important log lines written", "console.log"),
	def(sectionOperations, "LOG_FORMAT", oneOf("text", []string{"text", "json"}, func(c *Config) *string { return &c.LogFormat }),
		"log lines as text or as JSON objects", "console.log"),
	def(sectionOperations, "PPROF_ADDR", str("", func(c *Config) *string { return &c.PprofAddr }),
		"serve Go's profiler (`/debug/pprof/`) on this address, apart from the public port; give it a loopback address, "+
			"e.g. `127.0.0.1:6060`; unset: off", "-"),
	def(sectionOperations, "METRICS_ADDR", str("", func(c *Config) *string { return &c.MetricsAddr }),
		"serve `/metrics` and the profiler on this address only (`host:port`, e.g. `127.0.0.1:9090`), not on the public "+
			"port; unset: `/metrics` on the public port", "-").
		then(func(p *parser, c *Config) {
			if c.MetricsAddr == "" {
				return
			}
			if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
				p.fail("METRICS_ADDR", c.MetricsAddr, "host:port, e.g. 127.0.0.1:9090")
			}
		}),
}

// The sections of the settings reference, in its order.
const (
	sectionServer     = "Server and protocol"
	sectionLimits     = "Limits"
	sectionHistory    = "History, presence and typing"
	sectionRooms      = "Rooms"
	sectionAdmin      = "The Socket.IO Admin UI"
	sectionStore      = "The store"
	sectionPostgres   = "PostgreSQL"
	sectionRedis      = "Several nodes (Redis)"
	sectionKafka      = "Kafka"
	sectionIdentity   = "Identity and moderation"
	sectionOperations = "Operations"
)

// defaultHTTPConns is HTTP_MAX_CONNS_PER_IP's default: twice the sessions
// an address may have, plus 64. A polling session holds up to two
// connections (its GET and a POST), a WebSocket one until the session
// layer takes it over, and the rest is room for handshakes and API calls.
// No session limit, no connection limit.
func defaultHTTPConns(c *Config) int {
	if c.MaxConnectionsPerIP == 0 {
		return 0
	}
	return 2*c.MaxConnectionsPerIP + 64
}

// keyed reports whether tokens can be verified: a secret or a JWKS URL.
func keyed(c *Config) bool { return c.AuthJWTSecret != "" || c.AuthJWKSURL != "" }

// defaultAuthMode is AUTH_MODE's default: tokens are required once there
// is a key to verify them with.
func defaultAuthMode(c *Config) string {
	if keyed(c) {
		return "required"
	}
	return "off"
}
