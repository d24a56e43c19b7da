package window_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clickstreamkit/clickstream/window"
)

// count is a minimal aggregate.
type count struct {
	start, end int64
	n          int
}

func (c *count) Add(int)                { c.n++ }
func (c *count) Reset(start, end int64) { *c = count{start: start, end: end} }
func (c *count) AppendBinary(b []byte) ([]byte, error) {
	return fmt.Appendf(b, "%d %d %d", c.start, c.end, c.n), nil
}
func (c *count) UnmarshalBinary(b []byte) error {
	_, err := fmt.Sscanf(string(b), "%d %d %d", &c.start, &c.end, &c.n)
	return err
}

type emitted struct {
	start, end int64
	n          int
}

func collect(out *[]emitted) func(start, end int64, c *count) {
	return func(start, end int64, c *count) { *out = append(*out, emitted{start, end, c.n}) }
}

func TestWatermark(t *testing.T) {
	w := window.NewWatermark(10 * time.Minute)
	// §3: before the first event wm = -inf, nothing is late
	assert.Equal(t, window.NegInf, w.Current())
	assert.False(t, w.IsLate(-1<<62))
	assert.True(t, w.Observe(int64(20*time.Minute/time.Millisecond)))
	wm := int64(10 * time.Minute / time.Millisecond)
	assert.Equal(t, wm, w.Current(), "§3 wm = max - delay")
	// §3 late boundary: event_ts == wm is accepted, one ms below is late
	assert.False(t, w.IsLate(wm))
	assert.True(t, w.IsLate(wm-1))
	// §3 an older event does not move wm
	assert.False(t, w.Observe(wm))
	assert.Equal(t, wm, w.Current())
	// §3 end of a finite input: +inf
	w.Finish()
	assert.Equal(t, window.PosInf, w.Current())
}

// A snapshot holds neither the end of a finite input nor the delay as state
// (issue: a restored watermark kept "finished", so a later run took every
// event for late, and a changed watermark_delay was silently ignored).
func TestWatermarkSnapshot(t *testing.T) {
	const min = int64(60_000)
	w := window.NewWatermark(10 * time.Minute)
	w.Observe(30 * min)
	w.Finish()
	b, err := w.AppendBinary(nil)
	require.NoError(t, err)

	back := window.NewWatermark(10 * time.Minute)
	require.NoError(t, back.UnmarshalBinary(b))
	assert.Equal(t, 20*min, back.Current(), "restored: max - delay, not +inf")
	assert.False(t, back.IsLate(20*min))
	assert.True(t, back.Observe(31*min), "a newer event moves the restored watermark")

	other := window.NewWatermark(5 * time.Minute)
	err = other.UnmarshalBinary(b)
	require.Error(t, err, "a snapshot of another watermark_delay is refused")
	assert.Contains(t, err.Error(), "watermark_delay 10m0s, configured 5m0s")
	assert.Equal(t, window.NegInf, other.Current(), "a refused snapshot changes nothing")
}

// §11: an advance without an event raises wm and is kept in snapshots; an
// older event then is late, and the newest event's wm takes over once above.
func TestWatermarkAdvance(t *testing.T) {
	const min = int64(60_000)
	w := window.NewWatermark(10 * time.Minute)
	assert.True(t, w.AdvanceTo(5*min), "from -inf")
	assert.Equal(t, 5*min, w.Current())
	assert.True(t, w.IsLate(5*min-1))
	assert.False(t, w.AdvanceTo(4*min), "never backwards")
	assert.False(t, w.Observe(14*min), "max - delay below the floor does not move wm")
	assert.Equal(t, 5*min, w.Current())
	assert.True(t, w.Observe(16*min))
	assert.Equal(t, 6*min, w.Current())

	b, err := w.AppendBinary(nil)
	require.NoError(t, err)
	back := window.NewWatermark(10 * time.Minute)
	require.NoError(t, back.UnmarshalBinary(b))
	assert.Equal(t, *w, *back)
	assert.True(t, back.AdvanceTo(7*min))
	assert.Equal(t, 7*min, back.Current())
}

func TestTumblingWindow(t *testing.T) {
	w, err := window.NewTumbling[int](time.Minute, func() *count { return new(count) })
	require.NoError(t, err)
	const m = 60_000
	// §6: epoch-aligned [m, m+1min), negative times too
	assert.Equal(t, int64(0), w.Start(59_999))
	assert.Equal(t, int64(m), w.Start(m))
	assert.Equal(t, int64(-m), w.Start(-1))
	for _, ts := range []int64{0, 59_999, m, 3*m + 5, -1} {
		w.Add(ts, 0)
	}
	var updates, finals []emitted
	w.Updates(collect(&updates))
	assert.Equal(t, []emitted{{-m, 0, 1}, {0, m, 2}, {m, 2 * m, 1}, {3 * m, 4 * m, 1}}, updates)
	updates = nil
	w.Updates(collect(&updates))
	assert.Empty(t, updates, "only changed windows update")

	// §6: final once wm >= end, in start order, each once
	w.Advance(m-1, collect(&finals))
	assert.Equal(t, []emitted{{-m, 0, 1}}, finals)
	w.Advance(2*m, collect(&finals))
	assert.Equal(t, []emitted{{-m, 0, 1}, {0, m, 2}, {m, 2 * m, 1}}, finals)

	snapshot, err := w.AppendBinary(nil)
	require.NoError(t, err)
	restored, err := window.NewTumbling[int](time.Minute, func() *count { return new(count) })
	require.NoError(t, err)
	require.NoError(t, restored.UnmarshalBinary(snapshot))
	var a, b []emitted
	w.Advance(window.PosInf, collect(&a))
	restored.Advance(window.PosInf, collect(&b))
	assert.Equal(t, []emitted{{3 * m, 4 * m, 1}}, a)
	assert.Equal(t, a, b)
}

func TestHoppingWindow(t *testing.T) {
	w, err := window.NewHopping[int](3*time.Minute, time.Minute, func() *count { return new(count) })
	require.NoError(t, err)
	w.Add(150_000, 0) // 2.5 min: in windows starting at 0, 1 and 2 min
	var finals []emitted
	w.Advance(window.PosInf, collect(&finals))
	assert.Equal(t, []emitted{{0, 180_000, 1}, {60_000, 240_000, 1}, {120_000, 300_000, 1}}, finals)

	_, err = window.NewHopping[int](time.Minute, 7*time.Second, func() *count { return new(count) })
	assert.ErrorIs(t, err, window.ErrBadSize)
}

func ExampleTumblingWindow() {
	w, _ := window.NewTumbling[int](time.Minute, func() *count { return new(count) })
	wm := window.NewWatermark(time.Minute)
	for _, ts := range []int64{1_000, 30_000, 61_000, 200_000} {
		if wm.IsLate(ts) {
			continue
		}
		w.Add(ts, 1)
		wm.Observe(ts)
		w.Advance(wm.Current(), func(start, end int64, c *count) {
			fmt.Printf("window [%d, %d): %d events\n", start, end, c.n)
		})
	}
	// Output:
	// window [0, 60000): 2 events
	// window [60000, 120000): 1 events
}
