// Package hist records latencies in a fixed-size log-linear histogram that
// many goroutines update at once without locks, and reads percentiles from
// it.
//
// Values are non-negative integers (the bench records microseconds). Below
// 2^SubBits every value has its own bucket; above, each power of two is cut
// into 2^SubBits buckets, so a bucket's width is at most 1/2^SubBits
// (about 3%) of its values. A percentile is reported as the upper bound of
// its bucket, never above the exact maximum: it may overstate by that width,
// never understate.
package hist

import (
	"math/bits"
	"sync/atomic"
)

// SubBits is log2 of the buckets per power of two.
const SubBits = 5

const (
	sub = 1 << SubBits
	// MaxValue is the largest value kept apart; larger ones count as it
	// (2^40 µs is about 12.7 days).
	MaxValue = 1<<40 - 1
	buckets  = (40 - SubBits + 1) * sub
)

// Index returns the bucket of v.
func Index(v uint64) int {
	if v > MaxValue {
		v = MaxValue
	}
	if v < sub {
		return int(v)
	}
	shift := bits.Len64(v) - 1 - SubBits
	return (shift+1)*sub + int((v>>uint(shift))&(sub-1))
}

// Bounds returns the smallest and the largest value of bucket i.
func Bounds(i int) (lo, hi uint64) {
	if i < sub {
		return uint64(i), uint64(i)
	}
	shift := uint(i/sub - 1)
	lo = uint64(sub+i%sub) << shift
	return lo, lo + 1<<shift - 1
}

// Histogram counts values. Its zero value is ready; Record may be called
// from many goroutines at once.
type Histogram struct {
	counts [buckets]atomic.Uint64
	n      atomic.Uint64
	max    atomic.Uint64
	sum    atomic.Uint64
}

// Record counts one value.
func (h *Histogram) Record(v uint64) {
	if v > MaxValue {
		v = MaxValue
	}
	h.counts[Index(v)].Add(1)
	h.n.Add(1)
	h.sum.Add(v)
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			return
		}
	}
}

// Sharded spreads Record over several histograms so that goroutines on
// different cores do not fight over one cache line; read it with Merge.
type Sharded struct {
	shards []Histogram
}

// NewSharded returns n shards (at least one).
func NewSharded(n int) *Sharded {
	return &Sharded{shards: make([]Histogram, max(n, 1))}
}

// Record counts v in shard key modulo the number of shards.
func (s *Sharded) Record(key int, v uint64) {
	s.shards[key%len(s.shards)].Record(v)
}

// Merge returns the counts of all shards.
func (s *Sharded) Merge() Snapshot {
	var out Snapshot
	for i := range s.shards {
		out.add(&s.shards[i])
	}
	return out
}

// Snapshot is a copy of a histogram's counts, for reading.
type Snapshot struct {
	Counts [buckets]uint64
	N      uint64
	Max    uint64
	Sum    uint64
}

// Snapshot copies h.
func (h *Histogram) Snapshot() Snapshot {
	var out Snapshot
	out.add(h)
	return out
}

func (s *Snapshot) add(h *Histogram) {
	for i := range h.counts {
		s.Counts[i] += h.counts[i].Load()
	}
	s.N += h.n.Load()
	s.Sum += h.sum.Load()
	s.Max = max(s.Max, h.max.Load())
}

// Quantile returns the value at or below which a fraction q (0..1) of the
// counted values lie: the upper bound of the bucket holding the
// ceil(q*N)-th smallest value, capped at the exact maximum. It returns 0
// when nothing was counted.
func (s *Snapshot) Quantile(q float64) uint64 {
	if s.N == 0 {
		return 0
	}
	if q <= 0 {
		q = 0
	}
	rank := uint64(q * float64(s.N))
	if float64(rank) < q*float64(s.N) {
		rank++ // ceil
	}
	rank = min(max(rank, 1), s.N)
	var acc uint64
	for i, c := range s.Counts {
		acc += c
		if acc >= rank {
			_, hi := Bounds(i)
			return min(hi, s.Max)
		}
	}
	return s.Max
}

// Mean returns the average of the counted values (0 when none).
func (s *Snapshot) Mean() float64 {
	if s.N == 0 {
		return 0
	}
	return float64(s.Sum) / float64(s.N)
}
