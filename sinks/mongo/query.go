package mongo

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
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
	"github.com/clickstreamkit/clickstream/window"
)

// The queries below read what Write wrote and merge the partitions' partials
// per minute in (topic, partition) order, as the JSON-lines sink does, so
// that float sums do not depend on the order documents come back in. Each
// reads the progress documents first, then the results: Write publishes a
// progress only once the results it covers are durable, so results read
// later are at least as new as the progress that calls them final.

// Completeness says how many of the partitions a merged record depends on
// have passed it (SEMANTICS §11). They are the partitions of every topic the
// sink holds progress or the record's partials of: a topic's partitions are
// 0 to its partition count (the largest count its progress documents carry,
// or past the highest partition number seen), and a partition without a
// progress document has not passed anything.
type Completeness struct {
	PartitionsComplete int `json:"partitions_complete"`
	PartitionsTotal    int `json:"partitions_total"`
}

// Complete reports whether every partition has passed the record.
func (c Completeness) Complete() bool { return c.PartitionsComplete == c.PartitionsTotal }

// MergedMinute is a window merged over partitions with kpi.Merge, and how
// complete it is. Its Final holds only when every partition's watermark has
// reached the window's end (SEMANTICS §11), so a final value never changes
// afterwards; a partition that lags, restarts or has not been read yet keeps
// it provisional, whether it wrote the window or not.
type MergedMinute struct {
	kpi.Minute
	Completeness
}

// MergedFunnel is a start minute's funnel merged over partitions with
// funnel.Merge, and how complete it is. Its Final holds only when every
// partition's progress has its funnel records of the minute final, whether
// the records read were running updates or not.
type MergedFunnel struct {
	funnel.Record
	Completeness
}

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
func (s *Sink) Minutes(ctx context.Context, from, to time.Time) ([]MergedMinute, error) {
	v, err := s.view(ctx)
	if err != nil {
		return nil, err
	}
	docs, err := findAll[kpiDoc](ctx, s.kpis, timeRange("minute", from, to))
	if err != nil {
		return nil, err
	}
	return s.mergeMinutes(docs, v), nil
}

// LatestMinutes returns the n newest windows, merged as by Minutes, oldest
// first.
func (s *Sink) LatestMinutes(ctx context.Context, n int) ([]MergedMinute, error) {
	if n <= 0 {
		return nil, nil
	}
	v, err := s.view(ctx)
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
	if seen == 0 {
		return nil, nil
	}
	docs, err := findAll[kpiDoc](ctx, s.kpis, bson.D{{Key: "minute", Value: bson.D{{Key: "$gte", Value: oldest}}}})
	if err != nil {
		return nil, err
	}
	ms := s.mergeMinutes(docs, v)
	if len(ms) > n { // windows written since the walk
		ms = ms[len(ms)-n:]
	}
	return ms, nil
}

