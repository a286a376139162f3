package chat

import (
	"math"
	"time"
)

// TokenBucket limits the rate of one sender: Rate tokens a second, at most
// Burst at once. It is not safe for concurrent use; each connection owns one
// and uses it from its own serial event queue.
type TokenBucket struct {
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
}

// NewTokenBucket returns a full bucket. A rate <= 0 disables the limit.
func NewTokenBucket(perSecond float64, burst int, now time.Time) *TokenBucket {
	if burst < 1 {
		burst = 1
	}
	return &TokenBucket{rate: perSecond, burst: float64(burst), tokens: float64(burst), last: now}
}

// Take spends one token. When none is left it returns false and how long
// until the next token.
func (b *TokenBucket) Take(now time.Time) (ok bool, retryAfter time.Duration) {
	if b.rate <= 0 {
		return true, 0
	}
	if elapsed := now.Sub(b.last); elapsed > 0 {
		b.tokens = math.Min(b.burst, b.tokens+elapsed.Seconds()*b.rate)
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := time.Duration((1 - b.tokens) / b.rate * float64(time.Second))
	return false, max(wait, time.Millisecond)
}
