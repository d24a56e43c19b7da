package session_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clickstreamkit/clickstream"
	"github.com/clickstreamkit/clickstream/session"
	"github.com/clickstreamkit/clickstream/window"
)

const min = int64(60_000)

func pv(user string, ts int64) *clickstream.Event {
	return &clickstream.Event{EventID: fmt.Sprint(user, ts), EventType: "page_view", TS: ts, UserID: user}
}

func buy(user string, ts int64, price float64, cur string) *clickstream.Event {
	return &clickstream.Event{EventID: fmt.Sprint(user, ts), EventType: "purchase",
		TS: ts, UserID: user, Price: price, HasPrice: true, Currency: cur}
}

func final(s *session.Sessionizer, wm int64) []session.Record {
	var out []session.Record
	s.Advance(wm, func(r *session.Record) {
		c := *r
		c.Marks = nil
		out = append(out, c)
	})
	return out
}

func spans(rs []session.Record) [][2]int64 {
	var out [][2]int64
	for _, r := range rs {
		out = append(out, [2]int64{r.Start, r.End})
	}
	return out
}

// SEMANTICS §5, rule by rule.
func TestSessionRules(t *testing.T) {
	tests := []struct {
		name   string
		events []int64 // arrival order, one user
		want   [][2]int64
	}{
		{"§5 gap of exactly 30 min starts a new session", []int64{0, 30 * min}, [][2]int64{{0, 0}, {30 * min, 30 * min}}},
		{"§5 gap of 29:59.999 stays in the session", []int64{0, 30*min - 1}, [][2]int64{{0, 30*min - 1}}},
		{"§5 out-of-order event extends the start", []int64{10 * min, 0}, [][2]int64{{0, 10 * min}}},
		{"§5 a bridging event merges two open sessions", []int64{0, 40 * min, 20 * min}, [][2]int64{{0, 40 * min}}},
		{"§5 bridging three sessions", []int64{0, 50 * min, 100 * min, 25 * min, 75 * min}, [][2]int64{{0, 100 * min}}},
		{"§5 an event that bridges nothing", []int64{0, 70 * min, 35 * min}, [][2]int64{{0, 0}, {35 * min, 35 * min}, {70 * min, 70 * min}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := session.New()
			require.NoError(t, err)
			for _, ts := range tt.events {
				s.Add(pv("u", ts))
			}
			assert.Equal(t, tt.want, spans(final(s, window.PosInf)))
		})
	}
}

func TestSessionFinality(t *testing.T) {
	s, err := session.New()
	require.NoError(t, err)
	s.Add(pv("u", 0))
	s.Add(buy("u", 5*min, 10, "EUR"))
	s.Add(buy("u", 6*min, 10, "USD"))
	// §5: final once wm >= last + gap, not a millisecond before
	assert.Empty(t, final(s, 36*min-1))
	assert.True(t, s.OpenInMinute(0))
	got := final(s, 36*min)
	require.Len(t, got, 1)
	assert.Equal(t, session.Record{UserID: "u", Start: 0, End: 6 * min,
		DurationMs: 6 * min, Events: 3, PageViews: 1, Purchases: 2, Revenue: 10, Converted: true}, got[0],
		"§5/§6 revenue counts the base currency only without rates")
	assert.False(t, s.OpenInMinute(0))
	assert.Equal(t, 0, s.Open())

	// a single event is a bounce
	s.Add(pv("v", 100*min))
	got = final(s, window.PosInf)
	require.Len(t, got, 1)
	assert.True(t, got[0].Bounced)
	assert.False(t, got[0].Converted)
}

func TestSessionSnapshot(t *testing.T) {
	marker := func(e *clickstream.Event) (uint8, bool) { return uint8(e.Kind()), true }
	s, err := session.New(session.WithMarker(marker), session.WithRevenue(clickstream.Currencies{Base: "EUR", Rates: map[string]float64{"USD": 0.5}}.Revenue))
	require.NoError(t, err)
	s.Add(pv("a", 0))
	s.Add(buy("a", min, 10, "USD"))
	s.Add(pv("b", 3*min))
	s.Add(pv("b", 4*min))
	b, err := s.AppendBinary(nil)
	require.NoError(t, err)
	r, err := session.New(session.WithMarker(marker))
	require.NoError(t, err)
	require.NoError(t, r.UnmarshalBinary(b))
	r.Add(pv("b", 4*min+1))
	var marks [][]session.Mark
	got := []session.Record{}
	r.Advance(window.PosInf, func(rec *session.Record) {
		marks = append(marks, append([]session.Mark(nil), rec.Marks...))
		c := *rec
		c.Marks = nil
		got = append(got, c)
	})
	require.Len(t, got, 2)
	assert.Equal(t, 5.0, got[0].Revenue)
	assert.Equal(t, []session.Mark{{TS: 0, Tag: uint8(clickstream.KindPageView)}, {TS: min, Tag: uint8(clickstream.KindPurchase)}}, marks[0])
	assert.Equal(t, int64(3), got[1].Events)
}

