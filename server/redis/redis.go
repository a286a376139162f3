// Package redis connects the chat server to a Redis shared by all nodes, a
// single server (REDIS_URL) or a Redis Cluster (REDIS_CLUSTER_NODES): the
// Socket.IO Redis adapter (the sharded Pub/Sub mode, ours on the wire of
// Node's createShardedAdapter from @socket.io/redis-adapter, see
// sharded.go; or the streams mode of zishang520's project, compatible with
// @socket.io/redis-streams-adapter), a cluster-wide presence count, guest
// names, and a health check.
//
// Guarantees on a Redis Cluster: when a master dies or a slot migrates,
// every node subscribes again by itself where the channel is served now
// (subscriber.go), and the publications go to the new master; in sharded
// mode, what other nodes did not get meanwhile is counted and logged by the
// publisher (chat_cluster_undelivered_total), and a publisher whose
// publications failed first waits (up to seconds) for the others to be
// back; in streams mode nothing is missed, the stream being replicated.
//
// The connection survives outages on its own: a dial that fails makes the
// next one to the same address wait (exponential back-off up to
// BackoffMax), so the adapter's receive loops, which retry at once, do not
// spin; errors are counted, and logged at most once a second.
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
	"strings"
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

	// The subscription modes of sharded mode, as Node's.
	SubscriptionDynamic = string(sioredis.DynamicSubscriptionMode)
	SubscriptionStatic  = string(sioredis.StaticSubscriptionMode)
)

// Options configure the connection. Zero fields take their defaults.
type Options struct {
	// URL is redis:// or rediss:// (REDIS_URL): a single Redis server.
	URL string
	// ClusterNodes are the seeds of a Redis Cluster
	// (REDIS_CLUSTER_NODES): host:port, or redis:// and rediss:// URLs,
	// which then give the credentials and TLS of every node. Set, they
	// select cluster mode, and URL must be empty.
	ClusterNodes []string
	// Password is used, with user "default", when the URL (or the seeds)
	// carry none (REDIS_PASSWD, as the original server).
	Password string
	// CAFile is a PEM file of CAs to trust for rediss:// (REDIS_CA_FILE).
	CAFile string
	// Mode is ModeSharded or ModeStreams (REDIS_ADAPTER_MODE). Mode,
	// KeyPrefix and RequestTimeout are the caller's to give: the
	// configuration owns their defaults.
	Mode string
	// Subscription is how sharded mode routes the rooms of the hub
	// (REDIS_SUBSCRIPTION_MODE, as Node's subscriptionMode):
	// SubscriptionDynamic (the default) gives each room a channel of its
	// own, SubscriptionStatic sends every room on the namespace's channel.
	Subscription string
	// KeyPrefix prefixes channels, streams and keys (REDIS_KEY_PREFIX;
	// Node's adapters use "socket.io").
	KeyPrefix string
	// RequestTimeout bounds every Redis command (REDIS_REQUEST_TIMEOUT).
	RequestTimeout time.Duration
	// BackoffMax bounds the wait between reconnection attempts to one
	// address, and between a publication's retries (2 s; 150 ms on a
	// cluster, where a dead master's successor must be found within
	// seconds).
	BackoffMax time.Duration
	// PresenceTTL is how long a node's published count lives without a
	// refresh (5 s): a crashed node drops out of the count within it. It
	// must be several syncs long: the node sets it to at least 4
	// PRESENCE_INTERVALs.
	PresenceTTL time.Duration

	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

func (o *Options) defaults() error {
	if (o.URL == "") == (len(o.ClusterNodes) == 0) {
		return errors.New("redis: give REDIS_URL (one server) or REDIS_CLUSTER_NODES (a cluster), not both")
	}
	if o.Mode != ModeSharded && o.Mode != ModeStreams {
		return fmt.Errorf("REDIS_ADAPTER_MODE=%q: want sharded or streams", o.Mode)
	}
	switch o.Subscription {
	case "":
		o.Subscription = SubscriptionDynamic
	case SubscriptionDynamic, SubscriptionStatic:
	default:
		return fmt.Errorf("REDIS_SUBSCRIPTION_MODE=%q: want dynamic or static", o.Subscription)
	}
	if o.KeyPrefix == "" {
		return errors.New("redis: no key prefix (REDIS_KEY_PREFIX)")
	}
	if o.RequestTimeout <= 0 {
		return fmt.Errorf("redis: RequestTimeout %v: want a positive duration (REDIS_REQUEST_TIMEOUT)", o.RequestTimeout)
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = 2 * time.Second
		if len(o.ClusterNodes) > 0 {
			o.BackoffMax = 150 * time.Millisecond
		}
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
	o      Options
	client goredis.UniversalClient
	// cluster is client in cluster mode (nil with one server).
	cluster *goredis.ClusterClient
	// node holds the options of a connection to one node (its address
	// aside): the subscriber's connections are made with them.
	node    *goredis.Options
	lib     *sioredis.RedisClient
	adapter socket.AdapterConstructor
	// streams builds the adapters in streams mode (nil in sharded mode).
	streams *streamsBuilder
	// subs and reach serve the sharded mode (nil in streams mode).
	subs   *subscriber
	reach  *reach
	nodeID string
	m      *metrics
	cancel context.CancelFunc

	errMu      sync.Mutex
	lastLog    time.Time
	suppressed int

	presenceOnce sync.Once
	presence     *Presence
}

// Open prepares the connection; it does not wait for Redis to answer, so a
// node starts (and serves its own clients) during an outage.
func Open(o Options) (*Cluster, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	c := &Cluster{o: o, nodeID: randomID(), m: newMetrics(o.Registerer)}
	if len(o.ClusterNodes) > 0 {
		opts, node, err := clusterOptions(o)
		if err != nil {
			return nil, err
		}
		opts.Dialer = c.dialer(opts.TLSConfig)
		node.Dialer = opts.Dialer
		c.cluster = goredis.NewClusterClient(opts)
		c.client, c.node = c.cluster, node
	} else {
		opts, err := clientOptions(o)
		if err != nil {
			return nil, err
		}
		opts.Dialer = c.dialer(opts.TLSConfig)
		c.client, c.node = goredis.NewClient(opts), opts
	}
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
		c.subs = newSubscriber(c)
		c.reach = newReach(o.Logger, o.Registerer)
		go c.reach.run(ctx)
		c.adapter = &shardedBuilder{c: c}
	}
	// go-redis's logger reports to c once c is whole: the clients of a
	// cluster opened before log meanwhile, and a report reads c.cluster.
	logTarget.Store(c)
	setLogger.Do(func() { goredis.SetLogger(redisLogger{}) })
	return c, nil
}

// routingStale asks the cluster client to read the cluster's slots again
// (soon, once for many callers): a command failed, maybe on a master that
// is gone.
func (c *Cluster) routingStale() {
	if c.cluster != nil {
		c.cluster.ReloadState(context.Background())
	}
}

// dialer dials the nodes with back-off after failures (backoffDialer).
func (c *Cluster) dialer(tlsConf *tls.Config) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &backoffDialer{base: baseDialer(c.o.RequestTimeout, tlsConf), max: c.o.BackoffMax, m: c.m}
	return d.dial
}

