package dashboardtest

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/clickstreamkit/clickstream/examples/internal/readapi"
)

// paused is a fake whose clock only moves by Step, so the tests are exact.
func paused(t *testing.T, o Options) *FakeAPI {
	o.Paused = true
	if o.Tick == 0 {
		o.Tick = 20 * time.Millisecond
	}
	if o.TicksPerMinute == 0 {
		o.TicksPerMinute = 4
	}
	return NewFakeAPIWithOptions(t, o)
}

func do(t *testing.T, s *FakeAPI, method, path string, hdr map[string]string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, s.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, res.Header, b
}

// getJSON decodes a 200 answer into v, refusing fields that v lacks.
func getJSON(t *testing.T, s *FakeAPI, path string, v any) {
	t.Helper()
	code, hdr, b := do(t, s, http.MethodGet, path, nil)
	if code != http.StatusOK || hdr.Get("Content-Type") != "application/json" {
		t.Fatalf("GET %s = %d %s: %.300s", path, code, hdr.Get("Content-Type"), b)
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("GET %s: %v\n%.300s", path, err, b)
	}
}

func keys(t *testing.T, b []byte) []string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// A stall freezes the data while stalled_s and the lag grow; Recover ends it.
func TestStall(t *testing.T) {
	s := paused(t, Options{TicksPerMinute: 4}) // a step is 15 virtual seconds
	before, _ := s.Latest()
	reading := s.Stats()
	if reading.StalledS != 0 || reading.EventsPerSec <= 0 {
		t.Fatalf("stats while reading: %+v", reading)
	}
	s.Stall()
	for range 2 {
		s.Step()
	}
	st := s.Stats()
	if after, _ := s.Latest(); !reflect.DeepEqual(after, before) {
		t.Errorf("the data moved during a stall: %+v -> %+v", before, after)
	}
	if st.StalledS != 30 || st.Lag <= reading.Lag+200 || st.EventsPerSec <= 0 || st.EventsPerSec >= reading.EventsPerSec {
		t.Errorf("stats after 30 s of stall: %+v (before %+v)", st, reading)
	}
	s.Recover()
	s.Step()
	if st := s.Stats(); st.StalledS != 0 {
		t.Errorf("stalled_s %v after Recover", st.StalledS)
	}
	if after, _ := s.Latest(); after.Events <= before.Events {
		t.Errorf("the data do not move after Recover: %+v", after)
	}
}

// /stats's now follows the steps; SetAhead puts it behind the newest minute.
func TestServerNow(t *testing.T) {
	at := time.Date(2025, 3, 14, 12, 0, 40, 0, time.UTC)
	s := paused(t, Options{TicksPerMinute: 4, Now: at}) // a step is 15 virtual seconds
	for range 5 {
		s.Step()
	}
	if got, want := s.Stats().Now, "2025-03-14T12:01:55.000Z"; got != want {
		t.Errorf("now %s after 5 steps from %v, want %s", got, at, want)
	}
	newest, _ := s.Latest()
	if newest.Minute != "2025-03-14T12:01:00.000Z" {
		t.Fatalf("newest minute %s", newest.Minute)
	}
	s.SetAhead(2 * time.Minute)
	if got, want := s.Stats().Now, "2025-03-14T11:59:55.000Z"; got != want || got >= newest.Minute {
		t.Errorf("now %s with events 2 min ahead, want %s, before the newest minute", got, want)
	}
}

// The fields of docs/API.md, exactly.
func TestShapes(t *testing.T) {
	s := paused(t, Options{})
	for path, want := range map[string]string{
		"/kpis/latest":                      "add_to_carts aov conversion_rate events final latency_ms_p95 minute page_views partitions_complete partitions_total purchases revenue revenue_by_currency revenue_purchases sessions top_products",
		"/kpis?minutes_back=30":             "kpis minutes_back",
		"/funnel?minutes_back=5":            "breakdown counts entered final median_time_to_convert_ms minutes minutes_back overall_rate provisional_minutes step_rates steps",
		"/top-products?minutes_back=5":      "minutes_back top_products",
		"/anomalies?minutes_back=60":        "anomalies min_points minutes_back scored_until",
		"/sessions/summary?minutes_back=30": "avg_duration_ms bounce_rate bounced converted final minutes_back partitions_complete partitions_total revenue sessions",
		"/stats":                            "accepted dead_letters duplicates e2e_latency_ms_p95 events_per_sec invalid lag last_final_minute late now read stalled_s uptime_s",
		"/health":                           "partitions status",
	} {
		code, _, b := do(t, s, http.MethodGet, path, nil)
		if code != http.StatusOK {
			t.Errorf("GET %s = %d", path, code)
			continue
		}
		if got := strings.Join(keys(t, b), " "); got != want {
			t.Errorf("GET %s keys:\n got %s\nwant %s", path, got, want)
		}
	}
	var f struct {
		Minutes []map[string]json.RawMessage `json:"minutes"`
	}
	_, _, b := do(t, s, http.MethodGet, "/funnel?minutes_back=5", nil)
	if err := json.Unmarshal(b, &f); err != nil || len(f.Minutes) != 5 {
		t.Fatalf("funnel minutes: %v %d", err, len(f.Minutes))
	}
	for k := range f.Minutes[0] {
		if !slices.Contains([]string{"minute", "entered", "steps", "step_rates", "overall_rate", "median_time_to_convert_ms", "final", "partitions_complete", "partitions_total"}, k) {
			t.Errorf("funnel record has field %q", k)
		}
	}
}

