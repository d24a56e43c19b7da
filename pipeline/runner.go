package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/clickstreamkit/clickstream"
	"github.com/clickstreamkit/clickstream/checkpoint"
	"github.com/clickstreamkit/clickstream/internal/retry"
	"github.com/clickstreamkit/clickstream/sinks"
	"github.com/clickstreamkit/clickstream/sources"
)

// Runner reads a source, runs a Processor per partition and writes to a sink
// (SEMANTICS §10): for each partition it writes a batch, then saves a
// checkpoint of the state after it, then commits the input offset, each step
// retried with back-off until it succeeds, the context ends or the error is
// permanent (clickstream.ErrPermanent). A restart restores the checkpoints
// and skips messages they already cover, so that with an idempotent sink each
// message takes effect exactly once.
//
// Offsets are committed only when the sink and the checkpoint store are both
// durable: with a store that ends with the process (checkpoint.Memory) or a
// sink that writes at Close (sinks.JSONL), a restart reads the input again
// from where it was last committed. Checkpoints are saved only when the sink
// is at least as durable as the store, so a checkpoint never covers results
// that a crash lost.
type Runner struct {
	src   sources.Source
	sink  sinks.Sink
	store checkpoint.Store
	runnerConfig
	save    bool // checkpoints are saved
	commit  bool // offsets are committed
	cfg     Config
	dec     *clickstream.Decoder
	log     *slog.Logger
	parts   map[partKey]*part
	free    chan []Decoded // decoded slices handed back for reuse
	workers sync.WaitGroup // one goroutine per partition held

	mu    sync.Mutex
	stats Stats
}

type partKey struct {
	topic     string
	partition int32
}

// part is a partition the runner holds. Its worker goroutine runs the
// operators on what the reader decoded, so that partitions use as many cores
// as there are; the runner touches p only once busy is done (sync).
type part struct {
	p          *Processor
	jobs       chan job       // to the worker
	busy       sync.WaitGroup // jobs handed out and not yet done
	next       int64          // offset after the last message handed to the worker
	pending    atomic.Int64   // results waiting in p's batch, as the worker last saw
	gotParts   int32          // the partition count the source last reported
	restored   int64          // Next of the checkpoint restored, -1 when none or once checked
	generation int64          // the source's generation of the latest batch
	dirty      bool           // state changed since the last checkpoint
	ckptAt     time.Time      // last checkpoint
	lastMsg    time.Time      // processing time of the last message, or of the assignment
	idleAt     time.Time      // last idle advance
	counted    int64          // the partition's read count in Stats.Read
	ended      bool           // a finite input's end closed it
	end        bool           // the end's batch is written: checkpoint at once
	caughtUp   bool
}

// job is a run of a partition's messages for its worker.
type job struct {
	msgs       []sources.Message
	decoded    []Decoded
	now        time.Time
	partitions int32
}

// work runs the partition's jobs until its jobs channel closes.
func (r *Runner) work(st *part) {
	for j := range st.jobs {
		st.p.SetPartitions(j.partitions)
		if len(j.msgs) > 0 {
			st.p.ProcessDecoded(j.msgs, j.decoded, j.now)
		}
		st.pending.Store(int64(st.p.Pending()))
		if j.decoded != nil {
			select {
			case r.free <- j.decoded[:0]:
			default:
			}
		}
		st.busy.Done()
	}
}

// sync waits until the partition's worker has done every job handed out.
func (st *part) sync() { st.busy.Wait() }

// stop ends the partition's worker once it has done its jobs.
func (st *part) stop() {
	st.sync()
	close(st.jobs)
}

// Stats is a Runner's progress.
type Stats struct {
	Counters sinks.Counters // over every partition this runner holds, restored counts included
	// Read is the messages this runner has read since it started, whatever
	// partitions it holds now: its rate is the runner's throughput.
	Read       int64
	Partitions int
	Batches    int64 // batches written
	// LastFinalMinute is the newest window emitted as final (Unix millis), 0
	// before any.
	LastFinalMinute int64
}

