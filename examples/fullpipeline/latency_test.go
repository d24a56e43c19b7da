package main

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/clickstreamkit/clickstream/sinks"
	"github.com/clickstreamkit/clickstream/sources"
)

// oneRead is a source that hands over one batch.
type oneRead struct {
	sources.Source
	b sources.Batch
}

func (s *oneRead) Read(context.Context) (sources.Batch, error) { return s.b, nil }

func TestLatencyStages(t *testing.T) {
	l := newLatencyTracker()
	produced := time.Now().Add(-time.Second)
	src := l.source(&oneRead{b: sources.Batch{Topic: "t", Partition: 0, Messages: []sources.Message{
		{Offset: 0, Timestamp: produced}, {Offset: 1, Timestamp: produced}, {Offset: 2}}}})
	_, err := src.Read(t.Context())
	require.NoError(t, err)
	require.Equal(t, uint64(2), observed(t, l.read), "only messages with a record timestamp")

	sink := l.sink(l.timed("mongo", sinks.SinkFunc(func(context.Context, *sinks.Batch) error { return nil })))
	require.NoError(t, sink.Write(t.Context(), &sinks.Batch{Topic: "t", Partition: 0, NextOffset: 1}))
	require.Equal(t, uint64(1), observed(t, l.hist), "the write covers offset 0 only")
	require.Equal(t, uint64(1), observed(t, l.wait))
	require.Equal(t, uint64(1), observed(t, l.write.WithLabelValues("mongo").(prometheus.Histogram)))
	require.Equal(t, 2, testutil.CollectAndCount(l.write), "one series for the round, one for the sink")
}

// observed returns how many values h has observed.
func observed(t *testing.T, h prometheus.Histogram) uint64 {
	var m dto.Metric
	require.NoError(t, h.Write(&m))
	return m.GetHistogram().GetSampleCount()
}

// The p95 of /stats and the progress line covers the current minute and
// the one before, however often and by whom it is read: a /metrics scrape
// once emptied it for the progress line that came next.
func TestLatencyP95Window(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLatencyTracker()
		src := l.source(&queueSource{})
		sink := l.sink(sinks.SinkFunc(func(context.Context, *sinks.Batch) error { return nil }))
		offset := int64(0)
		// write sends n messages produced age ago and writes them.
		write := func(n int, age time.Duration) {
			b := sources.Batch{Topic: "t"}
			for range n {
				b.Messages = append(b.Messages, sources.Message{Offset: offset, Timestamp: time.Now().Add(-age)})
				offset++
			}
			src.(*stampSource).Source.(*queueSource).next = b
			_, err := src.Read(t.Context())
			require.NoError(t, err)
			require.NoError(t, sink.Write(t.Context(), &sinks.Batch{Topic: "t", NextOffset: offset}))
		}
		near := func(want float64) {
			t.Helper()
			require.InEpsilon(t, want, l.p95(), 0.02)
		}
		require.Zero(t, l.p95(), "nothing written yet")
		write(100, 200*time.Millisecond)
		near(200)
		near(200) // reading changes nothing
		time.Sleep(70 * time.Second)
		near(200) // the minute before
		write(100, 400*time.Millisecond)
		near(400) // the p95 of 200 values, half of them 400 ms
		time.Sleep(70 * time.Second)
		near(400)
		write(100, 100*time.Millisecond)
		near(400) // the 400s are the minute before
		time.Sleep(3 * time.Minute)
		require.Zero(t, l.p95(), "nothing written for minutes")
	})
}

// queueSource hands over its next batch on every read.
type queueSource struct {
	sources.Source
	next sources.Batch
}

func (q *queueSource) Read(context.Context) (sources.Batch, error) { return q.next, nil }
