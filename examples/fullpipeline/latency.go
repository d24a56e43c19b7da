package main

import (
	"context"
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/clickstreamkit/clickstream/kpi"
	"github.com/clickstreamkit/clickstream/sinks"
	"github.com/clickstreamkit/clickstream/sources"
)

// latencyTracker measures end-to-end latency: from a message's record
// timestamp (its produce time) to the moment the sinks have made its effect
// durable, which is when the read API can show it. More histograms split it
// into its stages: produce to read, read to the start of the write that
// covers the message, and the write itself (sink "all"), with each sink's
// share of it.
type latencyTracker struct {
	hist, read, wait prometheus.Histogram
	write            *prometheus.HistogramVec // by sink

	mu      sync.Mutex
	pending map[partKey][]stamp // by partition, in offset order
	// The latencies of the current minute and of the one before, for
	// /stats, the progress line and /metrics alike: reading them changes
	// nothing, so one reader does not empty the window of another.
	recent, previous kpi.Sketch
	since            time.Time // the current minute's start
}

type partKey struct {
	topic     string
	partition int32
}

type stamp struct {
	offset   int64
	ts, read time.Time // produced, read
}

func newLatencyTracker() *latencyTracker {
	opts := func(name, help string) prometheus.HistogramOpts {
		return prometheus.HistogramOpts{Name: name, Help: help, Buckets: prometheus.ExponentialBuckets(0.001, math.Sqrt2, 34)}
	}
	hist := func(name, help string) prometheus.Histogram { return prometheus.NewHistogram(opts(name, help)) }
	return &latencyTracker{
		pending: map[partKey][]stamp{},
		hist:    hist("clickstream_e2e_latency_seconds", "From a message's record timestamp to its results being durable in the sinks."),
		read:    hist("clickstream_e2e_read_seconds", "From a message's record timestamp to the source handing it over."),
		wait:    hist("clickstream_e2e_wait_seconds", "From the source handing a message over to the start of the write that covers it."),
		write: prometheus.NewHistogramVec(opts("clickstream_sink_write_seconds",
			"How long each write of a round of batches takes, by sink (all: every sink and the read API's view)."), []string{"sink"}),
		since: time.Now(),
	}
}

// collectors returns the tracker's histograms, for a registry.
func (l *latencyTracker) collectors() []prometheus.Collector {
	return []prometheus.Collector{l.hist, l.read, l.wait, l.write}
}

// source wraps src to note the record timestamps of what it delivers.
func (l *latencyTracker) source(src sources.Source) sources.Source { return &stampSource{src, l} }

// sink wraps s to observe the latencies of the messages a write covers.
func (l *latencyTracker) sink(s sinks.Sink) sinks.Sink {
	return &stampSink{s, l, l.write.WithLabelValues("all")}
}

// timed wraps s, named name, to observe how long its writes take.
func (l *latencyTracker) timed(name string, s sinks.Sink) sinks.Sink {
	return &timedSink{s, l.write.WithLabelValues(name)}
}

type timedSink struct {
	sinks.Sink
	took prometheus.Observer
}

func (s *timedSink) Write(ctx context.Context, bs ...*sinks.Batch) error {
	start := time.Now()
	err := s.Sink.Write(ctx, bs...)
	if err == nil {
		s.took.Observe(time.Since(start).Seconds())
	}
	return err
}

type stampSource struct {
	sources.Source
	l *latencyTracker
}

func (s *stampSource) Read(ctx context.Context) (sources.Batch, error) {
	b, err := s.Source.Read(ctx)
	if err != nil {
		return b, err
	}
	k := partKey{b.Topic, b.Partition}
	s.l.mu.Lock()
	defer s.l.mu.Unlock()
	if b.Revoked {
		delete(s.l.pending, k)
		return b, nil
	}
	now := time.Now()
	for _, m := range b.Messages {
		if !m.Timestamp.IsZero() {
			s.l.read.Observe(now.Sub(m.Timestamp).Seconds())
			s.l.pending[k] = append(s.l.pending[k], stamp{m.Offset, m.Timestamp, now})
		}
	}
	return b, nil
}

type stampSink struct {
	sinks.Sink
	l    *latencyTracker
	took prometheus.Observer
}

func (s *stampSink) Write(ctx context.Context, bs ...*sinks.Batch) error {
	start := time.Now()
	if err := s.Sink.Write(ctx, bs...); err != nil {
		return err
	}
	now := time.Now()
	s.took.Observe(now.Sub(start).Seconds())
	s.l.mu.Lock()
	defer s.l.mu.Unlock()
	s.l.rotate(now)
	for _, b := range bs {
		k := partKey{b.Topic, b.Partition}
		ps := s.l.pending[k]
		n := 0
		for n < len(ps) && ps[n].offset < b.NextOffset {
			d := now.Sub(ps[n].ts)
			s.l.hist.Observe(d.Seconds())
			s.l.wait.Observe(start.Sub(ps[n].read).Seconds())
			s.l.recent.Add(float64(d) / float64(time.Millisecond))
			n++
		}
		s.l.pending[k] = ps[n:]
	}
	return nil
}

// p95 returns the p95 in milliseconds over the current minute and the one
// before it (one to two minutes), whoever else reads it.
func (l *latencyTracker) p95() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rotate(time.Now())
	var both kpi.Sketch
	both.Merge(&l.previous)
	both.Merge(&l.recent)
	return both.Quantile(0.95)
}

// rotate starts a new minute once the current one is over; l.mu is held.
func (l *latencyTracker) rotate(now time.Time) {
	switch d := now.Sub(l.since); {
	case d < time.Minute:
		return
	case d < 2*time.Minute:
		l.previous, l.recent = l.recent, kpi.Sketch{}
	default: // nothing written for a minute or more
		l.previous, l.recent = kpi.Sketch{}, kpi.Sketch{}
	}
	l.since = now
}
