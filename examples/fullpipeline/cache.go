package main

import (
	"context"
	"fmt"
	"github.com/clickstreamkit/clickstream/sinks"
	"sync"
	"time"

	"github.com/clickstreamkit/clickstream/examples/internal/readapi"
	"github.com/clickstreamkit/clickstream/kpi"
	"github.com/clickstreamkit/clickstream/session"
	mongosink "github.com/clickstreamkit/clickstream/sinks/mongo"
)

// cachedStore answers reads from memory and refreshes each answer in the
// background once it is older than ttl, one query per key at a time, so that
// the read API's load does not become the database's: at 500 requests/s the
// store sees a few queries per second, and a request never waits for one
// except the first of its key. Answers are at most ttl plus a query's time
// old.
type cachedStore struct {
	next readapi.Store
	ttl  time.Duration

	mu      sync.Mutex
	entries map[string]*entry
}

type entry struct {
	ready      chan struct{} // closed once the first answer is in
	at         time.Time
	v          any
	err        error
	refreshing bool
}

func newCachedStore(next readapi.Store, ttl time.Duration) *cachedStore {
	return &cachedStore{next: next, ttl: ttl, entries: map[string]*entry{}}
}

// cached returns the answer held for key, loading it the first time.
func cached[T any](ctx context.Context, c *cachedStore, key string, load func(context.Context) (T, error)) (T, error) {
	c.mu.Lock()
	e, ok := c.entries[key]
	if !ok {
		e = &entry{ready: make(chan struct{}), refreshing: true}
		c.entries[key] = e
		c.mu.Unlock()
		c.refresh(ctx, key, e, func(ctx context.Context) (any, error) { return load(ctx) })
		c.mu.Lock()
	} else if isDone(e) && !e.refreshing && time.Since(e.at) > c.ttl {
		e.refreshing = true
		go c.refresh(ctx, key, e, func(ctx context.Context) (any, error) { return load(ctx) })
	}
	c.mu.Unlock()
	select {
	case <-e.ready:
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	v, _ := e.v.(T)
	return v, e.err
}

// refresh queries the store for e. A failed refresh keeps the previous
// answer; a failed first load is forgotten, so the next read tries again.
func (c *cachedStore) refresh(ctx context.Context, key string, e *entry, load func(context.Context) (any, error)) {
	qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	v, err := load(qctx)
	cancel()
	c.mu.Lock()
	defer c.mu.Unlock()
	e.refreshing = false
	first := !isDone(e)
	if err == nil || first {
		e.v, e.err, e.at = v, err, time.Now()
	}
	if first {
		if err != nil {
			delete(c.entries, key)
		}
		close(e.ready)
	}
}

func isDone(e *entry) bool {
	select {
	case <-e.ready:
		return true
	default:
		return false
	}
}

func (c *cachedStore) LatestMinutes(ctx context.Context, n int) ([]sinks.MergedMinute, error) {
	return cached(ctx, c, fmt.Sprint("latest/", n), func(ctx context.Context) ([]sinks.MergedMinute, error) {
		return c.next.LatestMinutes(ctx, n)
	})
}

func (c *cachedStore) Funnel(ctx context.Context, from, to time.Time) ([]sinks.MergedFunnel, error) {
	return cached(ctx, c, fmt.Sprint("funnel/", from.UnixMilli(), "/", to.UnixMilli()), func(ctx context.Context) ([]sinks.MergedFunnel, error) {
		return c.next.Funnel(ctx, from, to)
	})
}

func (c *cachedStore) Sessions(ctx context.Context, from, to time.Time) ([]session.Record, error) {
	return cached(ctx, c, fmt.Sprint("sessions/", from.UnixMilli(), "/", to.UnixMilli()), func(ctx context.Context) ([]session.Record, error) {
		return c.next.Sessions(ctx, from, to)
	})
}

func (c *cachedStore) Progress(ctx context.Context) ([]mongosink.Progress, error) {
	return cached(ctx, c, "progress", c.next.Progress)
}

// scored is an answer of Anomalies.
type scored struct {
	anomalies []kpi.Anomaly
	next      time.Time
}

// Anomalies is cached by range; the detector's settings are fixed for a run.
// Every load, the first and each refresh, scores its own copy of d as it was
// given, so that no window is fed twice to one detector; d itself is left
// as it is.
func (c *cachedStore) Anomalies(ctx context.Context, from, to time.Time, d *kpi.Detector) ([]kpi.Anomaly, time.Time, error) {
	base := *d
	base.SetBaseline(d.Baseline()) // a baseline of its own, not d's
	v, err := cached(ctx, c, fmt.Sprint("anomalies/", from.UnixMilli(), "/", to.UnixMilli()), func(ctx context.Context) (scored, error) {
		det := base
		det.SetBaseline(base.Baseline())
		as, next, err := c.next.Anomalies(ctx, from, to, &det)
		return scored{as, next}, err
	})
	return v.anomalies, v.next, err
}
