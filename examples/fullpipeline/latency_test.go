package main

import (
	"context"
	"testing"
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
