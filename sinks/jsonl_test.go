package sinks_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clickstreamkit/clickstream/funnel"
	"github.com/clickstreamkit/clickstream/kpi"
	"github.com/clickstreamkit/clickstream/sinks"
)

// The JSON-lines sink keeps no reference to a batch: the pipeline reuses
// the memory of a batch's records once Write returns. Running funnel
// records are not written.
func TestJSONLKeepsNoReference(t *testing.T) {
	dir := t.TempDir()
	s, err := sinks.NewJSONL(dir, time.Minute, func() (*kpi.Detector, error) { return kpi.NewDetector(30, 10, 3) })
	require.NoError(t, err)
	f := funnel.Merge(funnel.Record{Steps: []int64{3, 2, 1}, TimesMs: []int64{500}, Final: true})
	running := funnel.Merge(funnel.Record{Minute: 60_000, Steps: []int64{9, 9, 9}})
	b := &sinks.Batch{Topic: "t", Funnel: []funnel.Record{f, running}}
	require.NoError(t, s.Write(t.Context(), b))
	clear(b.Funnel[0].Steps) // the next batch's records
	clear(b.Funnel[0].TimesMs)
	require.NoError(t, s.Close(t.Context()))
	got, err := os.ReadFile(filepath.Join(dir, sinks.FileFunnel))
	require.NoError(t, err)
	assert.JSONEq(t, `{"minute":"1970-01-01T00:00:00.000Z","entered":3,"steps":[3,2,1],"step_rates":[0.6666666666666666,0.5],
		"overall_rate":0.3333333333333333,"median_time_to_convert_ms":500}`, string(got))
}
