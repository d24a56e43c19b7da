// Package dashboardtest serves the read API of examples/fullpipeline
// (docs/API.md), the real handler of package readapi with the dashboard page
// beside it, over a fake store of plausible, changing data, so that the page
// can be developed and tested without the real pipeline:
//
//	srv := dashboardtest.NewFakeAPI(t) // an *httptest.Server, closed by t.Cleanup
//	// open srv.URL + "/" in a browser
//
// The store holds what sinks/mongo's merged views would (SEMANTICS §6-§8,
// §11): kpi minutes, funnel records with their breakdown by utm.source,
// sessions and partition progress, so every answer the page reads is shaped
// by the real code. A virtual clock advances one step per [Options.Tick];
// every [Options.TicksPerMinute] steps the open minute (final: false, its
// running values growing, one of the [Partitions] partitions still in it)
// closes (final: true) and a new one opens. History is generated on start,
// so the 30-minute series, the funnel and the anomaly list (scored by the
// real detector, with a few injected conversion drops and spikes) are full
// at once. Everything is deterministic for a given [Options.Seed] and number
// of steps; [Fake.Pause] freezes the data (the event stream keeps repeating
// it), so that a test can compare what the page shows with [Fake.Latest] and
// friends, which read the same handler.
//
// For manual work on the page: go run ./internal/dashboard/dashboardtest/cmd/fakedashboard
package dashboardtest

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/clickstreamkit/clickstream"
	"github.com/clickstreamkit/clickstream/examples/internal/readapi"
	"github.com/clickstreamkit/clickstream/examples/internal/readapi/readapitest"
	"github.com/clickstreamkit/clickstream/funnel"
	"github.com/clickstreamkit/clickstream/kpi"
	"github.com/clickstreamkit/clickstream/pipeline"
	"github.com/clickstreamkit/clickstream/session"
	"github.com/clickstreamkit/clickstream/sinks"
	mongosink "github.com/clickstreamkit/clickstream/sinks/mongo"
)

// Options configure a [Fake]. The zero value is usable.
type Options struct {
	// Tick is the period of one step of the virtual clock and of the events on
	// /events [1s].
	Tick time.Duration
	// TicksPerMinute is the number of steps in a virtual minute [60]: smaller
	// makes minutes close faster.
	TicksPerMinute int
	// HistoryMinutes is the number of final minutes generated on start [90].
	HistoryMinutes int
	// Seed makes the data [1].
	Seed uint64
	// Token, if set, is required as "Authorization: Bearer TOKEN" on every
	// endpoint but /health and the page itself (/ and /static/...), which hold
	// no data.
	Token string
	// Empty starts without any data: the data endpoints answer 404
	// {"error":"no data yet"} until [Fake.Begin].
	Empty bool
	// Paused starts with the clock stopped (see [Fake.Pause]).
	Paused bool
	// Now is the wall-clock time the open minute starts in [time.Now()].
	Now time.Time
}

// Partitions is the fake topic's partition count.
const Partitions = 4

// topic is the fake topic's name, as /health shows it.
const topic = "clickstream"

// Fake is the read API over a fake store. It is an [http.Handler]; its clock
// runs from [NewFake] until [Fake.Stop].
type Fake struct {
	opts    Options
	cfg     pipeline.Config
	handler http.Handler
	ctx     context.Context // ended by Stop, and with it the event streams
	stop    context.CancelFunc

	mu      sync.Mutex
	started bool
	paused  bool
	minutes []*minute     // oldest first; the last one is open (final false)
	step    int           // steps into the open minute: 0..TicksPerMinute-1
	ticks   int64         // steps taken while running, for uptime and jitter
	stalled int64         // steps taken since Stall, -1 when reading
	ahead   time.Duration // how far event times run ahead of the server's clock
}

// minute is one generated minute: its values once full, of which the open
// minute shows a growing part.
type minute struct {
	t       time.Time
	idx     int
	full    kpi.Minute // values of the complete minute, all products
	latency float64    // its latency p95, ms
	steps   []int64    // funnel counts of the sessions that start in it
	times   []int64    // conversion times of the sessions converting, in no order
	final   bool
}

