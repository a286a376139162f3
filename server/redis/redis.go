// Package redis connects the chat server to a Redis shared by all nodes:
// the Socket.IO Redis adapter of zishang520's project (the sharded Pub/Sub
// mode, wire-compatible with Node's createShardedAdapter from
// @socket.io/redis-adapter, or the streams mode, compatible with
// @socket.io/redis-streams-adapter), a cluster-wide presence count, and a
// health check.
//
// The connection survives outages on its own: a dial that fails makes the
// next one wait (exponential back-off up to BackoffMax), so the adapter's
// receive loops, which retry at once, do not spin; errors are counted, and
// logged at most once a second.
package redis

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	goredis "github.com/redis/go-redis/v9"
	sioredis "github.com/zishang520/socket.io/adapters/redis/v3"
	sioadapter "github.com/zishang520/socket.io/adapters/redis/v3/adapter"
	"github.com/zishang520/socket.io/servers/socket/v3"
)

// Modes of the Socket.IO Redis adapter.
const (
	ModeSharded = "sharded"
	ModeStreams = "streams"
)

// Options configure the connection. Zero fields take their defaults.
type Options struct {
	// URL is redis:// or rediss:// (REDIS_URL).
	URL string
	// Password is used, with user "default", when URL carries none
	// (REDIS_PASSWD, as the original server).
	Password string
	// CAFile is a PEM file of CAs to trust for rediss:// (REDIS_CA_FILE).
	CAFile string
	// Mode is ModeSharded or ModeStreams (REDIS_ADAPTER_MODE). Mode,
	// KeyPrefix and RequestTimeout are the caller's to give: the
	// configuration owns their defaults.
	Mode string
	// KeyPrefix prefixes channels, streams and keys (REDIS_KEY_PREFIX;
	// Node's adapters use "socket.io").
	KeyPrefix string
	// RequestTimeout bounds every Redis command (REDIS_REQUEST_TIMEOUT).
	RequestTimeout time.Duration
	// BackoffMax bounds the wait between reconnection attempts (2 s).
	BackoffMax time.Duration
	// PresenceTTL is how long a node's published count lives without a
	// refresh (5 s): a crashed node drops out of the count within it.
	PresenceTTL time.Duration

	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

func (o *Options) defaults() error {
	if o.Mode != ModeSharded && o.Mode != ModeStreams {
		return fmt.Errorf("REDIS_ADAPTER_MODE=%q: want sharded or streams", o.Mode)
	}
	if o.KeyPrefix == "" {
		return errors.New("redis: no key prefix (REDIS_KEY_PREFIX)")
	}
	if o.RequestTimeout <= 0 {
		return fmt.Errorf("redis: RequestTimeout %v: want a positive duration (REDIS_REQUEST_TIMEOUT)", o.RequestTimeout)
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = 2 * time.Second
	}
	if o.PresenceTTL <= 0 {
		o.PresenceTTL = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return nil
}

// Cluster is this node's connection to the shared Redis.
type Cluster struct {
	o       Options
	client  goredis.UniversalClient
	lib     *sioredis.RedisClient
	adapter socket.AdapterConstructor
	// streams builds the adapters in streams mode (nil in sharded mode).
	streams *streamsBuilder
	nodeID  string
	m       *metrics
	cancel  context.CancelFunc

	errMu      sync.Mutex
	lastLog    time.Time
	suppressed int
}

// Open prepares the connection; it does not wait for Redis to answer, so a
// node starts (and serves its own clients) during an outage.
func Open(o Options) (*Cluster, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	opts, err := clientOptions(o)
	if err != nil {
		return nil, err
	}
	c := &Cluster{o: o, nodeID: randomID(), m: newMetrics(o.Registerer)}
	d := &backoffDialer{base: opts.Dialer, max: o.BackoffMax, m: c.m}
	if d.base == nil {
		nd := &net.Dialer{Timeout: o.RequestTimeout, KeepAlive: 30 * time.Second}
		tlsConf := opts.TLSConfig
		d.base = func(ctx context.Context, network, addr string) (net.Conn, error) {
			if tlsConf != nil {
				return (&tls.Dialer{NetDialer: nd, Config: tlsConf}).DialContext(ctx, network, addr)
			}
			return nd.DialContext(ctx, network, addr)
		}
	}
	opts.Dialer = d.dial
	// go-redis has one logger for the process: it is set once, and reports
	// to the cluster opened last (a node opens one).
	logTo.Store(c)
	setLogger.Do(func() { goredis.SetLogger(redisLogger{}) })
	c.client = goredis.NewClient(opts)
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	c.lib = sioredis.NewRedisClient(ctx, c.client)
	_ = c.lib.On("error", func(args ...any) {
		var err error
		if len(args) > 0 {
			err, _ = args[0].(error)
		}
		c.reportError(err)
	})
	switch o.Mode {
	case ModeStreams:
		so := sioadapter.DefaultRedisStreamsAdapterOptions()
		so.SetStreamName(o.KeyPrefix)
		so.SetChannelPrefix(o.KeyPrefix)
		so.SetSessionKeyPrefix(o.KeyPrefix + ":session:")
		so.SetMaxLen(sioadapter.DefaultStreamMaxLen)
		// The broker reads the stream itself (stream.go).
		c.streams = &streamsBuilder{lib: c.lib, opts: so}
		c.adapter = c.streams
	default:
		so := sioadapter.DefaultShardedRedisAdapterOptions()
		so.SetChannelPrefix(o.KeyPrefix)
		c.adapter = &sioadapter.ShardedRedisAdapterBuilder{Redis: c.lib, Opts: so}
	}
	return c, nil
}

// clientOptions turns the URL and password into go-redis options.
func clientOptions(o Options) (*goredis.Options, error) {
	u, err := url.Parse(o.URL)
	if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
		return nil, fmt.Errorf("REDIS_URL: want redis://[user:password@]host:port[/db] or rediss:// with the same parts")
	}
	opts, err := goredis.ParseURL(o.URL)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	// RESP2, whatever the URL asks. Under RESP3, go-redis (v9.18) first
	// hands every pub/sub push to its push-notification processor, which
	// reads the push's name from what is already buffered: when a burst
	// leaves a message cut just inside its name ("smes"), the name is
	// misread and the whole message is read and thrown away. One
	// broadcast in a few thousand went missing between nodes that way,
	// silently. RESP2 delivers pub/sub messages as plain replies, and the
	// adapter needs nothing of RESP3.
	opts.Protocol = 2
	if opts.Password == "" && o.Password != "" {
		if opts.Username == "" {
			opts.Username = "default"
		}
		opts.Password = o.Password
	}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("REDIS_CA_FILE: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("REDIS_CA_FILE=%s: no PEM certificate in it", o.CAFile)
		}
		if opts.TLSConfig == nil {
			opts.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: u.Hostname()}
		}
		opts.TLSConfig.RootCAs = pool
	}
	opts.DialTimeout = o.RequestTimeout
	opts.ReadTimeout = o.RequestTimeout
	opts.WriteTimeout = o.RequestTimeout
	opts.MaxRetries = 1
	opts.ClientName = "scalable-chat-go"
	return opts, nil
}

