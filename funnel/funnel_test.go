package funnel_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clickstreamkit/clickstream"
	"github.com/clickstreamkit/clickstream/funnel"
	"github.com/clickstreamkit/clickstream/session"
	"github.com/clickstreamkit/clickstream/window"
)

const (
	PV = "page_view"
	AC = "add_to_cart"
	PU = "purchase"
)

type ev struct {
	typ string
	ts  int64
}

// marks tags events the way a Sessionizer would, sorted by time.
func marks(t *testing.T, f *funnel.Funnel, evs ...ev) []session.Mark {
	var ms []session.Mark
	for _, e := range evs {
		if tag, ok := f.Mark(&clickstream.Event{EventType: e.typ}); ok {
			ms = append(ms, session.Mark{TS: e.ts, Tag: tag})
		}
	}
	return ms
}

func records(f *funnel.Funnel, wm int64, open func(int64) bool) []funnel.Record {
	var out []funnel.Record
	f.Advance(wm, open, func(r *funnel.Record) { out = append(out, *r) })
	return out
}

func never(int64) bool { return false }

// SEMANTICS §7, rule by rule, one session each.
func TestFunnelMatching(t *testing.T) {
	tests := []struct {
		name   string
		steps  []string
		events []ev
		want   []int64 // steps reached
		median int64   // -1: none
	}{
		{"§7 full funnel", nil, []ev{{PV, 0}, {AC, 10}, {PU, 30}}, []int64{1, 1, 1}, 30},
		{"§7 equal timestamps satisfy the order", nil, []ev{{PU, 5}, {AC, 5}, {PV, 5}}, []int64{1, 1, 1}, 0},
		{"§7 out of order does not count", nil, []ev{{PU, 0}, {AC, 10}, {PV, 20}}, []int64{1, 0, 0}, -1},
		{"§7 other events between steps are allowed", nil, []ev{{PV, 0}, {"search", 1}, {PV, 2}, {AC, 3}, {PU, 9}}, []int64{1, 1, 1}, 9},
		{"§7 greedy from the earliest first step", nil, []ev{{PV, 0}, {AC, 50}, {PV, 40}, {PU, 60}}, []int64{1, 1, 1}, 60},
		{"§7 no first step: not entered", nil, []ev{{AC, 0}, {PU, 1}}, []int64{0, 0, 0}, -1},
		{"§7 repeated step types need distinct events", []string{PV, PV, PU}, []ev{{PV, 0}, {PU, 5}}, []int64{1, 0, 0}, -1},
		{"§7 repeated step types at one time", []string{PV, PV, PU}, []ev{{PV, 7}, {PV, 7}, {PU, 7}}, []int64{1, 1, 1}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var opts []funnel.Option
			if tt.steps != nil {
				opts = append(opts, funnel.WithSteps(tt.steps...))
			}
			f, err := funnel.New(opts...)
			require.NoError(t, err)
			f.AddSession(sess(0, marks(t, f, tt.events...)))
			got := records(f, window.PosInf, never)
			require.Len(t, got, 1)
			assert.Equal(t, tt.want, got[0].Steps)
			assert.Equal(t, tt.want[0], got[0].Entered)
			assert.Equal(t, tt.median >= 0, got[0].HasMedian)
			if tt.median >= 0 {
				assert.Equal(t, tt.median, got[0].MedianTimeToConvertMs)
			}
		})
	}
}