// NewFake starts a fake; call Stop when done.
func NewFake(o Options) *Fake {
	if o.Tick <= 0 {
		o.Tick = time.Second
	}
	if o.TicksPerMinute <= 0 {
		o.TicksPerMinute = 60
	}
	if o.HistoryMinutes <= 0 {
		o.HistoryMinutes = 90
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	f := &Fake{opts: o, cfg: pipeline.DefaultConfig(), paused: o.Paused, stalled: -1}
	f.ctx, f.stop = context.WithCancel(context.Background())
	reg := prometheus.NewRegistry()
	readapi.RegisterStats(reg, f.Stats)
	f.handler = readapi.New(f.Store(), f.cfg, readapi.Options{Stats: f.Stats, Token: o.Token, Metrics: reg, Tick: o.Tick})
	if !o.Empty {
		f.Begin()
	}
	go f.run()
	return f
}

// FakeAPI is a started [httptest.Server] serving a [Fake] and the dashboard.
type FakeAPI struct {
	*httptest.Server
	*Fake
}

// NewFakeAPI starts a fake API server with default [Options]; it is closed by
// t.Cleanup.
func NewFakeAPI(t testing.TB) *FakeAPI { return NewFakeAPIWithOptions(t, Options{}) }

// NewFakeAPIWithOptions starts a fake API server; it is closed by t.Cleanup.
func NewFakeAPIWithOptions(t testing.TB, o Options) *FakeAPI {
	t.Helper()
	f := NewFake(o)
	s := &FakeAPI{Server: httptest.NewServer(f), Fake: f}
	t.Cleanup(s.Close)
	return s
}

// Close stops the fake (ending open event streams) and the server.
func (s *FakeAPI) Close() {
	s.Fake.Stop()
	s.Server.Close()
}

// ServeHTTP serves the read API of docs/API.md and, on / and /static/, the
// dashboard, until [Fake.Stop].
func (f *Fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(f.ctx, cancel)()
	f.handler.ServeHTTP(w, r.WithContext(ctx))
}

// Stop stops the clock and ends the open event streams. Idempotent.
func (f *Fake) Stop() { f.stop() }

// Begin makes data appear on a fake started with [Options.Empty].
func (f *Fake) Begin() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.started {
		return
	}
	f.started = true
	open := f.opts.Now.UTC().Truncate(time.Minute)
	n := f.opts.HistoryMinutes
	for i := 0; i <= n; i++ {
		m := f.generate(i, open.Add(time.Duration(i-n)*time.Minute))
		m.final = i < n
		f.minutes = append(f.minutes, m)
	}
}

// Pause freezes the data: the clock stops, and /events repeats the same
// records each tick.
func (f *Fake) Pause() { f.mu.Lock(); f.paused = true; f.mu.Unlock() }

// Resume restarts the clock after [Fake.Pause].
func (f *Fake) Resume() { f.mu.Lock(); f.paused = false; f.mu.Unlock() }

// Stall makes the fake pipeline stop reading while there is lag: from the
// next step on, the clock moves but the data do not, the lag grows, and
// /stats counts stalled_s (the virtual seconds of the steps since) and
// averages the rate down over a minute. [Fake.Recover] ends it.
func (f *Fake) Stall() {
	f.mu.Lock()
	if f.stalled < 0 {
		f.stalled = 0
	}
	f.mu.Unlock()
}

// Recover ends a [Fake.Stall]: the pipeline reads again.
func (f *Fake) Recover() { f.mu.Lock(); f.stalled = -1; f.mu.Unlock() }

// SetAhead makes event times run d ahead of the server's clock: /stats's now
// is moved back by d, so that the newest minutes may start after it.
func (f *Fake) SetAhead(d time.Duration) { f.mu.Lock(); f.ahead = d; f.mu.Unlock() }

// Step advances the clock by one step, paused or not; /events pushes the new
// values on its next tick.
func (f *Fake) Step() {
	f.mu.Lock()
	if f.started {
		f.advanceLocked()
	}
	f.mu.Unlock()
}

// stepDuration is the virtual time of one step.
func (f *Fake) stepDuration() time.Duration {
	return time.Minute / time.Duration(f.opts.TicksPerMinute)
}

func (f *Fake) run() {
	t := time.NewTicker(f.opts.Tick)
	defer t.Stop()
	for {
		select {
		case <-f.ctx.Done():
			return
		case <-t.C:
		}
		f.mu.Lock()
		if f.started && !f.paused {
			f.advanceLocked()
		}
		f.mu.Unlock()
	}
}

