package mongo

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/clickstreamkit/clickstream/kpi"
	"github.com/clickstreamkit/clickstream/session"
	"github.com/clickstreamkit/clickstream/sinks"
)

// The queries below read what Write wrote and merge the partitions' partials
// per minute in (topic, partition) order, as the JSON-lines sink does, so
// that float sums do not depend on the order documents come back in. Each
// reads the progress documents first, then the final results: Write
// publishes a progress only once the results it covers are durable, so
// results read later are at least as new as the progress that calls them
// final. The running records of the progress documents go in last, where
// no final record of their key was read (and over running documents of
// earlier versions of the sink).

// Progress is a partition's progress as published by Write.
type Progress struct {
	Topic     string
	Partition int32
	sinks.Progress
	// UpdatedAt is when it was last published.
	UpdatedAt time.Time
}

// Progress returns every partition's published progress, by topic and
// partition.
func (s *Sink) Progress(ctx context.Context) ([]Progress, error) {
	docs, err := findAll[progressDoc](ctx, s.progress, bson.D{})
	if err != nil {
		return nil, err
	}
	out := make([]Progress, len(docs))
	for i := range docs {
		d := &docs[i]
		out[i] = Progress{Topic: d.Topic, Partition: d.Partition, Progress: d.progress(), UpdatedAt: d.UpdatedAt.Time().UTC()}
	}
	slices.SortFunc(out, func(a, b Progress) int {
		return cmp.Or(strings.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	return out, nil
}

// Minutes returns the windows with from <= minute < to, by minute, each
// merged over the partitions that wrote it with kpi.Merge and final only
// when every partition of the topic has passed it.
func (s *Sink) Minutes(ctx context.Context, from, to time.Time) ([]sinks.MergedMinute, error) {
	v, err := s.minutesView(ctx, from, to)
	if err != nil {
		return nil, err
	}
	return v.Minutes(from.UnixMilli(), to.UnixMilli()), nil
}

// LatestMinutes returns the n newest windows, merged as by Minutes, oldest
// first.
func (s *Sink) LatestMinutes(ctx context.Context, n int) ([]sinks.MergedMinute, error) {
	if n <= 0 {
		return nil, nil
	}
	v, progress, err := s.view(ctx)
	if err != nil {
		return nil, err
	}
	// Walk the minute index backwards until n distinct minutes are seen
	// (the index alone answers: the projection leaves _id out), then read
	// those minutes whole.
	cur, err := s.kpis.Find(ctx, bson.D{}, options.Find().
		SetSort(bson.D{{Key: "minute", Value: -1}}).SetProjection(bson.D{{Key: "minute", Value: 1}, {Key: "_id", Value: 0}}))
	if err != nil {
		return nil, fmt.Errorf("mongo sink: find in %s: %w", s.kpis.Name(), err)
	}
	defer cur.Close(ctx)
	var oldest bson.DateTime
	seen := 0
	for seen < n && cur.Next(ctx) {
		var d struct {
			Minute bson.DateTime `bson:"minute"`
		}
		if err := cur.Decode(&d); err != nil {
			return nil, fmt.Errorf("mongo sink: decode %s: %w", s.kpis.Name(), err)
		}
		if seen == 0 || d.Minute != oldest {
			oldest = d.Minute
			seen++
		}
	}
	if err := cur.Err(); err != nil {
		return nil, fmt.Errorf("mongo sink: find in %s: %w", s.kpis.Name(), err)
	}
	if seen > 0 {
		if err := s.addMinutes(ctx, v, bson.D{{Key: "minute", Value: bson.D{{Key: "$gte", Value: oldest}}}}); err != nil {
			return nil, err
		}
	}
	addRunningMinutes(v, progress, math.MinInt64, math.MaxInt64)
	return v.Latest(n), nil // windows written since the walk left out
}

// Funnel returns the funnel records of the start minutes in [from, to), by
// minute, each merged over partitions with funnel.Merge (the median is exact:
// documents keep the conversion times) and final only when every partition
// of the topic has its records of the minute final.
func (s *Sink) Funnel(ctx context.Context, from, to time.Time) ([]sinks.MergedFunnel, error) {
	v, _, err := s.view(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.addFunnel(ctx, v, from, to); err != nil {
		return nil, err
	}
	return v.Funnel(from.UnixMilli(), to.UnixMilli()), nil
}

// ReadView reads the progress, then the KPI windows and funnel start
// minutes in [from, to), into a View: the partials the queries merge, for a
// reader that keeps the global view up to date itself from there (feeding it
// the batches written since; see sinks.View).
func (s *Sink) ReadView(ctx context.Context, from, to time.Time) (*sinks.View, error) {
	v, progress, err := s.view(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.addMinutes(ctx, v, timeRange("minute", from, to)); err != nil {
		return nil, err
	}
	addRunningMinutes(v, progress, from.UnixMilli(), to.UnixMilli())
	return v, s.addFunnel(ctx, v, from, to)
}

// Sessions returns the sessions that start in [from, to), by start and user
// id (then topic and partition, should two partitions hold a session of the
// same id), each once.
func (s *Sink) Sessions(ctx context.Context, from, to time.Time) ([]session.Record, error) {
	docs, err := findAll[sessionDoc](ctx, s.sessions, timeRange("start", from, to))
	if err != nil {
		return nil, err
	}
	order := func(a, b sessionDoc) int {
		return cmp.Or(cmp.Compare(a.Start, b.Start), strings.Compare(a.UserID, b.UserID),
			strings.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	}
	slices.SortFunc(docs, order)
	// a session written by an earlier version of the sink, under its
	// session_id, and again since, under its start and user, counts once
	docs = slices.CompactFunc(docs, func(a, b sessionDoc) bool { return order(a, b) == 0 })
	out := make([]session.Record, len(docs))
	for i := range docs {
		out[i] = docs[i].record()
	}
	return out, nil
}

// Anomalies scores with d the merged windows of [from, to) that are final
// (SEMANTICS §8, §11: on the global view, not per partition, and only where
// every partition has passed the window), in minute order. It stops at the
// first window that is not final, or not yet passed by every partition
// though no partition wrote it yet, and returns, with what d flagged, the
// start of that window (to when it scored the whole range): a later call
// with the same d from there scores every window once and in order. d keeps
// its state: windows before from are only in its baseline if it saw them
// before, so start from earlier (or SetBaseline) to score the first minutes
// of a range.
func (s *Sink) Anomalies(ctx context.Context, from, to time.Time, d *kpi.Detector) ([]kpi.Anomaly, time.Time, error) {
	if d == nil {
		return nil, from, errors.New("mongo sink: nil detector")
	}
	v, err := s.minutesView(ctx, from, to)
	if err != nil {
		return nil, from, err
	}
	found, until := v.Score(d, from.UnixMilli(), to.UnixMilli())
	return found, time.UnixMilli(until).UTC(), nil
}

// view reads the progress documents into a View, and returns them for
// their running records: queries read them before the results they judge.
func (s *Sink) view(ctx context.Context) (*sinks.View, []progressDoc, error) {
	docs, err := findAll[progressDoc](ctx, s.progress, bson.D{})
	if err != nil {
		return nil, nil, err
	}
	v := sinks.NewView(time.Duration(s.window) * time.Millisecond)
	for i := range docs {
		v.SetProgress(docs[i].Topic, docs[i].Partition, docs[i].progress())
	}
	return v, docs, nil
}

// minutesView reads the progress, then the windows of [from, to).
func (s *Sink) minutesView(ctx context.Context, from, to time.Time) (*sinks.View, error) {
	v, progress, err := s.view(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.addMinutes(ctx, v, timeRange("minute", from, to)); err != nil {
		return nil, err
	}
	addRunningMinutes(v, progress, from.UnixMilli(), to.UnixMilli())
	return v, nil
}

// addFunnel adds the funnel documents of [from, to) to v.
func (s *Sink) addFunnel(ctx context.Context, v *sinks.View, from, to time.Time) error {
	return forEach(ctx, s.funnel, timeRange("minute", from, to), func(d *funnelDoc) {
		r := d.record()
		v.AddFunnel(d.Topic, d.Partition, &r)
	})
}

// addMinutes adds the KPI documents filter matches to v.
func (s *Sink) addMinutes(ctx context.Context, v *sinks.View, filter bson.D) error {
	return forEach(ctx, s.kpis, filter, func(d *kpiDoc) {
		m := d.minute()
		v.AddMinute(d.Topic, d.Partition, &m)
	})
}

// addRunningMinutes adds the running windows of progress that start in
// [from, to) to v.
func addRunningMinutes(v *sinks.View, progress []progressDoc, from, to int64) {
	for i := range progress {
		d := &progress[i]
		for _, w := range d.RunningKPIs {
			if start := int64(w.Minute); start >= from && start < to {
				m := w.Values.minute(start, false)
				v.AddMinute(d.Topic, d.Partition, &m)
			}
		}
	}
}

// forEach calls f with each document of coll that filter matches.
func forEach[D any](ctx context.Context, coll *mongo.Collection, filter bson.D, f func(*D)) error {
	docs, err := findAll[D](ctx, coll, filter)
	if err != nil {
		return err
	}
	for i := range docs {
		f(&docs[i])
	}
	return nil
}

func timeRange(field string, from, to time.Time) bson.D {
	return bson.D{{Key: field, Value: bson.D{
		{Key: "$gte", Value: bson.NewDateTimeFromTime(from)},
		{Key: "$lt", Value: bson.NewDateTimeFromTime(to)},
	}}}
}

func findAll[D any](ctx context.Context, coll *mongo.Collection, filter bson.D) ([]D, error) {
	cur, err := coll.Find(ctx, filter)
	if err != nil {
		return nil, fmt.Errorf("mongo sink: find in %s: %w", coll.Name(), err)
	}
	var docs []D
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("mongo sink: read %s: %w", coll.Name(), err)
	}
	return docs, nil
}
