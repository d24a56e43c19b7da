package dedup_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clickstreamkit/clickstream/dedup"
)

// SEMANTICS §4, rule by rule. Seen is asked with the watermark as it stood
// before the event.
func TestDeduperRetention(t *testing.T) {
	tests := []struct {
		name  string
		steps []struct {
			id     string
			ts, wm int64
			dup    bool
		}
	}{
		{"§4 same id while its ts >= wm is a duplicate", steps(
			"a", 100, 0, false,
			"a", 100, 50, true,
			"a", 100, 100, true, // wm reached ts exactly: still remembered
		)},
		{"§4 id forgotten once wm passes its ts", steps(
			"a", 100, 0, false,
			"a", 101, 101, false, // the earlier a has ts 100 < wm
			"a", 101, 101, true, // the new one is remembered
		)},
		{"§4 a duplicate compares with the accepted event's ts", steps(
			"a", 100, 0, false,
			"a", 500, 150, false, // first a (ts 100) is below wm: accepted anew
			"a", 200, 150, true, // second a (ts 500) is above wm
		)},
		{"§4 other ids are independent", steps(
			"a", 100, 0, false,
			"b", 100, 0, false,
			"c", 100, 0, false,
			"b", 100, 0, true,
		)},
		{"§4 state before any event (wm = -inf)", steps(
			"a", -1<<62, -1<<63, false,
			"a", 5, -1<<63, true,
		)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := dedup.NewSeeded(1)
			for i, s := range tt.steps {
				assert.Equal(t, s.dup, d.Seen(s.id, s.ts, s.wm), "step %d (%s ts %d wm %d)", i, s.id, s.ts, s.wm)
			}
		})
	}
}

func steps(xs ...any) []struct {
	id     string
	ts, wm int64
	dup    bool
} {
	var out []struct {
		id     string
		ts, wm int64
		dup    bool
	}
	for i := 0; i < len(xs); i += 4 {
		out = append(out, struct {
			id     string
			ts, wm int64
			dup    bool
		}{xs[i].(string), toInt(xs[i+1]), toInt(xs[i+2]), xs[i+3].(bool)})
	}
	return out
}

func toInt(v any) int64 {
	switch x := v.(type) {
	case int:
		return int64(x)
	case int64:
		return x
	}
	panic(v)
}

// Under a moving watermark the table rebuilds many times; it must keep
// answering exactly, and its size must follow the horizon.
func TestDeduperRebuildsWithHorizon(t *testing.T) {
	d := dedup.NewSeeded(42)
	const horizon = 1000
	for ts := int64(0); ts < 200_000; ts++ {
		wm := ts - horizon
		id := fmt.Sprint("e", ts)
		require.False(t, d.Seen(id, ts, wm), "new id %s", id)
		if ts >= 10 {
			old := fmt.Sprint("e", ts-10)
			require.True(t, d.Seen(old, ts-10, wm), "retry of %s", old)
		}
	}
	assert.Less(t, d.Len(), 3*horizon, "state bounded by the horizon, not the stream")
	assert.Less(t, d.Bytes(), 24*3*horizon, "memory bounded by the horizon")

	b, err := d.AppendBinary(nil)
	require.NoError(t, err)
	back := dedup.New()
	require.NoError(t, back.UnmarshalBinary(b))
	assert.True(t, back.Seen("e199999", 199_999, 199_000))
	assert.False(t, back.Seen("e-new", 199_999, 199_000))
}

// After a burst within a wide horizon, the table shrinks back once the
// watermark expires the burst.
func TestDeduperShrinksAfterBurst(t *testing.T) {
	d := dedup.NewSeeded(5)
	for i := range 50_000 {
		require.False(t, d.Seen(fmt.Sprint("burst", i), 1_000_000, 0))
	}
	burst := d.Bytes()
	for ts := int64(2_000_000); ts < 2_030_000; ts++ { // until the table fills
		require.False(t, d.Seen(fmt.Sprint("calm", ts), ts, ts-100))
	}
	assert.Less(t, d.Bytes(), burst/20, "the burst's table shrank")
	assert.Less(t, d.Len(), 1000)
}

// A whole snapshot leaves out the ids the watermark expired (issue: the
// snapshot kept expired slots, ~25 bytes an id, so checkpoints grew with the
// stream between rebuilds).
func TestDeduperSnapshotDropsExpired(t *testing.T) {
	d := dedup.NewSeeded(7)
	for i := range 1000 {
		d.Seen(fmt.Sprint("old", i), int64(i), 0)
	}
	empty, err := dedup.NewSeeded(7).AppendBinary(nil)
	require.NoError(t, err)
	d.Seen("new", 5000, 2000) // wm 2000: every "old" id expired
	b, err := d.AppendBinary(nil)
	require.NoError(t, err)
	assert.Less(t, len(b), len(empty)+40, "one live id, not 1001")
	back := dedup.New()
	require.NoError(t, back.UnmarshalBinary(b))
	assert.True(t, back.Seen("new", 5000, 2000))
	assert.False(t, back.Seen("old1", 2500, 2000), "expired ids are forgotten")
}