func (f *Fake) advanceLocked() {
	f.ticks++
	if f.stalled >= 0 {
		f.stalled++
		return
	}
	f.step++
	if f.step < f.opts.TicksPerMinute {
		return
	}
	f.step = 0
	last := f.minutes[len(f.minutes)-1]
	last.final = true
	f.minutes = append(f.minutes, f.generate(last.idx+1, last.t.Add(time.Minute)))
	if len(f.minutes) > 1500 { // more than minutes_back can ask for
		f.minutes = slices.Delete(f.minutes, 0, len(f.minutes)-1500)
	}
}

// ---- the generator ----

const catalogSize = 30

// price of product k (1-based), EUR.
func price(k int) float64 {
	return []float64{19.9, 24.5, 9.99, 49.0, 14.9, 34.9, 79.0, 12.5, 29.9, 59.9}[k%10]
}

func round2(x float64) float64 { return math.Round(x*100) / 100 }

// generate makes minute idx, starting at t, complete (as when it closes).
// Minutes idx ≡ 17 (mod 29) carry an injected conversion drop or spike.
func (f *Fake) generate(idx int, t time.Time) *minute {
	r := rand.New(rand.NewPCG(f.opts.Seed, uint64(idx)))
	norm := func(mean, sd float64) float64 { return mean + sd*r.NormFloat64() }

	sessions := int64(math.Max(0, math.Round(norm(1800+260*math.Sin(2*math.Pi*float64(idx)/45), 55))))
	conv := norm(0.17, 0.006)
	if idx%29 == 17 {
		if (idx/29)%2 == 0 {
			conv = norm(0.09, 0.004)
		} else {
			conv = norm(0.255, 0.004)
		}
	}
	purchases := int64(math.Round(float64(sessions) * conv))
	pageViews := int64(math.Round(float64(sessions) * norm(5.2, 0.15)))
	carts := int64(math.Round(float64(sessions) * norm(0.68, 0.03)))
	other := int64(math.Round(float64(pageViews+carts+purchases) * 0.03))
	usd := int64(math.Round(float64(purchases) * 0.04))
	eur := purchases - usd
	revenue := round2(float64(eur) * norm(29.4, 1.1))
	byCur := map[string]float64{"EUR": revenue}
	if usd > 0 {
		byCur["USD"] = round2(float64(usd) * norm(32.5, 2))
	}
	latency := math.Round(norm(780, 35)*10) / 10
	if idx%13 == 5 {
		latency = math.Round(norm(1150, 60)*10) / 10
	}

	products := make([]kpi.Product, catalogSize)
	views := float64(pageViews) * 0.55
	var wsum float64
	for k := 1; k <= catalogSize; k++ {
		wsum += 1 / math.Pow(float64(k), 0.9)
	}
	for k := 1; k <= catalogSize; k++ {
		v := math.Max(0, math.Round(views/math.Pow(float64(k), 0.9)/wsum*norm(1, 0.12)))
		c := math.Max(0, math.Round(v*norm(0.14, 0.02)))
		p := math.Max(0, math.Min(c, math.Round(c*norm(0.45, 0.08))))
		products[k-1] = kpi.Product{
			ProductID: "sku_" + strconv.Itoa(k), Views: int64(v), Carts: int64(c), Purchases: int64(p),
			Revenue: round2(p * price(k)),
		}
	}

	entered := int64(math.Round(float64(sessions) * norm(0.965, 0.005)))
	c2 := int64(math.Round(float64(entered) * norm(0.33, 0.015)))
	c3 := min(c2, int64(math.Round(float64(purchases)*0.93)))
	times := make([]int64, c3)
	for i := range times {
		times[i] = max(1000, int64(math.Round(norm(192000, 60000))))
	}

	return &minute{t: t, idx: idx, latency: latency, steps: []int64{entered, c2, c3}, times: times,
		full: kpi.Minute{Minute: t.UnixMilli(), Counts: kpi.Counts{
			Events: pageViews + carts + purchases + other, PageViews: pageViews, AddToCarts: carts,
			Purchases: purchases, Sessions: sessions, Revenue: revenue, RevenuePurchases: eur,
		}, RevenueByCurrency: byCur, TopProducts: products}}
}

// sketch is a latency sketch whose p95 is about p95.
func sketch(p95 float64) kpi.Sketch {
	var s kpi.Sketch
	for k := 1; k <= 20; k++ {
		s.Add(p95 * float64(k) / 19)
	}
	return s
}

