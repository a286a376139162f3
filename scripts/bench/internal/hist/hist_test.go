package hist

import (
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
)

func TestIndexAndBounds(t *testing.T) {
	// Every value lies within the bounds of its bucket, buckets are in
	// order, and a bucket is at most 1/32 of its values wide.
	vals := []uint64{0, 1, 31, 32, 33, 63, 64, 65, 100, 1000, 1023, 1024, 1025, 123456, 1 << 39, MaxValue}
	for i := 0; i < 10000; i++ {
		vals = append(vals, rand.Uint64N(MaxValue))
	}
	for _, v := range vals {
		i := Index(v)
		lo, hi := Bounds(i)
		if v < lo || v > hi {
			t.Fatalf("value %d in bucket %d [%d, %d]", v, i, lo, hi)
		}
		if v >= 32 && float64(hi-lo+1) > float64(lo)/32+1 {
			t.Fatalf("bucket %d [%d, %d] too wide", i, lo, hi)
		}
	}
	for i := 1; i < buckets; i++ {
		_, prevHi := Bounds(i - 1)
		lo, _ := Bounds(i)
		if lo != prevHi+1 {
			t.Fatalf("bucket %d starts at %d, previous ends at %d", i, lo, prevHi)
		}
	}
	if Index(MaxValue+12345) != buckets-1 {
		t.Fatalf("values above MaxValue go to the last bucket")
	}
}

func TestQuantile(t *testing.T) {
	tests := []struct {
		name   string
		values []uint64
		q      float64
		want   uint64
	}{
		{"empty", nil, 0.5, 0},
		{"one", []uint64{7}, 0.99, 7},
		{"small exact median", []uint64{1, 2, 3, 4, 5}, 0.5, 3},
		{"small exact p0", []uint64{5, 1, 3}, 0, 1},
		{"small exact max", []uint64{1, 2, 30}, 1, 30},
		{"ceil rank: p50 of 4 is the 2nd", []uint64{10, 20, 30, 31}, 0.5, 20},
		{"p99 of 100 is the 99th", seq(1, 100), 0.99, 99},
		// 1000 lies in bucket [992, 1007]: the upper bound is reported,
		// capped at the maximum.
		{"upper bound of the bucket", []uint64{1000, 1000, 1000}, 0.5, 1000},
		{"upper bound below max", []uint64{1000, 5000}, 0.5, 1007},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Histogram
			for _, v := range tt.values {
				h.Record(v)
			}
			s := h.Snapshot()
			if got := s.Quantile(tt.q); got != tt.want {
				t.Fatalf("Quantile(%v) = %d, want %d", tt.q, got, tt.want)
			}
		})
	}
}

// The reported percentile is never below the exact one and at most one
// bucket width (~3%) above it.
func TestQuantileAgainstSorted(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var vals []uint64
	var h Histogram
	for i := 0; i < 100000; i++ {
		v := uint64(r.ExpFloat64() * 20000) // latency-like tail, µs
		vals = append(vals, v)
		h.Record(v)
	}
	slices.Sort(vals)
	s := h.Snapshot()
	for _, q := range []float64{0.5, 0.9, 0.95, 0.99, 0.999, 1} {
		rank := int(q*float64(len(vals))+0.999999) - 1
		exact := vals[max(rank, 0)]
		got := s.Quantile(q)
		if got < exact || float64(got) > float64(exact)*1.032+1 {
			t.Errorf("q=%v: got %d, exact %d", q, got, exact)
		}
	}
	if s.Max != vals[len(vals)-1] {
		t.Errorf("max %d, want %d", s.Max, vals[len(vals)-1])
	}
}

func TestShardedConcurrent(t *testing.T) {
	s := NewSharded(4)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 1; i <= 1000; i++ {
				s.Record(g, uint64(i))
			}
		}()
	}
	wg.Wait()
	m := s.Merge()
	if m.N != 8000 || m.Max != 1000 || m.Sum != 8*500500 {
		t.Fatalf("merged N=%d max=%d sum=%d", m.N, m.Max, m.Sum)
	}
	if got := m.Mean(); got != 500.5 {
		t.Fatalf("mean %v", got)
	}
}

func seq(a, b uint64) []uint64 {
	var out []uint64
	for v := a; v <= b; v++ {
		out = append(out, v)
	}
	return out
}
