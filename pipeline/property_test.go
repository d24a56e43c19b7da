package pipeline_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clickstreamkit/clickstream"
	"github.com/clickstreamkit/clickstream/checkpoint"
	"github.com/clickstreamkit/clickstream/funnel"
	"github.com/clickstreamkit/clickstream/internal/gen"
	"github.com/clickstreamkit/clickstream/kpi"
	"github.com/clickstreamkit/clickstream/pipeline"
	"github.com/clickstreamkit/clickstream/sinks"
	"github.com/clickstreamkit/clickstream/sources"
)

var processingTime = time.Date(2025, 3, 15, 0, 0, 0, 0, time.UTC)

func pick[T any](r *rand.Rand, vs ...T) T { return vs[r.IntN(len(vs))] }

// randomConfig varies every setting that changes the results: window_size,
// session_gap (>= window_size, which Validate requires), watermark_delay,
// the funnel's steps, scope and conversion_window (whole minutes or not),
// and the currency rates.
func randomConfig(r *rand.Rand) pipeline.Config {
	cfg := pipeline.DefaultConfig()
	cfg.Clock = func() time.Time { return processingTime }
	cfg.WindowSize = pick(r, 30*time.Second, time.Minute, time.Minute, 2*time.Minute, 5*time.Minute)
	gaps := []time.Duration{cfg.WindowSize}
	for _, g := range []time.Duration{90 * time.Second, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 30 * time.Minute} {
		if g > cfg.WindowSize {
			gaps = append(gaps, g)
		}
	}
	cfg.SessionGap = pick(r, gaps...)
	cfg.WatermarkDelay = pick(r, 0, 30*time.Second, time.Minute, 2*time.Minute, 5*time.Minute, 10*time.Minute)
	switch r.IntN(4) {
	case 1:
		cfg.Currencies.Rates = map[string]float64{"USD": 0.92}
	case 2:
		cfg.Currencies.Rates = map[string]float64{"USD": 0.92, "GBP": 1.17}
	case 3:
		cfg.Currencies = clickstream.Currencies{Base: "USD", Rates: map[string]float64{"EUR": 1.08}}
	}
	cfg.FunnelSteps = pick(r, funnel.DefaultSteps,
		[]string{"page_view", "page_view", "purchase"},
		[]string{"add_to_cart", "purchase"},
		[]string{"page_view", "search", "add_to_cart"},
		[]string{"purchase", "page_view"},
		[]string{"page_view"})
	cfg.FunnelBreakdown = pick(r, "", funnel.UTMSource, funnel.DeviceOS, funnel.DeviceMobile, funnel.GeoCountry)
	if r.IntN(2) == 0 {
		cfg.FunnelScope = funnel.ScopeUser
		cfg.ConversionWindow = pick(r, 90*time.Second, 150*time.Second, 5*time.Minute, 7*time.Minute+30*time.Second, 30*time.Minute)
	}
	return cfg
}

// randomGen describes a random stream for cfg from start: duplicates, late,
// out of order and invalid messages, and, with short gaps, sessions that
// bridge.
func randomGen(r *rand.Rand, cfg pipeline.Config, seed uint64, start time.Time) gen.Config {
	g := gen.Default(200+r.IntN(3000), seed)
	g.Start = start
	g.Users = 5 + r.IntN(60)
	g.Rate = float64(1 + r.IntN(20))
	g.Duplicate, g.Late, g.Invalid = r.Float64()*0.1, r.Float64()*0.05, r.Float64()*0.05
	g.Disorder = time.Duration(r.IntN(5*60)) * time.Second
	g.LateBy = cfg.WatermarkDelay + time.Minute
	return g
}

func generate(g gen.Config) [][]byte {
	msgs := gen.Generate(g)
	values := make([][]byte, len(msgs))
	for i, m := range msgs {
		values[i] = m.Value
	}
	return values
}

// randomCase makes a random config and stream.
func randomCase(seed uint64) (pipeline.Config, [][]byte) {
	r := rand.New(rand.NewPCG(seed, 7))
	cfg := randomConfig(r)
	return cfg, generate(randomGen(r, cfg, seed, gen.Default(0, 0).Start))
}

func describe(cfg pipeline.Config) string {
	scope := "session"
	if cfg.FunnelScope == funnel.ScopeUser {
		scope = fmt.Sprintf("user/%v", cfg.ConversionWindow)
	}
	return fmt.Sprintf("window %v gap %v delay %v steps %v scope %s breakdown %q base %s rates %v",
		cfg.WindowSize, cfg.SessionGap, cfg.WatermarkDelay, cfg.FunnelSteps, scope, cfg.FunnelBreakdown, cfg.Currencies.Base, cfg.Currencies.Rates)
}

