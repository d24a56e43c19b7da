package kpi_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clickstreamkit/clickstream"
	"github.com/clickstreamkit/clickstream/kpi"
)

func purchase(product string, price float64, cur string) *clickstream.Event {
	return &clickstream.Event{EventType: "purchase", ProductID: product,
		Price: price, HasPrice: true, Currency: cur}
}

// SEMANTICS §6: revenue in the base currency plus converted purchases;
// revenue_by_currency counts all.
func TestRevenueWithNonBaseCurrency(t *testing.T) {
	tests := []struct {
		name         string
		rates        map[string]float64
		revenue      float64
		revPurchases int64
		aov          float64
	}{
		{"§6 no rates: other currencies stay out of revenue", nil, 30, 2, 15},
		{"§6 a rate converts", map[string]float64{"USD": 0.5}, 80, 3, 80.0 / 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			money := clickstream.Currencies{Base: "EUR", Rates: tt.rates}
			p := kpi.NewPartial(money)
			p.Reset(0, 60_000)
			users := kpi.NewUsers()
			for _, e := range []*clickstream.Event{purchase("a", 10, "EUR"), purchase("a", 20, "EUR"), purchase("b", 100, "USD")} {
				e.UserID = "u-" + e.ProductID // two users: two sessions
				p.Add(kpi.Obs{Event: e, Users: users})
			}
			m := p.Minute(true)
			assert.Equal(t, tt.revenue, m.Revenue)
			assert.Equal(t, tt.revPurchases, m.RevenuePurchases)
			assert.Equal(t, int64(3), m.Purchases)
			assert.Equal(t, map[string]float64{"EUR": 30, "USD": 100}, m.RevenueByCurrency)
			assert.InDelta(t, tt.aov, m.AOV(), 1e-12)
			assert.Equal(t, 1.5, m.ConversionRate())
		})
	}
}

// The seed's example: 310 purchases / 1820 sessions; 9123.40 / 310.
func TestSeedExampleRates(t *testing.T) {
	m := kpi.Minute{Counts: kpi.Counts{Purchases: 310, Sessions: 1820, Revenue: 9123.40, RevenuePurchases: 310}}
	assert.Equal(t, 0.1703, math.Round(m.ConversionRate()*1e4)/1e4)
	assert.Equal(t, 29.43, math.Round(m.AOV()*100)/100)
	// §6: 0 when the divisor is 0
	var empty kpi.Minute
	assert.Equal(t, 0.0, empty.ConversionRate())
	assert.Equal(t, 0.0, empty.AOV())
}

func TestTopProductsOrderAndMerge(t *testing.T) {
	money := clickstream.Currencies{Base: "EUR"}
	p := kpi.NewPartial(money)
	p.Reset(0, 60_000)
	view := func(id string) *clickstream.Event {
		return &clickstream.Event{EventType: "page_view", ProductID: id}
	}
	for i := range 12 {
		p.Add(kpi.Obs{Event: view(fmt.Sprintf("p%02d", i))})
	}
	p.Add(kpi.Obs{Event: view("p11")})
	p.Add(kpi.Obs{Event: purchase("p05", 1, "EUR")})
	p.Add(kpi.Obs{Event: &clickstream.Event{EventType: "search", ProductID: "p00"}}) // other types do not count
	m := p.Minute(true)
	require.Len(t, m.TopProducts, kpi.TopN)
	var ids []string
	for _, pr := range m.TopProducts {
		ids = append(ids, pr.ProductID)
	}
	// §6: purchases desc, views desc, product_id asc
	assert.Equal(t, []string{"p05", "p11", "p00", "p01", "p02", "p03", "p04", "p06", "p07", "p08"}, ids)

	other := kpi.Minute{Minute: 0, Final: true, Counts: kpi.Counts{Events: 2, Sessions: 1, Purchases: 1},
		RevenueByCurrency: map[string]float64{"USD": 5}, TopProducts: []kpi.Product{{ProductID: "p09", Views: 3}}}
	merged := kpi.Merge(m, other)
	assert.Equal(t, m.Events+2, merged.Events)
	assert.Equal(t, map[string]float64{"EUR": 1, "USD": 5}, merged.RevenueByCurrency)
	assert.Equal(t, "p09", merged.TopProducts[1].ProductID, "merged lists re-rank: p09 has 4 views")
	assert.True(t, merged.Final)
}