func ExampleSessionizer() {
	s, _ := session.New(session.WithGap(30 * time.Minute))
	min := time.Minute.Milliseconds()
	for _, ts := range []int64{0, 40 * min, 20 * min} { // the last one bridges
		s.Add(&clickstream.Event{EventID: fmt.Sprint(ts), EventType: "page_view", TS: ts, UserID: "u1"})
	}
	s.Advance(window.PosInf, func(r *session.Record) {
		fmt.Println(r.SessionID(), r.Events, r.DurationMs)
	})
	// Output:
	// u1/1970-01-01T00:00:00.000Z 3 2400000
}

type change struct {
	open  bool
	start int64
	marks []session.Mark
}

func changes(s *session.Sessionizer) map[int32]change {
	out := map[int32]change{}
	s.Changes(func(slot int32, o *session.Open) {
		if o == nil {
			out[slot] = change{}
			return
		}
		out[slot] = change{true, o.Start, append([]session.Mark(nil), o.Marks...)}
	})
	return out
}

// Changes reports each session changed since the last call once: new, with
// an event added (marks by time), merged away (not open) and final.
func TestChanges(t *testing.T) {
	s, err := session.New(session.WithGap(20*time.Minute), session.WithMarker(func(e *clickstream.Event) (uint8, bool) { return 1, true }))
	require.NoError(t, err)
	s.TrackChanges()
	s.Add(pv("a", 0))
	s.Add(pv("a", 30*min)) // a second session of a
	got := changes(s)
	require.Len(t, got, 2)
	assert.Empty(t, changes(s), "reported once")

	s.Add(pv("a", 35*min))
	s.Add(pv("a", 31*min)) // out of order: marks come by time
	got = changes(s)
	require.Len(t, got, 1)
	for _, c := range got {
		assert.Equal(t, change{true, 30 * min, []session.Mark{{30 * min, 1}, {31 * min, 1}, {35 * min, 1}}}, c)
	}

	s.Add(pv("a", 15*min)) // bridges both sessions: one is merged away
	got = changes(s)
	require.Len(t, got, 2)
	var open, gone int
	for _, c := range got {
		if c.open {
			open++
			assert.Equal(t, int64(0), c.start)
			assert.Len(t, c.marks, 5)
		} else {
			gone++
		}
	}
	assert.Equal(t, [2]int{1, 1}, [2]int{open, gone})

	require.Len(t, final(s, 60*min), 1)
	got = changes(s)
	require.Len(t, got, 1)
	for _, c := range got {
		assert.False(t, c.open, "final")
	}
}

// Without TrackChanges nothing is reported.
func TestChangesUntracked(t *testing.T) {
	s, err := session.New()
	require.NoError(t, err)
	s.Add(pv("a", 0))
	assert.Empty(t, changes(s))
}

// A session's label is its earliest event's (ties: the first to arrive),
// also when an out-of-order event moves its start or bridges two sessions.
func TestLabelOfEarliestEvent(t *testing.T) {
	s, err := session.New(session.WithGap(20*time.Minute), session.WithLabeler(func(e *clickstream.Event) string { return e.UTM.Source }))
	require.NoError(t, err)
	src := func(e *clickstream.Event, v string) *clickstream.Event { e.UTM.Source = v; return e }
	s.Add(src(pv("a", 10*min), "second"))
	s.Add(src(pv("a", 10*min), "tie")) // same time, later: keeps the first
	s.Add(src(pv("b", 10*min), "b-late"))
	s.Add(src(pv("b", 5*min), "b-early")) // out of order: now the earliest
	s.Add(src(pv("c", 0), "c-first"))
	s.Add(src(pv("c", 30*min), "c-second"))
	s.Add(src(pv("c", 15*min), "bridge")) // merges c's two sessions
	got := map[string]string{}
	s.Advance(window.PosInf, func(r *session.Record) { got[r.UserID] = r.Label })
	assert.Equal(t, map[string]string{"a": "second", "b": "b-early", "c": "c-first"}, got)
}

// Open.New counts the marks that came since the slot's last report, each
// later than the one before; -1 when the report no longer holds.
func TestChangesNew(t *testing.T) {
	s, err := session.New(session.WithGap(20*time.Minute), session.WithMarker(func(e *clickstream.Event) (uint8, bool) { return 1, true }))
	require.NoError(t, err)
	s.TrackChanges()
	news := func() []int {
		var out []int
		s.Changes(func(_ int32, o *session.Open) {
			if o != nil {
				out = append(out, o.New)
			}
		})
		return out
	}
	s.Add(pv("a", 10*min))
	assert.Equal(t, []int{-1}, news(), "a new session")
	s.Add(pv("a", 11*min))
	s.Add(pv("a", 12*min))
	assert.Equal(t, []int{2}, news(), "two later marks")
	s.Add(pv("a", 12*min))
	assert.Equal(t, []int{-1}, news(), "a mark at the same time")
	s.Add(pv("a", 13*min))
	assert.Equal(t, []int{1}, news())
	s.Add(pv("a", 11*min+30_000))
	assert.Equal(t, []int{-1}, news(), "out of order")
	s.Add(pv("a", 50*min))
	assert.Equal(t, []int{-1}, news(), "another session")
	s.Add(pv("a", 31*min)) // bridges the two
	assert.Equal(t, []int{-1}, news(), "a merge")
}