// harness runs one partition as the runner does: batches written to a sink,
// checkpoints saved to a store after a durable write, and restarts that
// restore the latest checkpoint and replay the input from its offset. What
// the sink received after the latest checkpoint is dropped at a crash: the
// replay writes it again, as an idempotent sink would keep it once.
type harness struct {
	t      testing.TB
	cfg    pipeline.Config
	r      *rand.Rand
	p      *pipeline.Processor
	store  checkpoint.Memory
	epochs []*sinks.Memory // what was written between checkpoints
	next   int             // offset of the next message to process

	saves, maxSegs int
	segIDs         map[uint64]bool // every dedup segment a checkpoint listed
}

func newHarness(t testing.TB, cfg pipeline.Config, r *rand.Rand) *harness {
	h := &harness{t: t, cfg: cfg, r: r, epochs: []*sinks.Memory{{}}, segIDs: map[uint64]bool{}}
	var err error
	h.p, err = pipeline.NewProcessor(cfg, "t", 0)
	require.NoError(t, err)
	return h
}

func (h *harness) flush() {
	require.NoError(h.t, h.epochs[len(h.epochs)-1].Write(context.Background(), h.p.Batch()))
	h.p.Reset()
}

// save checkpoints the partition once its batch is durable.
func (h *harness) save() {
	h.flush()
	cp, err := h.p.Checkpoint()
	require.NoError(h.t, err)
	want := int64(h.next)
	if h.next == 0 {
		want = -1 // nothing processed yet
	}
	require.Equal(h.t, want, cp.Next)
	require.NoError(h.t, h.store.Save(context.Background(), cp))
	h.p.Saved()
	h.saves++
	h.maxSegs = max(h.maxSegs, len(cp.Segments))
	for _, s := range cp.Segments {
		h.segIDs[s.ID] = true
	}
	h.epochs = append(h.epochs, &sinks.Memory{})
}

// restart drops the processor and what was written since the latest
// checkpoint, and goes on from that checkpoint in a new processor of cfg.
func (h *harness) restart(cfg pipeline.Config) {
	h.epochs[len(h.epochs)-1] = &sinks.Memory{}
	var err error
	h.p, err = pipeline.NewProcessor(cfg, "t", 0)
	require.NoError(h.t, err)
	cp, err := h.store.Load(context.Background(), "t", 0)
	if errors.Is(err, checkpoint.ErrNotFound) {
		h.next = 0
		return
	}
	require.NoError(h.t, err)
	require.NoError(h.t, h.p.Restore(cp))
	h.next = max(0, int(cp.Next))
	h.flush()
}

// feed processes input (all messages so far, offset = index) from h.next to
// the end in random batches, with updates, checkpoints with probability
// saveP after a batch, and a crash and restart at each offset in crashes
// (once each, at the end of the batch that reaches it).
func (h *harness) feed(input [][]byte, saveP float64, crashes []int) {
	for h.next < len(input) {
		n := min(1+h.r.IntN(64), len(input)-h.next)
		msgs := make([]sources.Message, n)
		for j := range msgs {
			off := h.next + j
			msgs[j] = sources.Message{Topic: "t", Offset: int64(off), Value: input[off]}
		}
		h.p.Process(msgs, processingTime)
		h.next += n
		if h.r.IntN(4) == 0 {
			h.p.Updates()
		}
		h.flush()
		if len(crashes) > 0 && h.next >= crashes[0] {
			crashes = crashes[1:]
			h.restart(h.cfg)
			continue
		}
		if h.r.Float64() < saveP {
			h.save()
		}
	}
}

func (h *harness) finish() {
	h.p.Finish()
	h.flush()
}

// output is what the sink holds: every epoch kept, in order.
func (h *harness) output() sinks.Output {
	var o sinks.Output
	for _, m := range h.epochs {
		e := m.Output()
		o.Updates = append(o.Updates, e.Updates...)
		o.KPIs = append(o.KPIs, e.KPIs...)
		o.Sessions = append(o.Sessions, e.Sessions...)
		o.Funnel = append(o.Funnel, e.Funnel...)
		o.FunnelUpdates = append(o.FunnelUpdates, e.FunnelUpdates...)
		o.DeadLetters = append(o.DeadLetters, e.DeadLetters...)
		if e.Counters != nil {
			o.Counters, o.Progress = e.Counters, e.Progress
		}
	}
	return o
}

