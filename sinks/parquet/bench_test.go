package parquet

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/clickstreamkit/clickstream/sinks"
)

var benchErr error

// BenchmarkWriteEvents writes batches of 1,000 accepted events (a second of
// a busy partition) with contiguous offsets: each Write appends to the
// staging file and fsyncs it, and every chunk's worth of offsets writes a
// Parquet file. allocs/op and B/op are per batch.
func BenchmarkWriteEvents(b *testing.B) {
	const batch = 1000
	tmpl := genStream(42, "clicks", 0, 20_000).events
	for _, chunk := range []int64{DefaultChunkSize, 10_000, 1 << 40} {
		name := fmt.Sprintf("chunk=%d", chunk)
		if chunk == 1<<40 {
			name = "staging-only" // no chunk completes: append and fsync only
		}
		b.Run(name, func(b *testing.B) {
			sink := newSink(b, b.TempDir(), WithChunkSize(chunk))
			bt := &sinks.Batch{Topic: "clicks", Events: make([]sinks.Accepted, batch)}
			next := int64(0)
			b.ReportAllocs()
			start := time.Now()
			for b.Loop() {
				bt.FirstOffset = next
				for i := range bt.Events {
					bt.Events[i] = sinks.Accepted{Offset: next, Event: tmpl[int(next)%len(tmpl)].Event}
					next++
				}
				bt.NextOffset = next
				benchErr = sink.Write(context.Background(), bt)
				if benchErr != nil {
					b.Fatal(benchErr)
				}
			}
			b.ReportMetric(float64(next)/time.Since(start).Seconds(), "events/s")
			sink.Close(context.Background())
			if chunk == DefaultChunkSize && next >= chunk {
				var size int64
				for _, data := range files(b, sink.dir) {
					size += int64(len(data))
				}
				b.ReportMetric(float64(size)/float64(floor(next, chunk)), "parquet-B/event")
			}
		})
	}
}
