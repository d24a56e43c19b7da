package sinks_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/clickstreamkit/clickstream/funnel"
	"github.com/clickstreamkit/clickstream/kpi"
	"github.com/clickstreamkit/clickstream/session"
	"github.com/clickstreamkit/clickstream/sinks"
	"github.com/clickstreamkit/clickstream/sinks/sinktest"
)

// readMemory reads a Memory sink as a keyed one: it records every value in
// arrival order, final windows apart from running updates, so per key the
// value that counts is the last final window, else the last running update;
// for sessions and funnel records the last one. Memory keeps no topic or
// partition with its results, so the target is not PerPartition.
func readMemory(m *sinks.Memory) func(context.Context) (sinktest.Snapshot, error) {
	return func(context.Context) (sinktest.Snapshot, error) {
		out := m.Output()
		kpis := map[int64]kpi.Minute{}
		for _, u := range out.Updates {
			kpis[u.Minute] = u
		}
		for _, f := range out.KPIs {
			kpis[f.Minute] = f
		}
		sess := map[string]session.Record{}
		for _, s := range out.Sessions {
			sess[s.SessionID()] = s
		}
		fun := map[int64]funnel.Record{}
		for _, f := range slices.Concat(out.FunnelUpdates, out.Funnel) {
			fun[f.Minute] = f
		}
		var snap sinktest.Snapshot
		for _, k := range kpis {
			snap.KPIs = append(snap.KPIs, sinktest.KPI{Minute: k})
		}
		for _, s := range sess {
			snap.Sessions = append(snap.Sessions, sinktest.Session{Record: s})
		}
		for _, f := range fun {
			snap.Funnel = append(snap.Funnel, sinktest.Funnel{Record: f})
		}
		return snap, nil
	}
}

func TestMemoryConformance(t *testing.T) {
	sinktest.Run(t, func(t *testing.T) sinktest.Target {
		m := &sinks.Memory{}
		return sinktest.Target{Sink: m, Read: readMemory(m)}
	})
}

func TestMemoryRecordsInArrivalOrder(t *testing.T) {
	ctx := t.Context()
	var m sinks.Memory
	b0 := &sinks.Batch{Topic: "clicks", Partition: 0, NextOffset: 5, Counters: sinks.Counters{Read: 5},
		KPIs: []kpi.Minute{sinktest.Window(0, 1, false), sinktest.Window(60_000, 2, true), sinktest.Window(0, 3, false)}}
	b1 := &sinks.Batch{Topic: "clicks", Partition: 1, NextOffset: 7, Counters: sinks.Counters{Read: 7},
		KPIs: []kpi.Minute{sinktest.Window(0, 4, true)}}
	b2 := &sinks.Batch{Topic: "clicks", Partition: 0, FirstOffset: 5, NextOffset: 9, Counters: sinks.Counters{Read: 9}}
	for _, b := range []*sinks.Batch{b0, b1, b2} {
		if err := m.Write(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	out := m.Output()
	events := func(ms []kpi.Minute) (ev []int64) {
		for _, k := range ms {
			ev = append(ev, k.Events)
		}
		return ev
	}
	if got := events(out.Updates); len(got) != 2 || got[0] != 21 || got[1] != 23 {
		t.Errorf("Updates events = %v, want [21 23]", got)
	}
	if got := events(out.KPIs); len(got) != 2 || got[0] != 22 || got[1] != 24 {
		t.Errorf("KPIs events = %v, want [22 24]", got)
	}
	if out.Counters[0].Read != 9 || out.Counters[1].Read != 7 {
		t.Errorf("Counters = %v, want the latest per partition (0: 9, 1: 7)", out.Counters)
	}
	if n := m.Batches(); n != 3 {
		t.Errorf("Batches = %d, want 3", n)
	}
}

func TestMemoryCopies(t *testing.T) {
	ctx := t.Context()
	var m sinks.Memory
	raw := []byte(`{"broken`)
	b := &sinks.Batch{Topic: "clicks", DeadLetters: []sinks.DeadLetter{{Reason: "malformed_json", Raw: raw}},
		KPIs: []kpi.Minute{sinktest.Window(0, 1, true)}}
	if err := m.Write(ctx, b); err != nil {
		t.Fatal(err)
	}
	raw[0] = 'X' // the pipeline reuses message buffers
	out := m.Output()
	if got := string(out.DeadLetters[0].Raw); got != `{"broken` {
		t.Errorf("dead letter raw = %q after the batch changed, want a copy", got)
	}
	out.KPIs[0].Events = -1 // Output returns copies
	out.DeadLetters = nil
	if again := m.Output(); again.KPIs[0].Events != 21 || len(again.DeadLetters) != 1 {
		t.Errorf("changing Output's result changed the sink")
	}
}

func TestMemoryCloseTwice(t *testing.T) {
	var m sinks.Memory
	if err := errors.Join(m.Close(t.Context()), m.Close(t.Context())); err != nil {
		t.Fatal(err)
	}
}