// run feeds values through a processor in random batches, writing each batch
// to a memory sink; with cut >= 0 it checkpoints at that offset and
// continues in a restored processor.
func run(t testing.TB, cfg pipeline.Config, values [][]byte, r *rand.Rand, cut int) sinks.Output {
	h := newHarness(t, cfg, r)
	if cut >= 0 {
		h.feed(values[:cut], 0, nil)
		h.save()
		h.restart(cfg)
	}
	h.feed(values, 0, nil)
	h.finish()
	return h.output()
}

var seedFlag = flag.Uint64("seed", 0, "run the property tests with this seed only (0: seeds from the clock)")

// seeds returns n seeds from the clock, or the one given with -seed to
// reproduce a failure.
func seeds(n int) []uint64 {
	if *seedFlag != 0 {
		return []uint64{*seedFlag}
	}
	base := uint64(time.Now().UnixNano())
	out := make([]uint64, n)
	for i := range out {
		out[i] = base + uint64(i)
	}
	return out
}

func TestPipelineMatchesReference(t *testing.T) {
	for _, seed := range seeds(40) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			cfg, values := randomCase(seed)
			t.Log(describe(cfg))
			got := run(t, cfg, values, rand.New(rand.NewPCG(seed, 1)), -1)
			want := reference(cfg, values, processingTime)
			t.Logf("read %d accepted %d invalid %d late %d dup %d sessions %d windows %d funnel %d", want.read, want.accepted, want.invalid, want.late, want.duplicates, len(want.sessions), len(want.kpis), len(want.funnel))
			compare(t, want, got)
		})
	}
}

// SEMANTICS §10: the same stream cut at a random point, checkpointed,
// restored and continued gives the same outputs as an uninterrupted run;
// and so does a run that checkpoints through the store many times (dedup
// segments accumulate, and expire as wm passes them) and crashes between
// checkpoints, replaying from the latest.
func TestSnapshotRestoreContinues(t *testing.T) {
	var multi, expired int
	for _, seed := range seeds(30) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			cfg, values := randomCase(seed)
			t.Log(describe(cfg))
			whole := run(t, cfg, values, rand.New(rand.NewPCG(seed, 1)), -1)
			r := rand.New(rand.NewPCG(seed, 2))
			cut := r.IntN(len(values) + 1)
			resumed := run(t, cfg, values, rand.New(rand.NewPCG(seed, 1)), cut)
			sameResults(t, whole, resumed)

			crashes := make([]int, r.IntN(4))
			for i := range crashes {
				crashes[i] = r.IntN(len(values) + 1)
			}
			slices.Sort(crashes)
			h := newHarness(t, cfg, rand.New(rand.NewPCG(seed, 3)))
			h.feed(values, 0.1+0.4*r.Float64(), crashes)
			h.finish()
			got := h.output()
			t.Logf("%d checkpoints, %d dedup segments, at most %d in one, %d crashes", h.saves, len(h.segIDs), h.maxSegs, len(crashes))
			sameResults(t, whole, got)
			compare(t, reference(cfg, values, processingTime), got)
			if h.maxSegs > 1 {
				multi++
			}
			if uint64(len(h.segIDs)) > 0 && h.maxSegs < len(h.segIDs) {
				expired++
			}
		})
	}
	assert.Positive(t, multi, "no checkpoint had more than one dedup segment")
	assert.Positive(t, expired, "no dedup segment expired")
}

