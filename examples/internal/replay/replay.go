package replay

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/clickstreamkit/clickstream"
)

// Message is one record to produce.
type Message struct {
	Key       []byte // the event's user_id; nil when the line has none
	Value     []byte // the line, rewritten in Live mode
	Timestamp time.Time
}

// Producer takes messages for delivery.
//
// Send hands m over and may return before m is delivered; it blocks while the
// producer cannot take more and returns ctx.Err() if ctx ends first. The
// producer owns m's slices afterwards and must not modify them: they may alias
// the caller's input. An error from Send stops [Run].
type Producer interface {
	Send(ctx context.Context, m Message) error
}

// Flusher is implemented by producers that deliver asynchronously. Flush
// waits until every message sent before the call is delivered or has failed,
// and returns an error if any message has failed so far.
type Flusher interface {
	Flush(ctx context.Context) error
}

// Counter is implemented by producers that learn the fate of each message;
// [Run]'s progress lines then show deliveries and failures.
type Counter interface {
	Counts() (delivered, failed int64)
}

// ProducerFunc adapts a function to [Producer].
type ProducerFunc func(ctx context.Context, m Message) error

// Send calls f.
func (f ProducerFunc) Send(ctx context.Context, m Message) error { return f(ctx, m) }

// Options says how to replay. The zero value sends every line once, as fast as
// the producer takes them, unchanged, with no progress lines.
type Options struct {
	// Rate is the number of messages per second; 0 sends as fast as the
	// producer takes them. After a stall (a slow producer) Run catches up
	// for at most one second's worth of messages.
	Rate float64

	// Loop replays the lines again and again until ctx ends.
	Loop bool

	// Live shifts each event_ts so the data looks current. At the start of
	// every pass the offset is now minus the pass's anchor (the median
	// event_ts of its first 64 timestamped lines), so the relative timing of
	// events (disorder, late events, session gaps, duplicates' identical
	// timestamps) is preserved. If a shifted event_ts would get more than
	// MaxLead ahead of the clock, which happens when the data's own event
	// rate exceeds Rate, the offset shrinks to keep it at now + MaxLead (so
	// no event trips the pipeline's future_timestamp check). From the second
	// pass on, event_id and user_id get the suffix "#<pass>" (each when it
	// stays within 128 bytes), so that a pass is not taken for duplicates of
	// the previous one, and its users are new ones: the previous pass's
	// users stop, and their sessions end a session gap later (with the same
	// users every pass, a pass shorter than the gap would keep every session
	// open forever). Messages are keyed by the renamed user_id. Lines
	// without a parseable event_ts are sent unchanged.
	Live bool

	// Skip is the number of messages an earlier run already sent (empty
	// lines not counted): Run resumes after them, in the pass and at the
	// line where that run stopped (with Loop, Skip may exceed the lines),
	// and sends nothing when a run without Loop had sent every line. In Live
	// mode the resumed pass anchors at the line it resumes at, so event
	// times go on from now, and event_id suffixes go on from that pass.
	Skip int64

	// NotBefore, in Live mode, is the event time a resumed run goes on from
	// (the latest event_ts an earlier run sent): no pass starts its events
	// behind the latest event_ts sent before it, this one or a previous
	// pass's (which MaxLead may have let run ahead of the clock), so that
	// none of them is late for the watermark the earlier ones set.
	NotBefore time.Time

	// MaxLead bounds how far ahead of the clock Live puts an event_ts.
	// Default 1m; it must stay below the pipeline's max_future_skew [5m].
	MaxLead time.Duration

	// Logger receives a progress line every Progress, and a last one at the
	// end. Default: none.
	Logger *slog.Logger

	// Progress is the interval of progress lines. Default 1s.
	Progress time.Duration

	// FlushTimeout bounds the final Flush, which runs even after ctx ended
	// (so that what was sent is delivered). Default 30s.
	FlushTimeout time.Duration
}

// Stats counts what Run did.
type Stats struct {
	Sent      int64 // messages handed to the producer
	Keyless   int64 // of which without a user_id key
	Rewritten int64 // of which with event_ts shifted (Live)
	Passes    int64 // passes started over the lines
}

const maxIDBytes = 128 // SEMANTICS §1: event_id is 1..128 bytes

