package sinks

import (
	"cmp"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/clickstreamkit/clickstream/funnel"
	"github.com/clickstreamkit/clickstream/kpi"
	"github.com/clickstreamkit/clickstream/window"
)

// View is the global view of SEMANTICS §11: the partitions' partials of
// each KPI window and funnel start minute, merged over partitions, with how
// complete each merged record is by the partitions' progress. The JSON-lines
// sink, the MongoDB sink's queries and the example's read API all merge
// through it. Partials merge in (topic, partition) order, so float sums do not
// depend on the order they came in.
//
// Every method replaces by key: a partial by (window or minute, topic,
// partition), progress field by field to its largest value, so feeding a
// replayed batch again changes nothing. A final partial is never replaced by
// a running one. A View is not safe for concurrent use.
type View struct {
	window   int64
	progress map[part]Progress
	ended    map[part]bool
	counts   map[string]int32 // a topic's partition count as far as known
	kpis     byMinute[kpi.Minute]
	funnel   byMinute[funnel.Record]
}

// Completeness says how many of the partitions a merged record depends on
// have passed it (SEMANTICS §11). They are the partitions of every topic the
// view holds progress or the record's partials of: a topic's partitions are
// 0 to its partition count (the largest count its progress carries, or past
// the highest partition number seen), and a partition without progress has
// not passed anything.
type Completeness struct {
	PartitionsComplete int `json:"partitions_complete"`
	PartitionsTotal    int `json:"partitions_total"`
}

// Complete reports whether every partition has passed the record.
func (c Completeness) Complete() bool { return c.PartitionsComplete == c.PartitionsTotal }

// MergedMinute is a window merged over partitions with kpi.Merge, and how
// complete it is. Its Final holds only when every partial is final and every
// partition's watermark has reached the window's end (SEMANTICS §11), so a
// final value never changes afterwards; a partition that lags, restarts or
// has not been read yet keeps it provisional, whether it wrote the window or
// not.
type MergedMinute struct {
	kpi.Minute
	Completeness
}

// MergedFunnel is a start minute's funnel merged over partitions with
// funnel.Merge, and how complete it is. Its Final holds only when every
// partition's progress has its funnel records of the minute final, whether
// the records held are running updates or not.
type MergedFunnel struct {
	funnel.Record
	Completeness
}

// NewView returns an empty view of windows of the given size (window_size,
// at least a millisecond).
func NewView(windowSize time.Duration) *View {
	return &View{window: max(windowSize.Milliseconds(), 1), progress: map[part]Progress{}, ended: map[part]bool{},
		counts: map[string]int32{}, kpis: newByMinute[kpi.Minute](), funnel: newByMinute[funnel.Record]()}
}

// Add takes a batch's KPI windows, funnel records and progress. It keeps
// copies: b may be reused once Add returns.
func (v *View) Add(b *Batch) {
	for i := range b.KPIs {
		v.AddMinute(b.Topic, b.Partition, &b.KPIs[i])
	}
	for i := range b.Funnel {
		v.AddFunnel(b.Topic, b.Partition, &b.Funnel[i])
	}
	v.SetProgress(b.Topic, b.Partition, b.Progress)
}

// AddMinute takes a copy of a partition's partial of a window, final or
// running.
func (v *View) AddMinute(topic string, partition int32, m *kpi.Minute) {
	v.seen(topic, partition)
	v.kpis.put(m.Minute, part{topic, partition}, m.Final, func() kpi.Minute {
		c := *m
		c.RevenueByCurrency = maps.Clone(m.RevenueByCurrency)
		c.TopProducts = slices.Clone(m.TopProducts)
		c.Latency = m.Latency.Clone()
		return c
	})
}

// AddFunnel takes a copy of a partition's funnel record of a start minute,
// final or running.
func (v *View) AddFunnel(topic string, partition int32, r *funnel.Record) {
	v.seen(topic, partition)
	v.funnel.put(r.Minute, part{topic, partition}, r.Final, r.Clone)
}

// SetProgress raises a partition's progress, field by field.
func (v *View) SetProgress(topic string, partition int32, p Progress) {
	k := part{topic, partition}
	v.seen(topic, partition)
	v.counts[topic] = max(v.counts[topic], p.Partitions)
	if old, ok := v.progress[k]; ok {
		p = p.Max(old)
	}
	v.progress[k] = p
}