func TestKPISemantics(t *testing.T) {
	s := paused(t, Options{})
	var r struct {
		MinutesBack int   `json:"minutes_back"`
		KPIs        []KPI `json:"kpis"`
	}
	getJSON(t, s, "/kpis?minutes_back=30", &r)
	if r.MinutesBack != 30 || len(r.KPIs) != 30 {
		t.Fatalf("minutes_back %d, %d records", r.MinutesBack, len(r.KPIs))
	}
	var latest KPI
	getJSON(t, s, "/kpis/latest", &latest)
	if !reflect.DeepEqual(latest, r.KPIs[29]) {
		t.Errorf("/kpis/latest is not the newest of /kpis")
	}
	for i, k := range r.KPIs {
		m, err := time.Parse(TimeLayout, k.Minute)
		if err != nil || m.Second() != 0 {
			t.Fatalf("minute %q: %v", k.Minute, err)
		}
		if i > 0 {
			prev, _ := time.Parse(TimeLayout, r.KPIs[i-1].Minute)
			if m.Sub(prev) != time.Minute {
				t.Errorf("records %d and %d are %v apart", i-1, i, m.Sub(prev))
			}
		}
		if k.Final != (i < 29) {
			t.Errorf("record %d final=%v: only the newest minute is open", i, k.Final)
		}
		if k.Sessions > 0 && k.ConversionRate != float64(k.Purchases)/float64(k.Sessions) {
			t.Errorf("%s: conversion_rate %v != purchases/sessions", k.Minute, k.ConversionRate)
		}
		if k.RevenuePurchases > 0 && k.AOV != k.Revenue/float64(k.RevenuePurchases) {
			t.Errorf("%s: aov %v != revenue/revenue_purchases", k.Minute, k.AOV)
		}
		if k.RevenueByCurrency["EUR"] != k.Revenue || k.RevenuePurchases > k.Purchases {
			t.Errorf("%s: revenue %v by currency %v", k.Minute, k.Revenue, k.RevenueByCurrency)
		}
		if k.Events < k.PageViews+k.AddToCarts+k.Purchases || len(k.TopProducts) > 10 {
			t.Errorf("%s: events %d, %d top products", k.Minute, k.Events, len(k.TopProducts))
		}
		if !sort.SliceIsSorted(k.TopProducts, func(a, b int) bool {
			pa, pb := k.TopProducts[a], k.TopProducts[b]
			return pa.Purchases > pb.Purchases || pa.Purchases == pb.Purchases && pa.Views > pb.Views
		}) {
			t.Errorf("%s: top_products out of order", k.Minute)
		}
	}
}

func TestClockAndFinal(t *testing.T) {
	s := paused(t, Options{TicksPerMinute: 4})
	first, _ := s.Latest()
	s.Step()
	second, _ := s.Latest()
	if second.Minute != first.Minute || second.Final || second.Events <= first.Events {
		t.Errorf("a step within the minute: %s %d events -> %s %d events", first.Minute, first.Events, second.Minute, second.Events)
	}
	for range 3 {
		s.Step()
	}
	next, _ := s.Latest()
	if next.Minute == first.Minute || next.Final {
		t.Errorf("after a minute of steps the newest minute is %s final=%v", next.Minute, next.Final)
	}
	k := s.KPIs(2)
	if k[0].Minute != first.Minute || !k[0].Final || k[0].Events < second.Events {
		t.Errorf("the closed minute: %+v", k[0])
	}
	st := s.Stats()
	if st.LastFinalMinute == nil || *st.LastFinalMinute != first.Minute {
		t.Errorf("last_final_minute %v, want %s", st.LastFinalMinute, first.Minute)
	}
	if st.Read != st.Accepted+st.Invalid+st.Late+st.Duplicates || st.DeadLetters != st.Invalid+st.Late {
		t.Errorf("stats counts do not add up: %+v", st)
	}
}

