package pipeline_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clickstreamkit/clickstream/internal/gen"
	"github.com/clickstreamkit/clickstream/kpi"
	"github.com/clickstreamkit/clickstream/pipeline"
	"github.com/clickstreamkit/clickstream/sinks"
	"github.com/clickstreamkit/clickstream/sources"
)

var processingTime = time.Date(2025, 3, 15, 0, 0, 0, 0, time.UTC)

// randomCase makes a random stream and config: duplicates, late, out of
// order and invalid messages, and, with short gaps, sessions that bridge.
func randomCase(seed uint64) (pipeline.Config, [][]byte) {
	r := rand.New(rand.NewPCG(seed, 7))
	cfg := pipeline.DefaultConfig()
	cfg.Clock = func() time.Time { return processingTime }
	if r.IntN(2) == 0 {
		cfg.SessionGap, cfg.WatermarkDelay = 2*time.Minute, time.Duration(1+r.IntN(5))*time.Minute
	}
	if r.IntN(2) == 0 {
		cfg.Currencies.Rates = map[string]float64{"USD": 0.92}
	}
	if r.IntN(3) == 0 {
		cfg.FunnelSteps = []string{"page_view", "page_view", "purchase"}
	}
	g := gen.Default(200+r.IntN(3000), seed)
	g.Users = 5 + r.IntN(60)
	g.Rate = float64(1 + r.IntN(20))
	g.Duplicate, g.Late, g.Invalid = r.Float64()*0.1, r.Float64()*0.05, r.Float64()*0.05
	g.Disorder = time.Duration(r.IntN(5*60)) * time.Second
	g.LateBy = cfg.WatermarkDelay + time.Minute
	msgs := gen.Generate(g)
	values := make([][]byte, len(msgs))
	for i, m := range msgs {
		values[i] = m.Value
	}
	return cfg, values
}

// run feeds values through a processor in random batches, writing each batch
// to a memory sink; with cut >= 0 it snapshots at that offset and continues
// in a restored processor.
func run(t testing.TB, cfg pipeline.Config, values [][]byte, r *rand.Rand, cut int) sinks.Output {
	p, err := pipeline.NewProcessor(cfg, "t", 0)
	require.NoError(t, err)
	var sink sinks.Memory
	flush := func() {
		require.NoError(t, sink.Write(context.Background(), p.Batch()))
		p.Reset()
	}
	for i := 0; i < len(values); {
		n := 1 + r.IntN(64)
		if cut > i && cut < i+n {
			n = cut - i
		}
		msgs := make([]sources.Message, 0, n)
		for j := i; j < min(i+n, len(values)); j++ {
			msgs = append(msgs, sources.Message{Topic: "t", Offset: int64(j), Value: values[j]})
		}
		p.Process(msgs, processingTime)
		i += n
		if r.IntN(4) == 0 {
			p.Updates()
		}
		flush()
		if i == cut {
			cp, err := p.Checkpoint()
			require.NoError(t, err)
			p, err = pipeline.NewProcessor(cfg, "t", 0)
			require.NoError(t, err)
			require.NoError(t, p.Restore(cp))
		}
	}
	p.Finish()
	flush()
	return sink.Output()
}

func TestPipelineMatchesReference(t *testing.T) {
	for i := range 40 {
		seed := uint64(time.Now().UnixNano()) + uint64(i)
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			cfg, values := randomCase(seed)
			got := run(t, cfg, values, rand.New(rand.NewPCG(seed, 1)), -1)
			want := reference(cfg, values, processingTime)
			t.Logf("read %d accepted %d invalid %d late %d dup %d sessions %d windows %d funnel %d", want.read, want.accepted, want.invalid, want.late, want.duplicates, len(want.sessions), len(want.kpis), len(want.funnel))
			compare(t, want, got)
		})
	}
}

// The same stream cut at a random point, snapshotted, restored and continued
// gives the same outputs as an uninterrupted run.
func TestSnapshotRestoreContinues(t *testing.T) {
	for i := range 30 {
		seed := uint64(time.Now().UnixNano()) + uint64(i)
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			cfg, values := randomCase(seed)
			whole := run(t, cfg, values, rand.New(rand.NewPCG(seed, 1)), -1)
			cut := rand.New(rand.NewPCG(seed, 2)).IntN(len(values) + 1)
			resumed := run(t, cfg, values, rand.New(rand.NewPCG(seed, 1)), cut)
			assert.Equal(t, whole.KPIs, resumed.KPIs)
			assert.Equal(t, whole.Sessions, resumed.Sessions)
			assert.Equal(t, whole.Funnel, resumed.Funnel)
			assert.Equal(t, whole.DeadLetters, resumed.DeadLetters)
			assert.Equal(t, whole.Counters, resumed.Counters)
		})
	}
}