// Fill adds under v what older holds, for a view that began empty while
// older was read from storage: a partial of older goes in where v has none
// of its key, or has a running one and older's is final (the rule of
// every method); progress is raised and ends are kept. older must not be
// used afterwards.
func (v *View) Fill(older *View) {
	v.kpis.fill(&older.kpis)
	v.funnel.fill(&older.funnel)
	for k, p := range older.progress {
		v.SetProgress(k.topic, k.partition, p)
	}
	for k := range older.ended {
		v.End(k.topic, k.partition)
	}
	for topic, n := range older.counts {
		v.counts[topic] = max(v.counts[topic], n)
	}
}

// Progress returns a partition's progress, and whether the view has any.
func (v *View) Progress(topic string, partition int32) (Progress, bool) {
	p, ok := v.progress[part{topic, partition}]
	return p, ok
}

// End marks the end of a partition's finite input: nothing more comes from
// it, so it has passed every record.
func (v *View) End(topic string, partition int32) {
	v.seen(topic, partition)
	v.ended[part{topic, partition}] = true
}

func (v *View) seen(topic string, partition int32) {
	v.counts[topic] = max(v.counts[topic], partition+1)
}

// Minutes returns the merged windows with from <= start < to, by start.
func (v *View) Minutes(from, to int64) []MergedMinute {
	return v.mergeMinutes(v.kpis.between(from, to))
}

// Latest returns the n newest merged windows, oldest first.
func (v *View) Latest(n int) []MergedMinute {
	ks := v.kpis.keys
	return v.mergeMinutes(ks[len(ks)-min(max(n, 0), len(ks)):])
}

func (v *View) mergeMinutes(starts []int64) []MergedMinute {
	out := make([]MergedMinute, 0, len(starts))
	for _, start := range starts {
		end := start + v.window
		m := MergedMinute{Minute: kpi.Merge(v.kpis.parts(start, nil)...),
			Completeness: v.completeness(func(p *Progress) bool { return p.Watermark >= end })}
		m.Final = m.Final && m.Complete()
		out = append(out, m)
	}
	return out
}

// Funnel returns the merged funnel records of the start minutes in
// [from, to), by minute.
func (v *View) Funnel(from, to int64) []MergedFunnel {
	starts := v.funnel.between(from, to)
	out := make([]MergedFunnel, 0, len(starts))
	for _, minute := range starts {
		passed := func(p *Progress) bool { return p.FunnelBefore > minute }
		c := v.completeness(passed)
		// A running record of a partition that has passed the minute is
		// stale: every record it has below FunnelBefore is final, so it
		// holds no entity there (they all moved to an earlier minute, the
		// zero record that says so lost in a restart).
		parts := v.funnel.parts(minute, func(k part, final bool) bool {
			p, ok := v.progress[k]
			return final || !v.ended[k] && !(ok && passed(&p))
		})
		if len(parts) == 0 {
			continue
		}
		r := funnel.Merge(parts...)
		r.Final = c.Complete()
		out = append(out, MergedFunnel{Record: r, Completeness: c})
	}
	return out
}

// Score feeds d the merged windows of [from, to) that are final, in order,
// and returns what d flagged and where it stopped: the start of the first
// window that is not final, or not yet passed by every partition though
// none wrote it yet, or to when it scored the whole range. A later call
// with the same d from there scores every window once and in order.
func (v *View) Score(d *kpi.Detector, from, to int64) (found []kpi.Anomaly, until int64) {
	until = min(to, floorTo(v.low(), v.window))
	for _, m := range v.Minutes(from, to) {
		if m.Minute.Minute >= until || !m.Final {
			until = min(until, m.Minute.Minute)
			break
		}
		if a, ok := d.Observe(&m.Minute); ok {
			found = append(found, a)
		}
	}
	return found, max(until, from)
}

// Forget drops the partials of windows and funnel minutes that start before
// t, to bound a long-running view's memory.
func (v *View) Forget(t int64) {
	v.kpis.forget(t)
	v.funnel.forget(t)
}

// members returns every partition records depend on (see Completeness).
func (v *View) members() []part {
	var out []part
	for topic, n := range v.counts {
		for p := range n {
			out = append(out, part{topic, p})
		}
	}
	return out
}

// completeness counts the members that passed a record.
func (v *View) completeness(passed func(*Progress) bool) Completeness {
	var c Completeness
	for _, k := range v.members() {
		c.PartitionsTotal++
		if p, ok := v.progress[k]; v.ended[k] || ok && passed(&p) {
			c.PartitionsComplete++
		}
	}
	return c
}

