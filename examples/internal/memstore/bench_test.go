package memstore_test

import (
	"context"
	"fmt"
	"slices"
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
	var last int64
	for i := range hours * 60 {
		var bs []*sinks.Batch
		last, bs = historyRound(i)
		if err := w.Write(context.Background(), bs...); err != nil {
			b.Fatal(err)
		}
	}
	return last
}

// historyRound returns minute i of history and its round of batches.
func historyRound(i int) (int64, []*sinks.Batch) {
	m := int64(1_741_953_600_000) + int64(i)*60_000
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
	return m, bs
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
				if _, err := st.SessionTotals(ctx, to.Add(-30*time.Minute), to); err != nil {
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
// collections into a store, as the demo does at start, while the pipeline
// goes on writing a minute's round of results through the store every
// 250 ms: how long those writes take during the load (write_p50_ms,
// write_max_ms) is what the pipeline meets then.
func BenchmarkLoad(b *testing.B) {
	for _, hours := range []int{1, 24} {
		b.Run(fmt.Sprint(hours, "h"), func(b *testing.B) {
			c := mongotest.Client(b)
			ms, err := mongosink.New(c, mongotest.Database(b, c, "cs_bench_load_"), mongosink.WithMaxBulk(32)) // FerretDB: see the README
			if err != nil {
				b.Fatal(err)
			}
			history(b, hours, ms)
			next := hours * 60
			var writes []time.Duration
			for b.Loop() {
				st, err := memstore.New(pipeline.DefaultConfig(), 25*time.Hour)
				if err != nil {
					b.Fatal(err)
				}
				w := st.Wrap(ms)
				loaded := st.Load(context.Background(), ms)
			wait:
				for tick := time.NewTicker(250 * time.Millisecond); ; {
					select {
					case err := <-loaded:
						tick.Stop()
						if err != nil {
							b.Fatal(err)
						}
						break wait
					case <-tick.C:
						_, bs := historyRound(next)
						next++
						start := time.Now()
						if err := w.Write(context.Background(), bs...); err != nil {
							b.Fatal(err)
						}
						writes = append(writes, time.Since(start))
					}
				}
				ss, err := st.SessionTotals(context.Background(), time.UnixMilli(0), time.UnixMilli(1<<50))
				if err != nil {
					b.Fatal(err)
				}
				// the minutes of the last 25 hours up to the newest, 240 sessions each
				if want := min(next, 25*60+1) * 4 * 60; ss.Sessions != int64(want) {
					b.Fatalf("%d sessions in the store, want %d", ss.Sessions, want)
				}
			}
			if len(writes) > 0 {
				slices.Sort(writes)
				b.ReportMetric(float64(writes[len(writes)/2].Microseconds())/1000, "write_p50_ms")
				b.ReportMetric(float64(writes[len(writes)-1].Microseconds())/1000, "write_max_ms")
				b.ReportMetric(float64(len(writes))/float64(b.N), "writes/op")
			}
		})
	}
}
