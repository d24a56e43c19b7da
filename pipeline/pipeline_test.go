package pipeline_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clickstreamkit/clickstream"
	"github.com/clickstreamkit/clickstream/checkpoint"
	"github.com/clickstreamkit/clickstream/pipeline"
	"github.com/clickstreamkit/clickstream/pipeline/pipelinetest"
	"github.com/clickstreamkit/clickstream/sinks"
	"github.com/clickstreamkit/clickstream/sources"
)

func at(d time.Duration) int64 { return pipelinetest.Start.Add(d).UnixMilli() }

func view(id, user string, ts int64) clickstream.Event {
	return clickstream.Event{EventID: id, EventType: "page_view", TS: ts, UserID: user}
}

func reasons(o sinks.Output) []string {
	var out []string
	for _, d := range o.DeadLetters {
		out = append(out, fmt.Sprintf("%d:%s", d.Offset, d.Reason))
	}
	return out
}

// SEMANTICS §3: the late boundary, and that only accepted events move wm.
func TestLateBoundary(t *testing.T) {
	h := pipelinetest.New(t, pipeline.DefaultConfig())
	h.FeedEvents(
		view("a", "u", at(-time.Minute)),      // wm = start - 11m
		view("b", "u", at(-11*time.Minute)),   // == wm: accepted
		view("c", "u", at(-11*time.Minute)-1), // < wm: late
		view("d", "u", at(30*time.Minute)),    // future: invalid, moves nothing
		view("e", "u", at(-11*time.Minute)),   // still == wm: accepted
		view("a", "u", at(-time.Minute)),      // duplicate of a
	)
	o := h.Output()
	assert.Equal(t, []string{"2:late", "3:future_timestamp"}, reasons(o))
	assert.Equal(t, sinks.Counters{Read: 6, Accepted: 3, Invalid: 1, Late: 1, Duplicates: 1}, o.Counters[0])
}

// SEMANTICS §6: running values every update_interval, marked not final; the
// final value when wm reaches the end.
func TestRunningUpdatesThenFinal(t *testing.T) {
	cfg := pipeline.DefaultConfig()
	cfg.WatermarkDelay = time.Minute
	h := pipelinetest.New(t, cfg)
	h.FeedEvents(view("a", "u", at(-10*time.Minute)))
	h.Advance(999 * time.Millisecond)
	assert.Empty(t, h.Output().Updates, "no update before update_interval")
	h.Advance(time.Millisecond)
	require.Len(t, h.Output().Updates, 1)
	assert.False(t, h.Output().Updates[0].Final)
	assert.Equal(t, int64(1), h.Output().Updates[0].Events)
	h.Advance(time.Second)
	assert.Len(t, h.Output().Updates, 1, "no update without a change")
	h.FeedEvents(view("b", "v", at(-10*time.Minute)+1))
	h.Advance(time.Second)
	require.Len(t, h.Output().Updates, 2)
	assert.Equal(t, int64(2), h.Output().Updates[1].Events)
	assert.Empty(t, h.Output().KPIs)
	// wm = ts - 1m reaches the window's end [-10m, -9m) at ts = -8m
	h.FeedEvents(view("c", "v", at(-8*time.Minute)-1))
	assert.Empty(t, h.Output().KPIs)
	h.FeedEvents(view("d", "v", at(-8*time.Minute)))
	require.Len(t, h.Output().KPIs, 1)
	f := h.Output().KPIs[0]
	assert.True(t, f.Final)
	assert.Equal(t, at(-10*time.Minute), f.Minute)
	assert.Equal(t, int64(2), f.Events)
	assert.Equal(t, int64(2), f.Sessions)
	h.Finish()
	assert.Len(t, h.Output().KPIs, 3, "§3 the end of input closes every window")
	assert.Len(t, h.Output().Sessions, 2)
}

