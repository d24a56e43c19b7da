package memstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/clickstreamkit/clickstream/examples/internal/memstore"
	"github.com/clickstreamkit/clickstream/funnel"
	"github.com/clickstreamkit/clickstream/internal/mongotest"
	"github.com/clickstreamkit/clickstream/kpi"
	"github.com/clickstreamkit/clickstream/pipeline"
	"github.com/clickstreamkit/clickstream/session"
	"github.com/clickstreamkit/clickstream/sinks"
	mongosink "github.com/clickstreamkit/clickstream/sinks/mongo"
)

// filled returns a store holding history(hours) and the newest minute.
func filled(b *testing.B, hours int) (*memstore.Store, int64) {
	st, err := memstore.New(pipeline.DefaultConfig(), 25*time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	return st, history(b, hours, st.Wrap(&sinks.Memory{}))
}

// history writes to w hours of 4 partitions' final windows, funnel minutes
// (5 breakdown values) and 60 sessions a minute each, as the default demo
// makes them, a minute a round, and returns the newest minute.
func history(b *testing.B, hours int, w sinks.Sink) int64 {
	t0 := int64(1_741_953_600_000)
	var last int64
	for i := range hours * 60 {
		m := t0 + int64(i)*60_000
		last = m
		var bs []*sinks.Batch
		for p := range int32(4) {
			k := kpi.Minute{Minute: m, Final: true, Counts: kpi.Counts{Events: 500, PageViews: 400, Sessions: 60, Purchases: 5 + int64(i%3)},
				RevenueByCurrency: map[string]float64{"EUR": 100}}
			for j := range 5 {
				k.TopProducts = append(k.TopProducts, kpi.Product{ProductID: fmt.Sprint("p", j), Views: 10})
			}
			for j := range 100 {
				k.Latency.Add(float64(50 + j))
			}
			f := funnel.Record{Minute: m, Final: true, Entered: 60, Steps: []int64{60, 20, 5}, TimesMs: []int64{1000, 2000, 3000, 4000, 5000}}
			for _, v := range []string{"google", "direct", "email", "ads", "(none)"} {
				f.By = append(f.By, funnel.Part{Value: v, Steps: []int64{12, 4, 1}, TimesMs: []int64{1000}})
			}
			b := &sinks.Batch{Topic: "t", Partition: p, KPIs: []kpi.Minute{k}, Funnel: []funnel.Record{f},
				Progress: sinks.Progress{Partitions: 4, Watermark: m + 60_000, FunnelBefore: m + 60_000}}
			for u := range 60 {
				b.Sessions = append(b.Sessions, session.Record{UserID: fmt.Sprint("u", p, "-", u), Start: m + int64(u)*1000, End: m + 600_000, Events: 8})
			}
			bs = append(bs, b)
		}
		if err := w.Write(context.Background(), bs...); err != nil {
			b.Fatal(err)
		}
	}
	return last
}

// BenchmarkStoreAnswers: what the dashboard asks every tick (the newest 30
// windows, the funnel and sessions of the last 30 minutes, anomalies of the
// last 60 minutes), against 1 and 24 hours of history.
func BenchmarkStoreAnswers(b *testing.B) {
	ctx := context.Background()
	for _, hours := range []int{1, 24} {
		b.Run(fmt.Sprint(hours, "h"), func(b *testing.B) {
			st, last := filled(b, hours)
			to := time.UnixMilli(last + 60_000)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := st.LatestMinutes(ctx, 30); err != nil {
					b.Fatal(err)
				}
				if _, err := st.Funnel(ctx, to.Add(-30*time.Minute), to); err != nil {
					b.Fatal(err)
				}
				if _, err := st.Sessions(ctx, to.Add(-30*time.Minute), to); err != nil {
					b.Fatal(err)
				}
				if _, _, err := st.Anomalies(ctx, to.Add(-60*time.Minute), to); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkLoad reads hours of history (see history: 24 hours is 5,760
// windows, 5,760 funnel minutes and 345,600 sessions) from the MongoDB sink's
// collections into a store, as the demo does at start.
func BenchmarkLoad(b *testing.B) {
	for _, hours := range []int{1, 24} {
		b.Run(fmt.Sprint(hours, "h"), func(b *testing.B) {
			c := mongotest.Client(b)
			ms, err := mongosink.New(c, mongotest.Database(b, c, "cs_bench_load_"), mongosink.WithMaxBulk(32)) // FerretDB: see the README
			if err != nil {
				b.Fatal(err)
			}
			history(b, hours, ms)
			var sessions int
			for b.Loop() {
				st, err := memstore.New(pipeline.DefaultConfig(), 25*time.Hour)
				if err != nil {
					b.Fatal(err)
				}
				if err := st.Load(context.Background(), ms); err != nil {
					b.Fatal(err)
				}
				ss, err := st.Sessions(context.Background(), time.UnixMilli(0), time.UnixMilli(1<<50))
				if err != nil {
					b.Fatal(err)
				}
				sessions = len(ss)
			}
			if want := hours * 60 * 4 * 60; sessions != want {
				b.Fatalf("loaded %d sessions, want %d", sessions, want)
			}
		})
	}
}