func TestFunnelRecordPerStartMinute(t *testing.T) {
	f, err := funnel.New()
	require.NoError(t, err)
	const m = 60_000
	f.AddSession(sess(5, marks(t, f, ev{PV, 5}, ev{AC, 6}, ev{PU, 1005})))
	f.AddSession(sess(10, marks(t, f, ev{PV, 10}, ev{AC, 20}, ev{PU, 3010})))
	f.AddSession(sess(20, marks(t, f, ev{PV, 20}, ev{AC, 30})))
	f.AddSession(sess(30, marks(t, f, ev{"search", 30})))
	f.AddSession(sess(2*m, marks(t, f, ev{PV, 2 * m})))
	// §7: emitted only once every session of the minute is final
	assert.Empty(t, records(f, m-1, never), "the minute is not over")
	assert.Empty(t, records(f, m, func(x int64) bool { return x == 0 }), "a session of minute 0 is open")
	got := records(f, m, never)
	require.Len(t, got, 1)
	r := got[0]
	assert.Equal(t, int64(0), r.Minute)
	assert.Equal(t, int64(3), r.Entered)
	assert.Equal(t, []int64{3, 3, 2}, r.Steps)
	assert.Equal(t, []float64{1, 2.0 / 3}, r.StepRates, "§7: k-1 rates, c2/c1 and c3/c2")
	assert.InDelta(t, 2.0/3, r.OverallRate, 1e-12)
	assert.Equal(t, int64(1000), r.MedianTimeToConvertMs, "§7 lower median of 1000 and 3000")
	// minutes without sessions emit nothing; minute 2 emits later
	got = records(f, window.PosInf, never)
	require.Len(t, got, 1)
	assert.Equal(t, int64(2*m), got[0].Minute)
	assert.False(t, got[0].HasMedian)
	assert.Equal(t, []float64{0, 0}, got[0].StepRates)
}

func TestFunnelUserScope(t *testing.T) {
	f, err := funnel.New(funnel.WithUserScope(10 * time.Minute))
	require.NoError(t, err)
	const m = 60_000
	add := func(user, typ string, ts int64) {
		tag, ok := f.Mark(&clickstream.Event{EventType: typ})
		require.True(t, ok)
		f.AddEvent(user, ts, tag)
	}
	add("u", AC, 30*m) // before any first step: ignored
	add("u", PV, 31*m)
	add("u", AC, 35*m)
	add("u", PU, 41*m) // exactly conversion_window after the first step: outside
	add("u", PV, 45*m) // a second entity, starting at 45
	add("u", PU, 50*m)
	add("v", PV, 31*m+1)
	add("v", AC, 31*m+2)
	add("v", PU, 31*m+3)
	assert.Empty(t, records(f, 42*m-1, never), "minute 31's entities may still change")
	got := records(f, 42*m, never)
	require.Len(t, got, 1)
	assert.Equal(t, int64(31*m), got[0].Minute)
	assert.Equal(t, []int64{2, 2, 1}, got[0].Steps)
	assert.Equal(t, int64(2), got[0].MedianTimeToConvertMs)
	got = records(f, window.PosInf, never)
	require.Len(t, got, 1)
	assert.Equal(t, int64(45*m), got[0].Minute)
	assert.Equal(t, []int64{1, 0, 0}, got[0].Steps, "the purchase needs a cart first")
}

// A conversion_window that is not a whole number of minutes: a minute is
// emitted once, with every entity (issue: two [1 1 1] records for one minute
// instead of one [2 2 2], when wm crossed the minute's readiness between two
// sweeps).
func TestFunnelUserScopeFractionalWindow(t *testing.T) {
	const s = 1000
	f, err := funnel.New(funnel.WithUserScope(90 * time.Second))
	require.NoError(t, err)
	for _, u := range []struct {
		id string
		t1 int64
	}{{"a", 10 * s}, {"b", 50 * s}} {
		for i, typ := range []string{PV, AC, PU} {
			tag, _ := f.Mark(&clickstream.Event{EventType: typ})
			f.AddEvent(u.id, u.t1+int64(i)*s, tag)
		}
	}
	var got []funnel.Record
	for _, wm := range []int64{130 * s, 155 * s, 185 * s, window.PosInf} {
		got = append(got, records(f, wm, never)...)
		if wm == 155*s {
			assert.Equal(t, int64(0), f.FinalBefore(wm, 0), "b may still convert: minute 0 is not final")
		}
	}
	require.Len(t, got, 1, "one record for minute 0")
	assert.Equal(t, []int64{2, 2, 2}, got[0].Steps)
	assert.Equal(t, window.PosInf, f.FinalBefore(window.PosInf, 0))
}

