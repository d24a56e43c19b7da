package parquet_test

import (
	"reflect"
	"testing"

	"github.com/clickstreamkit/clickstream/sinks"
	"github.com/clickstreamkit/clickstream/sinks/parquet"
	"github.com/clickstreamkit/clickstream/sinks/sinktest"
)

// Parquet sinks only read the batches a Tee hands them at once (the race
// detector watches this test under -race).
func TestTeeSharesBatches(t *testing.T) {
	var all []sinks.Sink
	for range 2 {
		s, err := parquet.New(t.TempDir(), parquet.WithChunkSize(50))
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, s)
	}
	tee := sinks.Tee(append(all, &sinks.Memory{})...)
	defer tee.Close(t.Context())
	for first := int64(0); first < 300; first += 100 { // chunks completed, days staged
		bs := []*sinks.Batch{sinktest.FullBatch("t", 0, first), sinktest.FullBatch("t", 1, first)}
		want := []*sinks.Batch{sinktest.FullBatch("t", 0, first), sinktest.FullBatch("t", 1, first)}
		bs[1].End, want[1].End = first == 200, first == 200
		if err := tee.Write(t.Context(), bs...); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(bs, want) {
			t.Fatalf("the sinks changed the batches of offsets [%d, %d)", first, first+100)
		}
	}
}
