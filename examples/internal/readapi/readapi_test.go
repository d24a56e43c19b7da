package readapi

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clickstreamkit/clickstream/examples/internal/readapi/readapitest"
	"github.com/clickstreamkit/clickstream/funnel"
	"github.com/clickstreamkit/clickstream/kpi"
	"github.com/clickstreamkit/clickstream/pipeline"
	"github.com/clickstreamkit/clickstream/session"
	"github.com/clickstreamkit/clickstream/sinks"
	mongosink "github.com/clickstreamkit/clickstream/sinks/mongo"
	"github.com/clickstreamkit/clickstream/window"
)

const t0 = int64(1_741_953_600_000) // 2025-03-14T12:00:00Z

func newTestAPI(t *testing.T, st Store, token string) *httptest.Server {
	cfg := pipeline.DefaultConfig()
	require.NoError(t, cfg.Validate())
	srv := httptest.NewServer(New(st, cfg, Options{Stats: func() Stats { return Stats{Read: 7} }, Token: token,
		Tick: 10 * time.Millisecond}))
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, srv *httptest.Server, method, path, token string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, nil)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var m map[string]any
	if len(body) > 0 && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		require.NoError(t, json.Unmarshal(body, &m), "%s", body)
	}
	return resp.StatusCode, m
}

func TestAPIRejects(t *testing.T) {
	srv := newTestAPI(t, &readapitest.Store{}, "")
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch} {
		code, body := get(t, srv, m, "/kpis/latest", "")
		assert.Equal(t, http.StatusMethodNotAllowed, code, m)
		assert.Equal(t, "method not allowed", body["error"])
	}
	code, _ := get(t, srv, http.MethodHead, "/health", "")
	assert.Equal(t, http.StatusOK, code)
	for _, q := range []string{"0", "1441", "-1", "abc", "2.5", "1e3"} {
		code, body := get(t, srv, http.MethodGet, "/kpis?minutes_back="+q, "")
		assert.Equal(t, http.StatusBadRequest, code, q)
		assert.Contains(t, body["error"], "minutes_back", q)
	}
	code, body := get(t, srv, http.MethodGet, "/kpis/latest", "")
	assert.Equal(t, http.StatusNotFound, code)
	assert.Equal(t, "no data yet", body["error"])
	resp, err := srv.Client().Get(srv.URL + "/kpis")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"), "no CORS by default")
}

func TestAPIToken(t *testing.T) {
	srv := newTestAPI(t, &readapitest.Store{}, "s3cret")
	code, _ := get(t, srv, http.MethodGet, "/kpis", "")
	assert.Equal(t, http.StatusUnauthorized, code)
	code, _ = get(t, srv, http.MethodGet, "/kpis", "wrong")
	assert.Equal(t, http.StatusUnauthorized, code)
	code, _ = get(t, srv, http.MethodGet, "/kpis", "s3cret")
	assert.Equal(t, http.StatusOK, code)
	code, _ = get(t, srv, http.MethodGet, "/health", "")
	assert.Equal(t, http.StatusOK, code, "health needs no token")
}