// SEMANTICS §3, §10: a restart after the end of input. A finished run's
// checkpoint keeps wm at its newest event_ts plus the horizon; a later run
// over it (newer events, some below that, and re-sent old ones) takes those
// below for late and goes on as usual with the rest, and the results of both
// runs are those of the reference that models exactly that.
func TestRestartAfterEndOfInput(t *testing.T) {
	var lateAtEnd int64
	for _, seed := range seeds(30) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 7))
			cfg := randomConfig(r)
			t.Log(describe(cfg))
			horizon := time.Duration(refHorizon(cfg)) * time.Millisecond
			// a few hours of event time a run, all well before processingTime
			start := processingTime.Add(-48 * time.Hour)
			var runs [][][]byte
			var input [][]byte
			h := newHarness(t, cfg, rand.New(rand.NewPCG(seed, 3)))
			for k := range 2 + r.IntN(2) {
				g := randomGen(r, cfg, seed+uint64(k)*1_000_003, start)
				g.Users = max(g.Users, g.Events/20)
				values := generate(g)
				if k > 0 {
					// retries of the earlier runs' messages, at random places
					for range r.IntN(20) {
						i := r.IntN(len(values) + 1)
						values = slices.Insert(values, i, input[r.IntN(len(input))])
					}
				}
				runs = append(runs, values)
				input = append(input, values...)
				var crashes []int
				if r.IntN(3) == 0 {
					crashes = []int{len(input) - len(values) + r.IntN(len(values)+1)}
				}
				h.feed(input, 0.2*r.Float64(), crashes)
				h.finish()
				h.save()
				h.restart(cfg)
				// the next run starts about at the end of this one's horizon:
				// its first minutes, below the after-end watermark, are late
				newest, ok := newestTS(values)
				require.True(t, ok)
				start = time.UnixMilli(newest).Add(horizon - time.Duration(r.Int64N(int64(2*horizon))))
			}
			got := h.output()
			want := referenceRuns(cfg, runs, processingTime)
			t.Logf("%d runs: read %d accepted %d late %d (%d below an after-end watermark) dup %d", len(runs), want.read, want.accepted, want.late, want.lateAtEnd, want.duplicates)
			lateAtEnd += want.lateAtEnd
			compare(t, want, got)
		})
	}
	assert.Positive(t, lateAtEnd, "no event was late only for an earlier run's end")
}

// newestTS returns the newest event_ts of the valid messages.
func newestTS(values [][]byte) (int64, bool) {
	dec := mustDecoder(clickstream.WithClock(func() time.Time { return processingTime }))
	newest, ok := int64(0), false
	for _, v := range values {
		var e clickstream.Event
		if dec.Decode(v, &e) == nil && (!ok || e.TS > newest) {
			newest, ok = e.TS, true
		}
	}
	return newest, ok
}

// sameResults checks that two runs over the same input emitted the same
// final results and counts.
func sameResults(t *testing.T, want, got sinks.Output) {
	t.Helper()
	assert.Equal(t, want.KPIs, got.KPIs)
	assert.Equal(t, want.Sessions, got.Sessions)
	assert.Equal(t, want.Funnel, got.Funnel)
	assert.Equal(t, want.DeadLetters, got.DeadLetters)
	assert.Equal(t, want.Counters, got.Counters)
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

	// §6: one final window per window with events, values equal the batch sums
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
	for _, u := range got.FunnelUpdates {
		assert.False(t, u.Final)
	}
	seen := map[int64]bool{}
	for _, f := range got.Funnel {
		require.False(t, seen[f.Minute], "funnel minute %d final twice", f.Minute)
		seen[f.Minute] = true
		assert.True(t, f.Final)
		w, ok := want.funnel[f.Minute]
		require.True(t, ok, "unexpected funnel minute %d", f.Minute)
		assert.Equal(t, w.steps, f.Steps, "funnel %d", f.Minute)
		assert.Equal(t, w.steps[0], f.Entered)
		assert.Equal(t, refParts(w), f.By, "funnel %d by %s", f.Minute, "breakdown")
		slices.Sort(w.times)
		if len(w.times) == 0 {
			assert.False(t, f.HasMedian)
		} else {
			assert.True(t, f.HasMedian)
			assert.Equal(t, w.times[(len(w.times)-1)/2], f.MedianTimeToConvertMs)
		}
	}
	require.Len(t, got.Funnel, len(want.funnel), "funnel minutes")
}

// SEMANTICS §7 in user scope: an event at the same event_ts as the entity's
// first step is within conversion_window of it and counts for a later step
// (e1.ts <= e2.ts), whatever the order of arrival, as in session scope. The
// generated streams rarely give one user two events in the same
// millisecond, so this case is spelled out.
func TestPipelineUserFunnelStepAtFirstStepTime(t *testing.T) {
	for name, scope := range map[string]funnel.Scope{"session": funnel.ScopeSession, "user": funnel.ScopeUser} {
		t.Run(name, func(t *testing.T) {
			cfg := pipeline.DefaultConfig()
			cfg.Clock = func() time.Time { return processingTime }
			cfg.FunnelScope, cfg.ConversionWindow = scope, 90*time.Second
			ts := processingTime.Add(-time.Hour).UnixMilli()
			evs := []clickstream.Event{
				{EventID: "a", EventType: "add_to_cart", UserID: "u", TS: ts, ProductID: "p"},
				{EventID: "b", EventType: "page_view", UserID: "u", TS: ts, ProductID: "p"},
				{EventID: "c", EventType: "purchase", UserID: "u", TS: ts + 1000, ProductID: "p", HasPrice: true, Price: 1, Currency: "EUR"},
			}
			values := make([][]byte, len(evs))
			for i := range evs {
				values[i] = clickstream.AppendJSON(nil, &evs[i])
			}
			got := run(t, cfg, values, rand.New(rand.NewPCG(1, 1)), -1)
			want := reference(cfg, values, processingTime)
			require.Len(t, want.funnel, 1)
			for _, f := range want.funnel {
				require.Equal(t, []int64{1, 1, 1}, f.steps, "the reference")
			}
			compare(t, want, got)
		})
	}
}

