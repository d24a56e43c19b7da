package sinks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"github.com/clickstreamkit/clickstream"
	"github.com/clickstreamkit/clickstream/funnel"
	"github.com/clickstreamkit/clickstream/internal/retry"
	"github.com/clickstreamkit/clickstream/kpi"
	"github.com/clickstreamkit/clickstream/session"
)

// Batch is what one partition's pipeline produced for a run of its input:
// the messages with offsets in [FirstOffset, NextOffset). A sink must not
// keep references into it once Write returns: the pipeline reuses its
// memory (copy what you keep, e.g. with funnel.Record.Clone).
type Batch struct {
	Topic       string
	Partition   int32
	FirstOffset int64
	NextOffset  int64
	// KPIs holds running updates (Final false) and final windows.
	KPIs        []kpi.Minute
	Sessions    []session.Record // final sessions; Marks is nil
	Funnel      []funnel.Record  // running updates (Final false) and final start minutes
	DeadLetters []DeadLetter
	// Events holds the accepted events with their offsets, when the
	// pipeline keeps them.
	Events []Accepted
	// Counters are the partition's totals so far.
	Counters Counters
	// Progress is how far the partition got with this batch; a sink that
	// serves the global view publishes it after the batch's results.
	Progress Progress
	// End is true in the last batch of a finite input.
	End bool
}

// Empty reports whether b carries no result (counters and offsets aside).
func (b *Batch) Empty() bool {
	return len(b.KPIs) == 0 && len(b.Sessions) == 0 && len(b.Funnel) == 0 &&
		len(b.DeadLetters) == 0 && len(b.Events) == 0
}

// Progress is how far one partition has got (SEMANTICS §11): a merged
// window is final once every partition's Watermark has reached its end, a
// merged funnel minute once every partition's FunnelBefore is above it.
type Progress struct {
	// Partitions is the topic's partition count, 0 when unknown.
	Partitions int32
	// Watermark is the partition's wm (window.NegInf before any event,
	// window.PosInf after the end of a finite input).
	Watermark int64
	// FunnelBefore is the funnel start minute (Unix millis) below which
	// every funnel record of the partition is final.
	FunnelBefore int64
}

// Max returns, field by field, the larger of p and q: how far a partition
// has got by either, since progress never moves backwards.
func (p Progress) Max(q Progress) Progress {
	return Progress{Partitions: max(p.Partitions, q.Partitions), Watermark: max(p.Watermark, q.Watermark),
		FunnelBefore: max(p.FunnelBefore, q.FunnelBefore)}
}

// Accepted is an accepted event and the offset of its message.
type Accepted struct {
	Offset int64
	Event  clickstream.Event
}

// Counters are a partition's message counts (SEMANTICS §9 summary).
type Counters struct {
	Read       int64 `json:"read"`
	Accepted   int64 `json:"accepted"`
	Invalid    int64 `json:"invalid"`
	Late       int64 `json:"late"`
	Duplicates int64 `json:"duplicates"`
}

// Add adds o to c.
func (c *Counters) Add(o Counters) {
	c.Read += o.Read
	c.Accepted += o.Accepted
	c.Invalid += o.Invalid
	c.Late += o.Late
	c.Duplicates += o.Duplicates
}

// DeadLetter is an invalid or late message with why (SEMANTICS §1, §3).
type DeadLetter struct {
	Reason    clickstream.Reason
	Field     string
	Detail    string
	Topic     string
	Partition int32
	Offset    int64
	Raw       []byte // the original bytes
}