func TestSketchRelativeError(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var s, a, b kpi.Sketch
	var vals []float64
	for i := range 20_000 {
		v := math.Exp(r.Float64() * 12) // 1 ms .. 160 s
		vals = append(vals, v)
		s.Add(v)
		if i%2 == 0 {
			a.Add(v)
		} else {
			b.Add(v)
		}
	}
	slices.Sort(vals)
	for _, q := range []float64{0.5, 0.95, 0.99} {
		exact := vals[int(q*float64(len(vals)-1))]
		assert.InEpsilon(t, exact, s.Quantile(q), 0.01, "q=%v", q)
	}
	a.Merge(&b)
	assert.Equal(t, s.Quantile(0.95), a.Quantile(0.95), "merging gives the sketch of the union")
	back := kpi.SketchOf(s.Bins())
	assert.Equal(t, s.Quantile(0.95), back.Quantile(0.95))
}

func minutes(rates ...float64) []kpi.Minute {
	var out []kpi.Minute
	for i, r := range rates {
		m := kpi.Minute{Minute: int64(i) * 60_000}
		if !math.IsNaN(r) {
			m.Sessions = 1000
			m.Purchases = int64(math.Round(r * 1000))
		}
		out = append(out, m)
	}
	return out
}

// SEMANTICS §8, rule by rule.
func TestAnomalyBaseline(t *testing.T) {
	nan := math.NaN()
	tests := []struct {
		name   string
		series []float64 // NaN: a minute without sessions
		want   []string  // "minute:direction"
	}{
		{"§8 fewer than 10 points: not scored", []float64{.1, .2, .1, .2, .1, .2, .1, .2, .1, .9}, nil},
		{"§8 ten points suffice", []float64{.1, .2, .1, .2, .1, .2, .1, .2, .1, .2, .9}, []string{"10:spike"}},
		{"§8 a drop", []float64{.1, .2, .1, .2, .1, .2, .1, .2, .1, .2, 0}, []string{"10:drop"}},
		{"§8 zero deviation: not scored", []float64{.1, .1, .1, .1, .1, .1, .1, .1, .1, .1, .9}, nil},
		{"§8 minutes without sessions are skipped", []float64{.1, .2, .1, nan, .2, .1, .2, .1, .2, .1, nan, .2, .9}, []string{"12:spike"}},
		{"§8 minutes without sessions do not count towards 10", []float64{.1, .2, .1, .2, nan, .1, .2, .1, .2, nan, .9}, nil},
		{"§8 |z| >= 3 exactly", []float64{0, .2, 0, .2, 0, .2, 0, .2, 0, .2, .4}, []string{"10:spike"}},
		{"§8 the baseline is the previous 30 minutes", append(append(slices.Repeat([]float64{.5}, 20), slices.Repeat([]float64{.1, .2}, 15)...), .5), []string{"21:drop", "22:drop", "50:spike"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := kpi.NewDetector(kpi.DefaultAnomalyWindow, kpi.DefaultAnomalyMinPoints, kpi.DefaultAnomalyZ)
			require.NoError(t, err)
			var got []string
			for _, m := range minutes(tt.series...) {
				if a, ok := d.Observe(&m); ok {
					got = append(got, fmt.Sprintf("%d:%s", a.Minute/60_000, a.Direction))
				}
			}
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestAnomalyRecord(t *testing.T) {
	d, err := kpi.NewDetector(30, 10, 3)
	require.NoError(t, err)
	var a kpi.Anomaly
	found := false
	for _, m := range minutes(.1, .2, .1, .2, .1, .2, .1, .2, .1, .2, .6) {
		a, found = d.Observe(&m)
	}
	require.True(t, found)
	assert.Equal(t, "conversion_rate", a.Metric)
	assert.InDelta(t, .6, a.Value, 1e-12)
	assert.InDelta(t, .15, a.Mean, 1e-12)
	assert.InDelta(t, .05, a.Std, 1e-12)
	assert.InDelta(t, 9, a.Z, 1e-9)
	restored, _ := kpi.NewDetector(30, 10, 3)
	restored.SetBaseline(d.Baseline())
	assert.Equal(t, d.Baseline(), restored.Baseline())
}

func ExampleMerge() {
	a := kpi.Minute{Counts: kpi.Counts{Events: 10, Sessions: 4, Purchases: 1, Revenue: 20, RevenuePurchases: 1}}
	b := kpi.Minute{Counts: kpi.Counts{Events: 6, Sessions: 1, Purchases: 1, Revenue: 10, RevenuePurchases: 1}}
	m := kpi.Merge(a, b)
	fmt.Println(m.Events, m.Sessions, m.ConversionRate(), m.AOV())
	// Output:
	// 16 5 0.4 15
}

// The sketch has no upper bound: a replay of data 627 days old reports that
// latency (the dense sketch clamped it at 1e9 ms, 11.6 days), and spans that
// do not overlap merge.
func TestSketchUnbounded(t *testing.T) {
	const days627 = 627 * 24 * 3600 * 1000.0
	var old, recent kpi.Sketch
	for i := range 100 {
		old.Add(days627 + float64(i)*1000)
		recent.Add(float64(1 + i))
	}
	assert.InEpsilon(t, days627, old.Quantile(0.95), 0.01)
	recent.Merge(&old) // old's span lies far above recent's
	assert.InEpsilon(t, days627, recent.Quantile(0.95), 0.01)
	assert.InEpsilon(t, 50.0, recent.Quantile(0.25), 0.02)
	old.Merge(&recent) // and recent's below old's
	assert.Equal(t, uint64(300), old.Count())
	assert.InEpsilon(t, 1.0, old.Quantile(0), 0.01)

	back := kpi.SketchOf(recent.Bins())
	assert.Equal(t, recent.Quantile(0.95), back.Quantile(0.95), "bins above the old range survive")
	assert.Equal(t, recent.Bins(), back.Bins())

	var edge kpi.Sketch
	for _, v := range []float64{math.NaN(), -5, 0, 1e-4, math.Inf(1), math.MaxFloat64} {
		edge.Add(v)
	}
	assert.Equal(t, uint64(6), edge.Count())
	assert.Equal(t, 0.0, edge.Quantile(0.5), "NaN, negative and tiny values count as 0")
	assert.InEpsilon(t, math.MaxFloat64, edge.Quantile(1), 0.02, "+Inf counts as the largest value")
}

// A window's record does not change when the window goes on.
func TestMinuteLatencyIsACopy(t *testing.T) {
	money := clickstream.Currencies{Base: "EUR"}
	p := kpi.NewPartial(money)
	p.Reset(0, 60_000)
	e := &clickstream.Event{EventType: "search"}
	p.Add(kpi.Obs{Event: e, LatencyMs: 10})
	m := p.Minute(false)
	for range 50 {
		p.Add(kpi.Obs{Event: e, LatencyMs: 5000})
	}
	assert.Equal(t, uint64(1), m.Latency.Count())
	assert.InEpsilon(t, 10.0, m.Latency.Quantile(1), 0.01)
	p.Reset(60_000, 120_000)
	next := p.Minute(false)
	assert.Equal(t, uint64(0), next.Latency.Count())
}

// BenchmarkSketchAdd adds latencies from 1 ms to 3 min.
func BenchmarkSketchAdd(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	vals := make([]float64, 4096)
	for i := range vals {
		vals[i] = math.Exp(r.Float64() * 12)
	}
	var s kpi.Sketch
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		s.Add(vals[i%len(vals)])
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "values/s")
	b.ReportMetric(float64(len(s.Bins())), "bins")
}