// baseDialer dials a node over TCP, or TLS when tlsConf is set.
func baseDialer(timeout time.Duration, tlsConf *tls.Config) func(ctx context.Context, network, addr string) (net.Conn, error) {
	nd := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if tlsConf != nil {
			return (&tls.Dialer{NetDialer: nd, Config: tlsConf}).DialContext(ctx, network, addr)
		}
		return nd.DialContext(ctx, network, addr)
	}
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
	// RESP2, whatever the URL asks (settle). Under RESP3, go-redis (v9.18) first
	// hands every pub/sub push to its push-notification processor, which
	// reads the push's name from what is already buffered: when a burst
	// leaves a message cut just inside its name ("smes"), the name is
	// misread and the whole message is read and thrown away. One
	// broadcast in a few thousand went missing between nodes that way,
	// silently. RESP2 delivers pub/sub messages as plain replies, and the
	// adapter needs nothing of RESP3.
	opts.Username, opts.Password = credentials(opts.Username, opts.Password, o.Password)
	if opts.TLSConfig, err = tlsConfig(opts.TLSConfig, u.Hostname(), o.CAFile); err != nil {
		return nil, err
	}
	settle(opts, o)
	return opts, nil
}

// settle gives opts what every connection of ours has: RESP2 (see
// clientOptions), the request timeout, one retry, our client name.
func settle(opts *goredis.Options, o Options) {
	opts.Protocol = 2
	opts.DialTimeout = o.RequestTimeout
	opts.ReadTimeout = o.RequestTimeout
	opts.WriteTimeout = o.RequestTimeout
	opts.MaxRetries = 1
	opts.ClientName = "scalable-chat-go"
}

