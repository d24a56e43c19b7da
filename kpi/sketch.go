package kpi

import (
	"math"
	"slices"

	"github.com/clickstreamkit/clickstream/internal/snap"
)

// Sketch is a mergeable quantile sketch with relative error at most 1 % for
// values above 1e-3, without an upper bound (a DDSketch with logarithmic
// bins: a replay of years-old data reports its latency as it is); values at
// or below 1e-3, negative ones and NaN count as 0. It holds only the span of
// bins between the smallest and the largest value seen, a few hundred for
// latencies from milliseconds to hours. Its zero value is empty and ready; a
// copy shares the bins: use Clone for an independent one.
type Sketch struct {
	zero  uint64
	count uint64
	lo    int32    // the index of bins[0]
	bins  []uint32 // bins[i] counts index lo+i
}

const (
	relErr = 0.01
	minVal = 1e-3
)

var (
	gamma    = (1 + relErr) / (1 - relErr)
	logGamma = math.Log(gamma)
	binShift = int(math.Ceil(math.Log(minVal) / logGamma))
	maxIndex = index(math.MaxFloat64) // +Inf counts there
)

// index returns the bin of v > minVal.
func index(v float64) int32 {
	return int32(int(math.Ceil(math.Log(v)/logGamma)) - binShift)
}

// Add counts one value.
func (s *Sketch) Add(v float64) {
	s.count++
	if !(v > minVal) { // NaN too
		s.zero++
		return
	}
	i := maxIndex
	if v <= math.MaxFloat64 {
		i = index(v)
	}
	if k := i - s.lo; k >= 0 && int(k) < len(s.bins) { // the common case, inline
		s.bins[k]++
		return
	}
	s.add(i, 1)
}

// add counts n at bin i, growing the span to it.
func (s *Sketch) add(i int32, n uint32) {
	if k := i - s.lo; k >= 0 && int(k) < len(s.bins) {
		s.bins[k] += n
		return
	}
	s.grow(i)
	s.bins[i-s.lo] += n
}

func (s *Sketch) grow(i int32) {
	if len(s.bins) == 0 {
		s.lo = i
		s.bins = append(s.bins[:0], 0)
		return
	}
	if i < s.lo {
		k := int(s.lo - i)
		s.bins = slices.Insert(s.bins, 0, make([]uint32, k)...)
		s.lo = i
		return
	}
	s.bins = append(s.bins, make([]uint32, int(i-s.lo)+1-len(s.bins))...)
}

// Count returns the number of values added.
func (s *Sketch) Count() uint64 { return s.count }

// Reset empties s, keeping its memory.
func (s *Sketch) Reset() {
	clear(s.bins)
	*s = Sketch{bins: s.bins[:0]}
}

// Clone returns a copy of s that shares nothing with it.
func (s *Sketch) Clone() Sketch {
	c := *s
	c.bins = nil // empty ones compare equal
	if len(s.bins) > 0 {
		c.bins = slices.Clone(s.bins)
	}
	return c
}

// Merge adds o's values to s.
func (s *Sketch) Merge(o *Sketch) {
	s.zero += o.zero
	s.count += o.count
	if len(o.bins) == 0 {
		return
	}
	s.add(o.lo, 0)
	s.add(o.lo+int32(len(o.bins))-1, 0)
	off := int(o.lo - s.lo)
	for i, c := range o.bins {
		s.bins[off+i] += c
	}
}

// Quantile returns the q-quantile (0 <= q <= 1), 0 when empty.
func (s *Sketch) Quantile(q float64) float64 {
	if s.count == 0 {
		return 0
	}
	rank := uint64(q * float64(s.count-1))
	seen := s.zero
	if seen > rank {
		return 0
	}
	for i, c := range s.bins {
		if seen += uint64(c); seen > rank {
			return value(s.lo + int32(i))
		}
	}
	return value(s.lo + int32(len(s.bins)) - 1)
}

// value is the value bin i stands for, within 1 % of every value in it.
func value(i int32) float64 {
	return min(2*math.Pow(gamma, float64(int(i)+binShift))/(gamma+1), math.MaxFloat64)
}

// Bins returns the non-empty bins as (index, count) pairs, index -1 for zero,
// the sparse form that records and documents carry.
func (s *Sketch) Bins() []Bin {
	var out []Bin
	if s.zero > 0 {
		out = append(out, Bin{Index: -1, Count: s.zero})
	}
	for i, c := range s.bins {
		if c > 0 {
			out = append(out, Bin{Index: s.lo + int32(i), Count: uint64(c)})
		}
	}
	return out
}

// Bin is one sparse bin of a Sketch.
type Bin struct {
	Index int32  `json:"i"`
	Count uint64 `json:"n"`
}

// SketchOf rebuilds a sketch from its sparse bins; out-of-range ones are
// ignored.
func SketchOf(bins []Bin) Sketch {
	var s Sketch
	for _, b := range bins {
		switch {
		case b.Index == -1:
			s.zero += b.Count
		case b.Index >= 0 && b.Index <= maxIndex:
			s.add(b.Index, uint32(b.Count))
		default:
			continue
		}
		s.count += b.Count
	}
	return s
}

func (s *Sketch) appendBinary(dst []byte) []byte {
	bins := s.Bins()
	dst = snap.AppendUint(dst, uint64(len(bins)))
	for _, b := range bins {
		dst = snap.AppendInt(dst, int64(b.Index))
		dst = snap.AppendUint(dst, b.Count)
	}
	return dst
}

func (s *Sketch) restore(r *snap.Reader) {
	bins := make([]Bin, r.Len())
	for i := range bins {
		bins[i] = Bin{Index: int32(r.Int()), Count: r.Uint()}
	}
	*s = SketchOf(bins)
}
