package mongo

import (
	"fmt"
	"net/url"
	"strconv"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/clickstreamkit/clickstream"
	"github.com/clickstreamkit/clickstream/funnel"
	"github.com/clickstreamkit/clickstream/kpi"
	"github.com/clickstreamkit/clickstream/session"
	"github.com/clickstreamkit/clickstream/sinks"
)

// docID is a document's _id: the escaped topic, the partition and what
// identifies the result within the partition, joined by "/". Escaping the
// topic (it cannot then hold "/") makes the id unambiguous.
func docID(topic string, partition int32, rest string) string {
	return url.PathEscape(topic) + "/" + strconv.FormatInt(int64(partition), 10) + "/" + rest
}

// kpiDoc is a document of the KPI collection: one partition's partial of one
// window, in the KPI record shape of SEMANTICS §6 plus what merging needs.
// A final window has its values at the top level and Running nil (null in
// the document); a window still running has them in Running, where a
// running update sets them field by field ("running.events", ...): in a
// final document that path cannot be created under null, so a stale
// running update fails on it and changes nothing. Documents of earlier
// versions of the sink have no running field and their values at the top.
type kpiDoc struct {
	ID        string        `bson:"_id,omitempty"`
	Minute    bson.DateTime `bson:"minute"`
	Topic     string        `bson:"topic"`
	Partition int32         `bson:"partition"`
	Final     bool          `bson:"final"`
	Values    kpiValues     `bson:",inline"`
	Running   *kpiValues    `bson:"running"`
}

// kpiValues are the values of a window's partial.
type kpiValues struct {
	Events            int64              `bson:"events"`
	PageViews         int64              `bson:"page_views"`
	AddToCarts        int64              `bson:"add_to_carts"`
	Purchases         int64              `bson:"purchases"`
	Sessions          int64              `bson:"sessions"`
	Revenue           float64            `bson:"revenue"`
	RevenuePurchases  int64              `bson:"revenue_purchases"`
	RevenueByCurrency map[string]float64 `bson:"revenue_by_currency"`
	ConversionRate    float64            `bson:"conversion_rate"`
	AOV               float64            `bson:"aov"`
	TopProducts       []productDoc       `bson:"top_products"`
	LatencyBins       []binDoc           `bson:"latency_bins"`
	LatencyMsP95      *float64           `bson:"latency_ms_p95"`
	UpdatedAt         bson.DateTime      `bson:"updated_at"`
}

type productDoc struct {
	ProductID string  `bson:"product_id"`
	Views     int64   `bson:"views"`
	Carts     int64   `bson:"carts"`
	Purchases int64   `bson:"purchases"`
	Revenue   float64 `bson:"revenue"`
}

// binDoc is a latency sketch bin (kpi.Bin): index i (-1 for zero), count n.
type binDoc struct {
	I int32 `bson:"i"`
	N int64 `bson:"n"`
}

func newKPIValues(m *kpi.Minute, now bson.DateTime) kpiValues {
	v := kpiValues{
		Events: m.Events, PageViews: m.PageViews, AddToCarts: m.AddToCarts, Purchases: m.Purchases,
		Sessions: m.Sessions, Revenue: m.Revenue, RevenuePurchases: m.RevenuePurchases,
		RevenueByCurrency: make(map[string]float64, len(m.RevenueByCurrency)),
		ConversionRate:    m.ConversionRate(), AOV: m.AOV(),
		TopProducts: make([]productDoc, 0, len(m.TopProducts)),
		UpdatedAt:   now,
	}
	for k, x := range m.RevenueByCurrency {
		v.RevenueByCurrency[k] = x
	}
	for _, p := range m.TopProducts {
		v.TopProducts = append(v.TopProducts, productDoc(p))
	}
	bins := m.Latency.Bins()
	v.LatencyBins = make([]binDoc, 0, len(bins))
	for _, b := range bins {
		v.LatencyBins = append(v.LatencyBins, binDoc{I: b.Index, N: int64(b.Count)})
	}
	if p95, ok := m.LatencyP95(); ok {
		v.LatencyMsP95 = &p95
	}
	return v
}

// values returns the document's current values: the running ones of a
// window not final yet.
func (d *kpiDoc) values() *kpiValues {
	if !d.Final && d.Running != nil {
		return d.Running
	}
	return &d.Values
}

