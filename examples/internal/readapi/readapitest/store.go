// Package readapitest holds a [Store] of fixed merged views, for tests of
// the read API and of what wraps its store. It is safe for concurrent use
// only as long as nobody writes its fields.
package readapitest

import (
	"context"
	"github.com/clickstreamkit/clickstream/sinks"
	"time"

	"github.com/clickstreamkit/clickstream/kpi"
	"github.com/clickstreamkit/clickstream/session"
	mongosink "github.com/clickstreamkit/clickstream/sinks/mongo"
)

// Store serves fixed merged views, as package readapi's Store.
type Store struct {
	Minutes    []sinks.MergedMinute // oldest first
	Funnels    []sinks.MergedFunnel // Funnel's answer, whatever the range
	Records    []session.Record     // Sessions' answer, whatever the range
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

// Sessions returns Records.
func (f *Store) Sessions(context.Context, time.Time, time.Time) ([]session.Record, error) {
	return f.Records, nil
}

// Anomalies scores Minutes with [Score].
func (f *Store) Anomalies(_ context.Context, _, to time.Time, d *kpi.Detector) ([]kpi.Anomaly, time.Time, error) {
	as, next := Score(f.Minutes, to, d)
	return as, next, nil
}

// Score feeds d the final windows of ms, oldest first, up to the first that
// is not final, as the MongoDB sink's Anomalies does over a range ending at
// to, and returns what d flagged and where it stopped: the start of that
// window, or to.
func Score(ms []sinks.MergedMinute, to time.Time, d *kpi.Detector) ([]kpi.Anomaly, time.Time) {
	var out []kpi.Anomaly
	for i := range ms {
		if !ms[i].Final {
			return out, time.UnixMilli(ms[i].Minute.Minute)
		}
		if a, ok := d.Observe(&ms[i].Minute); ok {
			out = append(out, a)
		}
	}
	return out, to
}

// Progress returns Partitions.
func (f *Store) Progress(context.Context) ([]mongosink.Progress, error) { return f.Partitions, nil }
