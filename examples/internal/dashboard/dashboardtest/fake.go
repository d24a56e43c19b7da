// Package dashboardtest is a fake of the read API of examples/fullpipeline
// (docs/API.md) with plausible, changing data, serving the dashboard page of
// package dashboard beside it, so that the page can be developed and tested
// without the real pipeline:
//
//	srv := dashboardtest.NewFakeAPI(t) // an *httptest.Server, closed by t.Cleanup
//	// open srv.URL + "/" in a browser
//
// The data follow docs/API.md and SEMANTICS §6-§8: a virtual clock advances
// one step per [Options.Tick]; every [Options.TicksPerMinute] steps the open
// minute (final: false, its running values growing) closes (final: true) and a
// new one opens. History is generated on start, so the 30-minute series, the
// funnel and the anomaly list (computed by the §8 rule, with a few injected
// conversion drops and spikes) are full at once. Everything is deterministic
// for a given [Options.Seed] and number of steps; [Fake.Pause] freezes the
// data (the event stream keeps repeating it), so that a test can compare what
// the page shows with [Fake.Latest] and friends.
//
// For manual work on the page: go run ./internal/dashboard/dashboardtest/cmd/fakedashboard
package dashboardtest

import (
	"cmp"
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

	"github.com/clickstreamkit/clickstream/examples/internal/dashboard"
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

// Fake is the fake read API. It is an [http.Handler]; its clock runs from
// [NewFake] until [Fake.Stop].
type Fake struct {
	opts    Options
	handler http.Handler

	mu        sync.Mutex
	started   bool
	paused    bool
	minutes   []*minute     // oldest first; the last one is open (final false)
	step      int           // steps into the open minute: 0..TicksPerMinute-1
	ticks     int64         // steps taken while running, for uptime and jitter
	stalled   int64         // steps taken since Stall, -1 when reading
	ahead     time.Duration // how far event times run ahead of the server's clock
	anomalies []Anomaly     // of final minutes, by minute
	subs      map[chan struct{}]struct{}

	done     chan struct{}
	stopOnce sync.Once
}

// minute is one generated minute: its values once full, and what of them the
// open minute shows so far.
type minute struct {
	t        time.Time
	idx      int
	full     KPI          // values of the complete minute (Final set when closed)
	products []TopProduct // all products of the complete minute
	funnel   FunnelRecord
	final    bool
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
	f := &Fake{opts: o, paused: o.Paused, stalled: -1, subs: map[chan struct{}]struct{}{}, done: make(chan struct{})}
	f.handler = f.routes()
	if !o.Empty {
		f.begin()
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

// ServeHTTP serves the API of docs/API.md and, on / and /static/, the dashboard.
func (f *Fake) ServeHTTP(w http.ResponseWriter, r *http.Request) { f.handler.ServeHTTP(w, r) }

// Stop stops the clock and ends the open event streams. Idempotent.
func (f *Fake) Stop() {
	f.stopOnce.Do(func() {
		close(f.done)
	})
}

// Begin makes data appear on a fake started with [Options.Empty].
func (f *Fake) Begin() {
	f.mu.Lock()
	f.beginLocked()
	f.mu.Unlock()
	f.broadcast()
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
	f.broadcast()
}

// Recover ends a [Fake.Stall]: the pipeline reads again.
func (f *Fake) Recover() {
	f.mu.Lock()
	f.stalled = -1
	f.mu.Unlock()
	f.broadcast()
}

// SetAhead makes event times run d ahead of the server's clock: /stats's now
// is moved back by d, so that the newest minutes may start after it.
func (f *Fake) SetAhead(d time.Duration) {
	f.mu.Lock()
	f.ahead = d
	f.mu.Unlock()
	f.broadcast()
}

// stepDuration is the virtual time of one step.
func (f *Fake) stepDuration() time.Duration {
	return time.Minute / time.Duration(f.opts.TicksPerMinute)
}

// Step advances the clock by one step, paused or not, and pushes the new
// values to /events.
func (f *Fake) Step() {
	f.mu.Lock()
	if f.started {
		f.advanceLocked()
	}
	f.mu.Unlock()
	f.broadcast()
}

func (f *Fake) begin() { f.mu.Lock(); f.beginLocked(); f.mu.Unlock() }

func (f *Fake) beginLocked() {
	if f.started {
		return
	}
	f.started = true
	open := f.opts.Now.UTC().Truncate(time.Minute)
	n := f.opts.HistoryMinutes
	for i := 0; i <= n; i++ {
		m := f.generate(i, open.Add(time.Duration(i-n)*time.Minute))
		f.minutes = append(f.minutes, m)
		if i < n {
			f.closeLocked(m)
		}
	}
}

func (f *Fake) run() {
	t := time.NewTicker(f.opts.Tick)
	defer t.Stop()
	for {
		select {
		case <-f.done:
			return
		case <-t.C:
		}
		f.mu.Lock()
		if f.started && !f.paused {
			f.advanceLocked()
		}
		f.mu.Unlock()
		f.broadcast()
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
	f.closeLocked(last)
	f.minutes = append(f.minutes, f.generate(last.idx+1, last.t.Add(time.Minute)))
	if len(f.minutes) > 1500 { // more than minutes_back can ask for
		f.minutes = slices.Delete(f.minutes, 0, len(f.minutes)-1500)
		oldest := f.minutes[0].full.Minute
		f.anomalies = slices.DeleteFunc(f.anomalies, func(a Anomaly) bool { return a.Minute < oldest })
	}
}

// closeLocked makes m final and scores it for anomalies (SEMANTICS §8:
// conversion_rate against the previous 30 final minutes with sessions > 0,
// at least 10 of them, std > 0, |z| >= 3).
func (f *Fake) closeLocked(m *minute) {
	m.final = true
	m.full.Final = true
	if m.full.Sessions == 0 {
		return
	}
	var base []float64
	for i := len(f.minutes) - 1; i >= 0 && len(base) < 30; i-- {
		p := f.minutes[i]
		if p == m || !p.final || p.t.After(m.t) || p.full.Sessions == 0 {
			continue
		}
		base = append(base, p.full.ConversionRate)
	}
	if len(base) < 10 {
		return
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
	if std == 0 {
		return
	}
	z := (m.full.ConversionRate - mean) / std
	if math.Abs(z) < 3 {
		return
	}
	dir := "spike"
	if z < 0 {
		dir = "drop"
	}
	f.anomalies = append(f.anomalies, Anomaly{
		Minute: m.full.Minute, Metric: "conversion_rate", Value: m.full.ConversionRate,
		Mean: mean, Std: std, Z: z, Direction: dir,
	})
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

	products := make([]TopProduct, catalogSize)
	views := float64(pageViews) * 0.55
	var wsum float64
	for k := 1; k <= catalogSize; k++ {
		wsum += 1 / math.Pow(float64(k), 0.9)
	}
	for k := 1; k <= catalogSize; k++ {
		v := math.Max(0, math.Round(views/math.Pow(float64(k), 0.9)/wsum*norm(1, 0.12)))
		c := math.Max(0, math.Round(v*norm(0.14, 0.02)))
		p := math.Max(0, math.Min(c, math.Round(c*norm(0.45, 0.08))))
		products[k-1] = TopProduct{
			ProductID: "sku_" + strconv.Itoa(k), Views: int64(v), Carts: int64(c), Purchases: int64(p),
			Revenue: round2(p * price(k)),
		}
	}

	entered := int64(math.Round(float64(sessions) * norm(0.965, 0.005)))
	c2 := int64(math.Round(float64(entered) * norm(0.33, 0.015)))
	c3 := min(c2, int64(math.Round(float64(purchases)*0.93)))
	median := int64(math.Round(norm(192000, 15000)))
	fr := FunnelRecord{
		Minute: formatTime(t), Entered: entered, Steps: []int64{entered, c2, c3},
		StepRates: stepRates([]int64{entered, c2, c3}), OverallRate: ratio(c3, entered),
	}
	if c3 > 0 {
		fr.MedianTimeToConvertMs = &median
	}

	m := &minute{t: t, idx: idx, products: products, funnel: fr}
	m.full = KPI{
		Minute: formatTime(t), Events: pageViews + carts + purchases + other, PageViews: pageViews,
		AddToCarts: carts, Purchases: purchases, Sessions: sessions, Revenue: revenue,
		RevenuePurchases: eur, RevenueByCurrency: byCur, ConversionRate: ratio(purchases, sessions),
		AOV: 0, TopProducts: topN(products, 10), LatencyMsP95: latency, PartitionsComplete: Partitions, PartitionsTotal: Partitions,
	}
	if eur > 0 {
		m.full.AOV = revenue / float64(eur)
	}
	return m
}

func ratio(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func stepRates(c []int64) []float64 {
	r := make([]float64, len(c)-1)
	for i := range r {
		r[i] = ratio(c[i+1], c[i])
	}
	return r
}

// topN orders by purchases desc, views desc, product_id asc (SEMANTICS §6).
func topN(ps []TopProduct, n int) []TopProduct {
	out := slices.Clone(ps)
	out = slices.DeleteFunc(out, func(p TopProduct) bool { return p.Views == 0 && p.Carts == 0 && p.Purchases == 0 })
	slices.SortFunc(out, func(a, b TopProduct) int {
		if c := cmp.Compare(b.Purchases, a.Purchases); c != 0 {
			return c
		}
		if c := cmp.Compare(b.Views, a.Views); c != 0 {
			return c
		}
		return strings.Compare(a.ProductID, b.ProductID)
	})
	if len(out) > n {
		out = out[:n]
	}
	return out
}

// record is what the API shows of m now: the full values once final, a
// growing part of them while open.
func (f *Fake) recordLocked(m *minute) (KPI, []TopProduct) {
	if m.final {
		return m.full, m.products
	}
	frac := float64(f.step+1) / float64(f.opts.TicksPerMinute)
	r := rand.New(rand.NewPCG(f.opts.Seed^0x9e3779b97f4a7c15, uint64(m.idx)<<16|uint64(f.step)))
	sc := func(v int64, p float64) int64 { return int64(math.Round(float64(v) * math.Pow(frac, p))) }
	k := m.full
	k.Final = false
	k.PartitionsComplete = Partitions - 1 // one partition still has the window open
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
	k.ConversionRate = ratio(k.Purchases, k.Sessions)
	k.AOV = 0
	if k.RevenuePurchases > 0 {
		k.AOV = k.Revenue / float64(k.RevenuePurchases)
	}
	k.LatencyMsP95 = math.Round((m.full.LatencyMsP95+r.NormFloat64()*15)*10) / 10
	ps := make([]TopProduct, len(m.products))
	for i, p := range m.products {
		ps[i] = TopProduct{
			ProductID: p.ProductID, Views: sc(p.Views, 1), Carts: sc(p.Carts, 1), Purchases: sc(p.Purchases, 1),
		}
		ps[i].Revenue = round2(p.Revenue * ratio(ps[i].Purchases, p.Purchases))
	}
	k.TopProducts = topN(ps, 10)
	return k, ps
}

// ---- views, as the endpoints answer them ----

// Latest is /kpis/latest: the newest KPI record, false before any data.
func (f *Fake) Latest() (KPI, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.minutes) == 0 {
		return KPI{}, false
	}
	k, _ := f.recordLocked(f.minutes[len(f.minutes)-1])
	return k, true
}

// lastLocked is the minutes of the range ending at the newest minute with
// data, minutesBack long.
func (f *Fake) lastLocked(minutesBack int) []*minute {
	return f.minutes[max(0, len(f.minutes)-minutesBack):]
}

// KPIs is /kpis?minutes_back=N: the records, oldest first.
func (f *Fake) KPIs(minutesBack int) []KPI {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []KPI{}
	for _, m := range f.lastLocked(minutesBack) {
		k, _ := f.recordLocked(m)
		out = append(out, k)
	}
	return out
}

// Funnel is /funnel?minutes_back=N over the last minutes: final ones, and
// the open one with running values (the sessions seen so far, SEMANTICS §7),
// false before any.
func (f *Fake) Funnel(minutesBack int) (Funnel, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	last := f.lastLocked(minutesBack)
	if len(last) == 0 {
		return Funnel{}, false
	}
	out := Funnel{MinutesBack: minutesBack, Steps: FunnelSteps, Counts: make([]int64, len(FunnelSteps)), Minutes: []FunnelRecord{}, Final: true}
	var medians []int64
	for _, m := range last {
		fr := m.funnel
		fr.Final = m.final
		fr.PartitionsComplete, fr.PartitionsTotal = Partitions, Partitions
		if !m.final { // the sessions seen so far
			fr.PartitionsComplete = Partitions - 1
			frac := float64(f.step+1) / float64(f.opts.TicksPerMinute)
			fr.Steps = make([]int64, len(m.funnel.Steps))
			for i, c := range m.funnel.Steps {
				fr.Steps[i] = int64(math.Round(float64(c) * frac))
			}
			fr.Entered, fr.StepRates, fr.OverallRate = fr.Steps[0], stepRates(fr.Steps), ratio(fr.Steps[len(fr.Steps)-1], fr.Steps[0])
			out.Final = false
			out.ProvisionalMinutes++
		}
		out.Minutes = append(out.Minutes, fr)
		out.Entered += fr.Entered
		for i, c := range fr.Steps {
			out.Counts[i] += c
		}
		if fr.MedianTimeToConvertMs != nil {
			medians = append(medians, *fr.MedianTimeToConvertMs)
		}
	}
	out.StepRates = stepRates(out.Counts)
	out.OverallRate = ratio(out.Counts[len(out.Counts)-1], out.Counts[0])
	// by utm.source: fixed shares of the totals, the rest without a source
	out.Breakdown = Breakdown{Dimension: "utm.source", Top: 5}
	left := slices.Clone(out.Counts)
	for _, v := range []struct {
		value string
		share float64
	}{{"google", 0.5}, {"newsletter", 0.2}, {"(none)", 1}} {
		c := make([]int64, len(left))
		for i := range c {
			c[i] = min(left[i], int64(math.Round(float64(out.Counts[i])*v.share)))
			left[i] -= c[i]
		}
		out.Breakdown.Values = append(out.Breakdown.Values, BreakdownValue{Value: v.value, Entered: c[0], Counts: c,
			StepRates: stepRates(c), OverallRate: ratio(c[len(c)-1], c[0])})
	}
	if len(medians) > 0 { // the lower median of the minutes' medians: close enough for a fake
		slices.Sort(medians)
		med := medians[(len(medians)-1)/2]
		out.MedianTimeToConvertMs = &med
	}
	return out, true
}

// TopProducts is /top-products?minutes_back=N: merged over the minutes, top 10.
func (f *Fake) TopProducts(minutesBack int) []TopProduct {
	f.mu.Lock()
	defer f.mu.Unlock()
	sum := map[string]*TopProduct{}
	for _, m := range f.lastLocked(minutesBack) {
		_, ps := f.recordLocked(m)
		for _, p := range ps {
			s := sum[p.ProductID]
			if s == nil {
				s = &TopProduct{ProductID: p.ProductID}
				sum[p.ProductID] = s
			}
			s.Views += p.Views
			s.Carts += p.Carts
			s.Purchases += p.Purchases
			s.Revenue = round2(s.Revenue + p.Revenue)
		}
	}
	all := make([]TopProduct, 0, len(sum))
	for _, s := range sum {
		all = append(all, *s)
	}
	return topN(all, 10)
}

// ScoredUntil is /anomalies' scored_until: the start of the open minute,
// the first not final.
func (f *Fake) ScoredUntil() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, m := range f.minutes {
		if !m.final {
			return formatTime(m.t)
		}
	}
	return formatTime(f.minutes[len(f.minutes)-1].t.Add(time.Minute))
}

// Anomalies is /anomalies?minutes_back=N, by minute.
func (f *Fake) Anomalies(minutesBack int) []Anomaly {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []Anomaly{}
	if len(f.minutes) == 0 {
		return out
	}
	from := formatTime(f.minutes[len(f.minutes)-1].t.Add(-time.Duration(minutesBack-1) * time.Minute))
	for _, a := range f.anomalies {
		if a.Minute >= from { // same layout and zone: strings order as times
			out = append(out, a)
		}
	}
	return out
}

// Partitions is the fake topic's partition count.
const Partitions = 4

// SessionsSummary is /sessions/summary?minutes_back=N (plausible numbers over
// the final minutes of the range). The range ends with the open minute, whose
// sessions no partition has closed yet, so it is never final.
func (f *Fake) SessionsSummary(minutesBack int) SessionsSummary {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := SessionsSummary{MinutesBack: minutesBack, Final: true, PartitionsComplete: Partitions, PartitionsTotal: Partitions}
	for _, m := range f.lastLocked(minutesBack) {
		if !m.final {
			s.Final, s.PartitionsComplete = false, 0
			continue
		}
		started := m.full.Sessions * 45 / 100 // sessions active in a minute also started earlier
		s.Sessions += started
		s.Bounced += started * 37 / 100
		s.Converted += min(started, m.full.Purchases*9/10)
		s.Revenue = round2(s.Revenue + m.full.Revenue*0.9)
	}
	if s.Sessions > 0 {
		s.BounceRate = ratio(s.Bounced, s.Sessions)
		s.AvgDurationMs = 264500
	}
	return s
}

// Stats is /stats.
func (f *Fake) Stats() Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	// The server's clock runs a step's virtual time per step from Options.Now,
	// stalled or not.
	now := f.opts.Now.Add(time.Duration(f.ticks)*f.stepDuration() - f.ahead)
	s := Stats{Now: formatTime(now), UptimeS: math.Round(float64(f.ticks)*f.opts.Tick.Seconds()*10) / 10}
	if len(f.minutes) == 0 {
		return s
	}
	for _, m := range f.minutes {
		k, _ := f.recordLocked(m)
		s.Accepted += k.Events
	}
	s.Invalid = s.Accepted * 4 / 1000
	s.Late = s.Accepted / 1000
	s.Duplicates = s.Accepted * 2 / 1000
	s.Read = s.Accepted + s.Invalid + s.Late + s.Duplicates
	s.DeadLetters = s.Invalid + s.Late
	r := rand.New(rand.NewPCG(f.opts.Seed, uint64(f.ticks)|1<<40))
	latest, _ := f.recordLocked(f.minutes[len(f.minutes)-1])
	if len(f.minutes) > 1 {
		prev := f.minutes[len(f.minutes)-2]
		s.EventsPerSec = math.Round(float64(prev.full.Events)/60*(1+0.03*r.NormFloat64())*10) / 10
		lf := prev.full.Minute
		s.LastFinalMinute = &lf
	}
	s.Lag = int64(40 + r.IntN(160))
	if f.stalled > 0 && len(f.minutes) > 1 { // nothing read: the lag grows and the minute's average falls
		stalled := (time.Duration(f.stalled) * f.stepDuration()).Seconds()
		s.StalledS = math.Round(stalled*10) / 10
		s.Lag += f.stalled * f.minutes[len(f.minutes)-2].full.Events / int64(f.opts.TicksPerMinute)
		s.EventsPerSec = math.Round(s.EventsPerSec*max(0, 1-stalled/60)*10) / 10
	}
	s.E2ELatencyMsP95 = math.Round((latest.LatencyMsP95+35+10*r.NormFloat64())*10) / 10
	return s
}

// ---- HTTP ----

func (f *Fake) routes() http.Handler {
	mux := http.NewServeMux()
	dash := dashboard.Handler()
	mux.Handle("/{$}", dash)
	mux.Handle("/static/", dash)
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("/kpis/latest", func(w http.ResponseWriter, r *http.Request) {
		k, ok := f.Latest()
		if !ok {
			noData(w)
			return
		}
		writeJSON(w, http.StatusOK, k)
	})
	mux.HandleFunc("/kpis", f.windowed(30, func(n int) any {
		return struct {
			MinutesBack int   `json:"minutes_back"`
			KPIs        []KPI `json:"kpis"`
		}{n, f.KPIs(n)}
	}))
	mux.HandleFunc("/funnel", func(w http.ResponseWriter, r *http.Request) {
		n, ok := minutesBack(w, r, 5)
		if !ok {
			return
		}
		fu, ok := f.Funnel(n)
		if !ok {
			noData(w)
			return
		}
		writeJSON(w, http.StatusOK, fu)
	})
	mux.HandleFunc("/top-products", f.windowed(5, func(n int) any {
		return struct {
			MinutesBack int          `json:"minutes_back"`
			TopProducts []TopProduct `json:"top_products"`
		}{n, f.TopProducts(n)}
	}))
	mux.HandleFunc("/anomalies", f.windowed(60, func(n int) any {
		return struct {
			MinutesBack int       `json:"minutes_back"`
			Anomalies   []Anomaly `json:"anomalies"`
			ScoredUntil string    `json:"scored_until"`
			MinPoints   int       `json:"min_points"`
		}{n, f.Anomalies(n), f.ScoredUntil(), 10}
	}))
	mux.HandleFunc("/sessions/summary", f.windowed(30, func(n int) any { return f.SessionsSummary(n) }))
	mux.HandleFunc("/stats", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, f.Stats()) })
	mux.HandleFunc("/metrics", f.serveMetrics)
	mux.HandleFunc("/events", f.serveEvents)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "not found"})
	})

	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "method not allowed"})
			return
		}
		p := r.URL.Path
		public := p == "/health" || p == "/" || strings.HasPrefix(p, "/static/")
		if f.opts.Token != "" && !public && r.Header.Get("Authorization") != "Bearer "+f.opts.Token {
			w.Header().Set("WWW-Authenticate", `Bearer realm="clickstream"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "unauthorized"})
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// windowed serves a minutes_back endpoint; 404 "no data yet" before data.
func (f *Fake) windowed(def int, body func(n int) any) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		n, ok := minutesBack(w, r, def)
		if !ok {
			return
		}
		if !f.hasData() {
			noData(w)
			return
		}
		writeJSON(w, http.StatusOK, body(n))
	}
}

func (f *Fake) hasData() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.minutes) > 0
}

func minutesBack(w http.ResponseWriter, r *http.Request, def int) (int, bool) {
	s := r.URL.Query().Get("minutes_back")
	if s == "" {
		return def, true
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 1440 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "minutes_back must be an integer in 1..1440"})
		return 0, false
	}
	return n, true
}

func noData(w http.ResponseWriter) {
	writeJSON(w, http.StatusNotFound, map[string]string{"error": "no data yet"})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

func (f *Fake) serveMetrics(w http.ResponseWriter, r *http.Request) {
	s := f.Stats()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	for _, m := range []struct {
		name, kind string
		v          float64
	}{
		{"clickstream_events_read_total", "counter", float64(s.Read)},
		{"clickstream_events_accepted_total", "counter", float64(s.Accepted)},
		{"clickstream_events_invalid_total", "counter", float64(s.Invalid)},
		{"clickstream_events_late_total", "counter", float64(s.Late)},
		{"clickstream_events_duplicate_total", "counter", float64(s.Duplicates)},
		{"clickstream_dead_letters_total", "counter", float64(s.DeadLetters)},
		{"clickstream_consumer_lag", "gauge", float64(s.Lag)},
		{"clickstream_e2e_latency_ms_p95", "gauge", s.E2ELatencyMsP95},
	} {
		fmt.Fprintf(w, "# TYPE %s %s\n%s %v\n", m.name, m.kind, m.name, m.v)
	}
}

func (f *Fake) subscribe() chan struct{} {
	ch := make(chan struct{}, 1)
	f.mu.Lock()
	f.subs[ch] = struct{}{}
	f.mu.Unlock()
	return ch
}

func (f *Fake) unsubscribe(ch chan struct{}) {
	f.mu.Lock()
	delete(f.subs, ch)
	f.mu.Unlock()
}

func (f *Fake) broadcast() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for ch := range f.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// serveEvents is /events: "event: kpis" (the /kpis/latest record, once there
// is data) and "event: stats" at once and then on every tick.
func (f *Fake) serveEvents(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "streaming unsupported"})
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	ch := f.subscribe()
	defer f.unsubscribe(ch)
	fmt.Fprint(w, "retry: 1000\n\n")
	for {
		if k, ok := f.Latest(); ok {
			if err := writeEvent(w, "kpis", k); err != nil {
				return
			}
		}
		if err := writeEvent(w, "stats", f.Stats()); err != nil {
			return
		}
		fl.Flush()
		select {
		case <-r.Context().Done():
			return
		case <-f.done:
			return
		case <-ch:
		}
	}
}

func writeEvent(w http.ResponseWriter, name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "event: %s\ndata: %s\n\n", name, b)
	return err
}
