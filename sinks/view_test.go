package sinks_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/clickstreamkit/clickstream/funnel"
	"github.com/clickstreamkit/clickstream/kpi"
	"github.com/clickstreamkit/clickstream/sinks"
	"github.com/clickstreamkit/clickstream/window"
)

const min1 = int64(60_000)

func partial(minute int64, final bool, events, sessions, purchases int64) kpi.Minute {
	return kpi.Minute{Minute: minute, Final: final,
		Counts: kpi.Counts{Events: events, Sessions: sessions, Purchases: purchases}}
}

func TestViewCompleteness(t *testing.T) {
	cases := []struct {
		name     string
		progress map[int32]sinks.Progress // of topic "t"
		parts    []int32                  // partitions writing minute 0
		want     sinks.Completeness
		final    bool
	}{
		{"no progress", nil, []int32{0}, sinks.Completeness{PartitionsComplete: 0, PartitionsTotal: 1}, false},
		{"passed", map[int32]sinks.Progress{0: {Partitions: 1, Watermark: min1}}, []int32{0}, sinks.Completeness{PartitionsComplete: 1, PartitionsTotal: 1}, true},
		{"watermark short of the end", map[int32]sinks.Progress{0: {Partitions: 1, Watermark: min1 - 1}}, []int32{0}, sinks.Completeness{PartitionsComplete: 0, PartitionsTotal: 1}, false},
		{"a partition that wrote nothing lags", map[int32]sinks.Progress{0: {Partitions: 2, Watermark: min1}, 1: {Partitions: 2, Watermark: 0}}, []int32{0}, sinks.Completeness{PartitionsComplete: 1, PartitionsTotal: 2}, false},
		{"the count from progress covers partitions without any", map[int32]sinks.Progress{0: {Partitions: 3, Watermark: min1}}, []int32{0}, sinks.Completeness{PartitionsComplete: 1, PartitionsTotal: 3}, false},
		{"a partial's partition counts without progress", map[int32]sinks.Progress{0: {Watermark: min1}}, []int32{0, 2}, sinks.Completeness{PartitionsComplete: 1, PartitionsTotal: 3}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := sinks.NewView(time.Minute)
			for p, pr := range c.progress {
				v.SetProgress("t", p, pr)
			}
			for _, p := range c.parts {
				m := partial(0, true, 1, 1, 0)
				v.AddMinute("t", p, &m)
			}
			got := v.Minutes(window.NegInf, window.PosInf)
			require.Len(t, got, 1)
			require.Equal(t, c.want, got[0].Completeness)
			require.Equal(t, c.final, got[0].Final)
			require.Equal(t, int64(len(c.parts)), got[0].Events)
		})
	}
}

func TestViewReplaysChangeNothing(t *testing.T) {
	v := sinks.NewView(time.Minute)
	final := partial(0, true, 5, 2, 1)
	v.AddMinute("t", 0, &final)
	stale := partial(0, false, 3, 1, 0) // a replayed running update after the final
	v.AddMinute("t", 0, &stale)
	v.SetProgress("t", 0, sinks.Progress{Partitions: 1, Watermark: 2 * min1, FunnelBefore: 2 * min1})
	v.SetProgress("t", 0, sinks.Progress{Partitions: 1, Watermark: 0, FunnelBefore: 0}) // an older progress
	got := v.Minutes(0, min1)
	require.Len(t, got, 1)
	require.True(t, got[0].Final)
	require.Equal(t, int64(5), got[0].Events)

	running := partial(min1, false, 1, 1, 0)
	v.AddMinute("t", 0, &running)
	newer := partial(min1, false, 4, 2, 0)
	v.AddMinute("t", 0, &newer) // a running update replaces a running one
	require.Equal(t, int64(4), v.Minutes(min1, 2*min1)[0].Events)
	f := partial(min1, true, 6, 2, 0)
	v.AddMinute("t", 0, &f) // and a final one replaces it
	require.Equal(t, int64(6), v.Minutes(min1, 2*min1)[0].Events)
}

func TestViewKeepsCopies(t *testing.T) {
	v := sinks.NewView(time.Minute)
	m := partial(0, true, 1, 1, 0)
	m.RevenueByCurrency = map[string]float64{"EUR": 1}
	m.TopProducts = []kpi.Product{{ProductID: "p", Views: 1}}
	r := funnel.Record{Minute: 0, Final: true, Entered: 1, Steps: []int64{1, 0}}
	v.AddMinute("t", 0, &m)
	v.AddFunnel("t", 0, &r)
	m.RevenueByCurrency["EUR"], m.TopProducts[0].Views, r.Steps[0] = 9, 9, 9
	got := v.Minutes(0, min1)[0]
	require.Equal(t, 1.0, got.RevenueByCurrency["EUR"])
	require.Equal(t, int64(1), got.TopProducts[0].Views)
	require.Equal(t, int64(1), v.Funnel(0, min1)[0].Steps[0])
}