// Funnel returns the funnel records of the start minutes in [from, to), by
// minute, each merged over partitions with funnel.Merge (the median is exact:
// documents keep the conversion times) and final only when every partition
// of the topic has its records of the minute final.
func (s *Sink) Funnel(ctx context.Context, from, to time.Time) ([]MergedFunnel, error) {
	v, err := s.view(ctx)
	if err != nil {
		return nil, err
	}
	docs, err := findAll[funnelDoc](ctx, s.funnel, timeRange("minute", from, to))
	if err != nil {
		return nil, err
	}
	sortByPart(docs, func(d *funnelDoc) (int64, string, int32) { return int64(d.Minute), d.Topic, d.Partition })
	var out []MergedFunnel
	for i := 0; i < len(docs); {
		j := i
		var parts []funnel.Record
		var keys []partKey
		for ; j < len(docs) && docs[j].Minute == docs[i].Minute; j++ {
			parts = append(parts, docs[j].record())
			keys = append(keys, partKey{docs[j].Topic, docs[j].Partition})
		}
		minute := int64(docs[i].Minute)
		c := v.completeness(keys, func(p *sinks.Progress) bool { return p.FunnelBefore > minute })
		r := funnel.Merge(parts...)
		r.Final = c.Complete()
		out = append(out, MergedFunnel{Record: r, Completeness: c})
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
	v, err := s.view(ctx)
	if err != nil {
		return nil, from, err
	}
	docs, err := findAll[kpiDoc](ctx, s.kpis, timeRange("minute", from, to))
	if err != nil {
		return nil, from, err
	}
	keys := make([]partKey, len(docs))
	for i := range docs {
		keys[i] = partKey{docs[i].Topic, docs[i].Partition}
	}
	ms := s.mergeMinutes(docs, v)
	// Windows from until on are not passed by every partition: one may
	// still write them, though none has yet.
	until := min(to.UnixMilli(), floorTo(v.low(keys), s.window))
	var out []kpi.Anomaly
	for i := range ms {
		if start := ms[i].Minute.Minute; start >= until || !ms[i].Final {
			until = min(until, start)
			break
		}
		if a, ok := d.Observe(&ms[i].Minute); ok {
			out = append(out, a)
		}
	}
	return out, time.UnixMilli(max(until, from.UnixMilli())).UTC(), nil
}

// floorTo returns the start of the window of size w holding t, aligned to
// the epoch; window.NegInf and window.PosInf stay as they are.
func floorTo(t, w int64) int64 {
	if t == window.NegInf || t == window.PosInf {
		return t
	}
	r := t % w
	if r < 0 {
		r += w
	}
	return t - r
}

// KPIRecord is a merged window as the read API serves it: the KPI record of
// SEMANTICS §9, whose final follows SEMANTICS §11, and how complete it is.
type KPIRecord struct {
	sinks.KPIRecord
	Completeness
}

// KPIRecords shapes merged windows as KPI records.
func KPIRecords(ms []MergedMinute) []KPIRecord {
	out := make([]KPIRecord, len(ms))
	for i := range ms {
		out[i] = KPIRecord{KPIRecord: sinks.NewKPIRecord(&ms[i].Minute), Completeness: ms[i].Completeness}
	}
	return out
}

// FunnelRecord is a merged start minute's funnel as the read API serves it:
// the funnel record of SEMANTICS §9, whether it is final (SEMANTICS §11) and
// how complete it is.
type FunnelRecord struct {
	sinks.FunnelRecord
	Final bool `json:"final"`
	Completeness
}

// FunnelRecords shapes merged funnel minutes as funnel records.
func FunnelRecords(fs []MergedFunnel) []FunnelRecord {
	out := make([]FunnelRecord, len(fs))
	for i := range fs {
		out[i] = FunnelRecord{FunnelRecord: sinks.NewFunnelRecord(&fs[i].Record), Final: fs[i].Final, Completeness: fs[i].Completeness}
	}
	return out
}

// view is the partitions' progress a query judges finality by.
type view struct {
	progress map[partKey]sinks.Progress
	counts   map[string]int32 // a topic's partition count as far as known
}

// view reads the progress documents.
func (s *Sink) view(ctx context.Context) (*view, error) {
	docs, err := findAll[progressDoc](ctx, s.progress, bson.D{})
	if err != nil {
		return nil, err
	}
	v := &view{progress: make(map[partKey]sinks.Progress, len(docs)), counts: map[string]int32{}}
	for i := range docs {
		d := &docs[i]
		v.progress[partKey{d.Topic, d.Partition}] = d.progress()
		v.counts[d.Topic] = max(v.counts[d.Topic], d.Partitions, d.Partition+1)
	}
	return v, nil
}

// members returns the partitions a record with partials from keys depends
// on (see Completeness), each once.
func (v *view) members(keys []partKey) []partKey {
	counts := maps.Clone(v.counts)
	for _, k := range keys {
		counts[k.topic] = max(counts[k.topic], k.partition+1)
	}
	var out []partKey
	for topic, n := range counts {
		for p := range n {
			out = append(out, partKey{topic, p})
		}
	}
	return out
}

// completeness counts the members that passed a record.
func (v *view) completeness(keys []partKey, passed func(*sinks.Progress) bool) Completeness {
	var c Completeness
	for _, k := range v.members(keys) {
		c.PartitionsTotal++
		if p, ok := v.progress[k]; ok && passed(&p) {
			c.PartitionsComplete++
		}
	}
	return c
}

// low returns the lowest watermark of the members, window.NegInf when one
// has no progress.
func (v *view) low(keys []partKey) int64 {
	low := window.PosInf
	for _, k := range v.members(keys) {
		p, ok := v.progress[k]
		if !ok {
			return window.NegInf
		}
		low = min(low, p.Watermark)
	}
	return low
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

// mergeMinutes merges docs per minute; a merged window is final when every
// partial is and every member partition's watermark has reached its end.
func (s *Sink) mergeMinutes(docs []kpiDoc, v *view) []MergedMinute {
	sortByPart(docs, func(d *kpiDoc) (int64, string, int32) { return int64(d.Minute), d.Topic, d.Partition })
	var out []MergedMinute
	for i := 0; i < len(docs); {
		j := i
		var parts []kpi.Minute
		var keys []partKey
		for ; j < len(docs) && docs[j].Minute == docs[i].Minute; j++ {
			parts = append(parts, docs[j].minute())
			keys = append(keys, partKey{docs[j].Topic, docs[j].Partition})
		}
		end := int64(docs[i].Minute) + s.window
		m := MergedMinute{Minute: kpi.Merge(parts...),
			Completeness: v.completeness(keys, func(p *sinks.Progress) bool { return p.Watermark >= end })}
		m.Final = m.Final && m.Complete()
		out = append(out, m)
		i = j
	}
	return out
}