func TestAPIAnswers(t *testing.T) {
	st := &readapitest.Store{}
	for i := range 14 {
		m := sinks.MergedMinute{Minute: kpi.Minute{Minute: t0 + int64(i)*60_000, Final: i < 12,
			Counts:      kpi.Counts{Events: 100, Sessions: 100, Purchases: int64(10 + i%2), Revenue: 50, RevenuePurchases: 2},
			TopProducts: []kpi.Product{{ProductID: "p", Views: 3}}}, Completeness: sinks.Completeness{PartitionsComplete: 4, PartitionsTotal: 4}}
		if i >= 12 { // a partition lags
			m.PartitionsComplete = 3
		}
		st.Minutes = append(st.Minutes, m)
	}
	st.Minutes[11].Purchases = 90 // a spike, final
	st.Minutes[12].Purchases = 1  // a drop, but provisional: not scored
	st.Funnels = []sinks.MergedFunnel{
		{Record: funnel.Record{Minute: t0, Entered: 10, Steps: []int64{10, 5, 2}, TimesMs: []int64{100, 300}, Final: true,
			By: []funnel.Part{{Value: "google", Steps: []int64{6, 4, 2}, TimesMs: []int64{100, 300}}, {Value: "bing", Steps: []int64{3, 1, 0}}, {Value: funnel.None, Steps: []int64{1, 0, 0}}}},
			Completeness: sinks.Completeness{PartitionsComplete: 4, PartitionsTotal: 4}},
		{Record: funnel.Record{Minute: t0 + 60_000, Entered: 10, Steps: []int64{10, 5, 3}, TimesMs: []int64{200},
			By: []funnel.Part{{Value: "google", Steps: []int64{2, 2, 1}, TimesMs: []int64{200}}, {Value: funnel.None, Steps: []int64{8, 3, 2}}}},
			Completeness: sinks.Completeness{PartitionsComplete: 2, PartitionsTotal: 4}},
	}
	st.Records = []session.Record{{DurationMs: 1000, Bounced: true, Revenue: 1}, {DurationMs: 3000, Converted: true, Revenue: 2}}
	srv := newTestAPI(t, st, "")

	code, latest := get(t, srv, http.MethodGet, "/kpis/latest", "")
	require.Equal(t, http.StatusOK, code)
	assert.Equal(t, "2025-03-14T12:13:00.000Z", latest["minute"])
	assert.Equal(t, false, latest["final"])
	assert.Equal(t, 3.0, latest["partitions_complete"])
	assert.Equal(t, 4.0, latest["partitions_total"])
	assert.Equal(t, 0.11, latest["conversion_rate"])
	assert.Equal(t, 25.0, latest["aov"])

	_, kpis := get(t, srv, http.MethodGet, "/kpis?minutes_back=3", "")
	require.Len(t, kpis["kpis"], 3)
	assert.Equal(t, 3.0, kpis["minutes_back"])
	for i, want := range []struct {
		final    bool
		complete float64
	}{{true, 4}, {false, 3}, {false, 3}} {
		k := kpis["kpis"].([]any)[i].(map[string]any)
		assert.Equal(t, want.final, k["final"], "series point %d", i)
		assert.Equal(t, want.complete, k["partitions_complete"], "series point %d", i)
		assert.Equal(t, 4.0, k["partitions_total"], "series point %d", i)
	}

	_, f := get(t, srv, http.MethodGet, "/funnel?minutes_back=5", "")
	assert.Equal(t, []any{20.0, 10.0, 5.0}, f["counts"])
	assert.Equal(t, 20.0, f["entered"])
	assert.Equal(t, 0.25, f["overall_rate"])
	assert.Equal(t, 200.0, f["median_time_to_convert_ms"])
	assert.Equal(t, false, f["final"], "one minute is provisional")
	// the breakdown merged over the minutes value by value, top 5 of 3
	assert.Equal(t, map[string]any{"dimension": "utm.source", "top": 5.0, "values": []any{
		map[string]any{"value": funnel.None, "entered": 9.0, "counts": []any{9.0, 3.0, 2.0}, "step_rates": []any{3.0 / 9, 2.0 / 3}, "overall_rate": 2.0 / 9, "median_time_to_convert_ms": nil},
		map[string]any{"value": "google", "entered": 8.0, "counts": []any{8.0, 6.0, 3.0}, "step_rates": []any{0.75, 0.5}, "overall_rate": 3.0 / 8, "median_time_to_convert_ms": 200.0},
		map[string]any{"value": "bing", "entered": 3.0, "counts": []any{3.0, 1.0, 0.0}, "step_rates": []any{1.0 / 3, 0.0}, "overall_rate": 0.0, "median_time_to_convert_ms": nil},
	}}, f["breakdown"])
	_, f = get(t, srv, http.MethodGet, "/funnel?minutes_back=5&top=1", "")
	values := f["breakdown"].(map[string]any)["values"].([]any)
	require.Len(t, values, 2)
	assert.Equal(t, funnel.Other, values[1].(map[string]any)["value"])
	assert.Equal(t, 11.0, values[1].(map[string]any)["entered"], "google and bing")
	code, body := get(t, srv, http.MethodGet, "/funnel?top=0", "")
	assert.Equal(t, http.StatusBadRequest, code)
	assert.Contains(t, body["error"], "top")
	assert.Equal(t, 1.0, f["provisional_minutes"])
	assert.Equal(t, time.UnixMilli(t0+14*60_000).UTC(), st.To, "the range ends after the newest minute")
	assert.Equal(t, st.To.Add(-5*time.Minute), st.From)
	require.Len(t, f["minutes"], 2)
	for i, want := range []map[string]any{
		{"minute": "2025-03-14T12:00:00.000Z", "final": true, "partitions_complete": 4.0, "partitions_total": 4.0, "entered": 10.0},
		{"minute": "2025-03-14T12:01:00.000Z", "final": false, "partitions_complete": 2.0, "partitions_total": 4.0, "entered": 10.0},
	} {
		got := f["minutes"].([]any)[i].(map[string]any)
		for k, v := range want {
			assert.Equal(t, v, got[k], "funnel minute %d: %s", i, k)
		}
	}

	_, a := get(t, srv, http.MethodGet, "/anomalies?minutes_back=60", "")
	require.Len(t, a["anomalies"], 1, "the provisional drop is not scored")
	assert.Equal(t, "2025-03-14T12:12:00.000Z", a["scored_until"], "the first minute not final")
	assert.Equal(t, 10.0, a["min_points"])
	assert.Equal(t, "spike", a["anomalies"].([]any)[0].(map[string]any)["direction"])
	assert.Equal(t, "2025-03-14T12:11:00.000Z", a["anomalies"].([]any)[0].(map[string]any)["minute"])

	_, s := get(t, srv, http.MethodGet, "/sessions/summary", "")
	assert.Equal(t, 2.0, s["sessions"])
	assert.Equal(t, 0.5, s["bounce_rate"])
	assert.Equal(t, 2000.0, s["avg_duration_ms"])

	_, tp := get(t, srv, http.MethodGet, "/top-products?minutes_back=2", "")
	assert.Equal(t, 6.0, tp["top_products"].([]any)[0].(map[string]any)["views"])

	_, stt := get(t, srv, http.MethodGet, "/stats", "")
	assert.Equal(t, 7.0, stt["read"])
}

