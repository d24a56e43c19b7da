package sources_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/clickstreamkit/clickstream/sources"
	"github.com/clickstreamkit/clickstream/sources/sourcetest"
)

func openMemory(batch int) sourcetest.Opener {
	return func(tb testing.TB, values [][]byte) sourcetest.Fixture {
		m := sources.NewMemory(batch, values...)
		tb.Cleanup(func() { _ = m.Close(context.Background()) })
		return sourcetest.Fixture{
			Source: m,
			Committed: func(context.Context, string, int32) (int64, error) {
				return m.Committed(), nil
			},
			Partitions: 1,
		}
	}
}

func TestMemoryConformance(t *testing.T) {
	for _, batch := range []int{1, 7, 1000} {
		t.Run("batch="+strconv.Itoa(batch), func(t *testing.T) { sourcetest.Run(t, openMemory(batch)) })
	}
}

// The values a Memory hands out are the caller's own slices, so a reader
// that changes one changes every later delivery of a value sharing its bytes:
// NewMemory(1, v, v) delivers v twice, the second time as the reader left
// it. The Source contract says batches belong to the reader.
func TestMemoryValuesDoNotAlias(t *testing.T) {
	ctx := context.Background()
	v := []byte(`{"event_id":"a"}`)
	m := sources.NewMemory(1, v, v)
	b, err := m.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b.Messages[0].Value[0] = 'X'
	b, err = m.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := b.Messages[0].Value; string(got) != `{"event_id":"a"}` {
		t.Errorf("second delivery = %q: changed by the reader of the first", got)
	}
}

// A Memory is one partition, and, being finite, never says CaughtUp.
func TestMemoryBatchFields(t *testing.T) {
	ctx := context.Background()
	m := sources.NewMemory(2, []byte("a"), []byte("b"), []byte("c"))
	for range 2 {
		b, err := m.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if b.Partitions != 1 || b.CaughtUp || b.Generation != 0 {
			t.Errorf("batch at %d: Partitions %d, CaughtUp %v, Generation %d; want 1, false, 0",
				b.Messages[0].Offset, b.Partitions, b.CaughtUp, b.Generation)
		}
	}
}
