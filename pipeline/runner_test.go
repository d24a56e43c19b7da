package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clickstreamkit/clickstream"
	"github.com/clickstreamkit/clickstream/checkpoint"
	"github.com/clickstreamkit/clickstream/pipeline"
	"github.com/clickstreamkit/clickstream/sinks"
	"github.com/clickstreamkit/clickstream/sources"
	"github.com/clickstreamkit/clickstream/sources/sourcetest"
	"github.com/clickstreamkit/clickstream/window"
)

// Runner tests run in a synctest bubble: time moves only when every
// goroutine waits, so the update ticks, checkpoint intervals and idle
// timeouts below cost no wall-clock time, and a Run that never returns is a
// deadlock the bubble reports.

const minute = int64(60_000)

// t0 is an event time three hours before the processing time a bubble
// starts at (synctest's epoch), so that no event of a test is in the future.
var t0 = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).Add(-3 * time.Hour).UnixMilli()

// durableSink is a sinks.Memory that claims durability, standing for a real
// durable sink; it can be made to fail.
type durableSink struct {
	mu     sync.Mutex
	mem    sinks.Memory
	fail   error
	failIf func(b *sinks.Batch) error
	n      int // writes
}

func (d *durableSink) Write(ctx context.Context, bs ...*sinks.Batch) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fail != nil {
		return d.fail
	}
	for _, b := range bs {
		if d.failIf != nil {
			if err := d.failIf(b); err != nil {
				return err
			}
		}
	}
	d.n++
	return d.mem.Write(ctx, bs...)
}
func (d *durableSink) Close(context.Context) error { return nil }
func (d *durableSink) Durable() bool               { return true }
func (d *durableSink) output() sinks.Output {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.mem.Output()
}

// queue is a live source of one or more partitions the test feeds.
type queue struct {
	topic     string
	ch        chan sources.Batch
	mu        sync.Mutex
	committed map[int32]int64
	commitErr error
	ended     bool // end was called: Read returns ErrEndOfInput once the batches are out
}

func newQueue() *queue {
	return &queue{topic: "q", ch: make(chan sources.Batch, 16), committed: map[int32]int64{}}
}

func (q *queue) Read(ctx context.Context) (sources.Batch, error) {
	select {
	case b, ok := <-q.ch:
		if !ok && q.ended {
			return sources.Batch{}, sources.ErrEndOfInput
		}
		if !ok {
			return sources.Batch{}, errors.New("connection lost")
		}
		return b, nil
	case <-ctx.Done():
		return sources.Batch{}, ctx.Err()
	}
}

func (q *queue) Commit(_ context.Context, _ string, p int32, next int64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.commitErr != nil {
		return q.commitErr
	}
	q.committed[p] = max(q.committed[p], next)
	return nil
}

func (q *queue) Close(context.Context) error { return nil }

func (q *queue) commitOf(p int32) int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.committed[p]
}

// end ends a finite input: an End notice for each of ps, then
// ErrEndOfInput.
func (q *queue) end(ps ...int32) {
	for _, p := range ps {
		q.ch <- sources.Batch{Topic: q.topic, Partition: p, Partitions: 2, End: true}
	}
	q.ended = true
	close(q.ch)
}

// send feeds events to partition p of the queue's topic from offset first.
func (q *queue) send(p int32, first int64, events ...clickstream.Event) {
	b := sources.Batch{Topic: q.topic, Partition: p, Partitions: 2}
	for i, v := range lines(events...) {
		b.Messages = append(b.Messages, sources.Message{Topic: q.topic, Partition: p, Offset: first + int64(i), Value: v})
	}
	q.ch <- b
}

func testConfig() pipeline.Config {
	cfg := pipeline.DefaultConfig()
	cfg.Clock = time.Now // the bubble's clock
	return cfg
}

// start runs r in the background; the returned func cancels it and returns
// Run's error.
func start(r *pipeline.Runner) (stop func() error, done <-chan error) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan error, 1)
	go func() { ch <- r.Run(ctx) }()
	return func() error { cancel(); return <-ch }, ch
}

func newDir(t *testing.T) *checkpoint.Dir {
	d, err := checkpoint.NewDir(filepath.Join(t.TempDir(), "ckpt"))
	require.NoError(t, err)
	return d
}

