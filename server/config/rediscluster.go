package config

import (
	"net"
	"net/url"
	"strconv"
	"strings"
)

// redisClusterNodes reads REDIS_CLUSTER_NODES, the seeds of a Redis
// Cluster: host:port, or redis:// and rediss:// URLs (with the scheme and
// credentials of every node, so the URLs must agree; a cluster has
// database 0 only). Set, it selects cluster mode, and REDIS_URL must be
// empty. Values are shown without their passwords.
func (p *parser) redisClusterNodes(name, redisURL string) []string {
	seeds := p.list(name, nil)
	if len(seeds) == 0 {
		return nil
	}
	if redisURL != "" {
		p.fail(name, redactedList(seeds), "unset when REDIS_URL is set: one Redis server (REDIS_URL) or a cluster (REDIS_CLUSTER_NODES)")
		return nil
	}
	var first *url.URL
	for _, seed := range seeds {
		addr := seed
		if strings.Contains(seed, "://") {
			u, err := url.Parse(seed)
			if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || (u.Path != "" && u.Path != "/" && u.Path != "/0") {
				p.fail(name, redacted(seed), "host:port, or redis://[user:password@]host:port (or rediss://) without a database")
				return nil
			}
			if first != nil && (u.Scheme != first.Scheme || u.User.String() != first.User.String()) {
				p.fail(name, redactedList(seeds), "URLs with one scheme and the same credentials: every node of a cluster takes them")
				return nil
			}
			first, addr = u, u.Host
		}
		host, port, err := net.SplitHostPort(addr)
		if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
			p.fail(name, redacted(seed), "host:port seeds, comma separated (10.0.0.1:6379,10.0.0.2:6379)")
			return nil
		}
	}
	return seeds
}

func redacted(seed string) string {
	if u, err := url.Parse(seed); err == nil && strings.Contains(seed, "://") {
		return u.Redacted()
	}
	return seed
}

func redactedList(seeds []string) string {
	out := make([]string, len(seeds))
	for i, s := range seeds {
		out[i] = redacted(s)
	}
	return strings.Join(out, ",")
}

// redisSeeds reads REDIS_CLUSTER_NODES after REDIS_URL, which it excludes.
func redisSeeds(field func(*Config) *[]string) reader {
	return reader{def: none(""), accepts: "`host:port` or `redis[s]://` URLs, comma separated; not with `REDIS_URL`",
		read: func(p *parser, name string, c *Config) {
			*field(c) = p.redisClusterNodes(name, c.RedisURL)
		}}
}