// Run sends lines to p as configured by o, then flushes p (if it is a
// [Flusher]). It returns when every line was sent (each pass of a Loop goes on
// until ctx ends), with ctx.Err() if ctx ended first, or the first error of
// Send or Flush. lines are not modified. Empty lines are skipped.
func Run(ctx context.Context, p Producer, lines [][]byte, o Options) (Stats, error) {
	if o.Rate < 0 {
		return Stats{}, fmt.Errorf("replay: rate %v: want >= 0", o.Rate)
	}
	if o.Skip < 0 {
		return Stats{}, fmt.Errorf("replay: skip %d: want >= 0", o.Skip)
	}
	if o.MaxLead <= 0 {
		o.MaxLead = time.Minute
	}
	if o.Progress <= 0 {
		o.Progress = time.Second
	}
	if o.FlushTimeout <= 0 {
		o.FlushTimeout = 30 * time.Second
	}
	r := &runner{p: p, o: o}
	stop := r.progress()
	err := r.run(ctx, lines)
	if f, ok := p.(Flusher); ok {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.FlushTimeout)
		if ferr := f.Flush(fctx); ferr != nil {
			err = errors.Join(err, fmt.Errorf("replay: flush: %w", ferr))
		}
		cancel()
	}
	stop()
	return r.stats(), err
}

type runner struct {
	p Producer
	o Options

	sent, keyless, rewritten, passes atomic.Int64
}

func (r *runner) stats() Stats {
	return Stats{Sent: r.sent.Load(), Keyless: r.keyless.Load(), Rewritten: r.rewritten.Load(), Passes: r.passes.Load()}
}

func (r *runner) run(ctx context.Context, lines [][]byte) error {
	n := int64(0)
	for _, l := range lines {
		if len(l) > 0 {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	pass := r.o.Skip / n
	if pass > 0 && !r.o.Loop {
		return nil
	}
	// from is the index of the line to resume at, after Skip%n non-empty ones
	from, left := 0, r.o.Skip%n
	for ; left > 0 || len(lines[from]) == 0; from++ {
		if len(lines[from]) > 0 {
			left--
		}
	}
	pace := pacer{rate: r.o.Rate}
	var buf []byte
	var latest int64 // Live: the latest shifted event_ts sent, in ms
	if !r.o.NotBefore.IsZero() {
		latest = r.o.NotBefore.UnixMilli()
	}
	for ; ; pass, from = pass+1, 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		r.passes.Add(1)
		var offset int64 // Live: ms added to event_ts
		first := true
		for _, line := range lines[from:] {
			if len(line) == 0 {
				continue
			}
			if err := pace.wait(ctx); err != nil {
				return err
			}
			if first && r.o.Live {
				median, least := anchor(lines[from:])
				offset = max(time.Now().UnixMilli()-median, latest-least)
			}
			first = false
			f := scanFields(line)
			key, ok := stringValue(line, f.user)
			if !ok || len(key) == 0 {
				key = nil
			}
			value := line
			now := time.Now()
			shifted := false
			if r.o.Live {
				var ts int64
				var user []byte
				buf, offset, ts, user, shifted = liveRewrite(buf[:0], line, f, offset, pass, now.UnixMilli()+r.o.MaxLead.Milliseconds())
				if shifted {
					value = bytes.Clone(buf)
					latest = max(latest, ts)
				}
				if user != nil {
					key = user
				}
			}
			if err := r.p.Send(ctx, Message{Key: key, Value: value, Timestamp: now}); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return fmt.Errorf("replay: send: %w", err)
			}
			r.sent.Add(1)
			if key == nil {
				r.keyless.Add(1)
			}
			if shifted {
				r.rewritten.Add(1)
			}
		}
		if !r.o.Loop {
			return nil
		}
	}
}

// anchor returns the median and the 10th percentile of the event_ts of the
// first 64 lines that have one, or zeros when none does. The percentile
// stands for their least but for a few deliberately late events.
func anchor(lines [][]byte) (median, least int64) {
	var ts []int64
	for _, l := range lines {
		if t, ok := eventTS(l, scanFields(l)); ok {
			if ts = append(ts, t); len(ts) == 64 {
				break
			}
		}
	}
	if len(ts) == 0 {
		return 0, 0
	}
	slices.Sort(ts)
	return ts[(len(ts)-1)/2], ts[len(ts)/10]
}

func eventTS(line []byte, f fields) (int64, bool) {
	s, ok := stringValue(line, f.ts)
	if !ok {
		return 0, false
	}
	return clickstream.ParseTimestamp(string(s))
}