// FinalBefore agrees with what Advance emits: in session scope, below the
// watermark's minute and the oldest open session's start.
func TestFunnelFinalBefore(t *testing.T) {
	const m = 60_000
	f, err := funnel.New()
	require.NoError(t, err)
	assert.Equal(t, window.NegInf, f.FinalBefore(window.NegInf, window.PosInf))
	assert.Equal(t, int64(5*m), f.FinalBefore(5*m+30_000, window.PosInf))
	assert.Equal(t, int64(3*m), f.FinalBefore(5*m+30_000, 3*m+1), "an open session of minute 3 holds it back")
	assert.Equal(t, window.PosInf, f.FinalBefore(window.PosInf, window.PosInf))

	u, err := funnel.New(funnel.WithUserScope(10 * time.Minute))
	require.NoError(t, err)
	assert.Equal(t, window.NegInf, u.FinalBefore(0, window.PosInf), "before any sweep")
	records(u, 20*m+1, never)
	assert.Equal(t, int64(10*m), u.FinalBefore(20*m+1, window.PosInf), "a minute m is final once the sweep passed m+1min+window")
}

func TestFunnelMergeAndSnapshot(t *testing.T) {
	a := funnel.Record{Minute: 0, Steps: []int64{2, 1, 1}, TimesMs: []int64{10}}
	b := funnel.Record{Minute: 0, Steps: []int64{3, 2, 1}, TimesMs: []int64{5}}
	m := funnel.Merge(a, b)
	assert.Equal(t, []int64{5, 3, 2}, m.Steps)
	assert.Equal(t, int64(5), m.MedianTimeToConvertMs)
	assert.InDelta(t, 0.4, m.OverallRate, 1e-12)

	f, err := funnel.New()
	require.NoError(t, err)
	f.AddSession(sess(0, marks(t, f, ev{PV, 0}, ev{AC, 1}, ev{PU, 2})))
	snap, err := f.AppendBinary(nil)
	require.NoError(t, err)
	g, err := funnel.New()
	require.NoError(t, err)
	require.NoError(t, g.UnmarshalBinary(snap))
	assert.Equal(t, records(f, window.PosInf, never), records(g, window.PosInf, never))
	h, err := funnel.New(funnel.WithSteps(PV, PU))
	require.NoError(t, err)
	assert.Error(t, h.UnmarshalBinary(snap), "a snapshot of other steps is refused")
	u, err := funnel.New(funnel.WithUserScope(30 * time.Minute))
	require.NoError(t, err)
	assert.Error(t, u.UnmarshalBinary(snap), "a snapshot of another scope is refused")
	us, err := u.AppendBinary(nil)
	require.NoError(t, err)
	u2, err := funnel.New(funnel.WithUserScope(31 * time.Minute))
	require.NoError(t, err)
	assert.Error(t, u2.UnmarshalBinary(us), "a snapshot of another conversion_window is refused")
}

func ExampleFunnel() {
	f, _ := funnel.New() // page_view -> add_to_cart -> purchase, per session
	tag := func(typ string) uint8 { t, _ := f.Mark(&clickstream.Event{EventType: typ}); return t }
	f.AddSession(sess(0, []session.Mark{{TS: 0, Tag: tag("page_view")}, {TS: 4000, Tag: tag("add_to_cart")}, {TS: 9000, Tag: tag("purchase")}}))
	f.AddSession(sess(1000, []session.Mark{{TS: 1000, Tag: tag("page_view")}}))
	f.Advance(window.PosInf, func(int64) bool { return false }, func(r *funnel.Record) {
		fmt.Println(r.Entered, r.Steps, r.StepRates, r.OverallRate, r.MedianTimeToConvertMs)
	})
	// Output:
	// 2 [2 1 1] [0.5 1] 0.5 9000
}

