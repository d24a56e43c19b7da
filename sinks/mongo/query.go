package mongo

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/clickstreamkit/clickstream/funnel"
	"github.com/clickstreamkit/clickstream/kpi"
	"github.com/clickstreamkit/clickstream/session"
	"github.com/clickstreamkit/clickstream/sinks"
)

// The queries below read what Write wrote and merge the partitions' partials
// per minute in (topic, partition) order, as the JSON-lines sink does, so
// that float sums do not depend on the order documents come back in.

// Minutes returns the windows with from <= minute < to, by minute, each merged
// over the partitions that wrote it with kpi.Merge: Final holds when every
// partition's partial is final. A partition that has not written a window
// yet is not part of it.
func (s *Sink) Minutes(ctx context.Context, from, to time.Time) ([]kpi.Minute, error) {
	docs, err := findAll[kpiDoc](ctx, s.kpis, timeRange("minute", from, to))
	if err != nil {
		return nil, err
	}
	return mergeMinutes(docs), nil
}

// LatestMinutes returns the n newest windows, merged as by Minutes, oldest
// first.
func (s *Sink) LatestMinutes(ctx context.Context, n int) ([]kpi.Minute, error) {
	if n <= 0 {
		return nil, nil
	}
	// Walk the minute index backwards until n distinct minutes are seen,
	// then read those minutes whole.
	cur, err := s.kpis.Find(ctx, bson.D{}, options.Find().
		SetSort(bson.D{{Key: "minute", Value: -1}}).SetProjection(bson.D{{Key: "minute", Value: 1}}))
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
	if seen == 0 {
		return nil, nil
	}
	docs, err := findAll[kpiDoc](ctx, s.kpis, bson.D{{Key: "minute", Value: bson.D{{Key: "$gte", Value: oldest}}}})
	if err != nil {
		return nil, err
	}
	ms := mergeMinutes(docs)
	if len(ms) > n { // windows written since the walk
		ms = ms[len(ms)-n:]
	}
	return ms, nil
}

// Funnel returns the funnel records of the start minutes in [from, to), by
// minute, each merged over partitions with funnel.Merge (the median is exact:
// documents keep the conversion times).
func (s *Sink) Funnel(ctx context.Context, from, to time.Time) ([]funnel.Record, error) {
	docs, err := findAll[funnelDoc](ctx, s.funnel, timeRange("minute", from, to))
	if err != nil {
		return nil, err
	}
	sortByPart(docs, func(d *funnelDoc) (int64, string, int32) { return int64(d.Minute), d.Topic, d.Partition })
	var out []funnel.Record
	for i := 0; i < len(docs); {
		j := i
		var parts []funnel.Record
		for ; j < len(docs) && docs[j].Minute == docs[i].Minute; j++ {
			parts = append(parts, docs[j].record())
		}
		out = append(out, funnel.Merge(parts...))
		i = j
	}
	return out, nil
}

// Sessions returns the sessions that start in [from, to), by start and user
// id (then topic and partition, should two partitions hold a session of the
// same id).
func (s *Sink) Sessions(ctx context.Context, from, to time.Time) ([]session.Record, error) {
	docs, err := findAll[sessionDoc](ctx, s.sessions, timeRange("start", from, to))
	if err != nil {
		return nil, err
	}
	slices.SortFunc(docs, func(a, b sessionDoc) int {
		return cmp.Or(cmp.Compare(a.Start, b.Start), strings.Compare(a.UserID, b.UserID),
			strings.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	out := make([]session.Record, len(docs))
	for i := range docs {
		out[i] = docs[i].record()
	}
	return out, nil
}

// Anomalies feeds d the merged final windows of [from, to) in minute order
// (SEMANTICS §8: anomalies are scored on the global, merged view, not per
// partition) and returns what it flags. Windows not yet final in every
// partition that wrote them are skipped. d keeps its state: windows before
// from are only in its baseline if it saw them before, so start from earlier
// (or SetBaseline) to score the first minutes of a range.
func (s *Sink) Anomalies(ctx context.Context, from, to time.Time, d *kpi.Detector) ([]kpi.Anomaly, error) {
	if d == nil {
		return nil, errors.New("mongo sink: nil detector")
	}
	ms, err := s.Minutes(ctx, from, to)
	if err != nil {
		return nil, err
	}
	var out []kpi.Anomaly
	for i := range ms {
		if !ms[i].Final {
			continue
		}
		if a, ok := d.Observe(&ms[i]); ok {
			out = append(out, a)
		}
	}
	return out, nil
}

// KPIRecords shapes merged windows as the KPI records of SEMANTICS §9 (the
// JSON documents the read API serves).
func KPIRecords(ms []kpi.Minute) []sinks.KPIRecord {
	out := make([]sinks.KPIRecord, len(ms))
	for i := range ms {
		out[i] = sinks.NewKPIRecord(&ms[i])
	}
	return out
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

func sortByPart[D any](docs []D, key func(*D) (int64, string, int32)) {
	slices.SortFunc(docs, func(a, b D) int {
		am, at, ap := key(&a)
		bm, bt, bp := key(&b)
		return cmp.Or(cmp.Compare(am, bm), strings.Compare(at, bt), cmp.Compare(ap, bp))
	})
}

func mergeMinutes(docs []kpiDoc) []kpi.Minute {
	sortByPart(docs, func(d *kpiDoc) (int64, string, int32) { return int64(d.Minute), d.Topic, d.Partition })
	var out []kpi.Minute
	for i := 0; i < len(docs); {
		j := i
		var parts []kpi.Minute
		for ; j < len(docs) && docs[j].Minute == docs[i].Minute; j++ {
			parts = append(parts, docs[j].minute())
		}
		out = append(out, kpi.Merge(parts...))
		i = j
	}
	return out
}
