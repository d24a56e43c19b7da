package sourcetest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/clickstreamkit/clickstream/sources"
	"github.com/clickstreamkit/clickstream/sources/sourcetest"
)

func values(n int) [][]byte {
	vs := make([][]byte, n)
	for i := range vs {
		vs[i] = []byte{byte('a' + i)}
	}
	return vs
}

func TestErrAfter(t *testing.T) {
	ctx := t.Context()
	boom := errors.New("boom")
	src := sourcetest.ErrAfter(sources.NewMemory(2, values(10)...), 2, boom)
	for i := range 2 {
		if _, err := src.Read(ctx); err != nil {
			t.Fatalf("Read %d: %v", i, err)
		}
	}
	for range 2 {
		if _, err := src.Read(ctx); !errors.Is(err, boom) {
			t.Fatalf("Read after 2 batches = %v, want boom", err)
		}
	}
}

func TestFailCommit(t *testing.T) {
	ctx := t.Context()
	boom := errors.New("boom")
	m := sources.NewMemory(1, values(3)...)
	src := sourcetest.FailCommit(m, 2, boom)
	for i := range 2 {
		if err := src.Commit(ctx, "memory", 0, 2); !errors.Is(err, boom) {
			t.Fatalf("Commit %d = %v, want boom", i, err)
		}
		if m.Committed() != 0 {
			t.Fatalf("a failed commit reached the source")
		}
	}
	if err := src.Commit(ctx, "memory", 0, 2); err != nil || m.Committed() != 2 {
		t.Fatalf("third Commit = %v, committed %d; want nil, 2", err, m.Committed())
	}
}

func TestOneMessageConforms(t *testing.T) {
	sourcetest.Run(t, func(tb testing.TB, vs [][]byte) sourcetest.Fixture {
		m := sources.NewMemory(7, vs...)
		return sourcetest.Fixture{Source: sourcetest.OneMessage(m)}
	})
}

func TestOneMessage(t *testing.T) {
	ctx := t.Context()
	src := sourcetest.OneMessage(sources.NewMemory(3, values(5)...))
	for want := range int64(5) {
		b, err := src.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(b.Messages) != 1 || b.Messages[0].Offset != want {
			t.Fatalf("batch %d: %d messages, first offset %d", want, len(b.Messages), b.Messages[0].Offset)
		}
	}
	if _, err := src.Read(ctx); !errors.Is(err, sources.ErrEndOfInput) {
		t.Fatalf("Read at the end = %v", err)
	}
}

// script is a source that returns its batches, in order, then
// ErrEndOfInput.
type script struct{ batches []sources.Batch }

func (s *script) Read(ctx context.Context) (sources.Batch, error) {
	if err := ctx.Err(); err != nil {
		return sources.Batch{}, err
	}
	if len(s.batches) == 0 {
		return sources.Batch{}, sources.ErrEndOfInput
	}
	b := s.batches[0]
	s.batches = s.batches[1:]
	return b, nil
}

func (s *script) Commit(context.Context, string, int32, int64) error { return nil }
func (s *script) Close(context.Context) error                        { return nil }

func msgs(from, to int64) []sources.Message {
	var out []sources.Message
	for o := from; o < to; o++ {
		out = append(out, sources.Message{Topic: "t", Partition: 1, Offset: o})
	}
	return out
}