func updates(f *funnel.Funnel, wm int64, open func(int64) bool) []funnel.Record {
	var out []funnel.Record
	f.Updates(wm, open, func(r *funnel.Record) { out = append(out, r.Clone()) })
	return out
}

// SEMANTICS §7: running values over the sessions seen so far, open ones
// included, until the final record replaces them.
func TestFunnelRunningUpdates(t *testing.T) {
	f, err := funnel.New()
	require.NoError(t, err)
	const m0, m1 = 0, 60_000
	openIn := func(m int64) bool { return m == m1 }

	f.SetOpen(3, open(m1+5, marks(t, f, ev{PV, m1 + 5}, ev{AC, m1 + 9})))
	got := updates(f, m1, openIn)
	require.Len(t, got, 1)
	assert.Equal(t, funnel.Record{Minute: m1, Entered: 1, Steps: []int64{1, 1, 0}, StepRates: []float64{1, 0}}, got[0])
	assert.Empty(t, updates(f, m1, openIn), "nothing changed")

	// a later purchase: the same session counted once, now converted
	f.SetOpen(3, open(m1+5, marks(t, f, ev{PV, m1 + 5}, ev{AC, m1 + 9}, ev{PU, m1 + 20})))
	got = updates(f, m1, openIn)
	require.Len(t, got, 1)
	assert.Equal(t, []int64{1, 1, 1}, got[0].Steps)
	assert.Equal(t, []int64{15}, got[0].TimesMs)
	assert.False(t, got[0].Final)

	// an out-of-order event moves its start to m0: m1 is left with zeros
	f.SetOpen(3, open(m0+59_000, marks(t, f, ev{PV, m0 + 59_000}, ev{AC, m1 + 9}, ev{PU, m1 + 20})))
	got = updates(f, m1, func(m int64) bool { return m == m0 })
	require.Len(t, got, 2)
	assert.Equal(t, int64(m0), got[0].Minute)
	assert.Equal(t, []int64{1, 1, 1}, got[0].Steps)
	assert.Equal(t, funnel.Record{Minute: m1, Steps: []int64{0, 0, 0}, StepRates: []float64{0, 0}}, got[1])

	// the session ends: out of the running values, into the final ones;
	// the running values do not change, then the final record comes
	f.ClearOpen(3)
	f.AddSession(sess(m0+59_000, marks(t, f, ev{PV, m0 + 59_000}, ev{AC, m1 + 9}, ev{PU, m1 + 20})))
	got = updates(f, m1-1, never)
	require.Len(t, got, 1)
	assert.Equal(t, []int64{1, 1, 1}, got[0].Steps)
	assert.False(t, got[0].Final)
	final := records(f, m1, never)
	require.Len(t, final, 1)
	assert.True(t, final[0].Final)
	assert.Equal(t, got[0].Steps, final[0].Steps)
	assert.Empty(t, updates(f, m1, never), "a final minute gets no running record")
}

// Slots are reused: SetOpen replaces what a slot counted, ClearOpen of an
// unknown slot does nothing.
func TestFunnelRunningSlots(t *testing.T) {
	f, err := funnel.New(funnel.WithSteps(PV))
	require.NoError(t, err)
	f.ClearOpen(7)
	for slot := range int32(3) {
		f.SetOpen(slot, open(1_000, marks(t, f, ev{PV, 1_000})))
	}
	f.SetOpen(1, open(2_000, marks(t, f, ev{"search", 2_000}))) // slot 1 is another session now
	got := updates(f, 0, func(int64) bool { return true })
	require.Len(t, got, 1)
	assert.Equal(t, []int64{2}, got[0].Steps)
	f.ClearOpen(0)
	f.ClearOpen(0)
	got = updates(f, 0, func(int64) bool { return true })
	require.Len(t, got, 1)
	assert.Equal(t, []int64{1}, got[0].Steps)
}

func sess(start int64, ms []session.Mark) *session.Record {
	return &session.Record{Start: start, Marks: ms}
}