// Redacted returns the URL without its password, for logs.
func Redacted(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable)"
	}
	return u.Redacted()
}

// Adapter builds the Socket.IO cluster adapter in the configured mode.
func (c *Cluster) Adapter() socket.AdapterConstructor { return c.adapter }

// Mode is the adapter mode in use.
func (c *Cluster) Mode() string { return c.o.Mode }

// Ping checks that Redis answers.
func (c *Cluster) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.o.RequestTimeout)
	defer cancel()
	return c.client.Ping(ctx).Err()
}

// Close releases the connection.
func (c *Cluster) Close() error {
	c.cancel()
	return c.client.Close()
}

// reportError counts an error of the adapter and logs it, at most once a
// second (an outage makes thousands).
func (c *Cluster) reportError(err error) {
	if err == nil {
		return
	}
	c.m.errors.Inc()
	c.errMu.Lock()
	defer c.errMu.Unlock()
	if time.Since(c.lastLog) < time.Second {
		c.suppressed++
		return
	}
	c.o.Logger.Warn("redis adapter error", "err", err, "suppressed_since_last", c.suppressed)
	c.lastLog = time.Now()
	c.suppressed = 0
}

// redisLogger routes go-redis's own log lines (connection pool failures)
// through the rate-limited error report of the cluster opened last.
type redisLogger struct{}

var (
	setLogger sync.Once
	logTo     atomic.Pointer[Cluster]
)

func (redisLogger) Printf(_ context.Context, format string, v ...any) {
	if c := logTo.Load(); c != nil {
		c.reportError(fmt.Errorf(format, v...))
	}
}

// backoffDialer dials Redis, and after a failure makes the next dial wait,
// doubling up to max, until one succeeds.
type backoffDialer struct {
	base     func(ctx context.Context, network, addr string) (net.Conn, error)
	max      time.Duration
	m        *metrics
	failures atomic.Int64
}

func (d *backoffDialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if n := d.failures.Load(); n > 0 {
		wait := min(time.Duration(1<<min(n, 16))*25*time.Millisecond, d.max)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	conn, err := d.base(ctx, network, addr)
	if err != nil {
		d.failures.Add(1)
		d.m.up.Set(0)
		d.m.dialErrors.Inc()
		return nil, err
	}
	if d.failures.Swap(0) > 0 {
		d.m.reconnects.Inc()
	}
	d.m.up.Set(1)
	return conn, nil
}

func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
