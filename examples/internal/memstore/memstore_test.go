package memstore_test

import (
	"context"
	"errors"
	"hash/fnv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clickstreamkit/clickstream/examples/internal/memstore"
	"github.com/clickstreamkit/clickstream/examples/internal/readapi"
	"github.com/clickstreamkit/clickstream/internal/gen"
	"github.com/clickstreamkit/clickstream/internal/mongotest"
	"github.com/clickstreamkit/clickstream/kpi"
	"github.com/clickstreamkit/clickstream/pipeline"
	"github.com/clickstreamkit/clickstream/session"
	"github.com/clickstreamkit/clickstream/sinks"
	mongosink "github.com/clickstreamkit/clickstream/sinks/mongo"
	"github.com/clickstreamkit/clickstream/sources"
)

const parts = 3

// feed runs msgs through one Processor per partition (by user), in rounds of
// round messages with running updates after each, and writes every round to
// sink; finish ends the input.
func feed(t *testing.T, cfg pipeline.Config, sink sinks.Sink, ps []*pipeline.Processor, msgs []gen.Message, round int, now time.Time, finish bool) {
	t.Helper()
	ctx := context.Background()
	next := make([]int64, parts)
	for i, p := range ps {
		next[i] = max(p.Next(), 0)
	}
	write := func() {
		var bs []*sinks.Batch
		for _, p := range ps {
			bs = append(bs, p.Batch())
		}
		require.NoError(t, sink.Write(ctx, bs...))
		for _, p := range ps {
			p.Reset()
		}
	}
	for i := 0; i < len(msgs); i += round {
		for _, m := range msgs[i:min(i+round, len(msgs))] {
			h := fnv.New32a()
			h.Write([]byte(m.Key))
			k := int(h.Sum32() % parts)
			ps[k].Process([]sources.Message{{Topic: "t", Partition: int32(k), Offset: next[k], Value: m.Value}}, now)
			next[k]++
		}
		for _, p := range ps {
			p.Updates()
		}
		write()
	}
	if finish {
		for _, p := range ps {
			p.Finish()
		}
		write()
	}
}

func processors(t *testing.T, cfg pipeline.Config) []*pipeline.Processor {
	ps := make([]*pipeline.Processor, parts)
	for i := range ps {
		p, err := pipeline.NewProcessor(cfg, "t", int32(i))
		require.NoError(t, err)
		p.SetPartitions(parts) // as a source reports it
		ps[i] = p
	}
	return ps
}

// same checks that the store answers what the MongoDB sink's queries answer
// over the whole range.
func same(t *testing.T, cfg pipeline.Config, want *mongosink.Sink, got readapi.Store) {
	t.Helper()
	ctx := context.Background()
	wm, err := want.LatestMinutes(ctx, 1<<20)
	require.NoError(t, err)
	gm, err := got.LatestMinutes(ctx, 1<<20)
	require.NoError(t, err)
	require.NotEmpty(t, wm)
	require.Equal(t, sinks.GlobalKPIRecords(wm), sinks.GlobalKPIRecords(gm))
	from, to := time.UnixMilli(wm[0].Minute.Minute), time.UnixMilli(wm[len(wm)-1].Minute.Minute).Add(time.Hour)
	wf, err := want.Funnel(ctx, from, to)
	require.NoError(t, err)
	gf, err := got.Funnel(ctx, from, to)
	require.NoError(t, err)
	require.Equal(t, sinks.GlobalFunnelRecords(wf), sinks.GlobalFunnelRecords(gf))
	ws, err := want.Sessions(ctx, from, to)
	require.NoError(t, err)
	require.NotEmpty(t, ws)
	require.NotEmpty(t, wf)
	// the sums of the whole range and of each minute of it
	ranges := [][2]time.Time{{from, to}}
	for m := from; m.Before(to); m = m.Add(time.Minute) {
		ranges = append(ranges, [2]time.Time{m, m.Add(time.Minute)})
	}
	for _, r := range ranges {
		var wt session.Totals
		for i := range ws {
			if s := ws[i].Start; s >= r[0].UnixMilli() && s < r[1].UnixMilli() {
				wt.Add(&ws[i])
			}
		}
		gt, err := got.SessionTotals(ctx, r[0], r[1])
		require.NoError(t, err)
		require.InDelta(t, wt.Revenue, gt.Revenue, 1e-6, "sessions of %v", r)
		wt.Revenue, gt.Revenue = 0, 0 // float sums in another order
		require.Equal(t, wt, gt, "sessions of %v", r)
	}
	// The sink's query scoring the whole range with one detector is the
	// store's scoring of each window once, as it became final.
	d, err := cfg.NewDetector()
	require.NoError(t, err)
	wa, wu, err := want.Anomalies(ctx, from, to, d)
	require.NoError(t, err)
	ga, gu, err := got.Anomalies(ctx, from, to)
	require.NoError(t, err)
	require.Equal(t, wa, ga)
	require.Equal(t, wu, gu)
	wp, err := want.Progress(ctx)
	require.NoError(t, err)
	gp, err := got.Progress(ctx)
	require.NoError(t, err)
	require.Len(t, gp, len(wp))
	for i := range wp {
		require.Equal(t, wp[i].Progress, gp[i].Progress)
	}
}

