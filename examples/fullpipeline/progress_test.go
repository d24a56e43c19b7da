package main

import (
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/clickstreamkit/clickstream/pipeline"
)

// interval is one progress interval: the clock moves by d, the runner reads
// n messages and the lag is lag, then the progress takes its sample.
type interval struct {
	d   time.Duration
	n   int64
	lag int64
}

// repeat is k times the same interval.
func repeat(k int, iv interval) []interval {
	out := make([]interval, k)
	for i := range out {
		out[i] = iv
	}
	return out
}

// TestProgressRateAndStall drives the progress with an injected clock: the
// rate is averaged over the last minute, and a stall is how long nothing was
// read while there was lag.
func TestProgressRateAndStall(t *testing.T) {
	steady := interval{5 * time.Second, 500, 3400} // 100 events/s
	stall := interval{5 * time.Second, 0, 3400}
	idle := interval{5 * time.Second, 0, 0}
	cat := func(parts ...[]interval) []interval {
		var out []interval
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	for _, tc := range []struct {
		name      string
		intervals []interval
		after     time.Duration // from the last sample to the stats
		readAfter int64         // read after the last sample
		rate      float64
		stalled   float64
	}{
		{name: "steady", intervals: repeat(24, steady), rate: 100},
		{name: "a burst after a minute of idle", intervals: cat(repeat(12, idle), []interval{{5 * time.Second, 6000, 0}}),
			rate: 100}, // 6000 over 60 s, not 1200/s over the last interval
		{name: "burst then idle caught up", intervals: cat(repeat(12, idle), []interval{{5 * time.Second, 6000, 0}}, repeat(6, idle)),
			rate: 100}, // not 0: the burst is still in the minute; no lag, so not stalled
		{name: "stall with lag", intervals: cat(repeat(12, steady), repeat(2, stall)), after: 2 * time.Second,
			rate: 5000.0 / 60, stalled: 12},
		{name: "a stall of the whole window", intervals: cat(repeat(12, steady), repeat(13, stall)), after: 0,
			rate: 0, stalled: 65},
		{name: "recovery", intervals: cat(repeat(12, steady), repeat(2, stall), []interval{{5 * time.Second, 1000, 2400}}),
			after: 2 * time.Second, rate: 5500.0 / 60},
		{name: "reading again since the last sample", intervals: cat(repeat(12, steady), repeat(2, stall)), after: 2 * time.Second,
			readAfter: 10, rate: 5000.0 / 60},
		{name: "a gap shorter than an interval", intervals: repeat(12, steady), after: 4 * time.Second, rate: 100},
		{name: "nothing read since the start", intervals: []interval{stall}, after: time.Second, stalled: 6},
		{name: "nothing to read", intervals: repeat(3, idle), after: time.Second},
		// -progress of a minute or more: the rate is over the last interval
		{name: "an interval of a minute", intervals: repeat(5, interval{time.Minute, 6000, 0}), rate: 100},
		{name: "an interval of a minute, read between", intervals: repeat(5, interval{time.Minute, 6000, 0}),
			after: 20 * time.Second, rate: 100},
		{name: "ticks of a minute a little late", intervals: repeat(5, interval{time.Minute + time.Second, 6100, 0}),
			after: 20 * time.Second, rate: 100},
		{name: "an interval longer than the window", intervals: repeat(4, interval{90 * time.Second, 9000, 0}),
			after: 30 * time.Second, rate: 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := time.UnixMilli(1_741_953_600_000).UTC() // 2025-03-14T12:00:00Z
			var read, lag int64
			p := newProgress(func() pipeline.Stats { return pipeline.Stats{Read: read} }, func() int64 { return lag },
				&deadLetters{byReason: map[string]int64{}}, newLatencyTracker(), slog.New(slog.DiscardHandler),
				func() time.Time { return clock })
			for _, iv := range tc.intervals {
				clock = clock.Add(iv.d)
				read += iv.n
				lag = iv.lag
				p.tick()
			}
			clock = clock.Add(tc.after)
			read += tc.readAfter
			s := p.stats()
			assert.InDelta(t, tc.rate, s.EventsPerSec, 1e-9, "events_per_sec")
			assert.InDelta(t, tc.stalled, s.StalledS, 1e-9, "stalled_s")
			assert.Equal(t, clock.Format("2006-01-02T15:04:05.000Z"), s.Now, "now: the processing clock")
		})
	}
}