// runnerConfig is what the runner options set.
type runnerConfig struct {
	interval time.Duration
}

// RunnerOption configures a Runner.
type RunnerOption func(*runnerConfig)

// WithCheckpointInterval sets how often, at most, each partition is
// checkpointed and committed; results are written every update_interval
// regardless. A checkpoint is also taken when a partition is revoked, at the
// end of the input, at shutdown and around an idle partition's advance.
// Default 5s.
func WithCheckpointInterval(d time.Duration) RunnerOption {
	return func(c *runnerConfig) { c.interval = d }
}

// NewRunner checks its arguments and cfg and returns a runner; it starts
// nothing. store keeps each partition's state with the offset it covers and
// is required: offsets are never committed without a durable checkpoint of
// the same state.
func NewRunner(src sources.Source, sink sinks.Sink, store checkpoint.Store, cfg Config, opts ...RunnerOption) (*Runner, error) {
	if src == nil || sink == nil || store == nil {
		return nil, fmt.Errorf("%w: a source, a sink and a checkpoint store are required", ErrConfig)
	}
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	rc := runnerConfig{interval: 5 * time.Second}
	for _, o := range opts {
		o(&rc)
	}
	if rc.interval <= 0 {
		return nil, fmt.Errorf("%w: the checkpoint interval must be positive", ErrConfig)
	}
	dec, err := cfg.NewDecoder()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return &Runner{src: src, sink: sink, store: store, runnerConfig: rc, cfg: cfg, dec: dec, log: cfg.Logger, parts: map[partKey]*part{},
		save: sink.Durable() || !store.Durable(), commit: sink.Durable() && store.Durable()}, nil
}

// Stats returns the progress so far. It is safe for concurrent use.
func (r *Runner) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

// readResult is a batch read and decoded ahead, on the reader goroutine.
type readResult struct {
	b       sources.Batch
	decoded []Decoded
	now     time.Time
	err     error
}

// Run processes until the source ends (it returns nil after the last write)
// or ctx ends (it writes and checkpoints what was processed, then returns
// ctx.Err()), or an error is permanent. It neither closes the source nor the
// sink. A goroutine reads and decodes up to 16 reads ahead while the runner
// processes and writes; each update tick first takes every read waiting, so
// that what arrived during a slow write goes into the next round.
func (r *Runner) Run(ctx context.Context) error {
	if !r.commit {
		r.log.Warn("input offsets are not committed: the sink or the checkpoint store is not durable",
			"sink_durable", r.sink.Durable(), "store_durable", r.store.Durable())
	}
	readCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { // the reader and the workers end before Run returns
		stop()
		wg.Wait()
		for k, st := range r.parts {
			st.stop()
			delete(r.parts, k)
		}
		r.workers.Wait()
	}()
	// The reader reads ahead while a write runs, so that what arrives during
	// a write is decoded and waiting when it ends.
	batches := make(chan readResult, readAhead)
	r.free = make(chan []Decoded, readAhead+2)
	free := r.free
	dec := r.dec
	wg.Go(func() {
		for {
			b, err := r.src.Read(readCtx)
			rr := readResult{b: b, err: err, now: r.cfg.Clock()}
			if err == nil && len(b.Messages) > 0 {
				select {
				case rr.decoded = <-free:
				default:
				}
				rr.decoded = slices.Grow(rr.decoded[:0], len(b.Messages))[:len(b.Messages)]
				nowMs := rr.now.UnixMilli()
				for i := range b.Messages {
					d := &rr.decoded[i]
					d.Err = dec.DecodeAt(b.Messages[i].Value, &d.Event, nowMs)
				}
			}
			select {
			case batches <- rr:
			case <-readCtx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	})
	tick := time.NewTicker(r.cfg.UpdateInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return r.shutdown(ctx)
		case <-tick.C:
			// What was read while the last write ran goes into this
			// round, not the next: a round then covers everything that
			// arrived before it started.
		drain:
			for range readAhead {
				select {
				case rr := <-batches:
					if done, err := r.handle(ctx, rr); done {
						return err
					}
				default:
					break drain
				}
			}
			err := r.flushAll(ctx, true, false)
			if err == nil {
				err = r.idle(ctx)
			}
			if err != nil {
				return r.stopped(ctx, err)
			}
		case rr := <-batches:
			if done, err := r.handle(ctx, rr); done {
				return err
			}
		}
	}
}

// readAhead is how many reads the reader may hold decoded while the
// runner processes or writes.
const readAhead = 16

// handle takes one read in Run's loop, and reports whether Run returns, with
// what.
func (r *Runner) handle(ctx context.Context, rr readResult) (bool, error) {
	if ctx.Err() != nil { // the reader saw it first
		return true, r.shutdown(ctx)
	}
	if err := r.take(ctx, rr); err != nil {
		if errors.Is(err, sources.ErrEndOfInput) {
			return true, nil
		}
		return true, r.stopped(ctx, err)
	}
	return false, nil
}

// stopped returns err, or when ctx ended during the call that failed (a
// write or a save cut short), shuts down as a cancelled Run does.
func (r *Runner) stopped(ctx context.Context, err error) error {
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return r.shutdown(ctx)
	}
	return err
}

