package mongo

import (
	"fmt"
	"maps"
	"net/url"
	"slices"
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

// kpiDoc is a document of the KPI collection: one partition's final partial
// of one window, in the KPI record shape of SEMANTICS §6 plus what merging
// needs. Running values live in the partition's progress document
// (runningKPI). Documents of earlier versions of the sink may hold a running
// window: final false, and its values in Running (or at the top level, in
// older ones still).
type kpiDoc struct {
	ID        string        `bson:"_id,omitempty"`
	Minute    bson.DateTime `bson:"minute"`
	Topic     string        `bson:"topic"`
	Partition int32         `bson:"partition"`
	Final     bool          `bson:"final"`
	Values    kpiValues     `bson:",inline"`
	Running   *kpiValues    `bson:"running,omitempty"`
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
	TopProducts       Products           `bson:"top_products"`
	LatencyBins       LatencyBins        `bson:"latency_bins"`
	LatencyMsP95      *float64           `bson:"latency_ms_p95"`
	UpdatedAt         bson.DateTime      `bson:"updated_at"`
}

func newKPIValues(m *kpi.Minute, now bson.DateTime) kpiValues {
	v := kpiValues{
		Events: m.Events, PageViews: m.PageViews, AddToCarts: m.AddToCarts, Purchases: m.Purchases,
		Sessions: m.Sessions, Revenue: m.Revenue, RevenuePurchases: m.RevenuePurchases,
		RevenueByCurrency: make(map[string]float64, len(m.RevenueByCurrency)),
		ConversionRate:    m.ConversionRate(), AOV: m.AOV(),
		TopProducts: Products(m.TopProducts),
		UpdatedAt:   now,
	}
	for k, x := range m.RevenueByCurrency {
		v.RevenueByCurrency[k] = x
	}
	v.LatencyBins = m.Latency.Bins()
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

func (d *kpiDoc) minute() kpi.Minute { return d.values().minute(int64(d.Minute), d.Final) }

// minute returns the window starting at start with values v.
func (v *kpiValues) minute(start int64, final bool) kpi.Minute {
	m := kpi.Minute{Minute: start, Final: final,
		Counts: kpi.Counts{Events: v.Events, PageViews: v.PageViews, AddToCarts: v.AddToCarts,
			Purchases: v.Purchases, Sessions: v.Sessions, Revenue: v.Revenue, RevenuePurchases: v.RevenuePurchases},
		RevenueByCurrency: v.RevenueByCurrency, TopProducts: v.TopProducts,
	}
	if m.RevenueByCurrency == nil {
		m.RevenueByCurrency = map[string]float64{}
	}
	if m.TopProducts == nil {
		m.TopProducts = []kpi.Product{}
	}
	m.Latency = kpi.SketchOf(v.LatencyBins)
	return m
}

// update is an update statement of a funnel minute; running marks a
// running update, which the server refuses on a final document.
type update struct {
	model   mongo.WriteModel
	running bool
}

// lastOf returns the indexes of the records of each minute to write, in
// order of first appearance: per minute the last one, a final one over
// running ones.
func lastOf(n int, minute func(i int) int64, final func(i int) bool) []int {
	pick := make(map[int64]int, n)
	var order []int64
	for i := range n {
		m := minute(i)
		j, ok := pick[m]
		if !ok {
			order = append(order, m)
		}
		if !ok || final(i) || !final(j) {
			pick[m] = i
		}
	}
	out := make([]int, len(order))
	for k, m := range order {
		out[k] = pick[m]
	}
	return out
}

// runningUpdate returns the running update of document id: it sets the
// running.* fields to values (and, on insert, minute, topic, partition and
// final false), which a final document's null running field refuses.
func runningUpdate(id string, values any, minute int64, b *sinks.Batch) (update, error) {
	raw, err := bson.Marshal(values)
	if err != nil {
		return update{}, fmt.Errorf("encode %s: %w", id, err)
	}
	elems, err := bson.Raw(raw).Elements()
	if err != nil {
		return update{}, fmt.Errorf("encode %s: %w", id, err)
	}
	set := make(bson.D, 0, len(elems))
	for _, e := range elems {
		set = append(set, bson.E{Key: "running." + e.Key(), Value: e.Value()})
	}
	u := bson.D{{Key: "$set", Value: set}, {Key: "$setOnInsert", Value: bson.D{
		{Key: "minute", Value: bson.DateTime(minute)}, {Key: "topic", Value: b.Topic},
		{Key: "partition", Value: b.Partition}, {Key: "final", Value: false}}}}
	return update{running: true, model: mongo.NewUpdateOneModel().SetFilter(bson.D{{Key: "_id", Value: id}}).SetUpdate(u).SetUpsert(true)}, nil
}

// kpiFinals returns b's final windows as documents to insert, the last of
// each window.
func kpiFinals(b *sinks.Batch, now bson.DateTime) []any {
	var docs []any
	for _, i := range lastOf(len(b.KPIs), func(i int) int64 { return b.KPIs[i].Minute }, func(i int) bool { return b.KPIs[i].Final }) {
		if m := &b.KPIs[i]; m.Final {
			docs = append(docs, kpiDoc{ID: docID(b.Topic, b.Partition, clickstream.FormatTime(m.Minute)), Minute: bson.DateTime(m.Minute),
				Topic: b.Topic, Partition: b.Partition, Final: true, Values: newKPIValues(m, now)})
		}
	}
	return docs
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

// sessionKey identifies a session within its partition in the _id: its
// start, then its user. The start leads so that ids follow time: the
// sessions of a round then land next to each other in the server's _id
// indexes, instead of one index page per session.
func sessionKey(r *session.Record) string {
	return clickstream.FormatTime(r.Start) + "/" + r.UserID
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
		docs = append(docs, sessionDoc{ID: docID(b.Topic, b.Partition, sessionKey(s)), SessionID: s.SessionID(), UserID: s.UserID, Topic: b.Topic, Partition: b.Partition,
			Start: bson.DateTime(s.Start), End: bson.DateTime(s.End), DurationMs: s.DurationMs,
			Events: s.Events, PageViews: s.PageViews, AddToCarts: s.AddToCarts, Purchases: s.Purchases,
			Revenue: s.Revenue, Bounced: s.Bounced, Converted: s.Converted, UpdatedAt: now})
	}
	return docs
}

// funnelDoc is a document of the funnel collection: one partition's funnel of
// a start minute (SEMANTICS §7) with the conversion times, so that merged
// medians are exact. A final record has its values at the top level and
// Running nil (null in the document); a record still running has them in
// Running, where a running update sets them field by field ("running.entered",
// ...): in a final document that path cannot be created under null, so a
// stale running update fails on it and changes nothing.
type funnelDoc struct {
	ID        string        `bson:"_id,omitempty"`
	Minute    bson.DateTime `bson:"minute"`
	Topic     string        `bson:"topic"`
	Partition int32         `bson:"partition"`
	Final     bool          `bson:"final"`
	Values    funnelValues  `bson:",inline"`
	Running   *funnelValues `bson:"running"`
}

// funnelValues are the values of a funnel record.
type funnelValues struct {
	Entered               int64         `bson:"entered"`
	Steps                 []int64       `bson:"steps"`
	StepRates             []float64     `bson:"step_rates"`
	OverallRate           float64       `bson:"overall_rate"`
	MedianTimeToConvertMs *int64        `bson:"median_time_to_convert_ms"`
	TimesMs               Times         `bson:"times_ms"`
	By                    []partDoc     `bson:"by"`
	UpdatedAt             bson.DateTime `bson:"updated_at"`
}

// partDoc is a part of a funnel record's breakdown (funnel.Part).
type partDoc struct {
	Value   string  `bson:"value"`
	Steps   []int64 `bson:"steps"`
	TimesMs Times   `bson:"times_ms"`
}

func newFunnelValues(f *funnel.Record, now bson.DateTime) funnelValues {
	v := funnelValues{Entered: f.Entered, Steps: append([]int64{}, f.Steps...), StepRates: append([]float64{}, f.StepRates...),
		OverallRate: f.OverallRate, TimesMs: append([]int64{}, f.TimesMs...), UpdatedAt: now}
	for _, p := range f.By {
		v.By = append(v.By, partDoc{Value: p.Value, Steps: append([]int64{}, p.Steps...), TimesMs: append([]int64{}, p.TimesMs...)})
	}
	if f.HasMedian {
		med := f.MedianTimeToConvertMs
		v.MedianTimeToConvertMs = &med
	}
	return v
}

// record returns the document's record: the running values of a minute not
// final yet.
func (d *funnelDoc) record() funnel.Record {
	v := &d.Values
	if !d.Final && d.Running != nil {
		v = d.Running
	}
	r := funnel.Record{Minute: int64(d.Minute), Entered: v.Entered, Steps: nonNil(v.Steps),
		StepRates: nonNil(v.StepRates), OverallRate: v.OverallRate, TimesMs: nonNil([]int64(v.TimesMs)), Final: d.Final}
	if v.MedianTimeToConvertMs != nil {
		r.MedianTimeToConvertMs, r.HasMedian = *v.MedianTimeToConvertMs, true
	}
	for _, p := range v.By {
		r.By = append(r.By, funnel.Part{Value: p.Value, Steps: nonNil(p.Steps), TimesMs: nonNil([]int64(p.TimesMs))})
	}
	return r
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// funnelWrites returns b's final funnel records as documents to insert, and
// the running updates (runningUpdate) of the others: per start minute the
// last record, a final one over running ones.
func funnelWrites(b *sinks.Batch, now bson.DateTime) (finals []any, running []update, err error) {
	picked := lastOf(len(b.Funnel), func(i int) int64 { return b.Funnel[i].Minute }, func(i int) bool { return b.Funnel[i].Final })
	for _, i := range picked {
		f := &b.Funnel[i]
		id := docID(b.Topic, b.Partition, clickstream.FormatTime(f.Minute))
		values := newFunnelValues(f, now)
		if f.Final {
			finals = append(finals, funnelDoc{ID: id, Minute: bson.DateTime(f.Minute), Topic: b.Topic, Partition: b.Partition, Final: true, Values: values})
			continue
		}
		w, err := runningUpdate(id, values, f.Minute, b)
		if err != nil {
			return nil, nil, fmt.Errorf("funnel minute: %w", err)
		}
		running = append(running, w)
	}
	return finals, running, nil
}

// progressID is the _id of a partition's progress document.
func progressID(topic string, partition int32) string {
	return url.PathEscape(topic) + "/" + strconv.FormatInt(int64(partition), 10)
}

// progressDoc is a document of the progress collection: how far one
// partition has got (sinks.Progress), times as Unix millis with
// math.MinInt64 and math.MaxInt64 for -inf and +inf, and the partition's
// running windows, by runningKey.
type progressDoc struct {
	ID           string                `bson:"_id,omitempty"`
	Topic        string                `bson:"topic"`
	Partition    int32                 `bson:"partition"`
	Partitions   int32                 `bson:"partitions"`
	Watermark    int64                 `bson:"watermark"`
	FunnelBefore int64                 `bson:"funnel_before"`
	UpdatedAt    bson.DateTime         `bson:"updated_at"`
	RunningKPIs  map[string]runningKPI `bson:"running_kpis,omitempty"`
}

func (d *progressDoc) progress() sinks.Progress {
	return sinks.Progress{Partitions: d.Partitions, Watermark: d.Watermark, FunnelBefore: d.FunnelBefore}
}

// runningKPI is a running window in a progress document.
type runningKPI struct {
	Minute bson.DateTime `bson:"minute"`
	Values kpiValues     `bson:",inline"`
}

// runningKey is the field of a running window in a progress document's
// running_kpis: the start in Unix millis behind a letter (a number in a
// dotted path may name an array element).
func runningKey(start int64) string { return "m" + strconv.FormatInt(start, 10) }

// held is what a partition's progress document holds of what this sink set
// there: the starts of its running windows, by runningKey.
type held map[string]int64

// progressUpdate returns the update of b's progress document and what the
// document holds after it, given what it held before (h) and the progress
// last published (last, if had). The update sets the batch's running
// windows (the last of each, none that is final in the batch), unsets its
// final ones (inserted before, in the KPI collection) and those of h that
// the watermark has passed (a running window there is stale: its final
// went to the KPI collection), and raises the progress with $max, so a
// replay's older progress leaves it as it is. send is false when it would
// change nothing: no window and no progress beyond last.
func progressUpdate(b *sinks.Batch, last sinks.Progress, had bool, h held, window int64, now bson.DateTime) (u bson.D, next held, send bool) {
	p := b.Progress
	if had {
		p = p.Max(last)
	}
	set := bson.D{{Key: "topic", Value: b.Topic}, {Key: "partition", Value: b.Partition}, {Key: "updated_at", Value: now}}
	var unset bson.D
	next = maps.Clone(h)
	if next == nil {
		next = held{}
	}
	written := map[string]bool{}
	for _, i := range lastOf(len(b.KPIs), func(i int) int64 { return b.KPIs[i].Minute }, func(i int) bool { return b.KPIs[i].Final }) {
		m := &b.KPIs[i]
		k := runningKey(m.Minute)
		if m.Final {
			unset = append(unset, bson.E{Key: "running_kpis." + k, Value: ""})
			delete(next, k)
			continue
		}
		set = append(set, bson.E{Key: "running_kpis." + k, Value: runningKPI{Minute: bson.DateTime(m.Minute), Values: newKPIValues(m, now)}})
		next[k], written[k] = m.Minute, true
	}
	for _, k := range slices.Sorted(maps.Keys(next)) {
		if p.Watermark >= next[k]+window && !written[k] {
			unset = append(unset, bson.E{Key: "running_kpis." + k, Value: ""})
			delete(next, k)
		}
	}
	u = bson.D{{Key: "$set", Value: set}, {Key: "$max", Value: bson.D{{Key: "partitions", Value: b.Progress.Partitions},
		{Key: "watermark", Value: b.Progress.Watermark}, {Key: "funnel_before", Value: b.Progress.FunnelBefore}}}}
	if len(unset) > 0 {
		u = append(u, bson.E{Key: "$unset", Value: unset})
	}
	send = !had || p != last || len(b.KPIs) > 0 || len(unset) > 0
	return u, next, send
}
