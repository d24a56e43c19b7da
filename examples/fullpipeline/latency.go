package main

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/clickstreamkit/clickstream/kpi"
	"github.com/clickstreamkit/clickstream/sinks"
	"github.com/clickstreamkit/clickstream/sources"
)

// latencyTracker measures end-to-end latency: from a message's record
// timestamp (its produce time) to the moment the sinks have made its effect
// durable, which is when the read API can show it.
type latencyTracker struct {
	hist prometheus.Histogram

	mu      sync.Mutex
	pending map[partKey][]stamp // by partition, in offset order
	recent  kpi.Sketch          // since the last reset, for /stats
	resetAt time.Time
}

type partKey struct {
	topic     string
	partition int32
}

type stamp struct {
	offset int64
	ts     time.Time
}

func newLatencyTracker() *latencyTracker {
	return &latencyTracker{
		pending: map[partKey][]stamp{},
		hist: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "clickstream_e2e_latency_seconds",
			Help:    "From a message's record timestamp to its results being durable in the sinks.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}),
		resetAt: time.Now(),
	}
}

// source wraps src to note the record timestamps of what it delivers.
func (l *latencyTracker) source(src sources.Source) sources.Source { return &stampSource{src, l} }

// sink wraps s to observe the latencies of the messages a write covers.
func (l *latencyTracker) sink(s sinks.Sink) sinks.Sink { return &stampSink{s, l} }

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
	for _, m := range b.Messages {
		if !m.Timestamp.IsZero() {
			s.l.pending[k] = append(s.l.pending[k], stamp{m.Offset, m.Timestamp})
		}
	}
	return b, nil
}

type stampSink struct {
	sinks.Sink
	l *latencyTracker
}

func (s *stampSink) Write(ctx context.Context, bs ...*sinks.Batch) error {
	if err := s.Sink.Write(ctx, bs...); err != nil {
		return err
	}
	now := time.Now()
	s.l.mu.Lock()
	defer s.l.mu.Unlock()
	for _, b := range bs {
		k := partKey{b.Topic, b.Partition}
		ps := s.l.pending[k]
		n := 0
		for n < len(ps) && ps[n].offset < b.NextOffset {
			d := now.Sub(ps[n].ts)
			s.l.hist.Observe(d.Seconds())
			s.l.recent.Add(float64(d) / float64(time.Millisecond))
			n++
		}
		s.l.pending[k] = ps[n:]
	}
	return nil
}

// p95 returns the p95 in milliseconds over the last minute or so.
func (l *latencyTracker) p95() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	v := l.recent.Quantile(0.95)
	if time.Since(l.resetAt) > time.Minute {
		l.recent, l.resetAt = kpi.Sketch{}, time.Now()
	}
	return v
}