// SEMANTICS §7: before a start minute is final, its running values are
// those of the sessions seen so far, open ones included, and the final
// record replaces them. After each batch and update, the latest record of
// each minute, as a sink keeps it, must equal the batch reference over the
// input so far (a minute without sessions: zeros or nothing), also across
// a restart from a checkpoint; in user scope too, where the entities so
// far are those the events would make if no event came any more.
func TestRunningFunnelMatchesReferenceSoFar(t *testing.T) {
	for _, seed := range seeds(30) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			cfg, values := randomCase(seed)
			if seed%3 == 0 {
				cfg.FunnelScope, cfg.ConversionWindow = funnel.ScopeUser, pick(r0(seed), 90*time.Second, 5*time.Minute, 30*time.Minute)
			}
			t.Log(describe(cfg))
			r := rand.New(rand.NewPCG(seed, 3))
			h := newHarness(t, cfg, r)
			view := map[int64]funnel.Record{}
			running := 0
			take := func() {
				for _, f := range h.p.Batch().Funnel {
					old, ok := view[f.Minute]
					require.False(t, ok && old.Final, "funnel minute %d after its final record", f.Minute)
					if !f.Final {
						running++
					}
					view[f.Minute] = f.Clone()
				}
				h.p.Reset()
			}
			cut, checks := r.IntN(len(values)), 0
			for h.next < len(values) {
				n := min(1+r.IntN(64), len(values)-h.next)
				msgs := make([]sources.Message, n)
				for j := range msgs {
					msgs[j] = sources.Message{Topic: "t", Offset: int64(h.next + j), Value: values[h.next+j]}
				}
				h.p.Process(msgs, processingTime)
				h.next += n
				h.p.Updates()
				take()
				if cut >= 0 && h.next >= cut {
					cp, err := h.p.Checkpoint()
					require.NoError(t, err)
					h.p, err = pipeline.NewProcessor(cfg, "t", 0)
					require.NoError(t, err)
					require.NoError(t, h.p.Restore(cp))
					h.p.Updates()
					take()
					cut = -1
				}
				if r.IntN(6) != 0 && h.next < len(values) {
					continue
				}
				checks++
				want := reference(cfg, values[:h.next], processingTime).funnel
				for m := range want {
					if _, ok := view[m]; !ok {
						view[m] = funnel.Record{Minute: m, Steps: make([]int64, len(cfg.FunnelSteps))}
					}
				}
				for m, got := range view {
					w := want[m]
					if w == nil {
						w = &refFunnel{steps: make([]int64, len(cfg.FunnelSteps))}
					}
					times := slices.Sorted(slices.Values(w.times))
					require.Equal(t, w.steps, got.Steps, "minute %d at offset %d (final %v)", m, h.next, got.Final)
					if got.By != nil || w.by != nil {
						require.Equal(t, refParts(w), got.By, "minute %d at offset %d (final %v): breakdown", m, h.next, got.Final)
					}
					require.True(t, slices.Equal(times, got.TimesMs), "minute %d times %v, want %v", m, got.TimesMs, times)
				}
			}
			assert.Positive(t, running)
			t.Logf("%d checks, %d running records", checks, running)
		})
	}
}

// refParts is the breakdown the pipeline should give for f: nil without a
// breakdown (user scope, or none set).
func refParts(f *refFunnel) []funnel.Part {
	if f.by == nil {
		return nil
	}
	out := []funnel.Part{}
	for _, v := range slices.Sorted(maps.Keys(f.by)) {
		b := f.by[v]
		times := slices.Sorted(slices.Values(b.times))
		if len(times) == 0 {
			times = nil
		}
		out = append(out, funnel.Part{Value: v, Steps: b.steps, TimesMs: times})
	}
	return out
}

func r0(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 11)) }