// shutdown writes and checkpoints what was processed once ctx has ended.
func (r *Runner) shutdown(ctx context.Context) error {
	r.log.Info("stopping: writing what was processed")
	flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	return errors.Join(ctx.Err(), r.flushAll(flushCtx, false, true))
}

// take handles one read: a batch, a notice, the end of the input (it then
// returns ErrEndOfInput once everything is durable) or a read error.
func (r *Runner) take(ctx context.Context, rr readResult) error {
	switch {
	case errors.Is(rr.err, sources.ErrEndOfInput):
		return r.end(ctx)
	case rr.err != nil:
		return fmt.Errorf("pipeline: read: %w", rr.err)
	case rr.b.Revoked:
		return r.revoke(ctx, rr.b)
	}
	st, err := r.part(ctx, rr.b.Topic, rr.b.Partition, rr.now)
	if err != nil {
		return err
	}
	msgs, decoded := rr.b.Messages, rr.decoded
	if len(msgs) > 0 || rr.b.Generation != 0 { // a notice may not know it
		st.generation = rr.b.Generation
	}
	st.caughtUp = rr.b.CaughtUp
	if len(msgs) == 0 {
		if rr.b.Partitions > 0 && rr.b.Partitions != st.gotParts {
			st.gotParts = rr.b.Partitions
			st.busy.Add(1)
			st.jobs <- job{partitions: rr.b.Partitions}
		}
		if rr.b.End {
			return r.finish(ctx, st)
		}
		return nil
	}
	if st.restored >= 0 && msgs[0].Offset > st.restored {
		return clickstream.Permanent(fmt.Errorf("pipeline: %s/%d: the checkpoint covers offsets below %d, but the input resumes at %d: messages %d..%d would be lost",
			rr.b.Topic, rr.b.Partition, st.restored, msgs[0].Offset, st.restored, msgs[0].Offset-1))
	}
	st.restored = -1
	for len(msgs) > 0 && msgs[0].Offset < st.next { // covered by the checkpoint
		msgs, decoded = msgs[1:], decoded[1:]
	}
	st.lastMsg = rr.now
	if len(msgs) > 0 {
		st.next = msgs[len(msgs)-1].Offset + 1
		st.dirty = true
	}
	st.gotParts = max(st.gotParts, rr.b.Partitions)
	st.busy.Add(1)
	st.jobs <- job{msgs: msgs, decoded: decoded, now: rr.now, partitions: rr.b.Partitions}
	if rr.b.End {
		return r.finish(ctx, st)
	}
	if st.pending.Load() >= int64(r.cfg.MaxPending) {
		st.sync()
		return r.flush(ctx, st, false)
	}
	return nil
}