func sum(o sinks.Output, f func(c sinks.Counters) int64) int64 {
	var n int64
	for _, c := range o.Counters {
		n += f(c)
	}
	return n
}

// Issue 7.1: a Runner cannot run without a checkpoint store, and commits
// offsets only with a durable sink and a durable store.
func TestRunnerCommitsOnlyWhenDurable(t *testing.T) {
	_, err := pipeline.NewRunner(newQueue(), &durableSink{}, nil, testConfig())
	require.ErrorIs(t, err, pipeline.ErrConfig)

	for _, tc := range []struct {
		name             string
		sink             sinks.Sink
		store            func(t *testing.T) checkpoint.Store
		saved, committed bool
	}{
		{"durable sink and store", &durableSink{}, func(t *testing.T) checkpoint.Store { return newDir(t) }, true, true},
		{"memory store", &durableSink{}, func(*testing.T) checkpoint.Store { return &checkpoint.Memory{} }, true, false},
		{"memory sink", &sinks.Memory{}, func(t *testing.T) checkpoint.Store { return newDir(t) }, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				q, store := newQueue(), tc.store(t)
				r, err := pipeline.NewRunner(q, tc.sink, store, testConfig())
				require.NoError(t, err)
				stop, _ := start(r)
				q.send(0, 0, view("a", "u", t0), view("b", "u", t0+1))
				time.Sleep(10 * time.Second) // ticks and a checkpoint interval
				synctest.Wait()
				assert.Equal(t, int64(2), r.Stats().Counters.Read)
				_, err = store.Load(t.Context(), "q", 0)
				assert.Equal(t, tc.saved, err == nil, "checkpoint saved: %v", err)
				want := int64(0)
				if tc.committed {
					want = 2
				}
				assert.Equal(t, want, q.commitOf(0))
				require.ErrorIs(t, stop(), context.Canceled)
			})
		})
	}
}

// Issue 7.1: after a restart the restored watermark keeps a straggler of a
// final window late, instead of reopening the window.
func TestRunnerRestartKeepsWatermark(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store, sink := newDir(t), &durableSink{}
		q := newQueue()
		r, err := pipeline.NewRunner(q, sink, store, testConfig())
		require.NoError(t, err)
		stop, _ := start(r)
		q.send(0, 0, view("a", "u", t0), view("b", "u", t0+15*minute)) // wm = t0 + 5m: window t0 final
		time.Sleep(10 * time.Second)
		require.ErrorIs(t, stop(), context.Canceled)
		assert.Equal(t, int64(2), q.commitOf(0))

		q2, sink2 := newQueue(), &durableSink{}
		r2, err := pipeline.NewRunner(q2, sink2, store, testConfig())
		require.NoError(t, err)
		stop2, _ := start(r2)
		q2.send(0, 2, view("c", "u", t0+30_000)) // a straggler of the final window
		time.Sleep(10 * time.Second)
		st := r2.Stats()
		assert.Equal(t, int64(3), st.Counters.Read, "the restored counts go on")
		assert.Equal(t, int64(1), st.Read, "what this runner read, for its rate")
		require.ErrorIs(t, stop2(), context.Canceled)
		o := sink2.output()
		require.Len(t, o.DeadLetters, 1)
		assert.Equal(t, clickstream.ReasonLate, o.DeadLetters[0].Reason)
		for _, k := range o.KPIs {
			assert.NotEqual(t, t0, k.Minute, "the final window is not reopened")
		}
	})
}

