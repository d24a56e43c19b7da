package readapi

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/clickstreamkit/clickstream"
	"github.com/clickstreamkit/clickstream/examples/internal/dashboard"
	"github.com/clickstreamkit/clickstream/funnel"
	"github.com/clickstreamkit/clickstream/kpi"
	"github.com/clickstreamkit/clickstream/pipeline"
	"github.com/clickstreamkit/clickstream/session"
	"github.com/clickstreamkit/clickstream/sinks"
	mongosink "github.com/clickstreamkit/clickstream/sinks/mongo"
	"github.com/clickstreamkit/clickstream/window"
)

// Store is what the API reads: the merged views of sinks/mongo, each record
// final only once every partition has passed it (SEMANTICS §11). Its methods
// are called concurrently, one request's after another's.
type Store interface {
	// LatestMinutes returns the n newest windows with data, oldest first.
	LatestMinutes(ctx context.Context, n int) ([]sinks.MergedMinute, error)
	// Funnel returns the funnel start minutes in [from, to), by minute.
	Funnel(ctx context.Context, from, to time.Time) ([]sinks.MergedFunnel, error)
	// SessionTotals sums the sessions that start in [from, to).
	SessionTotals(ctx context.Context, from, to time.Time) (session.Totals, error)
	// Anomalies returns the anomalies flagged in the windows of [from, to),
	// each window scored once, when final, in window order against the
	// windows before it (SEMANTICS §8), and where scoring has got to: the
	// start of the first window of the range not scored yet, or to.
	Anomalies(ctx context.Context, from, to time.Time) ([]kpi.Anomaly, time.Time, error)
	// Progress returns every partition's published progress.
	Progress(ctx context.Context) ([]mongosink.Progress, error)
}

// Stats is the answer of /stats, also pushed as "event: stats" on /events:
// the pipeline's health.
type Stats struct {
	// Now is the processing clock when answered: event times may run ahead
	// of it, by up to max_future_skew.
	Now string `json:"now"`
	// EventsPerSec is averaged over the last minute, or over the last
	// progress interval when that is longer.
	EventsPerSec float64 `json:"events_per_sec"`
	StalledS     float64 `json:"stalled_s"`
	Read         int64   `json:"read"`
	Accepted     int64   `json:"accepted"`
	Invalid      int64   `json:"invalid"`
	Late         int64   `json:"late"`
	Duplicates   int64   `json:"duplicates"`
	DeadLetters  int64   `json:"dead_letters"`
	Lag          int64   `json:"lag"`
	// E2ELatencyP95 is over the current minute and the one before it.
	E2ELatencyP95   float64 `json:"e2e_latency_ms_p95"`
	LastFinalMinute *string `json:"last_final_minute"`
	UptimeS         float64 `json:"uptime_s"`
}

// Options configure [New]. The zero value serves empty stats and metrics,
// without a token.
type Options struct {
	// Stats answers /stats and the stats events [zero Stats].
	Stats func() Stats
	// Token, if set, is required as "Authorization: Bearer TOKEN" (or
	// ?token=TOKEN, for EventSource) on every path but /health and the page
	// itself ["": none].
	Token string
	// Log receives store errors [discard].
	Log *slog.Logger
	// Metrics is what /metrics exposes [an empty registry].
	Metrics prometheus.Gatherer
	// Tick is the period of the events on /events [1s].
	Tick time.Duration
}

// RegisterStats registers on reg the counters of stats that /metrics
// exposes: clickstream_events_read_total, _accepted_total, _invalid_total,
// _late_total and _duplicate_total, each read from stats when scraped.
func RegisterStats(reg prometheus.Registerer, stats func() Stats) {
	counter := func(name, help string, f func(Stats) int64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(f(stats())) }))
	}
	counter("clickstream_events_read_total", "Messages read.", func(s Stats) int64 { return s.Read })
	counter("clickstream_events_accepted_total", "Events accepted.", func(s Stats) int64 { return s.Accepted })
	counter("clickstream_events_invalid_total", "Invalid messages.", func(s Stats) int64 { return s.Invalid })
	counter("clickstream_events_late_total", "Late events.", func(s Stats) int64 { return s.Late })
	counter("clickstream_events_duplicate_total", "Duplicate events dropped.", func(s Stats) int64 { return s.Duplicates })
}

// api serves docs/API.md.
type api struct {
	store Store
	cfg   pipeline.Config
	stats func() Stats
	token string
	log   *slog.Logger
	reg   prometheus.Gatherer
	tick  time.Duration // server-sent events period
}

