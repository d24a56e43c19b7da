package main

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/clickstreamkit/clickstream"
	"github.com/clickstreamkit/clickstream/pipeline"
)

// progress samples the runner for the progress line, /stats and /metrics.
type progress struct {
	runner  *pipeline.Runner
	lag     func() int64
	dead    *deadLetters
	latency *latencyTracker
	log     *slog.Logger
	start   time.Time

	mu   sync.Mutex
	last sample
	rate float64 // events/s over the last interval
}

type sample struct {
	at   time.Time
	read int64
}

// stats is /stats's answer.
type stats struct {
	EventsPerSec    float64 `json:"events_per_sec"`
	Read            int64   `json:"read"`
	Accepted        int64   `json:"accepted"`
	Invalid         int64   `json:"invalid"`
	Late            int64   `json:"late"`
	Duplicates      int64   `json:"duplicates"`
	DeadLetters     int64   `json:"dead_letters"`
	Lag             int64   `json:"lag"`
	E2ELatencyP95   float64 `json:"e2e_latency_ms_p95"`
	LastFinalMinute *string `json:"last_final_minute"`
	UptimeS         float64 `json:"uptime_s"`
}

func newProgress(r *pipeline.Runner, lag func() int64, dead *deadLetters, lt *latencyTracker, log *slog.Logger) *progress {
	now := time.Now()
	return &progress{runner: r, lag: lag, dead: dead, latency: lt, log: log, start: now, last: sample{at: now}}
}

// tick updates the rate.
func (p *progress) tick() {
	st := p.runner.Stats()
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if dt := now.Sub(p.last.at).Seconds(); dt > 0 {
		p.rate = float64(st.Read-p.last.read) / dt
	}
	p.last = sample{at: now, read: st.Read}
}

func (p *progress) stats() stats {
	st := p.runner.Stats()
	_, dead := p.dead.snapshot()
	p.mu.Lock()
	rate := p.rate
	p.mu.Unlock()
	s := stats{EventsPerSec: rate, Read: st.Counters.Read, Accepted: st.Counters.Accepted, Invalid: st.Counters.Invalid,
		Late: st.Counters.Late, Duplicates: st.Counters.Duplicates, DeadLetters: dead, Lag: p.lag(),
		E2ELatencyP95: p.latency.p95(), UptimeS: time.Since(p.start).Seconds()}
	if st.LastFinalMinute != 0 {
		m := clickstream.FormatTime(st.LastFinalMinute)
		s.LastFinalMinute = &m
	}
	return s
}

// run logs a progress line every interval until ctx ends.
func (p *progress) run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.tick()
			s := p.stats()
			last := "none"
			if s.LastFinalMinute != nil {
				last = *s.LastFinalMinute
			}
			p.log.Info("progress", "events_per_s", int64(s.EventsPerSec), "read", s.Read, "lag", s.Lag,
				"dead_letters", s.DeadLetters, "e2e_p95_ms", int64(s.E2ELatencyP95), "last_final_minute", last)
		}
	}
}
