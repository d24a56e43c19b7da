package checkpointtest

import (
	"encoding/binary"
	"testing"

	"github.com/clickstreamkit/clickstream/checkpoint"
)

// The steady state of a partition at the target load (5,000 accepted
// events/s, a 10-minute horizon, a checkpoint every 5 s): ~3M dedup ids of
// ~20 B in HeldSegments segments of SegmentBytes, and a head of HeadBytes.
const (
	HeadBytes    = 2 << 20
	SegmentBytes = 500 << 10
	HeldSegments = 120
)

// fill saves a checkpoint of HeldSegments segments, a few at a time, and
// returns it as the next Save keeps it.
func fill(b *testing.B, s checkpoint.Store, head, data []byte) checkpoint.Checkpoint {
	b.Helper()
	cp := checkpoint.Checkpoint{Topic: "clicks", Partition: 0, State: head}
	for id := range uint64(HeldSegments) {
		cp.Segments = append(cp.Segments, checkpoint.Segment{ID: id, Data: stamp(data, id)})
		if len(cp.Segments)%10 == 0 {
			cp.Next++
			if err := s.Save(b.Context(), cp); err != nil {
				b.Fatal(err)
			}
			for i := range cp.Segments {
				cp.Segments[i].Data = nil
			}
		}
	}
	return cp
}

// stamp writes id into data, so that segments differ.
func stamp(data []byte, id uint64) []byte {
	binary.LittleEndian.PutUint64(data, id)
	return data
}

// Save5k measures a Save at the target steady state: a head of HeadBytes
// and one new segment of SegmentBytes, the oldest dropped, HeldSegments
// held. It reports MB/save (head plus new segment) and segments held.
func Save5k(b *testing.B, s checkpoint.Store) {
	head, data := state(1, HeadBytes), state(2, SegmentBytes)
	cp := fill(b, s, head, data)
	next := uint64(HeldSegments)
	var written int
	b.ReportAllocs()
	for b.Loop() {
		cp.Next++
		cp.Segments = append(cp.Segments[1:], checkpoint.Segment{ID: next, Data: stamp(data, next)})
		if err := s.Save(b.Context(), cp); err != nil {
			b.Fatal(err)
		}
		cp.Segments[len(cp.Segments)-1].Data = nil
		next++
		written += len(head) + len(data)
	}
	b.ReportMetric(float64(written)/float64(b.N)/1e6, "MB/save")
	b.ReportMetric(float64(len(cp.Segments)), "segments")
}

// Load5k measures a Load of the target steady state: a head of HeadBytes
// and HeldSegments segments of SegmentBytes. It reports MB/load.
func Load5k(b *testing.B, s checkpoint.Store) {
	fill(b, s, state(1, HeadBytes), state(2, SegmentBytes))
	var read int
	b.ReportAllocs()
	for b.Loop() {
		cp, err := s.Load(b.Context(), "clicks", 0)
		if err != nil {
			b.Fatal(err)
		}
		if len(cp.Segments) != HeldSegments {
			b.Fatalf("loaded %d segments, want %d", len(cp.Segments), HeldSegments)
		}
		read += len(cp.State)
		for _, seg := range cp.Segments {
			read += len(seg.Data)
		}
	}
	b.ReportMetric(float64(read)/float64(b.N)/1e6, "MB/load")
	b.ReportMetric(HeldSegments, "segments")
}