func TestViewFunnelFinality(t *testing.T) {
	v := sinks.NewView(time.Minute)
	for p := range int32(2) {
		r := funnel.Record{Minute: min1, Final: true, Entered: 1, Steps: []int64{1, 1}}
		v.AddFunnel("t", p, &r)
	}
	v.SetProgress("t", 0, sinks.Progress{Partitions: 2, FunnelBefore: 2 * min1})
	v.SetProgress("t", 1, sinks.Progress{Partitions: 2, FunnelBefore: min1}) // not above the minute
	got := v.Funnel(window.NegInf, window.PosInf)
	require.Len(t, got, 1)
	require.False(t, got[0].Final)
	require.Equal(t, int64(2), got[0].Entered)
	v.End("t", 1) // its input ended: it has passed everything
	require.True(t, v.Funnel(window.NegInf, window.PosInf)[0].Final)
}

func TestViewLatestAndForget(t *testing.T) {
	v := sinks.NewView(time.Minute)
	for _, i := range []int64{3, 1, 2, 0} { // out of order
		m := partial(i*min1, true, i+1, 1, 0)
		v.AddMinute("t", 0, &m)
	}
	starts := func(ms []sinks.MergedMinute) (out []int64) {
		for _, m := range ms {
			out = append(out, m.Minute.Minute/min1)
		}
		return out
	}
	require.Equal(t, []int64{2, 3}, starts(v.Latest(2)))
	require.Equal(t, []int64{0, 1, 2, 3}, starts(v.Latest(10)))
	require.Empty(t, v.Latest(0))
	require.Equal(t, []int64{1, 2}, starts(v.Minutes(min1, 3*min1)))
	v.Forget(2 * min1)
	require.Equal(t, []int64{2, 3}, starts(v.Minutes(window.NegInf, window.PosInf)))
}

// TestViewScore: windows are scored once each, in order, and only once final
// on the global view; a later call goes on where the last one stopped.
func TestViewScore(t *testing.T) {
	v := sinks.NewView(time.Minute)
	d, err := kpi.NewDetector(30, 3, 3)
	require.NoError(t, err)
	_, until := v.Score(d, 0, 10*min1)
	require.Equal(t, int64(0), until, "an empty view has scored nothing")
	rates := []int64{10, 11, 10, 11, 10, 90} // purchases per 100 sessions; the last is a spike
	for i, p := range rates {
		m := partial(int64(i)*min1, true, 100, 100, p)
		v.AddMinute("t", 0, &m)
	}
	v.SetProgress("t", 0, sinks.Progress{Partitions: 2, Watermark: window.PosInf})
	v.SetProgress("t", 1, sinks.Progress{Partitions: 2, Watermark: 3 * min1}) // passed windows 0..2
	found, until := v.Score(d, 0, 10*min1)
	require.Empty(t, found)
	require.Equal(t, 3*min1, until)

	v.SetProgress("t", 1, sinks.Progress{Partitions: 2, Watermark: 7 * min1})
	found, until = v.Score(d, until, 10*min1)
	require.Len(t, found, 1)
	require.Equal(t, 5*min1, found[0].Minute)
	require.Equal(t, "spike", found[0].Direction)
	require.Equal(t, 7*min1, until, "no window past the data, but partition 1 may still write window 7")

	again, _ := v.Score(d, until, 10*min1)
	require.Empty(t, again, "nothing scored twice")

	v.End("t", 1) // partition 1's input ended: it writes nothing more
	_, until = v.Score(d, until, 10*min1)
	require.Equal(t, 10*min1, until)

	running := partial(8*min1, false, 1, 1, 0)
	v.AddMinute("t", 0, &running)
	until = 7 * min1
	_, until = v.Score(d, until, 10*min1)
	require.Equal(t, 8*min1, until, "stops at a window that is not final")
}

// TestViewMergeOrder: the merged floats do not depend on the order the
// partitions' partials came in.
func TestViewMergeOrder(t *testing.T) {
	revenue := []float64{0.1, 1e16, 0.2, -1e16, 0.3}
	merged := func(order []int) float64 {
		v := sinks.NewView(time.Minute)
		for _, p := range order {
			m := kpi.Minute{Counts: kpi.Counts{Events: 1, Revenue: revenue[p]}}
			v.AddMinute("t", int32(p), &m)
		}
		return v.Minutes(window.NegInf, window.PosInf)[0].Revenue
	}
	want := merged([]int{0, 1, 2, 3, 4})
	require.Equal(t, want, merged([]int{4, 3, 2, 1, 0}))
	require.Equal(t, want, merged([]int{2, 0, 4, 1, 3}))
}