// fracLocked is how much of the open minute has passed.
func (f *Fake) fracLocked() float64 {
	return float64(f.step+1) / float64(f.opts.TicksPerMinute)
}

// mergedLocked is m as the store holds it now, merged over the partitions:
// the full values once final, a growing part of them while open, when one
// partition still has the window open.
func (f *Fake) mergedLocked(m *minute) sinks.MergedMinute {
	out := sinks.MergedMinute{Completeness: sinks.Completeness{PartitionsComplete: Partitions, PartitionsTotal: Partitions}}
	k := m.full
	if m.final {
		k.Final = true
		k.Latency = sketch(m.latency)
		out.Minute = kpi.Merge(k) // ranks the products
		return out
	}
	out.PartitionsComplete = Partitions - 1
	frac := f.fracLocked()
	r := rand.New(rand.NewPCG(f.opts.Seed^0x9e3779b97f4a7c15, uint64(m.idx)<<16|uint64(f.step)))
	sc := func(v int64, p float64) int64 { return int64(math.Round(float64(v) * math.Pow(frac, p))) }
	k.Events = sc(k.Events, 1)
	k.PageViews = sc(k.PageViews, 1)
	k.AddToCarts = sc(k.AddToCarts, 1)
	k.Purchases = sc(k.Purchases, 1)
	k.Sessions = sc(k.Sessions, 0.8)
	k.RevenuePurchases = sc(k.RevenuePurchases, 1)
	k.Revenue = round2(m.full.Revenue * ratio(k.RevenuePurchases, m.full.RevenuePurchases))
	k.RevenueByCurrency = map[string]float64{}
	for c, v := range m.full.RevenueByCurrency {
		k.RevenueByCurrency[c] = round2(v * frac)
	}
	k.RevenueByCurrency["EUR"] = k.Revenue
	k.Latency = sketch(m.latency + r.NormFloat64()*15)
	k.TopProducts = make([]kpi.Product, len(m.full.TopProducts))
	for i, p := range m.full.TopProducts {
		k.TopProducts[i] = kpi.Product{ProductID: p.ProductID, Views: sc(p.Views, 1), Carts: sc(p.Carts, 1), Purchases: sc(p.Purchases, 1)}
		k.TopProducts[i].Revenue = round2(p.Revenue * ratio(k.TopProducts[i].Purchases, p.Purchases))
	}
	out.Minute = kpi.Merge(k)
	return out
}