// low returns the lowest watermark of the members, window.NegInf when one
// has no progress or there are none: a view that knows no partition knows
// of nothing passed.
func (v *View) low() int64 {
	ms := v.members()
	if len(ms) == 0 {
		return window.NegInf
	}
	low := window.PosInf
	for _, k := range ms {
		if v.ended[k] {
			continue
		}
		p, ok := v.progress[k]
		if !ok {
			return window.NegInf
		}
		low = min(low, p.Watermark)
	}
	return low
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

// byMinute holds partials by minute and partition, with the minutes in order.
type byMinute[V any] struct {
	keys  []int64 // sorted
	byKey map[int64]map[part]entry[V]
}

type entry[V any] struct {
	v     V
	final bool
}

func newByMinute[V any]() byMinute[V] { return byMinute[V]{byKey: map[int64]map[part]entry[V]{}} }

// put stores the copy made by clone, unless a final partial would give way
// to a running one.
func (b *byMinute[V]) put(minute int64, p part, final bool, clone func() V) {
	ps, ok := b.byKey[minute]
	if !ok {
		ps = map[part]entry[V]{}
		b.byKey[minute] = ps
		i, _ := slices.BinarySearch(b.keys, minute)
		b.keys = slices.Insert(b.keys, i, minute)
	}
	if old, ok := ps[p]; ok && old.final && !final {
		return
	}
	ps[p] = entry[V]{clone(), final}
}

// fill takes o's entries where b has none of their key or a running one
// where o's is final.
func (b *byMinute[V]) fill(o *byMinute[V]) {
	for minute, ops := range o.byKey {
		for p, e := range ops {
			if old, ok := b.byKey[minute][p]; !ok || e.final && !old.final {
				b.put(minute, p, e.final, func() V { return e.v })
			}
		}
	}
}

// between returns the minutes in [from, to).
func (b *byMinute[V]) between(from, to int64) []int64 {
	i, _ := slices.BinarySearch(b.keys, from)
	j, _ := slices.BinarySearch(b.keys, to)
	return b.keys[i:max(i, j)]
}

// parts returns a minute's partials by (topic, partition), those keep
// allows when it is not nil.
func (b *byMinute[V]) parts(minute int64, keep func(k part, final bool) bool) []V {
	ps := b.byKey[minute]
	keys := slices.SortedFunc(maps.Keys(ps), func(a, b part) int {
		return cmp.Or(strings.Compare(a.topic, b.topic), cmp.Compare(a.partition, b.partition))
	})
	out := make([]V, 0, len(keys))
	for _, k := range keys {
		if e := ps[k]; keep == nil || keep(k, e.final) {
			out = append(out, e.v)
		}
	}
	return out
}

func (b *byMinute[V]) forget(t int64) {
	n, _ := slices.BinarySearch(b.keys, t)
	for _, k := range b.keys[:n] {
		delete(b.byKey, k)
	}
	b.keys = slices.Delete(b.keys, 0, n)
}

// GlobalKPIRecord is a merged window as a read API serves it: the KPI record
// of SEMANTICS §9, whose final follows SEMANTICS §11, and how complete it is.
type GlobalKPIRecord struct {
	KPIRecord
	Completeness
}

// GlobalKPIRecords shapes merged windows as KPI records.
func GlobalKPIRecords(ms []MergedMinute) []GlobalKPIRecord {
	out := make([]GlobalKPIRecord, len(ms))
	for i := range ms {
		out[i] = GlobalKPIRecord{KPIRecord: NewKPIRecord(&ms[i].Minute), Completeness: ms[i].Completeness}
	}
	return out
}

// GlobalFunnelRecord is a merged start minute's funnel as a read API serves
// it: the funnel record of SEMANTICS §9, whether it is final (SEMANTICS §11)
// and how complete it is.
type GlobalFunnelRecord struct {
	FunnelRecord
	Final bool `json:"final"`
	Completeness
}

// GlobalFunnelRecords shapes merged funnel minutes as funnel records.
func GlobalFunnelRecords(fs []MergedFunnel) []GlobalFunnelRecord {
	out := make([]GlobalFunnelRecord, len(fs))
	for i := range fs {
		out[i] = GlobalFunnelRecord{FunnelRecord: NewFunnelRecord(&fs[i].Record), Final: fs[i].Final, Completeness: fs[i].Completeness}
	}
	return out
}