// Incremental segments restore the same answers as the live table, on a
// random stream with retries, reuse of forgotten ids and expiry, cut at random
// points; segments whose newest id expired are not needed.
func TestDeduperSegments(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for round := range 20 {
		live := dedup.New()
		live.Incremental()
		type seg struct {
			data   []byte
			newest int64
		}
		var segs []seg
		maxTS, wm := int64(0), int64(math.MinInt64)
		for i := range 5000 {
			ts := maxTS - rng.Int64N(300) + rng.Int64N(100)
			id := fmt.Sprint("e", rng.IntN(3000)) // many retries and reused ids
			if ts < wm {
				continue // late: never reaches dedup
			}
			live.Seen(id, ts, wm)
			if ts > maxTS {
				maxTS = ts
				wm = maxTS - 500
			}
			if rng.IntN(200) == 0 || i == 4999 { // a checkpoint
				for {
					data, newest, more := live.AppendFresh(nil, wm, 1+rng.IntN(300))
					if len(data) > 0 {
						segs = append(segs, seg{data, newest})
					}
					if !more {
						break
					}
				}
				segs = slices.DeleteFunc(segs, func(s seg) bool { return s.newest < wm })
			}
		}
		var datas [][]byte
		for _, s := range segs {
			datas = append(datas, s.data)
		}
		back := dedup.New()
		require.NoError(t, back.Restore(wm, datas...))
		for q := range 3000 {
			id, ts := fmt.Sprint("e", q), maxTS
			a, b := live.Seen(id, ts, wm), back.Seen(id, ts, wm)
			require.Equal(t, a, b, "round %d: %s", round, id)
		}
	}
}

func TestDeduperSegmentCorrupt(t *testing.T) {
	d := dedup.New()
	d.Incremental()
	d.Seen("a", 10, 0)
	seg, _, _ := d.AppendFresh(nil, 0, 100)
	for _, bad := range [][]byte{seg[:len(seg)-1], append(slices.Clone(seg), 0), nil} {
		assert.Error(t, dedup.New().Restore(0, bad))
	}
	other := dedup.New()
	other.Incremental()
	other.Seen("b", 10, 0)
	seg2, _, _ := other.AppendFresh(nil, 0, 100)
	assert.Error(t, dedup.New().Restore(0, seg, seg2), "segments of two seeds")
}

var sinkBool bool

// BenchmarkDeduper reports events/s and the bytes the table holds per id
// retained within the horizon.
func BenchmarkDeduper(b *testing.B) {
	const horizon = 1 << 20 // ids within the watermark horizon
	ids := make([]string, 1<<22)
	for i := range ids {
		ids[i] = fmt.Sprintf("b1a9e1f0-2aee-4dfb-%04x-%012x", i>>16, i)
	}
	d := dedup.New()
	for i := range horizon { // steady state
		d.Seen(ids[i], int64(i), int64(i-horizon))
	}
	i := horizon
	b.ReportAllocs()
	for b.Loop() {
		ts := int64(i)
		sinkBool = d.Seen(ids[i%len(ids)], ts, ts-horizon)
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(d.Bytes())/float64(horizon), "bytes/id")
	runtime.KeepAlive(ids)
}

// BenchmarkSegment reports what a checkpoint writes for the dedup state: the
// bytes per retained id of a segment, and segments written and restored per
// second, for 25,000 ids (5,000 events/s over a 5 s checkpoint interval).
func BenchmarkSegment(b *testing.B) {
	const n = 25_000
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("b1a9e1f0-2aee-4dfb-%04x-%012x", i>>16, i)
	}
	base := int64(1_750_000_000_000)
	var seg []byte
	b.ReportAllocs()
	for b.Loop() {
		d := dedup.New()
		d.Incremental()
		for i, id := range ids {
			d.Seen(id, base+int64(i/5), base-600_000)
		}
		seg, _, _ = d.AppendFresh(seg[:0], base-600_000, n)
		if err := dedup.New().Restore(base-600_000, seg); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(seg))/n, "bytes/id")
}

func ExampleDeduper() {
	d := dedup.New()
	wm := int64(0)
	fmt.Println(d.Seen("e1", 1000, wm)) // first time: accepted
	fmt.Println(d.Seen("e1", 1000, wm)) // a retry: duplicate
	wm = 1001                           // the watermark passed e1's time
	fmt.Println(d.Seen("e1", 1500, wm)) // forgotten: accepted again
	// Output:
	// false
	// true
	// false
}

// SeenWith keys an id with a number: (id, n) pairs are remembered and
// forgotten as ids are, and one id under two numbers, or the plain id, are
// different keys.
func TestDeduperSeenWith(t *testing.T) {
	d := dedup.NewSeeded(7)
	assert.False(t, d.SeenWith("u1", 60_000, 119_999, 0))
	assert.True(t, d.SeenWith("u1", 60_000, 119_999, 100_000), "same user, same window")
	assert.False(t, d.SeenWith("u1", 120_000, 179_999, 100_000), "same user, next window")
	assert.False(t, d.SeenWith("u2", 60_000, 119_999, 100_000), "another user")
	assert.False(t, d.Seen("u1", 119_999, 100_000), "the plain id")
	assert.False(t, d.SeenWith("u1", 60_000, 119_999, 120_000), "forgotten once wm passes its ts")

	// Many pairs through rebuilds: each is new once and then held.
	d = dedup.NewSeeded(8)
	for w := range int64(50) {
		for u := range 200 {
			require.False(t, d.SeenWith(fmt.Sprint("u", u), w*60_000, w*60_000+59_999, 0))
		}
	}
	for w := range int64(50) {
		for u := range 200 {
			require.True(t, d.SeenWith(fmt.Sprint("u", u), w*60_000, w*60_000+59_999, 0))
		}
	}
}