// TestStoreAnswersAsTheSink: a store fed by the sink's writes, and one loaded
// from the sink after a restart while fed from there, answer what the MongoDB
// sink's queries read back, running values, replays and the end of input
// included.
func TestStoreAnswersAsTheSink(t *testing.T) {
	c := mongotest.Client(t)
	ctx := context.Background()
	cfg := pipeline.DefaultConfig()
	cfg.WatermarkDelay, cfg.SessionGap = 20*time.Second, time.Minute
	cfg.AnomalyMinPoints, cfg.AnomalyZ = 2, 1                                                             // anomalies in a few minutes of data
	ms, err := mongosink.New(c, mongotest.Database(t, c, "cs_test_memstore_"), mongosink.WithMaxBulk(32)) // FerretDB: see the README
	require.NoError(t, err)
	t.Cleanup(func() { ms.Close(ctx) })

	g := gen.Default(6000, 7)
	g.Duplicate, g.Late, g.Disorder, g.Invalid = 0.02, 0.01, 20*time.Second, 0.01
	msgs := gen.Generate(g)
	now := g.Start.Add(time.Hour)

	live, err := memstore.New(cfg, 48*time.Hour)
	require.NoError(t, err)
	require.NoError(t, <-live.Load(ctx, ms)) // an empty sink
	sink := live.Wrap(ms)
	ps := processors(t, cfg)
	half := len(msgs) / 2
	feed(t, cfg, sink, ps, msgs[:half], 200, now, false)
	same(t, cfg, ms, live)

	// A restart: a store loading from the sink, and the input replayed from
	// a checkpoint taken a third of the way in, and on past where the first
	// run stopped, while the load holds what it read.
	cps := processors(t, cfg)
	feed(t, cfg, sinks.SinkFunc(func(context.Context, *sinks.Batch) error { return nil }), cps, msgs[:half/3], 200, now, false)
	restarted, err := memstore.New(cfg, 48*time.Hour)
	require.NoError(t, err)
	h := &heldHistory{Sink: ms, read: make(chan struct{}), release: make(chan struct{})}
	loaded := restarted.Load(ctx, h)
	<-h.read
	feed(t, cfg, restarted.Wrap(ms), cps, msgs[half/3:half+half/3], 200, now, false)
	_, err = restarted.LatestMinutes(ctx, 10)
	require.ErrorIs(t, err, memstore.ErrLoading)
	_, err = restarted.Progress(ctx)
	require.ErrorIs(t, err, memstore.ErrLoading)
	close(h.release)
	require.NoError(t, <-loaded)
	same(t, cfg, ms, restarted)
	feed(t, cfg, restarted.Wrap(ms), cps, msgs[half+half/3:], 200, now, true)
	same(t, cfg, ms, restarted)
	found, _, err := restarted.Anomalies(ctx, time.UnixMilli(0), now.Add(time.Hour))
	require.NoError(t, err)
	require.NotEmpty(t, found)
	got, err := restarted.LatestMinutes(ctx, 1<<20)
	require.NoError(t, err)
	for _, m := range got {
		require.True(t, m.Final, "every window final at the end of input")
	}
}

