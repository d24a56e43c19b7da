package main

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/clickstreamkit/clickstream"
	"github.com/clickstreamkit/clickstream/examples/internal/readapi"
	"github.com/clickstreamkit/clickstream/pipeline"
)

// rateWindow is the span events_per_sec is averaged over.
const rateWindow = time.Minute

// progress samples the runner for the progress line, /stats and /metrics.
type progress struct {
	runner  func() pipeline.Stats
	lag     func() int64
	dead    *deadLetters
	latency *latencyTracker
	log     *slog.Logger
	now     func() time.Time // the processing clock
	start   time.Time

	mu      sync.Mutex
	samples []sample  // one per interval: those of the last rateWindow and the newest older one, oldest first
	readAt  time.Time // the newest sample that saw reads grow, or start
	reading bool      // whether the newest interval saw reads grow (true before the first)
}

type sample struct {
	at   time.Time
	read int64
}

// newProgress samples runner, the runner's Stats, with the clock now.
func newProgress(runner func() pipeline.Stats, lag func() int64, dead *deadLetters, lt *latencyTracker, log *slog.Logger, now func() time.Time) *progress {
	start := now()
	return &progress{runner: runner, lag: lag, dead: dead, latency: lt, log: log, now: now, start: start,
		samples: []sample{{at: start}}, readAt: start, reading: true}
}

// tick takes a sample: the rate is averaged over the samples of the last
// rateWindow, and over the last interval when that is longer, and reads
// that grew since the previous sample mean the pipeline is reading.
func (p *progress) tick() {
	read := p.runner().Read
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reading = read > p.samples[len(p.samples)-1].read
	if p.reading {
		p.readAt = now
	}
	p.samples = append(p.samples, sample{at: now, read: read})
	n := 0
	for n < len(p.samples)-1 && now.Sub(p.samples[n+1].at) >= rateWindow {
		n++
	}
	p.samples = p.samples[n:]
}

// rate is the events per second between the oldest and the newest sample.
func (p *progress) rate() float64 {
	first, last := p.samples[0], p.samples[len(p.samples)-1]
	if dt := last.at.Sub(first.at).Seconds(); dt > 0 {
		return float64(last.read-first.read) / dt
	}
	return 0
}

// stalled is how long the pipeline has read nothing while lag > 0: from
// the newest sample that saw reads grow, once a whole interval has passed
// without any; 0 while it reads, and when it has nothing to read.
func (p *progress) stalled(now time.Time, read, lag int64) time.Duration {
	if lag <= 0 || p.reading || read > p.samples[len(p.samples)-1].read {
		return 0
	}
	return now.Sub(p.readAt)
}

func (p *progress) stats() readapi.Stats {
	st := p.runner()
	_, dead := p.dead.snapshot()
	lag := p.lag()
	now := p.now()
	p.mu.Lock()
	rate, stalled := p.rate(), p.stalled(now, st.Read, lag)
	p.mu.Unlock()
	s := readapi.Stats{Now: clickstream.FormatTime(now.UnixMilli()), EventsPerSec: rate, StalledS: stalled.Seconds(),
		Read: st.Counters.Read, Accepted: st.Counters.Accepted, Invalid: st.Counters.Invalid, Late: st.Counters.Late,
		Duplicates: st.Counters.Duplicates, DeadLetters: dead, Lag: lag, E2ELatencyP95: p.latency.p95(),
		UptimeS: now.Sub(p.start).Seconds()}
	if st.LastFinalMinute != 0 {
		m := clickstream.FormatTime(st.LastFinalMinute)
		s.LastFinalMinute = &m
	}
	return s
}

// run logs a progress line every interval until ctx ends.
func (p *progress) run(ctx context.Context, interval time.Duration) {
	every(ctx, interval, func() {
		p.tick()
		s := p.stats()
		last := "none"
		if s.LastFinalMinute != nil {
			last = *s.LastFinalMinute
		}
		p.log.Info("progress", "events_per_s", int64(s.EventsPerSec), "read", s.Read, "lag", s.Lag,
			"stalled_s", int64(s.StalledS), "dead_letters", s.DeadLetters, "e2e_p95_ms", int64(s.E2ELatencyP95), "last_final_minute", last)
	})
}

// every calls f every d until ctx ends.
func every(ctx context.Context, d time.Duration, f func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f()
		}
	}
}