func ratio(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// sources are the breakdown's values with their shares of the counts; the
// last takes the rest.
var sources = []struct {
	value string
	share float64
}{{"google", 0.5}, {"newsletter", 0.2}, {funnel.None, 1}}

// funnelLocked is m's funnel record as the store holds it now: while m is
// open, the running values over the sessions seen so far (SEMANTICS §7),
// broken down by utm.source.
func (f *Fake) funnelLocked(m *minute) sinks.MergedFunnel {
	steps, times := m.steps, m.times
	c := sinks.Completeness{PartitionsComplete: Partitions, PartitionsTotal: Partitions}
	if !m.final {
		frac := f.fracLocked()
		steps = make([]int64, len(m.steps))
		for i, n := range m.steps {
			steps[i] = int64(math.Round(float64(n) * frac))
		}
		times = times[:steps[len(steps)-1]]
		c.PartitionsComplete = Partitions - 1
	}
	rec := funnel.Record{Minute: m.t.UnixMilli(), Steps: slices.Clone(steps), TimesMs: slices.Sorted(slices.Values(times)), Final: m.final, By: []funnel.Part{}}
	left, rest := slices.Clone(steps), times
	for _, s := range sources {
		p := funnel.Part{Value: s.value, Steps: make([]int64, len(steps))}
		for i := range p.Steps {
			p.Steps[i] = min(left[i], int64(math.Round(float64(steps[i])*s.share)))
			left[i] -= p.Steps[i]
		}
		n := p.Steps[len(p.Steps)-1]
		p.TimesMs, rest = slices.Sorted(slices.Values(rest[:n])), rest[n:]
		rec.By = append(rec.By, p)
	}
	return sinks.MergedFunnel{Record: funnel.Merge(rec), Completeness: c} // the rates, the median and By in order
}

// ---- the store ----

// store is the fake's merged views.
type store struct{ f *Fake }

var _ readapi.Store = store{}

// Store is the fake's store, which the handler reads: what sinks/mongo's
// merged views would hold of the generated minutes now.
func (f *Fake) Store() readapi.Store { return store{f} }

// inRangeLocked is the minutes that start in [from, to).
func (f *Fake) inRangeLocked(from, to time.Time) []*minute {
	var out []*minute
	for _, m := range f.minutes {
		if !m.t.Before(from) && m.t.Before(to) {
			out = append(out, m)
		}
	}
	return out
}

// views is view of each of ms, nil for none, as the store answers.
func views[T any](ms []*minute, view func(*minute) T) []T {
	var out []T
	for _, m := range ms {
		out = append(out, view(m))
	}
	return out
}

func (s store) LatestMinutes(_ context.Context, n int) ([]sinks.MergedMinute, error) {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	return views(s.f.minutes[max(0, len(s.f.minutes)-n):], s.f.mergedLocked), nil
}

func (s store) Funnel(_ context.Context, from, to time.Time) ([]sinks.MergedFunnel, error) {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	return views(s.f.inRangeLocked(from, to), s.f.funnelLocked), nil
}

// SessionTotals sums plausible sessions for the final minutes of the range:
// those of the open minute are not closed yet.
func (s store) SessionTotals(_ context.Context, from, to time.Time) (session.Totals, error) {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	var out session.Totals
	for _, m := range s.f.inRangeLocked(from, to) {
		if !m.final {
			continue
		}
		started := m.full.Sessions * 45 / 100 // sessions active in a minute also started earlier
		bounced := started * 37 / 100
		converted := min(started, m.full.Purchases*9/10)
		for i := range started {
			r := session.Record{DurationMs: 264500, Bounced: i < bounced, Converted: i >= started-converted}
			if r.Converted {
				r.Revenue = round2(m.full.Revenue * 0.9 / float64(converted))
			}
			out.Add(&r)
		}
	}
	return out, nil
}

// Anomalies scores every minute, as a store does once each.
func (s store) Anomalies(_ context.Context, from, to time.Time) ([]kpi.Anomaly, time.Time, error) {
	d, err := s.f.cfg.NewDetector()
	if err != nil {
		return nil, from, err
	}
	s.f.mu.Lock()
	ms := views(s.f.minutes, s.f.mergedLocked)
	s.f.mu.Unlock()
	as, until := readapitest.Score(ms, from, to, d)
	return as, until, nil
}

// Progress is the partitions' progress: all but the last have passed the
// open minute's window; none has closed the sessions that start in it.
func (s store) Progress(context.Context) ([]mongosink.Progress, error) {
	f := s.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.minutes) == 0 {
		return nil, nil
	}
	open := f.minutes[len(f.minutes)-1].t
	at := f.nowLocked()
	out := make([]mongosink.Progress, Partitions)
	for i := range out {
		wm := open.Add(time.Minute)
		if i == Partitions-1 {
			wm = open.Add(time.Duration(f.step) * f.stepDuration())
		}
		out[i] = mongosink.Progress{Topic: topic, Partition: int32(i), UpdatedAt: at,
			Progress: sinks.Progress{Partitions: Partitions, Watermark: wm.UnixMilli(), FunnelBefore: open.UnixMilli()}}
	}
	return out, nil
}

// ---- stats ----

// nowLocked is the server's clock: a step's virtual time per step from
// Options.Now, stalled or not, less how far events run ahead.
func (f *Fake) nowLocked() time.Time {
	return f.opts.Now.Add(time.Duration(f.ticks)*f.stepDuration() - f.ahead)
}