// New returns the handler of the read API of docs/API.md over st, with the
// dashboard page of package dashboard on / and /static/. cfg is the
// pipeline's: the funnel's steps and breakdown and the anomaly rule's
// settings; it must be valid. Only GET and HEAD are allowed.
func New(st Store, cfg pipeline.Config, o Options) http.Handler {
	a := &api{store: st, cfg: cfg, stats: o.Stats, token: o.Token, log: o.Log, reg: o.Metrics, tick: o.Tick}
	if a.stats == nil {
		a.stats = func() Stats { return Stats{} }
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.reg == nil {
		a.reg = prometheus.NewRegistry()
	}
	if a.tick <= 0 {
		a.tick = time.Second
	}
	return a.handler()
}

func (a *api) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/health", a.health)
	mux.HandleFunc("/kpis/latest", a.kpisLatest)
	mux.HandleFunc("/kpis", a.kpis)
	mux.HandleFunc("/funnel", a.funnel)
	mux.HandleFunc("/top-products", a.topProducts)
	mux.HandleFunc("/anomalies", a.anomalies)
	mux.HandleFunc("/sessions/summary", a.sessionsSummary)
	mux.HandleFunc("/stats", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, a.stats()) })
	mux.Handle("/metrics", promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/events", a.events)
	mux.Handle("/", dashboard.Handler())
	return a.guard(mux)
}

