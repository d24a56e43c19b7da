package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/clickstreamkit/clickstream/checkpoint"
	"github.com/clickstreamkit/clickstream/sinks"
	"github.com/clickstreamkit/clickstream/sources"
)

// Runner reads a source, runs a Processor per partition and writes to a sink
// (SEMANTICS §10): for each partition it writes a batch, then saves a
// checkpoint of the state after it, then commits the input offset, each step
// retried with back-off until it succeeds or the context ends. A restart
// restores the checkpoints and skips messages they already cover, so that
// with an idempotent sink each message takes effect exactly once.
type Runner struct {
	src      sources.Source
	sink     sinks.Sink
	store    checkpoint.Store
	interval time.Duration
	ckptAt   map[partKey]time.Time // last checkpoint, by partition
	ckptNext map[partKey]int64     // offset the last checkpoint covers
	cfg      Config
	log      *slog.Logger
	procs    map[partKey]*Processor

	mu    sync.Mutex
	stats Stats
}

type partKey struct {
	topic     string
	partition int32
}

// Stats is a Runner's progress.
type Stats struct {
	Counters   sinks.Counters // over every partition this runner holds
	Partitions int
	Batches    int64 // batches written
	// LastFinalMinute is the newest window emitted as final (Unix millis), 0
	// before any.
	LastFinalMinute int64
}

// RunnerOption configures a Runner.
type RunnerOption func(*Runner)

// WithCheckpoints saves each partition's state in store, and restores it
// when the partition is first seen; offsets are committed only with a
// checkpoint. Default: none, so that offsets are committed after every write
// and a restart begins from empty state at the committed offsets.
func WithCheckpoints(store checkpoint.Store) RunnerOption {
	return func(r *Runner) { r.store = store }
}

// WithCheckpointInterval sets how often, at most, each partition is
// checkpointed and committed; results are written every update_interval
// regardless. A checkpoint is also taken when a partition is revoked, at the
// end of the input and at shutdown. Default 5s.
func WithCheckpointInterval(d time.Duration) RunnerOption {
	return func(r *Runner) { r.interval = d }
}

