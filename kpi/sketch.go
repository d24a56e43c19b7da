package kpi

import (
	"math"

	"github.com/clickstreamkit/clickstream/internal/snap"
)

// Sketch is a mergeable quantile sketch with relative error at most 1 % for
// values in [1e-3, 1e9] (a DDSketch with logarithmic bins); smaller values
// count as 0, larger ones as 1e9. Its zero value is empty and ready.
type Sketch struct {
	zero  uint64
	count uint64
	bins  [numBins]uint32
}

const (
	relErr  = 0.01
	minVal  = 1e-3
	numBins = 1400
)

var (
	gamma    = (1 + relErr) / (1 - relErr)
	logGamma = math.Log(gamma)
	binShift = int(math.Ceil(math.Log(minVal) / logGamma))
)

// Add counts one value.
func (s *Sketch) Add(v float64) {
	s.count++
	if !(v > minVal) { // NaN too
		s.zero++
		return
	}
	i := int(math.Ceil(math.Log(v)/logGamma)) - binShift
	s.bins[min(max(i, 0), numBins-1)]++
}

// Count returns the number of values added.
func (s *Sketch) Count() uint64 { return s.count }

// Merge adds o's values to s.
func (s *Sketch) Merge(o *Sketch) {
	s.zero += o.zero
	s.count += o.count
	for i, c := range o.bins {
		s.bins[i] += c
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
			return 2 * math.Pow(gamma, float64(i+binShift)) / (gamma + 1)
		}
	}
	return 2 * math.Pow(gamma, float64(numBins-1+binShift)) / (gamma + 1)
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
			out = append(out, Bin{Index: int32(i), Count: uint64(c)})
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
		case b.Index >= 0 && b.Index < numBins:
			s.bins[b.Index] += uint32(b.Count)
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