// guard allows GET and HEAD only and checks the bearer token.
func (a *api) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeJSON(w, http.StatusMethodNotAllowed, errBody("method not allowed"))
			return
		}
		if a.token != "" && !public(r.URL.Path) && !a.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="clickstream"`)
			writeJSON(w, http.StatusUnauthorized, errBody("missing or wrong bearer token"))
			return
		}
		w.Header().Set("X-Content-Type-Options", "nosniff")
		next.ServeHTTP(w, r)
	})
}

// public paths need no token: the health check, and the page itself, which
// reads its token from the URL fragment.
func public(path string) bool {
	return path == "/health" || path == "/" || strings.HasPrefix(path, "/static/")
}

func (a *api) authorized(r *http.Request) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		got = r.URL.Query().Get("token") // EventSource cannot send headers
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(a.token)) == 1
}

type errorBody struct {
	Error string `json:"error"`
}

func errBody(msg string) errorBody { return errorBody{Error: msg} }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// minutesBack reads minutes_back: an integer in 1..1440, def when absent.
func minutesBack(r *http.Request, def int) (int, error) {
	return intParam(r, "minutes_back", def, 1440)
}

// intParam returns query parameter name, an integer in 1..max, or def when
// absent.
func intParam(r *http.Request, name string, def, max int) (int, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > max {
		return 0, fmt.Errorf("%s must be an integer in 1..%d, got %q", name, max, s)
	}
	return n, nil
}

// fail answers a store error.
func (a *api) fail(w http.ResponseWriter, err error) {
	a.log.Warn("read API", "err", err)
	writeJSON(w, http.StatusServiceUnavailable, errBody("store unavailable: "+err.Error()))
}

// partitionHealth is a partition's progress as /health shows it.
type partitionHealth struct {
	Topic        string `json:"topic"`
	Partition    int32  `json:"partition"`
	Partitions   int32  `json:"partitions"`
	Watermark    string `json:"watermark"`
	FunnelBefore string `json:"funnel_before"`
	UpdatedAt    string `json:"updated_at"`
}

// bound formats a watermark: "-inf" before any event, "+inf" as earlier
// versions published the end of a finite input.
func bound(ms int64) string {
	switch ms {
	case window.NegInf:
		return "-inf"
	case window.PosInf:
		return "+inf"
	}
	return clickstream.FormatTime(ms)
}

func (a *api) health(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	ps, err := a.store.Progress(ctx)
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "degraded", "error": err.Error()})
		return
	}
	parts := make([]partitionHealth, len(ps))
	for i, p := range ps {
		parts[i] = partitionHealth{Topic: p.Topic, Partition: p.Partition, Partitions: p.Partitions,
			Watermark: bound(p.Watermark), FunnelBefore: bound(p.FunnelBefore),
			UpdatedAt: clickstream.FormatTime(p.UpdatedAt.UnixMilli())}
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "partitions": parts})
}

func (a *api) kpisLatest(w http.ResponseWriter, r *http.Request) {
	ms, err := a.store.LatestMinutes(r.Context(), 1)
	if err != nil {
		a.fail(w, err)
		return
	}
	if len(ms) == 0 {
		writeJSON(w, http.StatusNotFound, errBody("no data yet"))
		return
	}
	writeJSON(w, http.StatusOK, sinks.GlobalKPIRecords(ms)[0])
}

// latest answers an endpoint over the newest minutes_back minutes.
func (a *api) latest(def int, answer func(n int, ms []sinks.MergedMinute) any) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		n, err := minutesBack(r, def)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, errBody(err.Error()))
			return
		}
		ms, err := a.store.LatestMinutes(r.Context(), n)
		if err != nil {
			a.fail(w, err)
			return
		}
		writeJSON(w, http.StatusOK, answer(n, ms))
	}
}

func (a *api) kpis(w http.ResponseWriter, r *http.Request) {
	a.latest(30, func(n int, ms []sinks.MergedMinute) any {
		return map[string]any{"minutes_back": n, "kpis": sinks.GlobalKPIRecords(ms)}
	})(w, r)
}

// span returns [from, to) covering the n newest minutes with data, and
// false when there is no data yet.
func (a *api) span(ctx context.Context, n int) (time.Time, time.Time, bool, error) {
	ms, err := a.store.LatestMinutes(ctx, 1)
	if err != nil || len(ms) == 0 {
		return time.Time{}, time.Time{}, false, err
	}
	to := time.UnixMilli(ms[0].Minute.Minute).Add(time.Minute).UTC()
	return to.Add(-time.Duration(n) * time.Minute), to, true, nil
}

// ranged answers an endpoint over the last minutes_back minutes.
func (a *api) ranged(def int, answer func(ctx context.Context, n int, from, to time.Time) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		n, err := minutesBack(r, def)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, errBody(err.Error()))
			return
		}
		from, to, ok, err := a.span(r.Context(), n)
		if err != nil {
			a.fail(w, err)
			return
		}
		if !ok {
			writeJSON(w, http.StatusNotFound, errBody("no data yet"))
			return
		}
		v, err := answer(r.Context(), n, from, to)
		if err != nil {
			a.fail(w, err)
			return
		}
		writeJSON(w, http.StatusOK, v)
	}
}

func (a *api) funnel(w http.ResponseWriter, r *http.Request) {
	top, err := intParam(r, "top", 5, funnel.MaxValues)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, errBody(err.Error()))
		return
	}
	a.ranged(5, func(ctx context.Context, n int, from, to time.Time) (any, error) {
		recs, err := a.store.Funnel(ctx, from, to)
		if err != nil {
			return nil, err
		}
		total := funnel.Record{Steps: make([]int64, len(a.cfg.FunnelSteps))}
		if len(recs) > 0 {
			parts := make([]funnel.Record, len(recs))
			for i := range recs {
				parts[i] = recs[i].Record
			}
			total = funnel.Merge(parts...)
		}
		sum := sinks.NewFunnelRecord(&total)
		provisional := 0
		for i := range recs {
			if !recs[i].Final {
				provisional++
			}
		}
		out := map[string]any{"minutes_back": n, "steps": a.cfg.FunnelSteps, "entered": sum.Entered,
			"counts": sum.Steps, "step_rates": sum.StepRates, "overall_rate": sum.OverallRate,
			"median_time_to_convert_ms": sum.MedianTimeToConvertMs, "minutes": sinks.GlobalFunnelRecords(recs),
			"final": provisional == 0 && len(recs) > 0, "provisional_minutes": provisional}
		if d := a.cfg.FunnelBreakdown; d != "" && a.cfg.FunnelScope == funnel.ScopeSession {
			out["breakdown"] = breakdown(d, total.By, top)
		}
		return out, nil
	})(w, r)
}

// BreakdownValue is one value of the funnel breakdown as /funnel serves it:
// the funnel of the sessions whose first event has the value.
type BreakdownValue struct {
	Value                 string    `json:"value"`
	Entered               int64     `json:"entered"`
	Counts                []int64   `json:"counts"`
	StepRates             []float64 `json:"step_rates"`
	OverallRate           float64   `json:"overall_rate"`
	MedianTimeToConvertMs *int64    `json:"median_time_to_convert_ms"`
}

// breakdown shapes the merged parts by as the top values and the others.
func breakdown(d funnel.Dimension, by []funnel.Part, top int) map[string]any {
	values := []BreakdownValue{}
	for _, p := range funnel.Top(by, top) {
		r := funnel.Merge(funnel.Record{Steps: p.Steps, TimesMs: p.TimesMs}) // the rates and the median
		f := sinks.NewFunnelRecord(&r)
		values = append(values, BreakdownValue{Value: p.Value, Entered: f.Entered, Counts: f.Steps,
			StepRates: f.StepRates, OverallRate: f.OverallRate, MedianTimeToConvertMs: f.MedianTimeToConvertMs})
	}
	return map[string]any{"dimension": d, "top": top, "values": values}
}

func (a *api) topProducts(w http.ResponseWriter, r *http.Request) {
	a.latest(5, func(n int, ms []sinks.MergedMinute) any {
		top := []kpi.Product{}
		if len(ms) > 0 {
			parts := make([]kpi.Minute, len(ms))
			for i := range ms {
				parts[i] = ms[i].Minute
			}
			top = kpi.Merge(parts...).TopProducts
		}
		return map[string]any{"minutes_back": n, "top_products": top}
	})(w, r)
}

func (a *api) anomalies(w http.ResponseWriter, r *http.Request) {
	a.ranged(60, func(ctx context.Context, n int, from, to time.Time) (any, error) {
		found, until, err := a.store.Anomalies(ctx, from, to)
		if err != nil {
			return nil, err
		}
		out := []sinks.AnomalyRecord{}
		for i := range found {
			out = append(out, sinks.NewAnomalyRecord(&found[i]))
		}
		// until: the windows from there on are not final everywhere, so not
		// scored yet
		return map[string]any{"minutes_back": n, "anomalies": out, "scored_until": clickstream.FormatTime(until.UnixMilli()),
			"min_points": a.cfg.AnomalyMinPoints}, nil
	})(w, r)
}

// sessionsComplete counts the partitions that have closed every session
// starting before to (SEMANTICS §11): those whose funnel_before has reached
// it. The partitions are those of every topic with progress, counted as for
// merged records (sinks.Completeness): 0 up to the topic's partition
// count, the largest its progress carries or past the highest partition
// seen; one without progress has passed nothing.
func sessionsComplete(ps []mongosink.Progress, to time.Time) sinks.Completeness {
	var c sinks.Completeness
	counts := map[string]int32{}
	for _, p := range ps {
		counts[p.Topic] = max(counts[p.Topic], p.Partitions, p.Partition+1)
		if p.FunnelBefore >= to.UnixMilli() {
			c.PartitionsComplete++
		}
	}
	for _, n := range counts {
		c.PartitionsTotal += int(n)
	}
	return c
}

func (a *api) sessionsSummary(w http.ResponseWriter, r *http.Request) {
	a.ranged(30, func(ctx context.Context, n int, from, to time.Time) (any, error) {
		// Progress before the sessions, as the store's own queries read them:
		// what is read after a progress is at least as new as it.
		ps, err := a.store.Progress(ctx)
		if err != nil {
			return nil, err
		}
		c := sessionsComplete(ps, to)
		t, err := a.store.SessionTotals(ctx, from, to)
		if err != nil {
			return nil, err
		}
		return map[string]any{"minutes_back": n, "sessions": t.Sessions, "bounced": t.Bounced, "converted": t.Converted,
			"bounce_rate": t.BounceRate(), "avg_duration_ms": t.AvgDurationMs(), "revenue": t.Revenue,
			"final": c.PartitionsTotal > 0 && c.Complete(), "partitions_complete": c.PartitionsComplete,
			"partitions_total": c.PartitionsTotal}, nil
	})(w, r)
}

// events pushes the latest KPIs and the stats about once a tick.
func (a *api) events(w http.ResponseWriter, r *http.Request) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		writeJSON(w, http.StatusInternalServerError, errBody("streaming unsupported"))
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	t := time.NewTicker(a.tick)
	defer t.Stop()
	for {
		if ms, err := a.store.LatestMinutes(r.Context(), 1); err == nil && len(ms) > 0 {
			writeEvent(w, "kpis", sinks.GlobalKPIRecords(ms)[0])
		}
		writeEvent(w, "stats", a.stats())
		flusher.Flush()
		select {
		case <-r.Context().Done():
			return
		case <-t.C:
		}
	}
}

func writeEvent(w http.ResponseWriter, name string, v any) {
	b, _ := json.Marshal(v)
	fmt.Fprintf(w, "event: %s\ndata: %s\n\n", name, b)
}