func open(start int64, ms []session.Mark) *session.Open {
	return &session.Open{Start: start, Marks: ms, New: -1}
}

// A breakdown splits each record by the sessions' labels, final and
// running alike, merges value by value, and counts the values of a minute
// beyond MaxValues under Other.
func TestFunnelBreakdown(t *testing.T) {
	_, err := funnel.New(funnel.WithBreakdown("utm.medium"))
	require.ErrorIs(t, err, funnel.ErrBadConfig)
	_, err = funnel.New(funnel.WithUserScope(time.Minute), funnel.WithBreakdown(funnel.DeviceOS))
	require.ErrorIs(t, err, funnel.ErrBadConfig)

	f, err := funnel.New(funnel.WithBreakdown(funnel.UTMSource))
	require.NoError(t, err)
	add := func(label string, evs ...ev) {
		f.AddSession(&session.Record{Start: evs[0].ts, Label: label, Marks: marks(t, f, evs...)})
	}
	add("google", ev{PV, 0}, ev{AC, 1}, ev{PU, 5})
	add("google", ev{PV, 2})
	add(funnel.None, ev{PV, 3}, ev{AC, 4})
	f.SetOpen(0, &session.Open{Start: 10, Label: "mail", Marks: marks(t, f, ev{PV, 10}), New: -1})
	run := updates(f, 0, func(int64) bool { return true })
	require.Len(t, run, 1)
	assert.Equal(t, []funnel.Part{
		{Value: funnel.None, Steps: []int64{1, 1, 0}},
		{Value: "google", Steps: []int64{2, 1, 1}, TimesMs: []int64{5}},
		{Value: "mail", Steps: []int64{1, 0, 0}},
	}, run[0].By)
	f.ClearOpen(0)
	final := records(f, window.PosInf, never)
	require.Len(t, final, 1)
	assert.Len(t, final[0].By, 2, "the open session left")

	other := funnel.Record{Minute: 0, Steps: []int64{1, 0, 0}, By: []funnel.Part{{Value: "google", Steps: []int64{1, 0, 0}}, {Value: "bing", Steps: []int64{1, 0, 0}}}}
	m := funnel.Merge(final[0], other)
	assert.Equal(t, []funnel.Part{
		{Value: funnel.None, Steps: []int64{1, 1, 0}},
		{Value: "bing", Steps: []int64{1, 0, 0}},
		{Value: "google", Steps: []int64{3, 1, 1}, TimesMs: []int64{5}},
	}, m.By)

	f, err = funnel.New(funnel.WithBreakdown(funnel.GeoCountry), funnel.WithSteps(PV))
	require.NoError(t, err)
	for i := range funnel.MaxValues + 3 {
		f.AddSession(&session.Record{Start: int64(i), Label: fmt.Sprint("c", i), Marks: marks(t, f, ev{PV, int64(i)})})
	}
	final = records(f, window.PosInf, never)
	require.Len(t, final, 1)
	require.Len(t, final[0].By, funnel.MaxValues+1)
	i := slices.IndexFunc(final[0].By, func(p funnel.Part) bool { return p.Value == funnel.Other })
	require.GreaterOrEqual(t, i, 0)
	assert.Equal(t, []int64{3}, final[0].By[i].Steps)
	assert.Equal(t, []int64{funnel.MaxValues + 3}, final[0].Steps)
}

func TestDimensionValue(t *testing.T) {
	e := &clickstream.Event{UTM: clickstream.UTM{Source: "google"}, Device: clickstream.Device{OS: "iOS", Mobile: true}}
	for d, want := range map[funnel.Dimension]string{funnel.UTMSource: "google", funnel.DeviceOS: "iOS",
		funnel.DeviceMobile: "true", funnel.GeoCountry: funnel.None} {
		assert.True(t, d.Valid())
		assert.Equal(t, want, d.Value(e), d)
	}
	assert.False(t, funnel.Dimension("utm.medium").Valid())
}