func compare(t *testing.T, want refOut, got sinks.Output) {
	t.Helper()
	c := got.Counters[0]
	assert.Equal(t, sinks.Counters{Read: want.read, Accepted: want.accepted, Invalid: want.invalid, Late: want.late, Duplicates: want.duplicates}, c, "§9 summary counts")

	var dead []refDead
	for _, d := range got.DeadLetters {
		dead = append(dead, refDead{d.Offset, d.Reason})
	}
	assert.Equal(t, want.dead, dead, "§1/§3 dead letters in input order")

	// §6: one final window per minute with events, values equal the batch sums
	finals := map[int64]kpi.Minute{}
	for _, m := range got.KPIs {
		_, dup := finals[m.Minute]
		assert.False(t, dup, "window %d final twice", m.Minute)
		finals[m.Minute] = m
	}
	require.Len(t, finals, len(want.kpis), "final windows")
	for minute, w := range want.kpis {
		m, ok := finals[minute]
		require.True(t, ok, "window %d missing", minute)
		assert.Equal(t, w.counts.Events, m.Events, "events %d", minute)
		assert.Equal(t, w.counts.PageViews, m.PageViews)
		assert.Equal(t, w.counts.AddToCarts, m.AddToCarts)
		assert.Equal(t, w.counts.Purchases, m.Purchases)
		assert.Equal(t, w.counts.Sessions, m.Sessions, "sessions %d", minute)
		assert.Equal(t, w.counts.RevenuePurchases, m.RevenuePurchases)
		assert.InDelta(t, w.counts.Revenue, m.Revenue, 1e-6)
		assert.Len(t, m.RevenueByCurrency, len(w.byCurrency))
		for cur, v := range w.byCurrency {
			assert.InDelta(t, v, m.RevenueByCurrency[cur], 1e-6)
		}
		var prods []kpi.Product
		for _, p := range w.products {
			prods = append(prods, *p)
		}
		top := kpi.Merge(kpi.Minute{TopProducts: prods}).TopProducts
		require.Len(t, m.TopProducts, len(top))
		for i := range top {
			assert.Equal(t, top[i].ProductID, m.TopProducts[i].ProductID)
			assert.Equal(t, [3]int64{top[i].Views, top[i].Carts, top[i].Purchases},
				[3]int64{m.TopProducts[i].Views, m.TopProducts[i].Carts, m.TopProducts[i].Purchases})
			assert.InDelta(t, top[i].Revenue, m.TopProducts[i].Revenue, 1e-6)
		}
	}
	// running updates never claim finality and never exceed the final value
	for _, u := range got.Updates {
		assert.False(t, u.Final)
		if f, ok := finals[u.Minute]; ok {
			assert.LessOrEqual(t, u.Events, f.Events)
		}
	}

	// §5: the same sessions
	require.Len(t, got.Sessions, len(want.sessions), "sessions")
	for _, s := range got.Sessions {
		w, ok := want.sessions[s.SessionID()]
		require.True(t, ok, "unexpected session %s", s.SessionID())
		assert.Equal(t, []int64{w.start, w.end, w.events, w.pv, w.atc, w.pur},
			[]int64{s.Start, s.End, s.Events, s.PageViews, s.AddToCarts, s.Purchases}, s.SessionID())
		assert.Equal(t, w.end-w.start, s.DurationMs)
		assert.InDelta(t, w.revenue, s.Revenue, 1e-6)
		assert.Equal(t, w.events == 1, s.Bounced)
		assert.Equal(t, w.pur > 0, s.Converted)
	}

	// §7: one funnel record per start minute
	require.Len(t, got.Funnel, len(want.funnel), "funnel minutes")
	for _, f := range got.Funnel {
		w, ok := want.funnel[f.Minute]
		require.True(t, ok, "unexpected funnel minute %d", f.Minute)
		assert.Equal(t, w.steps, f.Steps, "funnel %d", f.Minute)
		assert.Equal(t, w.steps[0], f.Entered)
		slices.Sort(w.times)
		if len(w.times) == 0 {
			assert.False(t, f.HasMedian)
		} else {
			assert.True(t, f.HasMedian)
			assert.Equal(t, w.times[(len(w.times)-1)/2], f.MedianTimeToConvertMs)
		}
	}
}