// The end of a finite input comes in-band, partition by partition: a
// partition with nothing left to read (its checkpoint covers it all) is
// restored and closed by its End notice, whatever wraps the source, and a
// notice that does not know the group's generation (0) keeps the restored
// one instead of being fenced.
func TestRunnerEndNoticeClosesRestoredPartitions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newDir(t)
		q := newQueue()
		r, err := pipeline.NewRunner(q, &durableSink{}, store, testConfig())
		require.NoError(t, err)
		stop, _ := start(r)
		for p, e := range []clickstream.Event{view("a", "u", t0), view("b", "v", t0)} {
			q.ch <- sources.Batch{Topic: "q", Partition: int32(p), Partitions: 2, Generation: 3,
				Messages: []sources.Message{{Topic: "q", Partition: int32(p), Value: lines(e)[0]}}}
		}
		time.Sleep(10 * time.Second)
		require.ErrorIs(t, stop(), context.Canceled) // sessions still open, checkpointed in generation 3

		q2, sink := newQueue(), &durableSink{}
		r2, err := pipeline.NewRunner(sourcetest.OneMessage(q2), sink, store, testConfig())
		require.NoError(t, err)
		q2.end(0, 1)
		require.NoError(t, r2.Run(context.Background()))
		o := sink.output()
		require.Len(t, o.Sessions, 2, "both restored partitions closed")
		assert.ElementsMatch(t, []string{"u", "v"}, []string{o.Sessions[0].UserID, o.Sessions[1].UserID})
	})
}

// Issue 7.2: a bounded run followed by a run over the same checkpoints goes
// on: newer events are accepted (not all late as when "finished" was kept),
// events that could change an emitted result are late.
func TestRunnerAfterEndOfInput(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newDir(t)
		cfg := testConfig()
		first := sources.NewMemory(10, lines(view("a", "u", t0), view("b", "v", t0+minute))...)
		r, err := pipeline.NewRunner(first, &durableSink{}, store, cfg)
		require.NoError(t, err)
		require.NoError(t, r.Run(context.Background()))

		sink := &durableSink{}
		q := newQueue()
		q.topic = "memory" // the bounded run's topic
		r2, err := pipeline.NewRunner(q, sink, store, cfg)
		require.NoError(t, err)
		stop, _ := start(r2)
		horizon := cfg.SessionGap.Milliseconds() // the longest of window, gap, funnel minute
		q.send(0, 2,
			view("c", "u", t0+minute+horizon-1), // could have extended u's final session: late
			view("d", "w", t0+minute+horizon),   // beyond every emitted result
			view("e", "w", t0+minute+horizon+2*minute))
		time.Sleep(10 * time.Second)
		require.ErrorIs(t, stop(), context.Canceled)
		o := sink.output()
		c := o.Counters[0]
		assert.Equal(t, sinks.Counters{Read: 5, Accepted: 4, Late: 1}, c)
	})
}

// Issue 7.2 and 7.3: a checkpoint taken with other settings is refused with a
// permanent error, and Run returns at once (it hung on early errors).
func TestRunnerRefusesChangedSettings(t *testing.T) {
	for _, change := range []struct {
		name string
		f    func(*pipeline.Config)
	}{
		{"watermark_delay", func(c *pipeline.Config) { c.WatermarkDelay = 5 * time.Minute }},
		{"session_gap", func(c *pipeline.Config) { c.SessionGap = 20 * time.Minute }},
		{"window_size", func(c *pipeline.Config) { c.WindowSize = 5 * time.Minute }},
		{"conversion_window", func(c *pipeline.Config) { c.FunnelScope = 1; c.ConversionWindow = 90 * time.Second }},
	} {
		t.Run(change.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				store := newDir(t)
				q := newQueue()
				r, err := pipeline.NewRunner(q, &durableSink{}, store, testConfig())
				require.NoError(t, err)
				stop, _ := start(r)
				q.send(0, 0, view("a", "u", t0))
				time.Sleep(10 * time.Second)
				require.ErrorIs(t, stop(), context.Canceled)

				cfg := testConfig()
				change.f(&cfg)
				q2 := newQueue()
				r2, err := pipeline.NewRunner(q2, &durableSink{}, store, cfg)
				require.NoError(t, err)
				_, done := start(r2)
				q2.send(0, 1, view("b", "u", t0+1))
				err = <-done
				require.ErrorIs(t, err, clickstream.ErrPermanent)
				assert.Contains(t, err.Error(), "restore q/0")
			})
		})
	}
}

// faultyStore fails Load or Save with err.
type faultyStore struct {
	checkpoint.Memory
	loadErr, saveErr error
}

func (f *faultyStore) Load(ctx context.Context, topic string, p int32) (checkpoint.Checkpoint, error) {
	if f.loadErr != nil {
		return checkpoint.Checkpoint{}, f.loadErr
	}
	return f.Memory.Load(ctx, topic, p)
}

