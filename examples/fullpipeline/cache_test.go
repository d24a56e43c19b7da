package main

import (
	"context"
	"github.com/clickstreamkit/clickstream/sinks"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clickstreamkit/clickstream/examples/internal/readapi/readapitest"
	"github.com/clickstreamkit/clickstream/kpi"
)

const t0 = int64(1_741_953_600_000) // 2025-03-14T12:00:00Z

type countingStore struct {
	readapitest.Store
	calls atomic.Int64
	gate  chan struct{}
}

func (c *countingStore) LatestMinutes(ctx context.Context, n int) ([]sinks.MergedMinute, error) {
	c.calls.Add(1)
	<-c.gate
	return c.Store.LatestMinutes(ctx, n)
}

func TestCachedStoreQueriesOncePerKeyAndTTL(t *testing.T) {
	st := &countingStore{Store: readapitest.Store{Minutes: []sinks.MergedMinute{{Minute: kpi.Minute{Minute: t0}}}}, gate: make(chan struct{})}
	c := newCachedStore(st, time.Hour)
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			ms, err := c.LatestMinutes(context.Background(), 1)
			assert.NoError(t, err)
			assert.Len(t, ms, 1)
		})
	}
	require.Eventually(t, func() bool { return st.calls.Load() == 1 }, 5*time.Second, time.Millisecond)
	close(st.gate)
	wg.Wait()
	assert.Equal(t, int64(1), st.calls.Load(), "concurrent callers share one query")
	_, err := c.LatestMinutes(context.Background(), 1)
	require.NoError(t, err)
	assert.Equal(t, int64(1), st.calls.Load(), "within the ttl the answer is cached")
	_, err = c.LatestMinutes(context.Background(), 2)
	require.NoError(t, err)
	assert.Equal(t, int64(2), st.calls.Load(), "another key queries")

	expiring := newCachedStore(st, 0)
	_, _ = expiring.LatestMinutes(context.Background(), 1)
	_, _ = expiring.LatestMinutes(context.Background(), 1) // answers at once, refreshes behind
	require.Eventually(t, func() bool { return st.calls.Load() == 4 }, 5*time.Second, time.Millisecond,
		"past the ttl it queries again, in the background")
}

// baselineStore records the baseline each detector it is given starts with.
type baselineStore struct {
	readapitest.Store
	mu     sync.Mutex
	starts []int
}

func (b *baselineStore) Anomalies(ctx context.Context, from, to time.Time, d *kpi.Detector) ([]kpi.Anomaly, time.Time, error) {
	b.mu.Lock()
	b.starts = append(b.starts, len(d.Baseline()))
	b.mu.Unlock()
	return b.Store.Anomalies(ctx, from, to, d)
}

func (b *baselineStore) loads() []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]int(nil), b.starts...)
}

// A refresh of a cached Anomalies must not feed the windows again to the
// detector the first load fed: each load scores its own copy of the one
// given, and the caller's detector is left as it is.
func TestCachedStoreAnomaliesScoreEachWindowOnce(t *testing.T) {
	st := &baselineStore{}
	for i := range 12 {
		st.Minutes = append(st.Minutes, sinks.MergedMinute{Minute: kpi.Minute{Minute: t0 + int64(i)*60_000, Final: true,
			Counts: kpi.Counts{Sessions: 100, Purchases: int64(10 + i%2)}}})
	}
	st.Minutes[11].Purchases = 90
	d, err := kpi.NewDetector(kpi.DefaultAnomalyWindow, kpi.DefaultAnomalyMinPoints, kpi.DefaultAnomalyZ)
	require.NoError(t, err)
	d.SetBaseline([]float64{0.1})
	c := newCachedStore(st, 0)
	from, to := time.UnixMilli(t0), time.UnixMilli(t0+12*60_000)
	for range 2 { // the second answers at once and refreshes behind
		as, next, err := c.Anomalies(context.Background(), from, to, d)
		require.NoError(t, err)
		require.Len(t, as, 1)
		assert.Equal(t, t0+11*60_000, as[0].Minute)
		assert.Equal(t, to, next)
	}
	require.Eventually(t, func() bool { return len(st.loads()) == 2 }, 5*time.Second, time.Millisecond)
	assert.Equal(t, []int{1, 1}, st.loads(), "every load starts from the detector as given")
	assert.Equal(t, []float64{0.1}, d.Baseline(), "the caller's detector is not fed")
}