// TestStoreForgets: windows, funnel minutes and sessions older than the
// retained range, from the newest window, are gone.
func TestStoreForgets(t *testing.T) {
	ctx := context.Background()
	st, err := memstore.New(pipeline.DefaultConfig(), 2*time.Minute)
	require.NoError(t, err)
	mem := &sinks.Memory{}
	w := st.Wrap(mem)
	for i := range int64(5) {
		m := i * 60_000
		require.NoError(t, w.Write(ctx, &sinks.Batch{Topic: "t", KPIs: []kpi.Minute{{Minute: m, Final: true, Counts: kpi.Counts{Events: 1}}},
			Sessions: []session.Record{{UserID: "u", Start: m}}}))
	}
	got, err := st.LatestMinutes(ctx, 10)
	require.NoError(t, err)
	require.Len(t, got, 3) // 2, 3 and 4: 4 minus two minutes, on
	require.Equal(t, int64(2*60_000), got[0].Minute.Minute)
	ss, err := st.SessionTotals(ctx, time.UnixMilli(0), time.UnixMilli(1<<50))
	require.NoError(t, err)
	require.Equal(t, int64(3), ss.Sessions)
}

// TestStoreSessionTotals: sessions are summed by start in buckets as fine
// as the read API's ranges of 10-second windows, each once however often
// written.
func TestStoreSessionTotals(t *testing.T) {
	ctx := context.Background()
	cfg := pipeline.DefaultConfig()
	cfg.WindowSize = 10 * time.Second
	st, err := memstore.New(cfg, time.Hour)
	require.NoError(t, err)
	w := st.Wrap(&sinks.Memory{})
	rec := func(user string, start int64, converted bool) session.Record {
		return session.Record{UserID: user, Start: start, End: start + 500, DurationMs: 500, Bounced: !converted, Converted: converted}
	}
	b := &sinks.Batch{Topic: "t", Sessions: []session.Record{rec("a", -1, false), rec("a", 5_000, false), rec("b", 15_000, true),
		rec("c", 15_000, false), rec("a", 59_999, true), rec("a", 61_000, false), rec("b", 70_000, false)}}
	require.NoError(t, w.Write(ctx, b))
	require.NoError(t, w.Write(ctx, b)) // a replay
	for _, tc := range []struct {
		from, to int64
		want     session.Totals
	}{
		{-10_000, 0, session.Totals{Sessions: 1, Bounced: 1, DurationMs: 500}},
		{0, 10_000, session.Totals{Sessions: 1, Bounced: 1, DurationMs: 500}},
		{10_000, 70_000, session.Totals{Sessions: 4, Bounced: 2, Converted: 2, DurationMs: 2000}},
		{60_000, 120_000, session.Totals{Sessions: 2, Bounced: 2, DurationMs: 1000}},
		{-10_000, 80_000, session.Totals{Sessions: 7, Bounced: 5, Converted: 2, DurationMs: 3500}},
		{80_000, 90_000, session.Totals{}},
	} {
		got, err := st.SessionTotals(ctx, time.UnixMilli(tc.from), time.UnixMilli(tc.to))
		require.NoError(t, err)
		assert.Equal(t, tc.want, got, "[%d, %d)", tc.from, tc.to)
	}
}

// heldHistory reads the sink's view and then holds it back until release,
// so that newer writes come in between.
type heldHistory struct {
	*mongosink.Sink
	read, release chan struct{}
}

func (h *heldHistory) ReadView(ctx context.Context, from, to time.Time) (*sinks.View, error) {
	v, err := h.Sink.ReadView(ctx, from, to)
	close(h.read)
	<-h.release
	return v, err
}

// A failed load leaves the store answering why.
func TestStoreLoadFails(t *testing.T) {
	st, err := memstore.New(pipeline.DefaultConfig(), time.Hour)
	require.NoError(t, err)
	boom := errors.New("boom")
	require.ErrorIs(t, <-st.Load(context.Background(), failingHistory{boom}), boom)
	_, err = st.LatestMinutes(context.Background(), 1)
	require.ErrorIs(t, err, boom)
}

type failingHistory struct{ err error }

func (f failingHistory) Progress(context.Context) ([]mongosink.Progress, error) { return nil, f.err }
func (f failingHistory) ReadView(context.Context, time.Time, time.Time) (*sinks.View, error) {
	return nil, f.err
}
func (f failingHistory) Sessions(context.Context, time.Time, time.Time) ([]session.Record, error) {
	return nil, f.err
}