func (f *faultyStore) Save(ctx context.Context, cp checkpoint.Checkpoint) error {
	if f.saveErr != nil {
		return f.saveErr
	}
	return f.Memory.Save(ctx, cp)
}

func (*faultyStore) Durable() bool { return true }

// Issue 7.3 and 7.4: every error path of Run returns promptly; a permanent
// error is not retried; a transient one is retried until the context ends.
func TestRunnerErrorPaths(t *testing.T) {
	permanent := clickstream.Permanent(errors.New("state too large"))
	for _, tc := range []struct {
		name  string
		setup func(q *queue, s *durableSink, st *faultyStore)
		want  string
	}{
		{"corrupt checkpoint", func(_ *queue, _ *durableSink, st *faultyStore) { st.loadErr = permanent }, "load checkpoint"},
		{"save too large", func(_ *queue, _ *durableSink, st *faultyStore) { st.saveErr = permanent }, "save checkpoint"},
		{"permanent write", func(_ *queue, s *durableSink, _ *faultyStore) { s.fail = permanent }, "write"},
		{"permanent commit", func(q *queue, _ *durableSink, _ *faultyStore) { q.commitErr = permanent }, "commit"},
		{"read error", func(q *queue, _ *durableSink, _ *faultyStore) { close(q.ch) }, "read: connection lost"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				q, sink, store := newQueue(), &durableSink{}, &faultyStore{}
				r, err := pipeline.NewRunner(q, sink, store, testConfig())
				require.NoError(t, err)
				tc.setup(q, sink, store)
				_, done := start(r)
				if tc.name != "read error" {
					q.send(0, 0, view("a", "u", t0))
				}
				err = <-done
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.want)
			})
		})
	}
	t.Run("transient write until canceled", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			q, sink := newQueue(), &durableSink{fail: errors.New("outage")}
			r, err := pipeline.NewRunner(q, sink, &faultyStore{}, testConfig())
			require.NoError(t, err)
			stop, done := start(r)
			q.send(0, 0, view("a", "u", t0))
			time.Sleep(time.Minute) // retried with back-off meanwhile
			synctest.Wait()
			select {
			case err := <-done:
				t.Fatalf("Run returned %v during an outage", err)
			default:
			}
			assert.Equal(t, int64(0), q.commitOf(0), "nothing committed during the outage")
			err = stop()
			require.ErrorIs(t, err, context.Canceled)
			assert.Contains(t, err.Error(), "outage")
		})
	})
}

// Issue 7.6: a gap between the checkpoint and the first offset delivered
// after a restore fails loudly; a store refuses the save of a replaced
// writer.
func TestRunnerGapAndFencing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &faultyStore{}
		q := newQueue()
		r, err := pipeline.NewRunner(q, &durableSink{}, store, testConfig())
		require.NoError(t, err)
		stop, _ := start(r)
		q.send(0, 0, view("a", "u", t0), view("b", "u", t0+1))
		time.Sleep(10 * time.Second)
		require.ErrorIs(t, stop(), context.Canceled)

		q2 := newQueue()
		r2, err := pipeline.NewRunner(q2, &durableSink{}, store, testConfig())
		require.NoError(t, err)
		_, done := start(r2)
		q2.send(0, 5, view("c", "u", t0+2)) // offsets 2..4 never delivered
		err = <-done
		require.ErrorIs(t, err, clickstream.ErrPermanent)
		assert.Contains(t, err.Error(), "messages 2..4 would be lost")

		// a newer writer (generation 3) took partition 1 over and saved: the
		// older one's next save is refused
		q3 := newQueue()
		r3, err := pipeline.NewRunner(q3, &durableSink{}, store, testConfig())
		require.NoError(t, err)
		_, done3 := start(r3)
		batch := func(off int64, id string) sources.Batch {
			return sources.Batch{Topic: "q", Partition: 1, Generation: 2,
				Messages: []sources.Message{{Topic: "q", Partition: 1, Offset: off, Value: lines(view(id, "v", t0+off))[0]}}}
		}
		q3.ch <- batch(0, "d")
		time.Sleep(10 * time.Second)
		cp, err := store.Load(t.Context(), "q", 1)
		require.NoError(t, err)
		require.Equal(t, int64(2), cp.Generation)
		cp.Generation = 3
		require.NoError(t, store.Save(t.Context(), cp))
		q3.ch <- batch(1, "e")
		err = <-done3
		require.ErrorIs(t, err, checkpoint.ErrFenced)
	})
}

