package main

// Helpers of the end-to-end tests: the expected results, computed by an
// in-process replay of each partition.

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/clickstreamkit/clickstream/checkpoint"
	"github.com/clickstreamkit/clickstream/funnel"
	"github.com/clickstreamkit/clickstream/kpi"
	"github.com/clickstreamkit/clickstream/pipeline"
	"github.com/clickstreamkit/clickstream/session"
	"github.com/clickstreamkit/clickstream/sinks"
	"github.com/clickstreamkit/clickstream/sources"
)

// e2ePartExpect is one partition's expected results.
type e2ePartExpect struct {
	KPIs     map[int64]kpi.Minute      // final windows by minute
	Sessions map[string]session.Record // by session_id
	Funnel   map[int64]funnel.Record   // last record of each start minute
	Events   []sinks.Accepted          // offsets are the partition's
	Dead     []sinks.DeadLetter        // offsets are the partition's
	Counters sinks.Counters
}

// e2eReplay runs, for each partition, the finite replay of its messages in
// offset order through pipeline.NewRunner with a Memory source and sink and
// the default settings, and maps the Memory source's offsets (indexes,
// partition 0 of topic "memory") back to the partition's.
func e2eReplay(t *testing.T, recs []e2eRecord) map[int32]*e2ePartExpect {
	t.Helper()
	byPart := map[int32][]e2eRecord{}
	for _, r := range recs {
		byPart[r.Partition] = append(byPart[r.Partition], r)
	}
	out := map[int32]*e2ePartExpect{}
	for part, rs := range byPart {
		slices.SortFunc(rs, func(a, b e2eRecord) int { return int(a.Offset - b.Offset) })
		values := make([][]byte, len(rs))
		for i := range rs {
			values[i] = rs[i].Value
		}
		cfg := pipeline.DefaultConfig()
		cfg.KeepEvents = true
		sink := &sinks.Memory{}
		runner, err := pipeline.NewRunner(sources.NewMemory(500, values...), sink, &checkpoint.Memory{}, cfg)
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		err = runner.Run(ctx)
		cancel()
		require.NoError(t, err, "in-process replay of partition %d", part)
		o := sink.Output()
		e := &e2ePartExpect{KPIs: map[int64]kpi.Minute{}, Sessions: map[string]session.Record{},
			Funnel: map[int64]funnel.Record{}, Counters: o.Counters[0]}
		for _, k := range o.KPIs {
			_, dup := e.KPIs[k.Minute]
			require.False(t, dup, "the replay emitted minute %d final twice", k.Minute)
			e.KPIs[k.Minute] = k
		}
		for _, s := range o.Sessions {
			id := s.SessionID()
			_, dup := e.Sessions[id]
			require.False(t, dup, "the replay emitted session %s twice", id)
			e.Sessions[id] = s
		}
		for _, f := range o.Funnel {
			e.Funnel[f.Minute] = f
		}
		for _, a := range o.Events {
			a.Offset = rs[a.Offset].Offset
			e.Events = append(e.Events, a)
		}
		for _, d := range o.DeadLetters {
			d.Offset = rs[d.Offset].Offset
			e.Dead = append(e.Dead, d)
		}
		out[part] = e
	}
	return out
}

// summary is a short description of the expected results, for the log.
func e2eSummary(exp map[int32]*e2ePartExpect) string {
	var c sinks.Counters
	var kpis, sess, fun int
	for _, e := range exp {
		c.Add(e.Counters)
		kpis, sess, fun = kpis+len(e.KPIs), sess+len(e.Sessions), fun+len(e.Funnel)
	}
	return fmt.Sprintf("%d partitions: read %d, accepted %d, invalid %d, late %d, duplicates %d; %d final minute partials, %d sessions, %d funnel minute partials",
		len(exp), c.Read, c.Accepted, c.Invalid, c.Late, c.Duplicates, kpis, sess, fun)
}