// clusterOptions turns the cluster's seeds and password into go-redis
// options, and the options of one node (without its address). A seed is
// host:port, or a redis:// or rediss:// URL; URLs give the scheme and
// credentials of every node, so they must agree.
func clusterOptions(o Options) (*goredis.ClusterOptions, *goredis.Options, error) {
	var addrs []string
	var first *url.URL
	for _, seed := range o.ClusterNodes {
		addr := seed
		if strings.Contains(seed, "://") {
			u, err := url.Parse(seed)
			if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Port() == "" ||
				(u.Path != "" && u.Path != "/" && u.Path != "/0") {
				return nil, nil, fmt.Errorf("REDIS_CLUSTER_NODES: %s: want host:port, or redis://[user:password@]host:port (or rediss://); a cluster has database 0 only", Redacted(seed))
			}
			if first == nil {
				first = u
			} else if u.Scheme != first.Scheme || u.User.String() != first.User.String() {
				return nil, nil, errors.New("REDIS_CLUSTER_NODES: the seeds' URLs differ in scheme or credentials; every node of a cluster takes the same")
			}
			addr = u.Host
		}
		if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
			return nil, nil, fmt.Errorf("REDIS_CLUSTER_NODES: %s: want host:port", Redacted(seed))
		}
		addrs = append(addrs, addr)
	}
	node := &goredis.Options{}
	if first != nil {
		node.Username = first.User.Username()
		node.Password, _ = first.User.Password()
	}
	node.Username, node.Password = credentials(node.Username, node.Password, o.Password)
	host, _, _ := net.SplitHostPort(addrs[0])
	if first != nil && first.Scheme == "rediss" {
		node.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
	}
	var err error
	if node.TLSConfig, err = tlsConfig(node.TLSConfig, host, o.CAFile); err != nil {
		return nil, nil, err
	}
	settle(node, o)
	// One dial a try (go-redis makes 5, 100 ms apart): a dead master
	// must not hold a command, or the subscriber, for half a second.
	node.DialerRetries = 1
	return &goredis.ClusterOptions{
		Addrs: addrs, Username: node.Username, Password: node.Password, TLSConfig: node.TLSConfig,
		Protocol: node.Protocol, ClientName: node.ClientName, MaxRetries: node.MaxRetries,
		DialTimeout: node.DialTimeout, ReadTimeout: node.ReadTimeout, WriteTimeout: node.WriteTimeout,
		DialerRetries: node.DialerRetries,
		// The slots are read again a second after they were last used
		// (10 s by default): the streams adapter's reads follow a failover
		// that soon. The sharded mode's subscriber and a failed command ask
		// for a read at once (routingStale).
		ClusterStateReloadInterval: time.Second,
	}, node, nil
}

// credentials adds REDIS_PASSWD, with user "default", where the URL gave
// no password.
func credentials(user, password, fallback string) (string, string) {
	if password == "" && fallback != "" {
		if user == "" {
			user = "default"
		}
		password = fallback
	}
	return user, password
}

// tlsConfig adds the CAs of caFile to conf (made for serverName when the
// URL did not ask for TLS: a CA file asks for it).
func tlsConfig(conf *tls.Config, serverName, caFile string) (*tls.Config, error) {
	if caFile == "" {
		return conf, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("REDIS_CA_FILE: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("REDIS_CA_FILE=%s: no PEM certificate in it", caFile)
	}
	if conf == nil {
		conf = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
	}
	conf.RootCAs = pool
	return conf, nil
}

// Redacted returns the URL without its password, for logs.
func Redacted(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable)"
	}
	return u.Redacted()
}

// nodeFor is the client of the node that holds key: the one server, or the
// master of key's slot in a cluster (for commands that go-redis would send
// to any node, such as SCAN).
func (c *Cluster) nodeFor(ctx context.Context, key string) (goredis.Cmdable, error) {
	if c.cluster == nil {
		return c.client, nil
	}
	return c.cluster.MasterForKey(ctx, key)
}

// subscribers counts the subscribers of channel (sharded: of the sharded
// channel) on the node that serves it: a cluster's masters count only
// their own; 0 when Redis does not answer.
func (c *Cluster) subscribers(channel string, sharded bool) int64 {
	ctx, cancel := context.WithTimeout(context.Background(), c.o.RequestTimeout)
	defer cancel()
	node, err := c.nodeFor(ctx, channel)
	if err != nil {
		c.reportError(err)
		return 0
	}
	count := node.PubSubNumSub
	if sharded {
		count = node.PubSubShardNumSub
	}
	res, err := count(ctx, channel).Result()
	if err != nil {
		c.reportError(err)
		return 0
	}
	return res[channel]
}

// Adapter builds the Socket.IO cluster adapter in the configured mode.
func (c *Cluster) Adapter() socket.AdapterConstructor { return c.adapter }