// SEMANTICS §11 after the end of a finite input: the progress a partition
// publishes is the floor a later run over its checkpoint goes on from (the
// newest event_ts plus the horizon), not +inf, so that a live run's windows
// past it are not called final early.
func TestProgressAfterEndOfInput(t *testing.T) {
	p, err := pipeline.NewProcessor(pipeline.DefaultConfig(), "t", 0)
	require.NoError(t, err)
	ts := at(-time.Hour) + 7_000
	p.ProcessEvent(&clickstream.Event{EventID: "a", EventType: "page_view", TS: ts, UserID: "u"}, &sources.Message{}, pipelinetest.Start)
	p.Finish()
	floor := ts + 30*time.Minute.Milliseconds() // the horizon: session_gap
	assert.Equal(t, sinks.Progress{Watermark: floor, FunnelBefore: floor - floor%60_000}, p.Batch().Progress)

	// A partition without events is idle (§11): processing time less
	// watermark_delay, in its progress and in the checkpoint a later run
	// goes on from, where an event below it is late.
	cfg := pipeline.DefaultConfig()
	cfg.Clock = func() time.Time { return pipelinetest.Start }
	empty, err := pipeline.NewProcessor(cfg, "t", 1)
	require.NoError(t, err)
	empty.Finish()
	idle := pipelinetest.Start.Add(-cfg.WatermarkDelay).UnixMilli()
	assert.Equal(t, sinks.Progress{Watermark: idle, FunnelBefore: idle - idle%60_000}, empty.Batch().Progress)
	empty.Reset()
	cp, err := empty.Checkpoint()
	require.NoError(t, err)
	again, err := pipeline.NewProcessor(cfg, "t", 1)
	require.NoError(t, err)
	require.NoError(t, again.Restore(cp))
	again.ProcessEvent(&clickstream.Event{EventID: "b", EventType: "page_view", TS: idle - 1, UserID: "u"}, &sources.Message{}, pipelinetest.Start)
	again.ProcessEvent(&clickstream.Event{EventID: "c", EventType: "page_view", TS: idle, UserID: "u"}, &sources.Message{}, pipelinetest.Start)
	assert.Equal(t, int64(1), again.Counters().Late, "below the published progress: late")
	assert.Equal(t, int64(1), again.Counters().Accepted)
}

func TestConfigValidation(t *testing.T) {
	for name, mutate := range map[string]func(*pipeline.Config){
		"gap below window":   func(c *pipeline.Config) { c.SessionGap = 30 * time.Second },
		"zero window":        func(c *pipeline.Config) { c.WindowSize = 0 },
		"no funnel steps":    func(c *pipeline.Config) { c.FunnelSteps = nil },
		"negative delay":     func(c *pipeline.Config) { c.WatermarkDelay = -time.Second },
		"zero anomaly z":     func(c *pipeline.Config) { c.AnomalyZ = 0 },
		"zero update period": func(c *pipeline.Config) { c.UpdateInterval = 0 },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := pipeline.DefaultConfig()
			mutate(&cfg)
			_, err := pipeline.NewProcessor(cfg, "t", 0)
			assert.ErrorIs(t, err, pipeline.ErrConfig)
			assert.ErrorIs(t, cfg.Validate(), pipeline.ErrConfig)
		})
	}
	// the optional fields may stay empty, and Validate fills none of them
	cfg := pipeline.DefaultConfig()
	cfg.Currencies.Base, cfg.MaxPending = "", 0
	before := fmt.Sprintf("%+v", cfg)
	require.NoError(t, cfg.Validate())
	assert.Equal(t, before, fmt.Sprintf("%+v", cfg), "Validate changes nothing")
	_, err := pipeline.NewProcessor(cfg, "t", 0)
	require.NoError(t, err)
}

func lines(events ...clickstream.Event) [][]byte {
	var out [][]byte
	for i := range events {
		out = append(out, clickstream.AppendJSON(nil, &events[i]))
	}
	return out
}

func ExampleRunner() {
	events := []string{
		`{"event_id":"1","event_type":"page_view","event_ts":"2025-03-14T12:00:04Z","user_id":"u1","product_id":"sku_1"}`,
		`{"event_id":"2","event_type":"add_to_cart","event_ts":"2025-03-14T12:00:09Z","user_id":"u1","product_id":"sku_1"}`,
		`{"event_id":"3","event_type":"purchase","event_ts":"2025-03-14T12:00:30Z","user_id":"u1","product_id":"sku_1","price":29.9,"currency":"EUR"}`,
		`{"event_id":"3","event_type":"purchase","event_ts":"2025-03-14T12:00:30Z","user_id":"u1","product_id":"sku_1","price":29.9,"currency":"EUR"}`,
		`{"event_id":"4","event_type":"page_view","event_ts":"2025-03-14T12:00:31Z","user_id":"u2"}`,
		`{"oops"`,
	}
	var values [][]byte
	for _, e := range events {
		values = append(values, []byte(e))
	}
	var sink sinks.Memory
	r, _ := pipeline.NewRunner(sources.NewMemory(100, values...), &sink, &checkpoint.Memory{}, pipeline.DefaultConfig())
	if err := r.Run(context.Background()); err != nil {
		fmt.Println(err)
	}
	o := sink.Output()
	for _, m := range o.KPIs {
		fmt.Printf("%s events=%d sessions=%d purchases=%d revenue=%.2f conversion=%.2f\n",
			clickstream.FormatTime(m.Minute), m.Events, m.Sessions, m.Purchases, m.Revenue, m.ConversionRate())
	}
	fmt.Printf("funnel steps=%v\n", o.Funnel[0].Steps)
	fmt.Printf("%+v\n", o.Counters[0])
	// Output:
	// 2025-03-14T12:00:00.000Z events=4 sessions=2 purchases=1 revenue=29.90 conversion=0.50
	// funnel steps=[2 1 1]
	// {Read:6 Accepted:4 Invalid:1 Late:0 Duplicates:1}
}
