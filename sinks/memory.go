package sinks

import (
	"context"
	"maps"
	"slices"
	"sync"

	"github.com/clickstreamkit/clickstream/funnel"
	"github.com/clickstreamkit/clickstream/kpi"
	"github.com/clickstreamkit/clickstream/session"
)

var _ Sink = (*Memory)(nil)

// Memory keeps copies of everything written, for tests. Final KPI windows and
// running updates are kept apart.
type Memory struct {
	mu      sync.Mutex
	out     Output
	batches int
	closed  bool
}

// Output is everything a Memory sink received.
type Output struct {
	Updates  []kpi.Minute // running updates, in arrival order
	KPIs     []kpi.Minute // final windows, in arrival order
	Sessions []session.Record
	Funnel   []funnel.Record // final records, in arrival order
	// FunnelUpdates are the funnel's running updates, in arrival order.
	FunnelUpdates []funnel.Record
	DeadLetters   []DeadLetter
	Events        []Accepted
	Counters      map[int32]Counters // latest, by partition
	Progress      map[int32]Progress // latest, by partition
}

// Write copies each batch.
func (m *Memory) Write(ctx context.Context, bs ...*Batch) error {
	return WriteEach(ctx, bs, m.write)
}

func (m *Memory) write(_ context.Context, b *Batch) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.batches++
	for _, k := range b.KPIs {
		k.RevenueByCurrency = maps.Clone(k.RevenueByCurrency)
		k.TopProducts = slices.Clone(k.TopProducts)
		if k.Final {
			m.out.KPIs = append(m.out.KPIs, k)
		} else {
			m.out.Updates = append(m.out.Updates, k)
		}
	}
	for _, s := range b.Sessions {
		s.Marks = slices.Clone(s.Marks)
		m.out.Sessions = append(m.out.Sessions, s)
	}
	for _, f := range b.Funnel {
		f = f.Clone()
		if f.Final {
			m.out.Funnel = append(m.out.Funnel, f)
		} else {
			m.out.FunnelUpdates = append(m.out.FunnelUpdates, f)
		}
	}
	for _, d := range b.DeadLetters {
		d.Raw = slices.Clone(d.Raw)
		m.out.DeadLetters = append(m.out.DeadLetters, d)
	}
	m.out.Events = append(m.out.Events, b.Events...)
	if m.out.Counters == nil {
		m.out.Counters = map[int32]Counters{}
	}
	m.out.Counters[b.Partition] = b.Counters
	if m.out.Progress == nil {
		m.out.Progress = map[int32]Progress{}
	}
	m.out.Progress[b.Partition] = b.Progress
	return nil
}

// Output returns a copy of what was written so far.
func (m *Memory) Output() Output {
	m.mu.Lock()
	defer m.mu.Unlock()
	o := m.out
	o.Updates = slices.Clone(o.Updates)
	o.KPIs = slices.Clone(o.KPIs)
	o.Sessions = slices.Clone(o.Sessions)
	o.Funnel = slices.Clone(o.Funnel)
	o.FunnelUpdates = slices.Clone(o.FunnelUpdates)
	o.DeadLetters = slices.Clone(o.DeadLetters)
	o.Events = slices.Clone(o.Events)
	o.Counters, o.Progress = maps.Clone(o.Counters), maps.Clone(o.Progress)
	return o
}

// Batches returns how many batches were written.
func (m *Memory) Batches() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.batches
}

// Durable reports false: what a Memory sink holds ends with the process.
func (*Memory) Durable() bool { return false }

// Close marks the sink closed.
func (m *Memory) Close(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}