// NewRunner checks cfg and returns a runner; it starts nothing.
func NewRunner(src sources.Source, sink sinks.Sink, cfg Config, opts ...RunnerOption) (*Runner, error) {
	if src == nil || sink == nil {
		return nil, fmt.Errorf("%w: a source and a sink are required", ErrConfig)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &Runner{src: src, sink: sink, cfg: cfg, log: cfg.Logger, procs: map[partKey]*Processor{},
		interval: 5 * time.Second, ckptAt: map[partKey]time.Time{}, ckptNext: map[partKey]int64{}}
	for _, o := range opts {
		o(r)
	}
	return r, nil
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
// or ctx ends (it writes what was processed, then returns ctx.Err()). It
// neither closes the source nor the sink.
func (r *Runner) Run(ctx context.Context) error {
	readCtx, stop := context.WithCancel(ctx)
	defer stop()
	batches := make(chan readResult, 2)
	free := make(chan []Decoded, 4) // decoded slices handed back for reuse
	dec := r.cfg.NewDecoder()
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			b, err := r.src.Read(readCtx)
			rr := readResult{b: b, err: err, now: r.cfg.Clock()}
			if err == nil && !b.Revoked {
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
	defer wg.Wait()
	tick := time.NewTicker(r.cfg.UpdateInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			r.log.Info("stopping: writing what was processed")
			flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			err := r.flushAll(flushCtx, false, true)
			cancel()
			return errors.Join(ctx.Err(), err)
		case <-tick.C:
			if err := r.flushAll(ctx, true, false); err != nil {
				return err
			}
		case rr := <-batches:
			switch {
			case errors.Is(rr.err, sources.ErrEndOfInput):
				if en, ok := r.src.(sources.Enumerator); ok {
					for _, part := range en.Partitions() { // restore what had nothing left to read
						if _, err := r.processor(ctx, part.Topic, part.Partition); err != nil {
							return err
						}
					}
				}
				for _, p := range r.procs {
					p.Finish()
				}
				return r.flushAll(ctx, false, true)
			case rr.err != nil:
				return fmt.Errorf("pipeline: read: %w", rr.err)
			}
			if rr.b.Revoked {
				if err := r.revoke(ctx, rr.b); err != nil {
					return err
				}
				continue
			}
			p, err := r.processor(ctx, rr.b.Topic, rr.b.Partition)
			if err != nil {
				return err
			}
			msgs, decoded := rr.b.Messages, rr.decoded
			for len(msgs) > 0 && msgs[0].Offset < p.Next() { // covered by the checkpoint
				msgs, decoded = msgs[1:], decoded[1:]
			}
			p.ProcessDecoded(msgs, decoded, rr.now)
			select {
			case free <- rr.decoded:
			default:
			}
			if p.Pending() >= r.cfg.MaxPending {
				if err := r.flush(ctx, p, false); err != nil {
					return err
				}
			}
		}
	}
}

// processor returns the partition's processor, restoring its checkpoint the
// first time.
func (r *Runner) processor(ctx context.Context, topic string, partition int32) (*Processor, error) {
	k := partKey{topic, partition}
	if p, ok := r.procs[k]; ok {
		return p, nil
	}
	p, err := NewProcessor(r.cfg, topic, partition)
	if err != nil {
		return nil, err
	}
	if r.store != nil {
		var cp checkpoint.Checkpoint
		err := retry(ctx, r.log, "load checkpoint", func() error {
			var err error
			cp, err = r.store.Load(ctx, topic, partition)
			if errors.Is(err, checkpoint.ErrNotFound) {
				return nil
			}
			return err
		})
		if err != nil {
			return nil, err
		}
		if cp.State != nil {
			if err := p.Restore(cp.State); err != nil {
				return nil, err
			}
			r.log.Info("restored checkpoint", "topic", topic, "partition", partition, "next", cp.Next)
		}
	}
	r.procs[k] = p
	r.mu.Lock()
	r.stats.Partitions = len(r.procs)
	r.mu.Unlock()
	return p, nil
}

// revoke makes a partition's results durable and forgets it.
func (r *Runner) revoke(ctx context.Context, b sources.Batch) error {
	k := partKey{b.Topic, b.Partition}
	if p, ok := r.procs[k]; ok {
		if err := r.flush(ctx, p, true); err != nil {
			return err
		}
		delete(r.procs, k)
		delete(r.ckptAt, k) // a partition that comes back starts afresh
		delete(r.ckptNext, k)
		r.mu.Lock()
		r.stats.Partitions = len(r.procs)
		r.mu.Unlock()
		r.log.Info("partition revoked", "topic", b.Topic, "partition", b.Partition, "next", p.Next())
	}
	if b.Release != nil {
		b.Release()
	}
	return nil
}

func (r *Runner) flushAll(ctx context.Context, updates, force bool) error {
	for _, p := range r.procs {
		if updates {
			p.Updates()
		}
		if err := r.flush(ctx, p, force); err != nil {
			return err
		}
	}
	r.mu.Lock()
	var total sinks.Counters
	for _, p := range r.procs {
		total.Add(p.Counters())
	}
	r.stats.Counters = total
	r.mu.Unlock()
	return nil
}

// flush makes one partition's results durable; then, every checkpoint
// interval or when forced (a revocation, the end, a shutdown), saves its
// checkpoint and commits its input offset.
func (r *Runner) flush(ctx context.Context, p *Processor, force bool) error {
	b := p.Batch()
	k := partKey{b.Topic, b.Partition}
	if b.NextOffset < 0 || (b.Empty() && b.FirstOffset == b.NextOffset && !b.End) {
		// Nothing new since the last write; maybe since the last checkpoint:
		// a partition that falls idle within the interval of its last
		// checkpoint must still be checkpointed and committed once the
		// interval has passed, or its offsets lag until new input arrives.
		if r.store != nil && b.NextOffset >= 0 && r.ckptNext[k] != b.NextOffset &&
			(force || time.Since(r.ckptAt[k]) >= r.interval) {
			return r.checkpoint(ctx, p)
		}
		return nil
	}
	if err := retry(ctx, r.log, "write", func() error { return r.sink.Write(ctx, b) }); err != nil {
		return err
	}
	last := int64(0)
	for _, k := range b.KPIs {
		if k.Final {
			last = max(last, k.Minute)
		}
	}
	end := b.End
	p.Reset()
	r.mu.Lock()
	r.stats.Batches++
	r.stats.LastFinalMinute = max(r.stats.LastFinalMinute, last)
	r.mu.Unlock()
	if r.store == nil {
		return r.commit(ctx, p)
	}
	// Checkpoint and commit less often than writing: after a crash the
	// replay from the last checkpoint writes the same results again, which
	// idempotent sinks absorb.
	if !force && !end && time.Since(r.ckptAt[k]) < r.interval {
		return nil
	}
	return r.checkpoint(ctx, p)
}

// checkpoint saves the partition's state, whose results are durable, then
// commits the offset it covers.
func (r *Runner) checkpoint(ctx context.Context, p *Processor) error {
	b := p.Batch()
	state, err := p.Snapshot()
	if err != nil {
		return err
	}
	cp := checkpoint.Checkpoint{Topic: b.Topic, Partition: b.Partition, Next: p.Next(), State: state}
	if err := retry(ctx, r.log, "save checkpoint", func() error { return r.store.Save(ctx, cp) }); err != nil {
		return err
	}
	k := partKey{b.Topic, b.Partition}
	r.ckptAt[k], r.ckptNext[k] = time.Now(), cp.Next
	return r.commit(ctx, p)
}

func (r *Runner) commit(ctx context.Context, p *Processor) error {
	b := p.Batch()
	topic, part, next := b.Topic, b.Partition, p.Next()
	return retry(ctx, r.log, "commit", func() error { return r.src.Commit(ctx, topic, part, next) })
}

// retry calls f until it succeeds or ctx ends, backing off from 100ms to 10s.
func retry(ctx context.Context, log *slog.Logger, what string, f func() error) error {
	wait := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := f()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("pipeline: %s: %w", what, errors.Join(err, ctx.Err()))
		}
		log.Warn("retrying", "op", what, "attempt", attempt, "in", wait, "err", err)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return fmt.Errorf("pipeline: %s: %w", what, errors.Join(err, ctx.Err()))
		}
		wait = min(2*wait, 10*time.Second)
	}
}