// KeyPrefix prefixes the channels, streams and keys of the cluster.
func (c *Cluster) KeyPrefix() string { return c.o.KeyPrefix }

// Mode is the adapter mode in use.
func (c *Cluster) Mode() string { return c.o.Mode }

// Ping checks that Redis answers: the server, or on a cluster every
// master (as the cluster client knows them) and the cluster's own state.
func (c *Cluster) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.o.RequestTimeout)
	defer cancel()
	if c.cluster == nil {
		return c.client.Ping(ctx).Err()
	}
	info, err := c.cluster.ClusterInfo(ctx).Result()
	if err != nil {
		return err
	}
	if !strings.Contains(info, "cluster_state:ok") {
		return errors.New("the cluster says its state is fail: some slots are not served")
	}
	return c.cluster.ForEachMaster(ctx, func(ctx context.Context, m *goredis.Client) error {
		if err := m.Ping(ctx).Err(); err != nil {
			return fmt.Errorf("master %s: %w", m.Options().Addr, err)
		}
		return nil
	})
}

// CheckSubscriptions fails while a sharded subscription is missing (nil in
// streams mode).
func (c *Cluster) CheckSubscriptions(context.Context) error {
	if c.subs == nil {
		return nil
	}
	st := c.subs.state()
	if st.Subscribed+st.Pending == st.Wanted {
		return nil
	}
	if st.MissingSince.IsZero() {
		return fmt.Errorf("%d of %d sharded subscriptions not made yet", st.Wanted-st.Subscribed, st.Wanted)
	}
	return fmt.Errorf("%d of %d sharded subscriptions missing, the oldest for %v: what other nodes publish on them does not reach this node",
		st.Wanted-st.Subscribed, st.Wanted, time.Since(st.MissingSince).Round(time.Millisecond))
}

// Status describes the connection for /readyz: the deployment (server or
// cluster), the adapter mode, and in sharded mode the subscriptions and,
// on a cluster, its masters and the channels that moved.
func (c *Cluster) Status() map[string]any {
	out := map[string]any{"deployment": "server", "mode": c.o.Mode}
	if c.cluster != nil {
		out["deployment"] = "cluster"
	}
	if c.subs == nil {
		return out
	}
	st := c.subs.state()
	out["subscriptions"] = map[string]any{"wanted": st.Wanted, "subscribed": st.Subscribed}
	if !st.MissingSince.IsZero() {
		out["subscriptions_missing_since"] = st.MissingSince.UTC().Format(time.RFC3339Nano)
	}
	if c.cluster != nil {
		out["masters"] = st.Masters
		out["slot_moves"] = st.Moves
		if !st.LastMove.IsZero() {
			out["last_slot_move"] = st.LastMove.UTC().Format(time.RFC3339Nano)
		}
	}
	return out
}

// Close releases the connection.
func (c *Cluster) Close() error {
	c.cancel()
	if c.subs != nil {
		c.subs.close()
	}
	return c.client.Close()
}

// reportError counts an error of the adapter and logs it, at most once a
// second (an outage makes thousands).
func (c *Cluster) reportError(err error) {
	if err == nil {
		return
	}
	c.m.errors.Inc()
	c.routingStale()
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
// through the rate-limited error report of the Cluster opened last.
// go-redis has one logger for the process, set once: setting it at every
// Open raced with the clients already running.
type redisLogger struct{}

var (
	setLogger sync.Once
	logTarget atomic.Pointer[Cluster]
)

func (redisLogger) Printf(_ context.Context, format string, v ...any) {
	if c := logTarget.Load(); c != nil {
		c.reportError(fmt.Errorf(format, v...))
	}
}

// backoffDialer dials Redis, and after a failure makes the next dial to
// the same address wait, doubling up to max, until one succeeds. Per
// address: a cluster's dead master must not slow the dials to the others.
type backoffDialer struct {
	base func(ctx context.Context, network, addr string) (net.Conn, error)
	max  time.Duration
	m    *metrics

	mu       sync.Mutex
	failures map[string]int
}

func (d *backoffDialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	n := d.failures[addr]
	d.mu.Unlock()
	if n > 0 {
		wait := min(time.Duration(1<<min(n, 16))*25*time.Millisecond, d.max)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	conn, err := d.base(ctx, network, addr)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.failures == nil {
		d.failures = make(map[string]int)
	}
	if err != nil {
		d.failures[addr]++
		d.m.up.Set(0)
		d.m.dialErrors.Inc()
		return nil, err
	}
	if d.failures[addr] > 0 {
		delete(d.failures, addr)
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