// TestViewStaleRunningFunnel: a running funnel record of a partition whose
// progress has passed its minute holds nothing (its entities moved to an
// earlier minute) and is left out of the merge.
func TestViewStaleRunningFunnel(t *testing.T) {
	v := sinks.NewView(time.Minute)
	final := funnel.Record{Minute: min1, Final: true, Entered: 3, Steps: []int64{3, 1}}
	stale := funnel.Record{Minute: min1, Entered: 2, Steps: []int64{2, 0}}
	v.AddFunnel("t", 0, &final)
	v.AddFunnel("t", 1, &stale)
	v.SetProgress("t", 0, sinks.Progress{Partitions: 2, FunnelBefore: 2 * min1})
	v.SetProgress("t", 1, sinks.Progress{Partitions: 2, FunnelBefore: min1}) // not passed: running values count
	got := v.Funnel(window.NegInf, window.PosInf)
	require.Len(t, got, 1)
	require.Equal(t, int64(5), got[0].Entered)
	v.SetProgress("t", 1, sinks.Progress{Partitions: 2, FunnelBefore: 2 * min1})
	got = v.Funnel(window.NegInf, window.PosInf)
	require.Len(t, got, 1)
	require.True(t, got[0].Final)
	require.Equal(t, int64(3), got[0].Entered)

	only := funnel.Record{Minute: 5 * min1, Entered: 1, Steps: []int64{1, 0}}
	v.AddFunnel("t", 1, &only)
	v.End("t", 1)
	require.Len(t, v.Funnel(window.NegInf, window.PosInf), 1, "a minute of stale records only is gone")
}

func TestProgressMax(t *testing.T) {
	neg, pos := window.NegInf, window.PosInf
	for _, tc := range []struct {
		name    string
		p, q    sinks.Progress
		want    sinks.Progress
		forward bool // p.Max(q) != q: p moves q on
	}{
		{"the same", sinks.Progress{Partitions: 2, Watermark: neg, FunnelBefore: neg}, sinks.Progress{Partitions: 2, Watermark: neg, FunnelBefore: neg},
			sinks.Progress{Partitions: 2, Watermark: neg, FunnelBefore: neg}, false},
		{"each field its larger", sinks.Progress{Partitions: 4, Watermark: 10, FunnelBefore: neg}, sinks.Progress{Partitions: 2, Watermark: 20, FunnelBefore: 5},
			sinks.Progress{Partitions: 4, Watermark: 20, FunnelBefore: 5}, true},
		{"older", sinks.Progress{Partitions: 1, Watermark: neg, FunnelBefore: 0}, sinks.Progress{Partitions: 1, Watermark: 7, FunnelBefore: 0},
			sinks.Progress{Partitions: 1, Watermark: 7, FunnelBefore: 0}, false},
		{"the end of input", sinks.Progress{Watermark: pos, FunnelBefore: pos}, sinks.Progress{Partitions: 3, Watermark: 7, FunnelBefore: neg},
			sinks.Progress{Partitions: 3, Watermark: pos, FunnelBefore: pos}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.p.Max(tc.q)
			if got != tc.want || tc.q.Max(tc.p) != tc.want {
				t.Errorf("Max = %+v and %+v, want %+v both ways", got, tc.q.Max(tc.p), tc.want)
			}
			if (got != tc.q) != tc.forward {
				t.Errorf("moves q on = %v, want %v", got != tc.q, tc.forward)
			}
		})
	}
}

// Fill puts a view read from storage under one written since: a newer
// partial of a key stays, a stored final one replaces a running one, keys
// only the older view has come in, and progress takes the larger of both.
func TestViewFill(t *testing.T) {
	live := sinks.NewView(time.Minute)
	older := sinks.NewView(time.Minute)
	add := func(v *sinks.View, p int32, m kpi.Minute) { v.AddMinute("t", p, &m) }
	add(live, 0, partial(0, false, 7, 1, 0))  // newer running value of minute 0
	add(older, 0, partial(0, false, 3, 1, 0)) // an older running one
	add(live, 1, partial(0, false, 2, 1, 0))  // a replay's running value...
	add(older, 1, partial(0, true, 9, 1, 0))  // ...under a stored final one
	add(older, 0, partial(min1, true, 4, 1, 0))
	add(live, 0, partial(2*min1, true, 5, 1, 0))
	add(older, 0, partial(2*min1, true, 5, 1, 0))
	older.AddFunnel("t", 0, &funnel.Record{Minute: 0, Final: true, Entered: 2, Steps: []int64{2, 1}})
	live.SetProgress("t", 0, sinks.Progress{Partitions: 2, Watermark: 3 * min1})
	older.SetProgress("t", 0, sinks.Progress{Partitions: 2, Watermark: min1, FunnelBefore: min1})
	older.SetProgress("t", 1, sinks.Progress{Partitions: 2, Watermark: min1})
	older.End("t", 1)

	live.Fill(older)
	got := live.Minutes(window.NegInf, window.PosInf)
	require.Len(t, got, 3)
	require.Equal(t, int64(7+9), got[0].Events, "live running value of partition 0, stored final of partition 1")
	require.Equal(t, int64(4), got[1].Events)
	require.Equal(t, int64(5), got[2].Events)
	p, ok := live.Progress("t", 0)
	require.True(t, ok)
	require.Equal(t, sinks.Progress{Partitions: 2, Watermark: 3 * min1, FunnelBefore: min1}, p)
	require.Len(t, live.Funnel(0, min1), 1)
	require.True(t, got[2].Final, "partition 0 passed it, partition 1 ended")
}
