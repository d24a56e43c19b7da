package kafka_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/clickstreamkit/clickstream/sources"
	"github.com/clickstreamkit/clickstream/sources/kafka"
	"github.com/clickstreamkit/clickstream/sources/sourcetest"
)

// feed reads src in a goroutine until the test ends and sends every batch to
// the channel it returns, releasing Revoked notices once they are sent.
func feed(t *testing.T, src *kafka.Source) <-chan sources.Batch {
	ctx := t.Context()
	ch := make(chan sources.Batch)
	done := make(chan struct{})
	t.Cleanup(func() { <-done }) // runs before the source closes
	go func() {
		defer close(done)
		for {
			b, err := src.Read(ctx)
			if err != nil {
				if ctx.Err() == nil {
					t.Errorf("Read: %v", err)
				}
				return
			}
			select {
			case ch <- b:
			case <-ctx.Done():
				return
			}
			if b.Revoked {
				b.Release()
			}
		}
	}()
	return ch
}

// next returns the next batch from ch, or fails the test once ctx ends.
func next(t *testing.T, ctx context.Context, ch <-chan sources.Batch, what string) sources.Batch {
	t.Helper()
	select {
	case b := <-ch:
		return b
	case <-ctx.Done():
		t.Fatalf("gave up waiting for %s: %v", what, ctx.Err())
		return sources.Batch{}
	}
}

func newSource(t *testing.T, bs []string, topic, group, name string, opts ...kafka.Option) *kafka.Source {
	t.Helper()
	opts = append([]kafka.Option{kafka.WithConfig(testConfig()), kafka.WithLogger(testLogger(t).With("member", name))}, opts...)
	src, err := kafka.New(bs, topic, group, opts...)
	if err != nil {
		t.Fatal(err)
	}
	closeAtEnd(t, src)
	return src
}

// A partition claimed with nothing to read is announced by a CaughtUp notice
// that carries the partition count and the generation; messages produced
// later come in batches of the same generation, the one that reaches the
// end CaughtUp.
func TestCaughtUpNoticeForEmptyPartition(t *testing.T) {
	bs := brokers(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	topic := createTopic(t, bs, 2)
	src := newSource(t, bs, topic, newGroup(t, bs), "a")
	noticed := map[int32]bool{}
	var generation int64
	for len(noticed) < 2 {
		b, err := src.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(b.Messages) != 0 || !b.CaughtUp || b.Revoked || b.Release != nil || b.Topic != topic {
			t.Fatalf("Read = %+v; want a CaughtUp notice of %s", b, topic)
		}
		if b.Partitions != 2 || b.Generation <= 0 {
			t.Errorf("notice of partition %d: %d partitions, generation %d; want 2, above 0", b.Partition, b.Partitions, b.Generation)
		}
		if noticed[b.Partition] {
			t.Fatalf("a second notice of partition %d", b.Partition)
		}
		noticed[b.Partition] = true
		generation = b.Generation
	}
	want := produce(t, bs, topic, sourcetest.Values(10))
	end := map[int32]int64{}
	for _, m := range want {
		end[m.Partition] = max(end[m.Partition], m.Offset+1)
	}
	reached := map[int32]bool{}
	for got := 0; got < len(want); {
		b, err := src.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(b.Messages) == 0 {
			t.Fatalf("Read = %+v; want messages", b)
		}
		got += len(b.Messages)
		if b.Partitions != 2 || b.Generation != generation {
			t.Errorf("batch of partition %d: %d partitions, generation %d; want 2, %d", b.Partition, b.Partitions, b.Generation, generation)
		}
		// nothing was produced after the last message: its fetch's high
		// watermark is the end
		if b.Messages[len(b.Messages)-1].Offset+1 == end[b.Partition] {
			reached[b.Partition] = true
			if !b.CaughtUp {
				t.Errorf("the batch that reaches the end %d of partition %d is not CaughtUp", end[b.Partition], b.Partition)
			}
		}
	}
	if len(reached) != len(end) {
		t.Errorf("batches reached the end of %d partitions, want %d", len(reached), len(end))
	}
}

// Batches of messages produced before the partition was claimed are
// CaughtUp exactly when they reach the end; in bounded mode too, which then
// ends.
func TestCaughtUpAtTheEnd(t *testing.T) {
	bs := brokers(t)
	for _, bounded := range []bool{false, true} {
		name := "unbounded"
		opts := []kafka.Option{kafka.WithBatch(7), kafka.WithMaxWait(0)}
		if bounded {
			name = "bounded"
			opts = append(opts, kafka.WithBounded())
		}
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			topic := createTopic(t, bs, 1)
			want := produce(t, bs, topic, sourcetest.Values(50))
			src := newSource(t, bs, topic, newGroup(t, bs), "a", opts...)
			var generation int64
			behind := 0
			for got := 0; got < len(want); {
				b, err := src.Read(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if len(b.Messages) == 0 {
					t.Fatalf("Read = %+v; want messages", b)
				}
				got += len(b.Messages)
				last := b.Messages[len(b.Messages)-1].Offset
				if b.CaughtUp != (last+1 == int64(len(want))) {
					t.Errorf("batch ending at offset %d of %d: CaughtUp %v", last, len(want), b.CaughtUp)
				}
				if !b.CaughtUp {
					behind++
				}
				if generation == 0 {
					generation = b.Generation
				}
				if b.Partitions != 1 || b.Generation <= 0 || b.Generation != generation {
					t.Errorf("batch ending at offset %d: %d partitions, generation %d; want 1, %d above 0",
						last, b.Partitions, b.Generation, generation)
				}
			}
			if behind == 0 {
				t.Errorf("no batch was behind: batches of at most 7 messages out of %d", len(want))
			}
			if bounded {
				if b, err := src.Read(ctx); err != nil || !b.End || b.Partition != 0 || len(b.Messages) > 0 || b.Generation != generation {
					t.Errorf("Read after the last message = %+v, %v; want the End notice of partition 0 in generation %d", b, err, generation)
				}
				if b, err := src.Read(ctx); !errors.Is(err, sources.ErrEndOfInput) {
					t.Errorf("Read after the end = %+v, %v; want ErrEndOfInput", b, err)
				}
			}
		})
	}
}

