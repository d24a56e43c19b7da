package parquet_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clickstreamkit/clickstream"
	"github.com/clickstreamkit/clickstream/checkpoint"
	"github.com/clickstreamkit/clickstream/internal/gen"
	"github.com/clickstreamkit/clickstream/pipeline"
	"github.com/clickstreamkit/clickstream/sinks"
	"github.com/clickstreamkit/clickstream/sinks/parquet"
	"github.com/clickstreamkit/clickstream/sources"
)

// errCrash is permanent: a dead process writes nothing more, not even in
// the shutdown that follows the cancel.
var errCrash = clickstream.Permanent(errors.New("crash"))

// crashAfter passes n writes to the sink, makes the n-th durable, then
// fails it and every later one and ends the run, as a process dying between
// its sink write and its checkpoint would.
type crashAfter struct {
	sinks.Sink
	n      int
	cancel context.CancelFunc
	writes int // made
}

func (c *crashAfter) Write(ctx context.Context, bs ...*sinks.Batch) error {
	if c.n <= 0 {
		return errCrash
	}
	c.writes++
	if c.n--; c.n > 0 {
		return c.Sink.Write(ctx, bs...)
	}
	if err := c.Sink.Write(ctx, bs...); err != nil {
		return err
	}
	c.cancel()
	return errCrash
}

// SEMANTICS §10 with the real pipeline: a run that crashes between a write
// and its checkpoint, then restarts from the checkpoint with other read
// batches (so other sink batches), leaves the files of a run without crash,
// byte for byte.
func TestPipelineCrashAndReplay(t *testing.T) {
	gc := gen.Default(4000, 3)
	gc.Rate = 1 // about 67 minutes of event time
	var values [][]byte
	for _, m := range gen.Generate(gc) {
		values = append(values, m.Value)
	}
	cfg := pipeline.DefaultConfig()
	cfg.KeepEvents = true
	cfg.MaxPending = 150
	cfg.UpdateInterval = time.Millisecond
	now := gc.Start.Add(24 * time.Hour) // after every event: none is in the future
	cfg.Clock = func() time.Time { return now }

	// run returns the runner's stats and how many writes it made.
	run := func(dir string, readBatch int, store checkpoint.Store, crashAt int) (pipeline.Stats, int, error) {
		t.Helper()
		ps, err := parquet.New(dir, parquet.WithChunkSize(500))
		if err != nil {
			t.Fatal(err)
		}
		defer ps.Close(context.Background())
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		sink := &crashAfter{Sink: ps, n: math.MaxInt, cancel: cancel}
		if crashAt > 0 {
			sink.n = crashAt
		}
		r, err := pipeline.NewRunner(sources.NewMemory(readBatch, values...), sink, store, cfg)
		if err != nil {
			t.Fatal(err)
		}
		err = r.Run(ctx)
		return r.Stats(), sink.writes, err
	}

	clean := t.TempDir()
	stats, _, err := run(clean, 64, &checkpoint.Memory{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := parquet.ReadEvents(clean)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(rows)) != stats.Counters.Accepted || len(rows) == 0 {
		t.Fatalf("archived %d events, the pipeline accepted %d", len(rows), stats.Counters.Accepted)
	}
	kpis, err := parquet.ReadKPIs(clean)
	if err != nil || len(kpis) < 30 {
		t.Fatalf("archived %d final minutes (%v), want about 67", len(kpis), err)
	}

	// Crash early, a third and two thirds of the way through: how many
	// writes a run makes depends on how reads and update ticks fall, so the
	// points come from a run like the crashing ones.
	_, writes, err := run(t.TempDir(), 101, &checkpoint.Memory{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("a run makes %d writes", writes)
	if writes < 9 {
		t.Fatalf("a run made %d writes, too few to crash in", writes)
	}
	for _, crashAt := range []int{3, writes / 3, 2 * writes / 3} {
		dir := t.TempDir()
		store := &checkpoint.Memory{}
		if _, _, err := run(dir, 101, store, crashAt); err == nil {
			t.Fatalf("crash after %d writes: the run did not stop", crashAt)
		}
		if _, _, err := run(dir, 37, store, 0); err != nil {
			t.Fatal(err)
		}
		want, got := parquetFiles(t, clean), parquetFiles(t, dir)
		if len(want) != len(got) {
			t.Fatalf("crash after %d writes: %d files, want %d", crashAt, len(got), len(want))
		}
		for name, b := range want {
			if !bytes.Equal(got[name], b) {
				t.Errorf("crash after %d writes: %s differs from the clean run's", crashAt, name)
			}
		}
	}
}

func parquetFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !strings.HasSuffix(path, ".parquet") {
			return err
		}
		b, err := os.ReadFile(path)
		out[strings.TrimPrefix(path, dir)] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