// Sink receives batches.
//
// Write writes batches of distinct partitions (the pipeline hands over one
// update round of every partition at once, so that a sink can send them in
// few commands) and returns nil once everything in them is written; for a
// sink whose Durable reports true, once it is durable: the pipeline then
// checkpoints and commits the input offsets they cover. On an error that is
// not permanent (clickstream.ErrPermanent) the pipeline calls Write again
// with the same batches, with back-off; a Tee does the same for each of its
// sinks on its own, so a sink behind a Tee is written again only when its
// own write failed. Behind a sink that is not durable (one
// that writes its files at Close, say) the pipeline never checkpoints or
// commits, so a restart reads the input again from its start or its last
// commit. Writes must be idempotent: after a crash
// the pipeline replays from its last checkpoint and writes batches covering
// the same offsets again, and they must not count twice. Write may keep no
// reference to the batches or their slices after it returns, and must not
// modify them: a Tee hands the same batches to its sinks at once. Write is
// called from one goroutine at a time.
//
// Close flushes and releases the sink; a sink that writes files at the end
// of a finite input does it here. Close may be called more than once.
type Sink interface {
	Write(ctx context.Context, bs ...*Batch) error
	Close(ctx context.Context) error
	Durable() bool
}

// WriteEach calls write for each batch in turn, stopping at the first
// error: a Sink's Write for a sink that writes batches one by one.
func WriteEach(ctx context.Context, bs []*Batch, write func(context.Context, *Batch) error) error {
	for _, b := range bs {
		if err := write(ctx, b); err != nil {
			return err
		}
	}
	return nil
}

// SinkFunc adapts a function to a durable Sink whose Close does nothing:
// the function returns nil only once what it wrote is durable.
type SinkFunc func(ctx context.Context, b *Batch) error

// Write calls f for each batch.
func (f SinkFunc) Write(ctx context.Context, bs ...*Batch) error { return WriteEach(ctx, bs, f) }

// Close does nothing.
func (SinkFunc) Close(context.Context) error { return nil }

// Durable reports true.
func (SinkFunc) Durable() bool { return true }

// TeeOption configures a Tee.
type TeeOption func(*tee)

// WithTeeLogger sets the logger of a Tee's retries. Default: discard.
func WithTeeLogger(l *slog.Logger) TeeOption {
	return func(t *tee) { t.log = l }
}

// NewTee returns a sink that writes each call's batches to every one of
// sinks at once, a goroutine per sink, and retries each sink that fails on
// its own with back-off (100ms to 10s, each retry logged), until it
// succeeds, ctx ends or its error is permanent (clickstream.ErrPermanent):
// within a call, a sink that succeeded is not written again. Write returns
// nil once every sink succeeded; otherwise, once every sink is done, the
// permanent errors joined, or with ctx ended the errors of the sinks that
// had not succeeded. A permanent error stops the retries of the other sinks
// (their writes in progress see their ctx cancelled). The Tee is durable
// when every sink is; Close closes every sink and joins their errors.
func NewTee(sinks []Sink, opts ...TeeOption) Sink {
	t := &tee{sinks: slices.Clone(sinks), log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(t)
	}
	return t
}

// Tee is NewTee(sinks) without options: its retries are not logged.
func Tee(sinks ...Sink) Sink { return NewTee(sinks) }

type tee struct {
	sinks []Sink
	log   *slog.Logger
}

// errStopped cancels the other sinks' writes once one failed permanently.
var errStopped = errors.New("sinks: tee: another sink failed permanently")

func (t *tee) Write(ctx context.Context, bs ...*Batch) error {
	wctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	errs := make([]error, len(t.sinks))
	var wg sync.WaitGroup
	for i, s := range t.sinks {
		wg.Go(func() {
			err := retry.Do(wctx, t.log, "write", func() error { return s.Write(wctx, bs...) },
				"sink", i, "type", fmt.Sprintf("%T", s))
			if err == nil || context.Cause(wctx) == errStopped && !errors.Is(err, clickstream.ErrPermanent) {
				return
			}
			if errors.Is(err, clickstream.ErrPermanent) {
				stop(errStopped)
			}
			errs[i] = fmt.Errorf("sinks: tee: sink %d (%T): %w", i, s, err)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Durable reports whether every sink is durable.
func (t *tee) Durable() bool {
	for _, s := range t.sinks {
		if !s.Durable() {
			return false
		}
	}
	return true
}

// Close closes every sink, one after another, and joins their errors.
func (t *tee) Close(ctx context.Context) error {
	var errs []error
	for _, s := range t.sinks {
		errs = append(errs, s.Close(ctx))
	}
	return errors.Join(errs...)
}