// Stats is /stats: plausible counters that follow the data.
func (f *Fake) Stats() readapi.Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := readapi.Stats{Now: clickstream.FormatTime(f.nowLocked().UnixMilli()), UptimeS: math.Round(float64(f.ticks)*f.opts.Tick.Seconds()*10) / 10}
	if len(f.minutes) == 0 {
		return s
	}
	latest := f.mergedLocked(f.minutes[len(f.minutes)-1])
	for _, m := range f.minutes[:len(f.minutes)-1] {
		s.Accepted += m.full.Events
	}
	s.Accepted += latest.Events
	s.Invalid = s.Accepted * 4 / 1000
	s.Late = s.Accepted / 1000
	s.Duplicates = s.Accepted * 2 / 1000
	s.Read = s.Accepted + s.Invalid + s.Late + s.Duplicates
	s.DeadLetters = s.Invalid + s.Late
	r := rand.New(rand.NewPCG(f.opts.Seed, uint64(f.ticks)|1<<40))
	if len(f.minutes) > 1 {
		prev := f.minutes[len(f.minutes)-2]
		s.EventsPerSec = math.Round(float64(prev.full.Events)/60*(1+0.03*r.NormFloat64())*10) / 10
		lf := clickstream.FormatTime(prev.t.UnixMilli())
		s.LastFinalMinute = &lf
	}
	s.Lag = int64(40 + r.IntN(160))
	if f.stalled > 0 && len(f.minutes) > 1 { // nothing read: the lag grows and the minute's average falls
		stalled := (time.Duration(f.stalled) * f.stepDuration()).Seconds()
		s.StalledS = math.Round(stalled*10) / 10
		s.Lag += f.stalled * f.minutes[len(f.minutes)-2].full.Events / int64(f.opts.TicksPerMinute)
		s.EventsPerSec = math.Round(s.EventsPerSec*max(0, 1-stalled/60)*10) / 10
	}
	p95, _ := latest.LatencyP95()
	s.E2ELatencyP95 = math.Round((p95+35+10*r.NormFloat64())*10) / 10
	return s
}

// ---- the answers, read from the handler ----

// get answers GET path from the handler into v, refusing fields v lacks, so
// that a field the API gained or lost shows; false on any status but 200.
func (f *Fake) get(path string, v any) bool {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	if f.opts.Token != "" {
		req.Header.Set("Authorization", "Bearer "+f.opts.Token)
	}
	w := httptest.NewRecorder()
	f.ServeHTTP(w, req)
	if w.Code != http.StatusOK {
		return false
	}
	dec := json.NewDecoder(strings.NewReader(w.Body.String()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		panic(fmt.Sprintf("dashboardtest: GET %s: %v", path, err))
	}
	return true
}

// Latest is /kpis/latest: the newest KPI record, false before any data.
func (f *Fake) Latest() (KPI, bool) {
	var k KPI
	return k, f.get("/kpis/latest", &k)
}

// KPIs is /kpis?minutes_back=N: the records, oldest first.
func (f *Fake) KPIs(minutesBack int) []KPI {
	var r struct {
		MinutesBack int   `json:"minutes_back"`
		KPIs        []KPI `json:"kpis"`
	}
	f.get(fmt.Sprint("/kpis?minutes_back=", minutesBack), &r)
	return r.KPIs
}

// Funnel is /funnel?minutes_back=N, false before any data.
func (f *Fake) Funnel(minutesBack int) (Funnel, bool) {
	var fu Funnel
	return fu, f.get(fmt.Sprint("/funnel?minutes_back=", minutesBack), &fu)
}

// TopProducts is /top-products?minutes_back=N.
func (f *Fake) TopProducts(minutesBack int) []TopProduct {
	var r struct {
		MinutesBack int          `json:"minutes_back"`
		TopProducts []TopProduct `json:"top_products"`
	}
	f.get(fmt.Sprint("/top-products?minutes_back=", minutesBack), &r)
	return r.TopProducts
}

// anomalies is the answer of /anomalies.
type anomalies struct {
	MinutesBack int       `json:"minutes_back"`
	Anomalies   []Anomaly `json:"anomalies"`
	ScoredUntil string    `json:"scored_until"`
	MinPoints   int       `json:"min_points"`
}

// Anomalies is /anomalies?minutes_back=N, by minute.
func (f *Fake) Anomalies(minutesBack int) []Anomaly {
	var r anomalies
	f.get(fmt.Sprint("/anomalies?minutes_back=", minutesBack), &r)
	return r.Anomalies
}

// ScoredUntil is /anomalies' scored_until: the start of the open minute,
// the first not final.
func (f *Fake) ScoredUntil() string {
	var r anomalies
	f.get("/anomalies", &r)
	return r.ScoredUntil
}

// SessionsSummary is /sessions/summary?minutes_back=N. The range ends with
// the open minute, whose sessions no partition has closed yet, so it is
// never final.
func (f *Fake) SessionsSummary(minutesBack int) SessionsSummary {
	var s SessionsSummary
	f.get(fmt.Sprint("/sessions/summary?minutes_back=", minutesBack), &s)
	return s
}