// liveRewrite appends line to dst with event_ts shifted by offset (lowered
// when the result would pass limit) and, from pass 1 on, event_id and
// user_id suffixed. It returns the new event_ts and user_id (nil when not
// renamed) and reports whether it shifted event_ts; if not, dst is not
// meaningful.
func liveRewrite(dst, line []byte, f fields, offset, pass, limit int64) ([]byte, int64, int64, []byte, bool) {
	ts, ok := eventTS(line, f)
	if !ok {
		return dst, offset, 0, nil, false
	}
	nts := ts + offset
	if over := nts - limit; over > 0 {
		offset -= over
		nts = limit
	}
	type repl struct {
		s   span
		val []byte
	}
	rs := []repl{{f.ts, append(clickstream.AppendTime([]byte{'"'}, nts), '"')}}
	var user []byte
	if pass > 0 {
		suffix := "#" + strconv.FormatInt(pass, 10)
		// renamed returns the field's string with the suffix, nil when it
		// is no string, empty, or would grow past 128 bytes
		renamed := func(s span) []byte {
			if v, ok := stringValue(line, s); ok && len(v) > 0 && len(v)+len(suffix) <= maxIDBytes {
				return append(v[:len(v):len(v)], suffix...)
			}
			return nil
		}
		if id := renamed(f.id); id != nil {
			rs = append(rs, repl{f.id, clickstream.AppendString(nil, string(id))})
		}
		if user = renamed(f.user); user != nil {
			rs = append(rs, repl{f.user, clickstream.AppendString(nil, string(user))})
		}
		slices.SortFunc(rs, func(a, b repl) int { return cmp.Compare(a.s.start, b.s.start) })
	}
	i := 0
	for _, r := range rs {
		dst = append(dst, line[i:r.s.start]...)
		dst = append(dst, r.val...)
		i = r.s.end
	}
	return append(dst, line[i:]...), offset, nts, user, true
}

// pacer spaces calls to wait at 1/rate seconds.
type pacer struct {
	rate  float64
	start time.Time
	n     int64 // calls so far since start
}

func (p *pacer) wait(ctx context.Context) error {
	if p.rate <= 0 {
		return ctx.Err()
	}
	now := time.Now()
	if p.start.IsZero() {
		p.start = now
	}
	due := p.start.Add(time.Duration(math.Round(float64(p.n) / p.rate * float64(time.Second))))
	if behind := now.Sub(due); behind > time.Second {
		// Stalled: catch up at most a second's worth, not a burst of all.
		p.start = p.start.Add(behind - time.Second)
		due = due.Add(behind - time.Second)
	}
	p.n++
	if d := due.Sub(now); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return ctx.Err()
}

// progress logs a line every o.Progress until the returned func is called,
// which logs a last one.
func (r *runner) progress() (stop func()) {
	log := r.o.Logger
	if log == nil {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	start := time.Now()
	line := func(msg string, last *int64, lastAt *time.Time) {
		now := time.Now()
		sent := r.sent.Load()
		attrs := []any{"events_per_s", rate(sent-*last, now.Sub(*lastAt)), "sent", sent, "passes", r.passes.Load()}
		if c, ok := r.p.(Counter); ok {
			delivered, failed := c.Counts()
			attrs = append(attrs, "delivered", delivered, "errors", failed)
		}
		log.Info(msg, attrs...)
		*last, *lastAt = sent, now
	}
	go func() {
		defer close(finished)
		t := time.NewTicker(r.o.Progress)
		defer t.Stop()
		var last int64
		lastAt := start
		for {
			select {
			case <-t.C:
				line("replay progress", &last, &lastAt)
			case <-done:
				var zero int64
				line("replay done", &zero, &start)
				return
			}
		}
	}()
	return func() { close(done); <-finished }
}

func rate(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(int64(float64(n)/d.Seconds()*10)) / 10
}

// ReadFile returns the lines of a JSON-lines file, without line ends ("\n"
// or "\r\n"), all sharing one buffer.
func ReadFile(path string) ([][]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var lines [][]byte
	for l := range bytes.Lines(data) {
		l = bytes.TrimSuffix(l, []byte{'\n'})
		lines = append(lines, bytes.TrimSuffix(l, []byte{'\r'}))
	}
	return lines, nil
}