// SEMANTICS §11: an idle partition's watermark advances to processing time
// - watermark_delay after idle_timeout, so its windows become final; the
// advance is checkpointed first, and a crash right after that checkpoint
// replays to the same results.
func TestRunnerIdlePartition(t *testing.T) {
	run := func(t *testing.T, crash bool) sinks.Output {
		store, sink := newDir(t), &durableSink{}
		cfg := testConfig()
		q := newQueue()
		r, err := pipeline.NewRunner(q, sink, store, cfg)
		require.NoError(t, err)
		stop, _ := start(r)
		now := time.Now().UnixMilli()
		// partition 0 keeps busy; partition 1 gets two events, then is idle
		q.send(0, 0, view("a", "u", now))
		q.ch <- sources.Batch{Topic: "q", Partition: 1, Partitions: 2, CaughtUp: true, Messages: []sources.Message{
			{Topic: "q", Partition: 1, Offset: 0, Value: lines(view("b", "v", now))[0]},
			{Topic: "q", Partition: 1, Offset: 1, Value: lines(view("c", "v", now+1))[0]}}}
		time.Sleep(30 * time.Second)
		synctest.Wait()
		wm := func() int64 { return lastProgress(sink.output(), 1).Watermark }
		assert.Equal(t, now+1-cfg.WatermarkDelay.Milliseconds(), wm(), "not idle yet")
		if crash {
			// the checkpoint of the advance is the last thing that lands:
			// the write of what the advance made final fails
			sink.mu.Lock()
			sink.failIf = func(b *sinks.Batch) error {
				if b.Partition == 1 && b.Progress.Watermark > now+1-cfg.WatermarkDelay.Milliseconds() {
					return clickstream.Permanent(errors.New("crash"))
				}
				return nil
			}
			sink.mu.Unlock()
		}
		time.Sleep(cfg.IdleTimeout + cfg.WatermarkDelay + 2*time.Minute)
		synctest.Wait()
		if crash {
			require.ErrorContains(t, stop(), "crash")
			cp, err := store.Load(t.Context(), "q", 1)
			require.NoError(t, err)
			assert.Equal(t, int64(2), cp.Next)
			sink.mu.Lock()
			sink.failIf = nil
			sink.mu.Unlock()
			q2 := newQueue()
			r2, err := pipeline.NewRunner(q2, sink, store, cfg)
			require.NoError(t, err)
			stop, _ = start(r2)
			q2.ch <- sources.Batch{Topic: "q", Partition: 1, Partitions: 2, CaughtUp: true} // assigned, nothing new
			time.Sleep(cfg.IdleTimeout + cfg.WatermarkDelay + 2*time.Minute)
			synctest.Wait()
		}
		require.ErrorIs(t, stop(), context.Canceled)
		o := sink.output()
		p := lastProgress(o, 1)
		assert.Greater(t, p.Watermark, now+1, "the idle partition advanced")
		assert.Equal(t, int32(2), p.Partitions)
		return o
	}
	var clean, crashed sinks.Output
	synctest.Test(t, func(t *testing.T) { clean = run(t, false) })
	synctest.Test(t, func(t *testing.T) { crashed = run(t, true) })
	assert.NotEmpty(t, finalsOf(clean), "the idle partition's window turned final without new events")
	assert.Equal(t, finalsOf(clean), finalsOf(crashed), "a crash around the advance gives the same results")
}

func lastProgress(o sinks.Output, p int32) sinks.Progress {
	pr, ok := o.Progress[p]
	if !ok {
		pr.Watermark = window.NegInf
	}
	return pr
}

func finalsOf(o sinks.Output) string {
	var s string
	for _, k := range o.KPIs {
		if k.Final {
			s += fmt.Sprintf("%d:%d:%d ", k.Minute, k.Events, k.Sessions)
		}
	}
	return s
}

