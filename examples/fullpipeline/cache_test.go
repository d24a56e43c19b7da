package main

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clickstreamkit/clickstream/kpi"
)

type countingStore struct {
	fakeStore
	calls atomic.Int64
	gate  chan struct{}
}

func (c *countingStore) LatestMinutes(ctx context.Context, n int) ([]kpi.Minute, error) {
	c.calls.Add(1)
	<-c.gate
	return c.fakeStore.LatestMinutes(ctx, n)
}

func TestCachedStoreQueriesOncePerKeyAndTTL(t *testing.T) {
	st := &countingStore{fakeStore: fakeStore{minutes: []kpi.Minute{{Minute: t0}}}, gate: make(chan struct{})}
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