// /health shows every partition's progress.
func TestAPIHealth(t *testing.T) {
	at := time.UnixMilli(t0 + 90_000).UTC()
	st := &readapitest.Store{Partitions: []mongosink.Progress{
		{Topic: "clicks", Partition: 0, Progress: sinks.Progress{Partitions: 2, Watermark: t0 + 61_500, FunnelBefore: t0}, UpdatedAt: at},
		{Topic: "clicks", Partition: 1, Progress: sinks.Progress{Partitions: 2, Watermark: window.NegInf, FunnelBefore: window.NegInf}, UpdatedAt: at},
		{Topic: "clicks", Partition: 2, Progress: sinks.Progress{Watermark: window.PosInf, FunnelBefore: window.PosInf}, UpdatedAt: at},
	}}
	srv := newTestAPI(t, st, "")
	code, body := get(t, srv, http.MethodGet, "/health", "")
	require.Equal(t, http.StatusOK, code)
	assert.Equal(t, "ok", body["status"])
	assert.Equal(t, []any{
		map[string]any{"topic": "clicks", "partition": 0.0, "partitions": 2.0, "watermark": "2025-03-14T12:01:01.500Z",
			"funnel_before": "2025-03-14T12:00:00.000Z", "updated_at": "2025-03-14T12:01:30.000Z"},
		map[string]any{"topic": "clicks", "partition": 1.0, "partitions": 2.0, "watermark": "-inf",
			"funnel_before": "-inf", "updated_at": "2025-03-14T12:01:30.000Z"},
		map[string]any{"topic": "clicks", "partition": 2.0, "partitions": 0.0, "watermark": "+inf",
			"funnel_before": "+inf", "updated_at": "2025-03-14T12:01:30.000Z"},
	}, body["partitions"])

	_, body = get(t, newTestAPI(t, &readapitest.Store{}, ""), http.MethodGet, "/health", "")
	assert.Equal(t, []any{}, body["partitions"], "no partition has progress yet")
}

// /sessions/summary is final only once every partition of the topic has
// closed every session that starts before the range's end.
func TestAPISessionsSummaryCompleteness(t *testing.T) {
	to := t0 + 60_000 // the range ends after the newest minute
	part := func(p int32, partitions int32, funnelBefore int64) mongosink.Progress {
		return mongosink.Progress{Topic: "clicks", Partition: p, Progress: sinks.Progress{Partitions: partitions, FunnelBefore: funnelBefore}}
	}
	for _, tc := range []struct {
		name            string
		progress        []mongosink.Progress
		final           bool
		complete, total float64
	}{
		{"2 of 4 past the end", []mongosink.Progress{part(0, 4, to), part(1, 4, to-1), part(2, 4, window.PosInf), part(3, 4, window.NegInf)}, false, 2, 4},
		{"all past the end", []mongosink.Progress{part(0, 4, to), part(1, 4, to+60_000), part(2, 4, window.PosInf), part(3, 4, to)}, true, 4, 4},
		{"a partition without progress", []mongosink.Progress{part(0, 3, to), part(1, 3, to)}, false, 2, 3},
		{"partition count unknown", []mongosink.Progress{part(0, 0, to), part(2, 0, to)}, false, 2, 3},
		{"no progress yet", nil, false, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := &readapitest.Store{Partitions: tc.progress,
				Minutes: []sinks.MergedMinute{{Minute: kpi.Minute{Minute: t0}}},
				Records: []session.Record{{DurationMs: 1000}}}
			code, s := get(t, newTestAPI(t, st, ""), http.MethodGet, "/sessions/summary", "")
			require.Equal(t, http.StatusOK, code)
			assert.Equal(t, 1.0, s["sessions"])
			assert.Equal(t, tc.final, s["final"])
			assert.Equal(t, tc.complete, s["partitions_complete"])
			assert.Equal(t, tc.total, s["partitions_total"])
		})
	}
}

func TestAPIServerSentEvents(t *testing.T) {
	st := &readapitest.Store{Minutes: []sinks.MergedMinute{{Minute: kpi.Minute{Minute: t0, Counts: kpi.Counts{Events: 5}},
		Completeness: sinks.Completeness{PartitionsComplete: 1, PartitionsTotal: 2}}}}
	srv := newTestAPI(t, st, "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/events", nil)
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	buf := make([]byte, 4096)
	var got string
	for !strings.Contains(got, "event: stats") {
		n, err := resp.Body.Read(buf)
		require.NoError(t, err)
		got += string(buf[:n])
	}
	assert.Contains(t, got, "event: kpis\ndata: {\"minute\":\"2025-03-14T12:00:00.000Z\"")
	assert.Contains(t, got, `"partitions_complete":1,"partitions_total":2}`)
}