// gateSink holds the write of a finite input's last batch until open is
// closed.
type gateSink struct {
	durableSink
	open chan struct{}
}

func (g *gateSink) Write(ctx context.Context, bs ...*sinks.Batch) error {
	for _, b := range bs {
		if b.End {
			<-g.open
		}
	}
	return g.durableSink.Write(ctx, bs...)
}

// What was read shows in Stats while the results are still being written,
// so that a progress line does not stall at 0 during a long final write.
func TestRunnerStatsBeforeTheWrites(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := sources.NewMemory(100, lines(view("a", "u", t0), view("b", "v", t0+1), view("c", "w", t0+2))...)
		sink := &gateSink{open: make(chan struct{})}
		r, err := pipeline.NewRunner(src, sink, newDir(t), testConfig())
		require.NoError(t, err)
		done := make(chan error, 1)
		go func() { done <- r.Run(context.Background()) }()
		synctest.Wait() // the last write is held
		assert.Equal(t, int64(3), r.Stats().Read)
		assert.Equal(t, int64(3), r.Stats().Counters.Accepted)
		close(sink.open)
		require.NoError(t, <-done)
	})
}

// cutSink's first Write waits for its context to end and fails with it: a
// write in flight when the Runner is cancelled.
type cutSink struct {
	durableSink
	cut bool
}

func (c *cutSink) Write(ctx context.Context, bs ...*sinks.Batch) error {
	if !c.cut {
		c.cut = true
		<-ctx.Done()
		return ctx.Err()
	}
	return c.durableSink.Write(ctx, bs...)
}

// A cancel that cuts a write short still ends in the clean shutdown: what
// was processed is written and checkpointed.
func TestRunnerCancelDuringWrite(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q, store, sink := newQueue(), newDir(t), &cutSink{}
		r, err := pipeline.NewRunner(q, sink, store, testConfig())
		require.NoError(t, err)
		stop, _ := start(r)
		q.send(0, 0, view("a", "u", t0))
		time.Sleep(2 * time.Second) // a tick's write is waiting
		synctest.Wait()
		require.ErrorIs(t, stop(), context.Canceled)
		cp, err := store.Load(t.Context(), "q", 0)
		require.NoError(t, err, "the shutdown checkpointed")
		assert.Equal(t, int64(1), cp.Next)
	})
}

// slowSink's writes each take took; it notes when each began and the offset
// after the last message it covered.
type slowSink struct {
	durableSink
	took   time.Duration
	starts []time.Duration // since epoch
	next   []int64
	epoch  time.Time
}

func (s *slowSink) Write(ctx context.Context, bs ...*sinks.Batch) error {
	s.starts = append(s.starts, time.Since(s.epoch))
	var next int64
	for _, b := range bs {
		next = max(next, b.NextOffset)
	}
	s.next = append(s.next, next)
	time.Sleep(s.took)
	return s.durableSink.Write(ctx, bs...)
}

// What arrives while a write runs goes into the round that starts when it
// ends, whole: the runner reads ahead during the write and takes every read
// waiting before it writes again, so that nothing waits a round more.
func TestRunnerRoundAfterASlowWriteTakesWhatArrived(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newQueue()
		sink := &slowSink{took: 1500 * time.Millisecond, epoch: time.Now()}
		r, err := pipeline.NewRunner(q, sink, newDir(t), testConfig()) // update_interval 1s
		require.NoError(t, err)
		stop, _ := start(r)
		q.send(0, 0, view("a", "u", t0))
		time.Sleep(1200 * time.Millisecond) // the first write runs from 1s to 2.5s
		for i := range int64(6) {
			q.send(0, 1+i, view(fmt.Sprint("b", i), "u", t0+1+i))
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		require.ErrorIs(t, stop(), context.Canceled)
		require.GreaterOrEqual(t, len(sink.starts), 2)
		assert.Equal(t, []time.Duration{time.Second, 2500 * time.Millisecond}, sink.starts[:2],
			"the second round starts as the first write ends (the tick of 2s waited)")
		assert.Equal(t, []int64{1, 7}, sink.next[:2], "the second round covers every message that arrived during the first write")
	})
}