// finish closes a partition at the end of a finite input (SEMANTICS §3) and
// makes its results and checkpoint durable.
func (r *Runner) finish(ctx context.Context, st *part) error {
	if st.ended {
		return nil
	}
	st.ended = true
	for _, o := range r.parts { // publish reads every partition
		o.sync()
	}
	st.p.Finish()
	st.dirty = true
	r.publish() // what was read shows before the writes, which may take long
	return r.flush(ctx, st, true)
}

// end closes, at the end of a finite input, the partitions whose End notice
// did not come, and returns ErrEndOfInput once every result and checkpoint
// is durable.
func (r *Runner) end(ctx context.Context) error {
	for _, st := range r.parts {
		st.sync()
		if !st.ended {
			st.ended = true
			st.p.Finish()
			st.dirty = true
		}
	}
	if err := r.flushAll(ctx, false, true); err != nil {
		return err
	}
	return sources.ErrEndOfInput
}

// part returns the partition's state, restoring its checkpoint the first
// time.
func (r *Runner) part(ctx context.Context, topic string, partition int32, now time.Time) (*part, error) {
	k := partKey{topic, partition}
	if st, ok := r.parts[k]; ok {
		return st, nil
	}
	p, err := NewProcessor(r.cfg, topic, partition)
	if err != nil {
		return nil, err
	}
	st := &part{p: p, restored: -1, lastMsg: now, jobs: make(chan job, 4)}
	var cp checkpoint.Checkpoint
	found := true
	err = r.retry(ctx, "load checkpoint", func() error {
		var err error
		cp, err = r.store.Load(ctx, topic, partition)
		if errors.Is(err, checkpoint.ErrNotFound) {
			found = false
			return nil
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if found {
		if err := p.Restore(cp); err != nil {
			return nil, err
		}
		st.restored, st.generation = cp.Next, cp.Generation
		st.counted = p.Counters().Read
		st.next = cp.Next
		r.log.Info("restored checkpoint", "topic", topic, "partition", partition, "next", cp.Next,
			"segments", len(cp.Segments), "watermark", p.Progress().Watermark)
	}
	r.parts[k] = st
	r.mu.Lock() // the others' workers may be running: add this one's restored counts only
	r.stats.Counters.Add(p.Counters())
	r.stats.Partitions = len(r.parts)
	r.mu.Unlock()
	r.workers.Go(func() { r.work(st) })
	return st, nil
}

// revoke makes a partition's results durable and forgets it.
func (r *Runner) revoke(ctx context.Context, b sources.Batch) error {
	k := partKey{b.Topic, b.Partition}
	if st, ok := r.parts[k]; ok {
		for _, o := range r.parts { // publish reads every partition
			o.sync()
		}
		if err := r.flush(ctx, st, true); err != nil {
			return err
		}
		r.publish() // what it read counts in Stats.Read
		st.stop()
		delete(r.parts, k) // a partition that comes back starts afresh
		r.publish()
		r.log.Info("partition revoked", "topic", b.Topic, "partition", b.Partition, "next", st.p.Next())
	}
	if b.Release != nil {
		b.Release()
	}
	return nil
}

// idle advances the watermark of each partition that is caught up and has
// had no message for idle_timeout, at most once per checkpoint interval
// (SEMANTICS §11). The advance is checkpointed before what it makes final is
// emitted, and before the next message: a crash on either side of it leaves a
// state that replays to the same results.
func (r *Runner) idle(ctx context.Context) error {
	now := r.cfg.Clock()
	for _, st := range r.parts {
		if !st.caughtUp || now.Sub(st.lastMsg) < r.cfg.IdleTimeout || now.Sub(st.idleAt) < r.interval {
			continue
		}
		st.idleAt = now
		if err := r.flush(ctx, st, true); err != nil { // what came before, durable
			return err
		}
		if !st.p.Idle(now) {
			continue
		}
		st.dirty = true
		if err := r.checkpoint(ctx, st); err != nil {
			return err
		}
		st.p.Advance()
		if err := r.flush(ctx, st, false); err != nil {
			return err
		}
	}
	return nil
}

func (r *Runner) flushAll(ctx context.Context, updates, force bool) error {
	for _, st := range r.parts {
		st.sync()
	}
	r.publish() // what was read shows before the writes, which may take long
	var moved []*part
	var bs []*sinks.Batch
	for _, st := range r.parts {
		if updates {
			st.p.Updates()
		}
		if st.p.Moved() {
			moved = append(moved, st)
			bs = append(bs, st.p.Batch())
		}
	}
	if len(bs) > 0 { // one update round of every partition, in one call
		if err := r.retry(ctx, "write", func() error { return r.sink.Write(ctx, bs...) }); err != nil {
			return err
		}
		for _, st := range moved {
			r.written(st)
		}
	}
	for _, st := range r.parts {
		if err := r.flush(ctx, st, force); err != nil {
			return err
		}
	}
	r.publish()
	return nil
}

// publish updates the counters and partitions of Stats; every worker must
// be done.
func (r *Runner) publish() {
	r.mu.Lock()
	defer r.mu.Unlock()
	var total sinks.Counters
	for _, st := range r.parts {
		c := st.p.Counters()
		total.Add(c)
		r.stats.Read += c.Read - st.counted
		st.counted = c.Read
	}
	r.stats.Counters = total
	r.stats.Partitions = len(r.parts)
}

// flush writes what the partition emitted since the last write; then, every
// checkpoint interval or when forced (a revocation, the end, a shutdown),
// saves its checkpoint and commits its input offset.
func (r *Runner) flush(ctx context.Context, st *part, force bool) error {
	if st.p.Moved() {
		b := st.p.Batch()
		if err := r.retry(ctx, "write", func() error { return r.sink.Write(ctx, b) }); err != nil {
			return err
		}
		r.written(st)
	}
	// Checkpoint and commit less often than writing: after a crash the
	// replay from the last checkpoint writes the same results again, which
	// idempotent sinks absorb.
	if !st.dirty || (!force && !st.end && r.cfg.Clock().Sub(st.ckptAt) < r.interval) {
		return nil
	}
	st.end = false
	return r.checkpoint(ctx, st)
}

// written empties the partition's batch once the sink has made it durable;
// the batch of a finite input's end is checkpointed at once.
func (r *Runner) written(st *part) {
	b := st.p.Batch()
	last := int64(0)
	for _, k := range b.KPIs {
		if k.Final {
			last = max(last, k.Minute)
		}
	}
	st.end = st.end || b.End
	st.p.Reset()
	r.mu.Lock()
	r.stats.Batches++
	r.stats.LastFinalMinute = max(r.stats.LastFinalMinute, last)
	r.mu.Unlock()
}

// checkpoint saves the partition's state, whose results are durable, then
// commits the offset it covers.
func (r *Runner) checkpoint(ctx context.Context, st *part) error {
	if !r.save {
		return nil
	}
	cp, err := st.p.Checkpoint()
	if err != nil {
		return clickstream.Permanent(fmt.Errorf("pipeline: checkpoint: %w", err))
	}
	cp.Generation = st.generation
	if err := r.retry(ctx, "save checkpoint", func() error { return r.store.Save(ctx, cp) }); err != nil {
		return err
	}
	st.p.Saved()
	st.dirty, st.ckptAt = false, r.cfg.Clock()
	if !r.commit || cp.Next < 0 {
		return nil
	}
	return r.retry(ctx, "commit", func() error { return r.src.Commit(ctx, cp.Topic, cp.Partition, cp.Next) })
}

// retry calls f until it succeeds, ctx ends or f's error is permanent,
// backing off from 100ms to 10s (retry.Do).
func (r *Runner) retry(ctx context.Context, what string, f func() error) error {
	if err := retry.Do(ctx, r.log, what, f); err != nil {
		return fmt.Errorf("pipeline: %s: %w", what, err)
	}
	return nil
}
