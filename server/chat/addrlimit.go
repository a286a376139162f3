package chat

import (
	"net/netip"
	"sync"
	"time"
)

// ClientKey is the key under which per-address limits count a client
// address: the address itself for IPv4, its /64 for IPv6 (one host, or one
// home, is usually given a whole /64, so counting single IPv6 addresses
// would let it through by the billion). An address that does not parse is
// its own key.
func ClientKey(addr string) string {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return addr
	}
	a = a.Unmap()
	if a.Is4() {
		return a.String()
	}
	p, _ := a.WithZone("").Prefix(64)
	return p.String()
}

// AddrLimiter limits the rate of one action per client address (ClientKey):
// a TokenBucket per address, rate a second and burst at once. It is safe
// for concurrent use. Its memory is bounded: past maxAddrs addresses the
// ones whose buckets are full again are forgotten, and if that is not
// enough, all are (a flood of addresses then gets a fresh burst each,
// rather than locking anyone out).
type AddrLimiter struct {
	rate     float64
	burst    int
	maxAddrs int

	mu      sync.Mutex
	buckets map[string]*TokenBucket
}

// NewAddrLimiter returns a limiter of perSecond actions a second per
// address, burst at once; perSecond <= 0 allows everything.
func NewAddrLimiter(perSecond float64, burst, maxAddrs int) *AddrLimiter {
	return &AddrLimiter{rate: perSecond, burst: max(burst, 1), maxAddrs: max(maxAddrs, 1), buckets: map[string]*TokenBucket{}}
}

// Take spends one action of addr's; false and how long until the next
// when none is left.
func (l *AddrLimiter) Take(addr string, now time.Time) (bool, time.Duration) {
	if l == nil || l.rate <= 0 {
		return true, 0
	}
	key := ClientKey(addr)
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= l.maxAddrs {
			l.forget(now)
		}
		b = NewTokenBucket(l.rate, l.burst, now)
		l.buckets[key] = b
	}
	return b.Take(now)
}

// forget drops the buckets that are full again, or every one when that
// frees too little; l.mu is held.
func (l *AddrLimiter) forget(now time.Time) {
	refill := time.Duration(float64(l.burst) / l.rate * float64(time.Second))
	for k, b := range l.buckets {
		if now.Sub(b.last) >= refill {
			delete(l.buckets, k)
		}
	}
	if len(l.buckets) >= l.maxAddrs*3/4 {
		clear(l.buckets)
	}
}
