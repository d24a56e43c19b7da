// Package pipelinetest unit-tests pipelines without any service: a Harness
// feeds messages to a pipeline.Processor at a processing time the test moves,
// and collects what it emits in a sinks.Memory.
//
// A Harness is not safe for concurrent use.
package pipelinetest

import (
	"context"
	"testing"
	"time"

	"github.com/clickstreamkit/clickstream"
	"github.com/clickstreamkit/clickstream/pipeline"
	"github.com/clickstreamkit/clickstream/sinks"
	"github.com/clickstreamkit/clickstream/sources"
)

// Start is the processing time a Harness starts at.
var Start = time.Date(2025, 3, 14, 12, 0, 0, 0, time.UTC)

// Harness drives one partition's Processor.
type Harness struct {
	tb     testing.TB
	cfg    pipeline.Config
	now    time.Time
	last   time.Time // last update tick
	proc   *pipeline.Processor
	sink   sinks.Memory
	offset int64
}

// New returns a harness over a processor with cfg, its clock at Start. The
// config's Clock is replaced by the harness's.
func New(tb testing.TB, cfg pipeline.Config) *Harness {
	tb.Helper()
	h := &Harness{tb: tb, now: Start, last: Start}
	cfg.Clock = func() time.Time { return h.now }
	h.cfg = cfg
	p, err := pipeline.NewProcessor(cfg, "test", 0)
	if err != nil {
		tb.Fatalf("pipelinetest: %v", err)
	}
	h.proc = p
	return h
}

// Now returns the processing time.
func (h *Harness) Now() time.Time { return h.now }

// Processor returns the processor under test.
func (h *Harness) Processor() *pipeline.Processor { return h.proc }

// Feed processes raw messages, one offset each, and writes the results.
func (h *Harness) Feed(values ...[]byte) {
	h.tb.Helper()
	msgs := make([]sources.Message, len(values))
	for i, v := range values {
		msgs[i] = sources.Message{Topic: "test", Offset: h.offset, Value: v}
		h.offset++
	}
	h.proc.Process(msgs, h.now)
	h.flush()
}

// FeedLines is Feed of strings.
func (h *Harness) FeedLines(lines ...string) {
	h.tb.Helper()
	vs := make([][]byte, len(lines))
	for i, l := range lines {
		vs[i] = []byte(l)
	}
	h.Feed(vs...)
}

// FeedEvents encodes events as JSON and feeds them.
func (h *Harness) FeedEvents(events ...clickstream.Event) {
	h.tb.Helper()
	vs := make([][]byte, len(events))
	for i := range events {
		vs[i] = clickstream.AppendJSON(nil, &events[i])
	}
	h.Feed(vs...)
}

// Advance moves the processing clock by d; when a whole update interval has
// passed since the last update, the changed windows' running values are
// emitted.
func (h *Harness) Advance(d time.Duration) {
	h.tb.Helper()
	h.now = h.now.Add(d)
	if h.now.Sub(h.last) >= h.cfg.UpdateInterval {
		h.last = h.now
		h.proc.Updates()
		h.flush()
	}
}

// Finish ends the input: every window, session and funnel minute closes.
func (h *Harness) Finish() {
	h.tb.Helper()
	h.proc.Finish()
	h.flush()
}

// Output returns everything emitted so far.
func (h *Harness) Output() sinks.Output { return h.sink.Output() }

func (h *Harness) flush() {
	h.tb.Helper()
	if err := h.sink.Write(context.Background(), h.proc.Batch()); err != nil {
		h.tb.Fatalf("pipelinetest: %v", err)
	}
	h.proc.Reset()
}