// When a second member joins, the first gets Revoked notices for what it
// read, then both read in a later generation.
func TestGenerationGrowsOnRebalance(t *testing.T) {
	bs := brokers(t)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	topic := createTopic(t, bs, 2)
	group := newGroup(t, bs)
	produce(t, bs, topic, sourcetest.Values(20))
	a := feed(t, newSource(t, bs, topic, group, "a"))
	caughtUp := map[int32]bool{}
	var first int64
	for len(caughtUp) < 2 {
		b := next(t, ctx, a, "a to read both partitions to their end")
		if b.Revoked {
			t.Fatalf("a: Revoked notice of partition %d with no other member", b.Partition)
		}
		if first == 0 {
			first = b.Generation
		}
		if b.Generation != first || first <= 0 {
			t.Fatalf("a: batch of partition %d in generation %d, then %d, within one session", b.Partition, first, b.Generation)
		}
		if b.CaughtUp {
			caughtUp[b.Partition] = true
		}
	}

	b := feed(t, newSource(t, bs, topic, group, "b"))
	revoked := map[int32]bool{}
	for len(revoked) < 2 {
		got := next(t, ctx, a, "a's Revoked notices")
		if !got.Revoked {
			t.Fatalf("a: %+v before the Revoked notices of both partitions", got)
		}
		revoked[got.Partition] = true
	}
	got := next(t, ctx, b, "b's first batch")
	if got.Revoked || got.Generation <= first {
		t.Errorf("b: first batch %+v, want one in a generation above %d", got, first)
	}
	got = next(t, ctx, a, "a's first batch after the rebalance")
	if got.Revoked || got.Generation <= first {
		t.Errorf("a: first batch after the rebalance %+v, want one in a generation above %d", got, first)
	}
}

// A partition the reader only got a CaughtUp notice for gets a Revoked
// notice when it goes.
func TestRevokedAfterCaughtUpOnly(t *testing.T) {
	bs := brokers(t)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	topic := createTopic(t, bs, 1)
	group := newGroup(t, bs)
	a := feed(t, newSource(t, bs, topic, group, "a"))
	notice := next(t, ctx, a, "a's CaughtUp notice")
	if !notice.CaughtUp || len(notice.Messages) != 0 || notice.Partition != 0 {
		t.Fatalf("a: %+v; want the CaughtUp notice of partition 0", notice)
	}
	feed(t, newSource(t, bs, topic, group, "b"))
	got := next(t, ctx, a, "a's Revoked notice")
	if !got.Revoked || got.Partition != 0 {
		t.Fatalf("a: %+v after b joined; want the Revoked notice of partition 0", got)
	}
}