// The pieces keep the batch's partition count and generation; only the last
// piece of a CaughtUp batch is CaughtUp; notices pass through.
func TestOneMessageKeepsFields(t *testing.T) {
	ctx := t.Context()
	batch := func(m []sources.Message, caughtUp bool) sources.Batch {
		return sources.Batch{Topic: "t", Partition: 1, Messages: m, Partitions: 3, Generation: 7, CaughtUp: caughtUp}
	}
	src := sourcetest.OneMessage(&script{batches: []sources.Batch{
		batch(nil, true),
		batch(msgs(10, 13), true),
		batch(msgs(13, 15), false),
		{Topic: "t", Partition: 1, Revoked: true, Release: func() {}},
	}})
	type piece struct {
		first    int64 // -1: no message
		caughtUp bool
		revoked  bool
	}
	want := []piece{{-1, true, false}, {10, false, false}, {11, false, false}, {12, true, false},
		{13, false, false}, {14, false, false}, {-1, false, true}}
	for i, w := range want {
		b, err := src.Read(ctx)
		if err != nil {
			t.Fatalf("Read %d: %v", i, err)
		}
		got := piece{-1, b.CaughtUp, b.Revoked}
		if len(b.Messages) > 0 {
			got.first = b.Messages[0].Offset
		}
		if got != w || len(b.Messages) > 1 {
			t.Errorf("Read %d = %+v with %d messages, want %+v", i, got, len(b.Messages), w)
		}
		if !b.Revoked && (b.Partitions != 3 || b.Generation != 7 || b.Topic != "t" || b.Partition != 1) {
			t.Errorf("Read %d = %s/%d, %d partitions, generation %d; want t/1, 3, 7", i, b.Topic, b.Partition, b.Partitions, b.Generation)
		}
	}
	if _, err := src.Read(ctx); !errors.Is(err, sources.ErrEndOfInput) {
		t.Fatalf("Read at the end = %v", err)
	}
}

// The other wrappers hand batches over as they are.
func TestWrappersPassFieldsThrough(t *testing.T) {
	ctx := t.Context()
	in := sources.Batch{Topic: "t", Partition: 1, Messages: msgs(0, 2), Partitions: 3, Generation: 7, CaughtUp: true}
	wrappers := map[string]func(sources.Source) sources.Source{
		"ErrAfter":    func(s sources.Source) sources.Source { return sourcetest.ErrAfter(s, 1, errors.New("boom")) },
		"FailCommit":  func(s sources.Source) sources.Source { return sourcetest.FailCommit(s, 1, errors.New("boom")) },
		"RevokeAfter": func(s sources.Source) sources.Source { return sourcetest.RevokeAfter(s, 2) },
		"Record":      func(s sources.Source) sources.Source { return sourcetest.Record(s) },
	}
	for name, wrap := range wrappers {
		b, err := wrap(&script{batches: []sources.Batch{in}}).Read(ctx)
		if err != nil {
			t.Fatalf("%s: Read: %v", name, err)
		}
		if b.Topic != in.Topic || b.Partition != in.Partition || len(b.Messages) != 2 ||
			b.Partitions != in.Partitions || b.Generation != in.Generation || b.CaughtUp != in.CaughtUp {
			t.Errorf("%s: Read = %+v, want %+v", name, b, in)
		}
	}
}

func TestRevokeAfter(t *testing.T) {
	ctx := t.Context()
	src := sourcetest.RevokeAfter(sources.NewMemory(2, values(6)...), 2)
	for i := range 2 {
		if b, err := src.Read(ctx); err != nil || b.Revoked {
			t.Fatalf("Read %d = revoked %v, %v", i, b.Revoked, err)
		}
	}
	notice, err := src.Read(ctx)
	if err != nil || !notice.Revoked || notice.Release == nil || notice.Topic != "memory" || len(notice.Messages) != 0 {
		t.Fatalf("third Read = %+v, %v; want a Revoked notice for memory/0", notice, err)
	}
	// until released, the partition is not delivered
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := src.Read(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Read before Release = %v, want it to wait", err)
	}
	if src.Released() {
		t.Fatal("Released before Release")
	}
	notice.Release()
	notice.Release() // may be repeated
	if !src.Released() {
		t.Fatal("not Released after Release")
	}
	b, err := src.Read(ctx)
	if err != nil || len(b.Messages) != 2 || b.Messages[0].Offset != 4 {
		t.Fatalf("Read after Release = %+v, %v; want offsets 4, 5", b, err)
	}
	if _, err := src.Read(ctx); !errors.Is(err, sources.ErrEndOfInput) {
		t.Fatalf("Read at the end = %v", err)
	}
}

func TestRecord(t *testing.T) {
	ctx := t.Context()
	m := sources.NewMemory(1, values(2)...)
	src := sourcetest.Record(m)
	_ = src.Commit(ctx, "memory", 0, 1)
	_ = src.Close(ctx)
	_ = src.Commit(ctx, "memory", 0, 2)
	got := src.Commits()
	if len(got) != 2 || got[0].Next != 1 || got[0].Err != nil || got[1].Next != 2 || !errors.Is(got[1].Err, sources.ErrClosed) {
		t.Errorf("Commits() = %+v", got)
	}
}