// The anomalies follow SEMANTICS §8, recomputed here from /kpis: the real
// detector flags the injected drops and spikes.
func TestAnomalies(t *testing.T) {
	s := paused(t, Options{})
	var all struct {
		MinutesBack int   `json:"minutes_back"`
		KPIs        []KPI `json:"kpis"`
	}
	getJSON(t, s, "/kpis?minutes_back=1440", &all)
	var want []Anomaly
	for i, k := range all.KPIs {
		if !k.Final || k.Sessions == 0 {
			continue
		}
		var base []float64
		for j := i - 1; j >= 0 && len(base) < 30; j-- {
			if all.KPIs[j].Final && all.KPIs[j].Sessions > 0 {
				base = append(base, all.KPIs[j].ConversionRate)
			}
		}
		if len(base) < 10 {
			continue
		}
		var mean, sq float64
		for _, v := range base {
			mean += v
		}
		mean /= float64(len(base))
		for _, v := range base {
			sq += (v - mean) * (v - mean)
		}
		std := math.Sqrt(sq / float64(len(base)))
		if z := (k.ConversionRate - mean) / std; std > 0 && math.Abs(z) >= 3 {
			dir := map[bool]string{true: "spike", false: "drop"}[z > 0]
			want = append(want, Anomaly{k.Minute, "conversion_rate", k.ConversionRate, mean, std, z, dir})
		}
	}
	var got struct {
		MinutesBack int       `json:"minutes_back"`
		Anomalies   []Anomaly `json:"anomalies"`
		ScoredUntil string    `json:"scored_until"`
		MinPoints   int       `json:"min_points"`
	}
	getJSON(t, s, "/anomalies?minutes_back=1440", &got)
	near := func(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }
	same := len(got.Anomalies) == len(want)
	for i := 0; same && i < len(want); i++ { // the detector sums in its own order
		g, w := got.Anomalies[i], want[i]
		same = g.Minute == w.Minute && g.Metric == w.Metric && g.Value == w.Value && g.Direction == w.Direction &&
			near(g.Mean, w.Mean) && near(g.Std, w.Std) && near(g.Z, w.Z)
	}
	if len(want) < 2 || !same {
		t.Errorf("anomalies:\n got %+v\nwant %+v", got.Anomalies, want)
	}
	getJSON(t, s, "/anomalies?minutes_back=60", &got)
	if len(got.Anomalies) == 0 || len(got.Anomalies) >= len(want) {
		t.Errorf("%d anomalies in 60 minutes of %d", len(got.Anomalies), len(want))
	}
}

func TestFunnelAndProducts(t *testing.T) {
	s := paused(t, Options{})
	var f Funnel
	getJSON(t, s, "/funnel?minutes_back=5", &f)
	if !slices.Equal(f.Steps, FunnelSteps) || len(f.Counts) != 3 || len(f.StepRates) != 2 || len(f.Minutes) != 5 {
		t.Fatalf("funnel %+v", f)
	}
	var sum [3]int64
	for _, m := range f.Minutes {
		for i, c := range m.Steps {
			sum[i] += c
		}
	}
	if !slices.Equal(sum[:], f.Counts) || f.Entered != f.Counts[0] ||
		f.StepRates[1] != float64(f.Counts[2])/float64(f.Counts[1]) || f.OverallRate != float64(f.Counts[2])/float64(f.Counts[0]) {
		t.Errorf("funnel sums: %+v", f)
	}
	var p struct {
		MinutesBack int          `json:"minutes_back"`
		TopProducts []TopProduct `json:"top_products"`
	}
	getJSON(t, s, "/top-products?minutes_back=5", &p)
	if p.MinutesBack != 5 || len(p.TopProducts) != 10 || p.TopProducts[0].Purchases < p.TopProducts[9].Purchases {
		t.Errorf("top products %+v", p)
	}
}

// The summary's range ends with the open minute: not final.
func TestSessionsSummaryCompleteness(t *testing.T) {
	s := paused(t, Options{})
	var sum SessionsSummary
	getJSON(t, s, "/sessions/summary?minutes_back=30", &sum)
	if sum.Sessions == 0 || sum.Final || sum.PartitionsComplete != 0 || sum.PartitionsTotal != Partitions {
		t.Errorf("sessions summary %+v, want sessions, final false, 0 of %d partitions complete", sum, Partitions)
	}
}