func (d *kpiDoc) minute() kpi.Minute {
	v := d.values()
	m := kpi.Minute{Minute: int64(d.Minute), Final: d.Final,
		Counts: kpi.Counts{Events: v.Events, PageViews: v.PageViews, AddToCarts: v.AddToCarts,
			Purchases: v.Purchases, Sessions: v.Sessions, Revenue: v.Revenue, RevenuePurchases: v.RevenuePurchases},
		RevenueByCurrency: v.RevenueByCurrency, TopProducts: make([]kpi.Product, 0, len(v.TopProducts)),
	}
	if m.RevenueByCurrency == nil {
		m.RevenueByCurrency = map[string]float64{}
	}
	for _, p := range v.TopProducts {
		m.TopProducts = append(m.TopProducts, kpi.Product(p))
	}
	bins := make([]kpi.Bin, 0, len(v.LatencyBins))
	for _, b := range v.LatencyBins {
		if b.N > 0 {
			bins = append(bins, kpi.Bin{Index: b.I, Count: uint64(b.N)})
		}
	}
	m.Latency = kpi.SketchOf(bins)
	return m
}

// kpiWrite is the write of one window.
type kpiWrite struct {
	model   mongo.WriteModel
	running bool
}

// kpiWrites returns the writes of b's windows, each an update filtered on
// the _id alone. Per window the last value wins, a final one over running
// ones. A final window replaces the document whole; a running update sets
// the running.* fields (and, on insert, minute, topic, partition and final
// false), which a final document's null running field refuses.
func kpiWrites(b *sinks.Batch, now bson.DateTime) ([]kpiWrite, error) {
	pick := make(map[int64]int, len(b.KPIs))
	var order []int64
	for i := range b.KPIs {
		m := &b.KPIs[i]
		j, ok := pick[m.Minute]
		if !ok {
			order = append(order, m.Minute)
		}
		if !ok || m.Final || !b.KPIs[j].Final {
			pick[m.Minute] = i
		}
	}
	ws := make([]kpiWrite, 0, len(order))
	for _, minute := range order {
		m := &b.KPIs[pick[minute]]
		id := docID(b.Topic, b.Partition, clickstream.FormatTime(m.Minute))
		filter := bson.D{{Key: "_id", Value: id}}
		values := newKPIValues(m, now)
		if m.Final {
			doc := kpiDoc{ID: id, Minute: bson.DateTime(m.Minute), Topic: b.Topic, Partition: b.Partition, Final: true, Values: values}
			ws = append(ws, kpiWrite{model: mongo.NewReplaceOneModel().SetFilter(filter).SetReplacement(doc).SetUpsert(true)})
			continue
		}
		raw, err := bson.Marshal(values)
		if err != nil {
			return nil, fmt.Errorf("encode window %s: %w", id, err)
		}
		elems, err := bson.Raw(raw).Elements()
		if err != nil {
			return nil, fmt.Errorf("encode window %s: %w", id, err)
		}
		set := make(bson.D, 0, len(elems))
		for _, e := range elems {
			set = append(set, bson.E{Key: "running." + e.Key(), Value: e.Value()})
		}
		update := bson.D{{Key: "$set", Value: set}, {Key: "$setOnInsert", Value: bson.D{
			{Key: "minute", Value: bson.DateTime(m.Minute)}, {Key: "topic", Value: b.Topic},
			{Key: "partition", Value: b.Partition}, {Key: "final", Value: false}}}}
		ws = append(ws, kpiWrite{running: true, model: mongo.NewUpdateOneModel().SetFilter(filter).SetUpdate(update).SetUpsert(true)})
	}
	return ws, nil
}

// sessionDoc is a document of the sessions collection: a final session (the
// session record of SEMANTICS §5) with the partition that emitted it.
type sessionDoc struct {
	ID         string        `bson:"_id,omitempty"`
	SessionID  string        `bson:"session_id"`
	UserID     string        `bson:"user_id"`
	Topic      string        `bson:"topic"`
	Partition  int32         `bson:"partition"`
	Start      bson.DateTime `bson:"start"`
	End        bson.DateTime `bson:"end"`
	DurationMs int64         `bson:"duration_ms"`
	Events     int64         `bson:"events"`
	PageViews  int64         `bson:"page_views"`
	AddToCarts int64         `bson:"add_to_carts"`
	Purchases  int64         `bson:"purchases"`
	Revenue    float64       `bson:"revenue"`
	Bounced    bool          `bson:"bounced"`
	Converted  bool          `bson:"converted"`
	UpdatedAt  bson.DateTime `bson:"updated_at"`
}

func (d *sessionDoc) record() session.Record {
	return session.Record{UserID: d.UserID, Start: int64(d.Start), End: int64(d.End),
		DurationMs: d.DurationMs, Events: d.Events, PageViews: d.PageViews, AddToCarts: d.AddToCarts,
		Purchases: d.Purchases, Revenue: d.Revenue, Bounced: d.Bounced, Converted: d.Converted}
}

