// Package readapitest holds a [Store] of fixed merged views, for tests of
// the read API and of what wraps its store. It is safe for concurrent use
// only as long as nobody writes its fields.
package readapitest

import (
	"context"
	"time"

	"github.com/clickstreamkit/clickstream/kpi"
	"github.com/clickstreamkit/clickstream/session"
	"github.com/clickstreamkit/clickstream/sinks"
	mongosink "github.com/clickstreamkit/clickstream/sinks/mongo"
)

// Store serves fixed merged views, as package readapi's Store.
type Store struct {
	Minutes    []sinks.MergedMinute // oldest first
	Funnels    []sinks.MergedFunnel // Funnel's answer, whatever the range
	Records    []session.Record     // SessionTotals sums them, whatever the range
	Partitions []mongosink.Progress // Progress's answer
	// From and To are the range of the last Funnel call.
	From, To time.Time
}

// LatestMinutes returns the n newest of Minutes.
func (f *Store) LatestMinutes(_ context.Context, n int) ([]sinks.MergedMinute, error) {
	return f.Minutes[max(0, len(f.Minutes)-n):], nil
}

// Funnel returns Funnels and records the range in From and To.
func (f *Store) Funnel(_ context.Context, from, to time.Time) ([]sinks.MergedFunnel, error) {
	f.From, f.To = from, to
	return f.Funnels, nil
}

// SessionTotals sums Records.
func (f *Store) SessionTotals(context.Context, time.Time, time.Time) (session.Totals, error) {
	var t session.Totals
	for i := range f.Records {
		t.Add(&f.Records[i])
	}
	return t, nil
}

// Anomalies scores Minutes with [Score] and a detector of SEMANTICS §8's
// defaults, and returns what it flagged in [from, to).
func (f *Store) Anomalies(_ context.Context, from, to time.Time) ([]kpi.Anomaly, time.Time, error) {
	d, err := kpi.NewDetector(kpi.DefaultAnomalyWindow, kpi.DefaultAnomalyMinPoints, kpi.DefaultAnomalyZ)
	if err != nil {
		return nil, from, err
	}
	as, until := Score(f.Minutes, from, to, d)
	return as, until, nil
}

// Score feeds d every final window of ms, oldest first, up to the first
// that is not final, as a store scores them, and returns what d flagged in
// [from, to) and where it stopped: the start of that window, or to (from at
// least).
func Score(ms []sinks.MergedMinute, from, to time.Time, d *kpi.Detector) ([]kpi.Anomaly, time.Time) {
	var out []kpi.Anomaly
	until := to
	for i := range ms {
		if !ms[i].Final {
			until = time.UnixMilli(ms[i].Minute.Minute)
			break
		}
		if a, ok := d.Observe(&ms[i].Minute); ok && a.Minute >= from.UnixMilli() && a.Minute < to.UnixMilli() {
			out = append(out, a)
		}
	}
	if until.After(to) {
		until = to
	}
	if until.Before(from) {
		until = from
	}
	return out, until.UTC()
}

// Progress returns Partitions.
func (f *Store) Progress(context.Context) ([]mongosink.Progress, error) { return f.Partitions, nil }
