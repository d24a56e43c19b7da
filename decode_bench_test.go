package clickstream_test

import (
	"encoding/json"
	"testing"

	"github.com/clickstreamkit/clickstream"
	"github.com/clickstreamkit/clickstream/internal/gen"
)

var sinkEvent clickstream.Event

// BenchmarkDecode compares the decoder (parse and validate all of §1) with
// encoding/json merely unmarshalling the same ~400-byte message.
func BenchmarkDecode(b *testing.B) {
	msg := []byte(seedEvent)
	b.Run("clickstream", func(b *testing.B) {
		d := decoder()
		b.ReportAllocs()
		b.SetBytes(int64(len(msg)))
		for b.Loop() {
			if err := d.Decode(msg, &sinkEvent); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
	b.Run("encoding_json", func(b *testing.B) {
		var je gen.Baseline
		b.ReportAllocs()
		b.SetBytes(int64(len(msg)))
		for b.Loop() {
			je = gen.Baseline{}
			if err := json.Unmarshal(msg, &je); err != nil {
				b.Fatal(err)
			}
		}
		sinkEvent.EventID = je.EventID
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
}