func TestTop(t *testing.T) {
	p := func(v string, entered int64, times ...int64) funnel.Part {
		return funnel.Part{Value: v, Steps: []int64{entered, 0}, TimesMs: times}
	}
	by := []funnel.Part{p("a", 5), p("b", 9, 3), p(funnel.Other, 4, 1), p("c", 5), p("d", 1, 2)}
	got := funnel.Top(by, 2)
	assert.Equal(t, []funnel.Part{p("b", 9, 3), p("a", 5), p(funnel.Other, 10, 1, 2)}, got)
	assert.Equal(t, []funnel.Part{p("b", 9, 3), p("a", 5), p("c", 5), p("d", 1, 2), p(funnel.Other, 4, 1)}, funnel.Top(by, 9))
	assert.Empty(t, funnel.Top(nil, 3))
}

// In user scope the running values are the entities the buffered events
// would make if no event came any more, until the sweep makes them final.
func TestFunnelRunningUserScope(t *testing.T) {
	f, err := funnel.New(funnel.WithUserScope(2 * time.Minute))
	require.NoError(t, err)
	tag := func(typ string) uint8 { tg, _ := f.Mark(&clickstream.Event{EventType: typ}); return tg }
	const m = 60_000
	f.AddEvent("u", 10*m+5, tag(PV))
	f.AddEvent("u", 10*m+9, tag(AC))
	f.AddEvent("v", 11*m, tag(PV))
	f.Advance(10*m, never, func(*funnel.Record) { t.Fatal("nothing is final") })
	got := updates(f, 10*m, never)
	require.Len(t, got, 2)
	assert.Equal(t, []int64{1, 1, 0}, got[0].Steps)
	assert.Equal(t, int64(11*m), got[1].Minute)
	assert.Empty(t, updates(f, 10*m, never), "nothing changed")

	f.AddEvent("u", 10*m+2, tag(PV)) // an earlier first step: the same entity, earlier
	f.AddEvent("u", 11*m+1, tag(PU))
	got = updates(f, 10*m, never)
	require.Len(t, got, 1)
	assert.Equal(t, []int64{1, 1, 1}, got[0].Steps)
	assert.Equal(t, []int64{m - 1}, got[0].TimesMs)

	final := records(f, 13*m, never) // u's entity ends at 12m+2: final at the 13m sweep
	require.Len(t, final, 1)
	assert.True(t, final[0].Final)
	assert.Equal(t, got[0].Steps, final[0].Steps)
	got = updates(f, 13*m, never)
	require.Len(t, got, 1, "v's minute only")
	assert.Equal(t, int64(11*m), got[0].Minute)
}

// SetOpen with marks that only came later (New >= 0) goes on with the
// earlier match; it must count what matching all marks afresh counts.
func TestFunnelResumeEqualsFresh(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, steps := range [][]string{funnel.DefaultSteps, {PV, PV, PU}, {PU, PV}, {PV}} {
		for range 200 {
			inc, err := funnel.New(funnel.WithSteps(steps...))
			require.NoError(t, err)
			var ms []session.Mark
			var last funnel.Record
			ts := int64(0)
			for range 1 + r.IntN(6) {
				n := r.IntN(4)
				for range n {
					ts += 1 + int64(r.IntN(3))
					ms = append(ms, session.Mark{TS: ts, Tag: uint8(r.IntN(3))})
				}
				inc.SetOpen(0, &session.Open{Start: 0, Marks: ms, New: n})
				fresh, err := funnel.New(funnel.WithSteps(steps...))
				require.NoError(t, err)
				fresh.SetOpen(0, &session.Open{Start: 0, Marks: ms, New: -1})
				want := updates(fresh, -1, never)
				if got := updates(inc, -1, never); len(got) > 0 { // nothing when the match did not move
					last = got[0]
				}
				require.Len(t, want, 1)
				require.Equal(t, want[0], last, "steps %v marks %v", steps, ms)
			}
		}
	}
}
