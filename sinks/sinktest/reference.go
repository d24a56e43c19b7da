package sinktest

import (
	"cmp"
	"context"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/clickstreamkit/clickstream/funnel"
	"github.com/clickstreamkit/clickstream/kpi"
	"github.com/clickstreamkit/clickstream/session"
	"github.com/clickstreamkit/clickstream/sinks"
)

var _ sinks.Sink = (*Reference)(nil)

// KPI is one partition's partial of a window as a sink holds it.
type KPI struct {
	Topic     string
	Partition int32
	kpi.Minute
}

// Session is a final session as a sink holds it.
type Session struct {
	Topic     string
	Partition int32
	session.Record
}

// Funnel is one partition's funnel of a start minute as a sink holds it.
type Funnel struct {
	Topic     string
	Partition int32
	funnel.Record
}

// Snapshot is what a keyed sink holds: the current value of each key, where
// a KPI window's key is (topic, partition, minute), a session's (topic,
// partition, session id) and a funnel record's (topic, partition, minute).
// Order does not matter; the suite sorts.
type Snapshot struct {
	KPIs     []KPI
	Sessions []Session
	Funnel   []Funnel
}

// Reference is the deliberately simple keyed sink the suite compares others
// with: per key the last value written wins, except that a running KPI
// update never replaces a final window. It keeps deep copies in memory.
// A Reference is safe for concurrent use; its zero value is ready.
type Reference struct {
	mu       sync.Mutex
	kpis     map[minuteKey]KPI
	sessions map[sessionKey]Session
	funnel   map[minuteKey]Funnel
}

type partKey struct {
	topic     string
	partition int32
}

type minuteKey struct {
	partKey
	minute int64
}

type sessionKey struct {
	partKey
	id string
}

// Write applies each batch's KPI windows, sessions and funnel records.
func (r *Reference) Write(ctx context.Context, bs ...*sinks.Batch) error {
	return sinks.WriteEach(ctx, bs, r.write)
}

func (r *Reference) write(_ context.Context, b *sinks.Batch) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.kpis == nil {
		r.kpis, r.sessions, r.funnel = map[minuteKey]KPI{}, map[sessionKey]Session{}, map[minuteKey]Funnel{}
	}
	p := partKey{b.Topic, b.Partition}
	for i := range b.KPIs {
		m := &b.KPIs[i]
		k := minuteKey{p, m.Minute}
		if old, ok := r.kpis[k]; ok && old.Final && !m.Final {
			continue
		}
		r.kpis[k] = KPI{b.Topic, b.Partition, cloneMinute(m)}
	}
	for i := range b.Sessions {
		s := b.Sessions[i]
		s.Marks = nil
		r.sessions[sessionKey{p, s.SessionID()}] = Session{b.Topic, b.Partition, s}
	}
	for i := range b.Funnel {
		k := minuteKey{p, b.Funnel[i].Minute}
		if old, ok := r.funnel[k]; ok && old.Final && !b.Funnel[i].Final {
			continue
		}
		r.funnel[k] = Funnel{b.Topic, b.Partition, b.Funnel[i].Clone()}
	}
	return nil
}

// Durable reports false: the reference lives in memory.
func (*Reference) Durable() bool { return false }

// Close does nothing.
func (r *Reference) Close(context.Context) error { return nil }

// Snapshot returns what r holds, sorted.
func (r *Reference) Snapshot() Snapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	var s Snapshot
	for _, k := range r.kpis {
		k.Minute = cloneMinute(&k.Minute)
		s.KPIs = append(s.KPIs, k)
	}
	for _, x := range r.sessions {
		s.Sessions = append(s.Sessions, x)
	}
	for _, f := range r.funnel {
		f.Record = f.Record.Clone()
		s.Funnel = append(s.Funnel, f)
	}
	return s.normalize(true)
}

func cloneMinute(m *kpi.Minute) kpi.Minute {
	c := *m
	c.RevenueByCurrency = maps.Clone(m.RevenueByCurrency)
	c.TopProducts = slices.Clone(m.TopProducts)
	return c
}

// normalize returns s sorted by key, with empty maps and slices in one form
// (nil and empty compare equal), marks dropped, and, unless perPartition,
// topics and partitions cleared.
func (s Snapshot) normalize(perPartition bool) Snapshot {
	var out Snapshot
	for _, k := range s.KPIs {
		k.Minute = cloneMinute(&k.Minute)
		if k.RevenueByCurrency == nil {
			k.RevenueByCurrency = map[string]float64{}
		}
		if k.TopProducts == nil {
			k.TopProducts = []kpi.Product{}
		}
		if !perPartition {
			k.Topic, k.Partition = "", 0
		}
		out.KPIs = append(out.KPIs, k)
	}
	for _, x := range s.Sessions {
		x.Marks = nil
		if !perPartition {
			x.Topic, x.Partition = "", 0
		}
		out.Sessions = append(out.Sessions, x)
	}
	for _, f := range s.Funnel {
		f.Record = f.Record.Clone()
		for _, p := range []*[]int64{&f.Steps, &f.TimesMs} {
			if *p == nil {
				*p = []int64{}
			}
		}
		if f.StepRates == nil {
			f.StepRates = []float64{}
		}
		if len(f.By) == 0 {
			f.By = nil
		}
		for i := range f.By {
			if f.By[i].TimesMs == nil {
				f.By[i].TimesMs = []int64{}
			}
		}
		if !perPartition {
			f.Topic, f.Partition = "", 0
		}
		out.Funnel = append(out.Funnel, f)
	}
	byPart := func(at string, ap int32, bt string, bp int32) int {
		return cmp.Or(strings.Compare(at, bt), cmp.Compare(ap, bp))
	}
	slices.SortFunc(out.KPIs, func(a, b KPI) int {
		return cmp.Or(byPart(a.Topic, a.Partition, b.Topic, b.Partition), cmp.Compare(a.Minute.Minute, b.Minute.Minute))
	})
	slices.SortFunc(out.Sessions, func(a, b Session) int {
		return cmp.Or(byPart(a.Topic, a.Partition, b.Topic, b.Partition), strings.Compare(a.SessionID(), b.SessionID()))
	})
	slices.SortFunc(out.Funnel, func(a, b Funnel) int {
		return cmp.Or(byPart(a.Topic, a.Partition, b.Topic, b.Partition), cmp.Compare(a.Minute, b.Minute))
	})
	return out
}