func TestErrorsAndAuth(t *testing.T) {
	s := paused(t, Options{Token: "tok"})
	for _, tc := range []struct {
		method, path string
		hdr          map[string]string
		code         int
	}{
		{"GET", "/health", nil, 200},
		{"GET", "/", nil, 200},
		{"GET", "/static/app.js", nil, 200},
		{"GET", "/kpis/latest", nil, 401},
		{"GET", "/events", nil, 401},
		{"GET", "/stats", map[string]string{"Authorization": "Bearer nope"}, 401},
		{"GET", "/stats", map[string]string{"Authorization": "Bearer tok"}, 200},
		{"HEAD", "/stats", map[string]string{"Authorization": "Bearer tok"}, 200},
		{"POST", "/stats", map[string]string{"Authorization": "Bearer tok"}, 405},
		{"GET", "/kpis?minutes_back=0", map[string]string{"Authorization": "Bearer tok"}, 400},
		{"GET", "/kpis?minutes_back=1441", map[string]string{"Authorization": "Bearer tok"}, 400},
		{"GET", "/funnel?minutes_back=x", map[string]string{"Authorization": "Bearer tok"}, 400},
		{"GET", "/nope", map[string]string{"Authorization": "Bearer tok"}, 404},
	} {
		code, hdr, b := do(t, s, tc.method, tc.path, tc.hdr)
		if code != tc.code {
			t.Errorf("%s %s = %d, want %d: %s", tc.method, tc.path, code, tc.code, b)
		}
		if code >= 400 {
			var e struct{ Error string }
			if json.Unmarshal(b, &e) != nil || e.Error == "" {
				t.Errorf("%s %s: error body %q", tc.method, tc.path, b)
			}
		}
		if code == 405 && hdr.Get("Allow") != "GET, HEAD" {
			t.Errorf("405 with Allow %q", hdr.Get("Allow"))
		}
	}
}

func TestEmptyThenBegin(t *testing.T) {
	s := paused(t, Options{Empty: true})
	for _, p := range []string{"/kpis/latest", "/funnel", "/anomalies", "/sessions/summary"} {
		code, _, b := do(t, s, http.MethodGet, p, nil)
		if code != http.StatusNotFound || !strings.Contains(string(b), `"no data yet"`) {
			t.Errorf("GET %s before data = %d %s", p, code, b)
		}
	}
	for p, want := range map[string]string{ // the lists of the newest minutes are empty
		"/kpis?minutes_back=30": `{"kpis":[],"minutes_back":30}`, "/top-products": `{"minutes_back":5,"top_products":[]}`,
	} {
		if code, _, b := do(t, s, http.MethodGet, p, nil); code != http.StatusOK || strings.TrimSpace(string(b)) != want {
			t.Errorf("GET %s before data = %d %s, want %s", p, code, b, want)
		}
	}
	var st readapi.Stats
	getJSON(t, s, "/stats", &st)
	if st.LastFinalMinute != nil || st.Accepted != 0 {
		t.Errorf("stats before data: %+v", st)
	}
	s.Begin()
	var k KPI
	getJSON(t, s, "/kpis/latest", &k)
	if k.Sessions == 0 {
		t.Errorf("no sessions after Begin: %+v", k)
	}
}

// /events sends "kpis" with the /kpis/latest record and "stats" with /stats.
func TestEvents(t *testing.T) {
	s := paused(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/events", nil)
	res, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	want, _ := s.Latest()
	wantStats := s.Stats()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(nil, 1<<20)
	seen := map[string]int{}
	var event string
	for seen["kpis"] < 2 || seen["stats"] < 2 {
		if !sc.Scan() {
			t.Fatalf("stream ended: %v (seen %v)", sc.Err(), seen)
		}
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data := []byte(strings.TrimPrefix(line, "data: "))
			seen[event]++
			switch event {
			case "kpis":
				var k KPI
				if err := json.Unmarshal(data, &k); err != nil || !reflect.DeepEqual(k, want) {
					t.Errorf("kpis event %s (%v), want /kpis/latest", data, err)
				}
			case "stats":
				var st readapi.Stats
				if err := json.Unmarshal(data, &st); err != nil || !reflect.DeepEqual(st, wantStats) {
					t.Errorf("stats event %s (%v), want %+v", data, err, wantStats)
				}
			default:
				t.Errorf("unknown event %q", event)
			}
		}
	}
}