// sessionDocs returns b's sessions as documents, the last of each id.
func sessionDocs(b *sinks.Batch, now bson.DateTime) []any {
	last := make(map[string]int, len(b.Sessions))
	var order []string
	for i := range b.Sessions {
		id := b.Sessions[i].SessionID()
		if _, ok := last[id]; !ok {
			order = append(order, id)
		}
		last[id] = i
	}
	docs := make([]any, 0, len(order))
	for _, id := range order {
		s := &b.Sessions[last[id]]
		docs = append(docs, sessionDoc{ID: docID(b.Topic, b.Partition, id), SessionID: s.SessionID(), UserID: s.UserID, Topic: b.Topic, Partition: b.Partition,
			Start: bson.DateTime(s.Start), End: bson.DateTime(s.End), DurationMs: s.DurationMs,
			Events: s.Events, PageViews: s.PageViews, AddToCarts: s.AddToCarts, Purchases: s.Purchases,
			Revenue: s.Revenue, Bounced: s.Bounced, Converted: s.Converted, UpdatedAt: now})
	}
	return docs
}

// funnelDoc is a document of the funnel collection: one partition's funnel of
// a start minute (SEMANTICS §7) with the conversion times, so that merged
// medians are exact.
type funnelDoc struct {
	ID                    string        `bson:"_id,omitempty"`
	Minute                bson.DateTime `bson:"minute"`
	Topic                 string        `bson:"topic"`
	Partition             int32         `bson:"partition"`
	Entered               int64         `bson:"entered"`
	Steps                 []int64       `bson:"steps"`
	StepRates             []float64     `bson:"step_rates"`
	OverallRate           float64       `bson:"overall_rate"`
	MedianTimeToConvertMs *int64        `bson:"median_time_to_convert_ms"`
	TimesMs               []int64       `bson:"times_ms"`
	UpdatedAt             bson.DateTime `bson:"updated_at"`
}

func (d *funnelDoc) record() funnel.Record {
	r := funnel.Record{Minute: int64(d.Minute), Entered: d.Entered, Steps: nonNil(d.Steps),
		StepRates: nonNil(d.StepRates), OverallRate: d.OverallRate, TimesMs: nonNil(d.TimesMs)}
	if d.MedianTimeToConvertMs != nil {
		r.MedianTimeToConvertMs, r.HasMedian = *d.MedianTimeToConvertMs, true
	}
	return r
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// funnelDocs returns b's funnel records as documents, the last of each
// start minute.
func funnelDocs(b *sinks.Batch, now bson.DateTime) []any {
	last := make(map[int64]int, len(b.Funnel))
	var order []int64
	for i := range b.Funnel {
		m := b.Funnel[i].Minute
		if _, ok := last[m]; !ok {
			order = append(order, m)
		}
		last[m] = i
	}
	docs := make([]any, 0, len(order))
	for _, minute := range order {
		f := &b.Funnel[last[minute]]
		doc := funnelDoc{ID: docID(b.Topic, b.Partition, clickstream.FormatTime(minute)), Minute: bson.DateTime(f.Minute), Topic: b.Topic, Partition: b.Partition,
			Entered: f.Entered, Steps: append([]int64{}, f.Steps...), StepRates: append([]float64{}, f.StepRates...),
			OverallRate: f.OverallRate, TimesMs: append([]int64{}, f.TimesMs...), UpdatedAt: now}
		if f.HasMedian {
			med := f.MedianTimeToConvertMs
			doc.MedianTimeToConvertMs = &med
		}
		docs = append(docs, doc)
	}
	return docs
}

// progressID is the _id of a partition's progress document.
func progressID(topic string, partition int32) string {
	return url.PathEscape(topic) + "/" + strconv.FormatInt(int64(partition), 10)
}

// progressDoc is a document of the progress collection: how far one
// partition has got (sinks.Progress), times as Unix millis with
// math.MinInt64 and math.MaxInt64 for -inf and +inf.
type progressDoc struct {
	ID           string        `bson:"_id,omitempty"`
	Topic        string        `bson:"topic"`
	Partition    int32         `bson:"partition"`
	Partitions   int32         `bson:"partitions"`
	Watermark    int64         `bson:"watermark"`
	FunnelBefore int64         `bson:"funnel_before"`
	UpdatedAt    bson.DateTime `bson:"updated_at"`
}

func (d *progressDoc) progress() sinks.Progress {
	return sinks.Progress{Partitions: d.Partitions, Watermark: d.Watermark, FunnelBefore: d.FunnelBefore}
}

// progressUpdate publishes b's progress: $max keeps each field's largest
// value, so a replay's older progress leaves the document as it is.
func progressUpdate(b *sinks.Batch, now bson.DateTime) bson.D {
	return bson.D{
		{Key: "$set", Value: bson.D{{Key: "topic", Value: b.Topic}, {Key: "partition", Value: b.Partition},
			{Key: "updated_at", Value: now}}},
		{Key: "$max", Value: bson.D{{Key: "partitions", Value: b.Progress.Partitions},
			{Key: "watermark", Value: b.Progress.Watermark}, {Key: "funnel_before", Value: b.Progress.FunnelBefore}}},
	}
}
