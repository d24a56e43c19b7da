package mongo

import (
	"context"
	"errors"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/clickstreamkit/clickstream"
	"github.com/clickstreamkit/clickstream/funnel"
	"github.com/clickstreamkit/clickstream/internal/mongotest"
	"github.com/clickstreamkit/clickstream/kpi"
	"github.com/clickstreamkit/clickstream/sinks"
	"github.com/clickstreamkit/clickstream/sinks/sinktest"
)

// commandStats counts what a client sends: commands (round trips), their
// bytes, and per collection the documents or statements sent and the time
// the server took to answer.
type commandStats struct {
	mu       sync.Mutex
	commands int64
	bytes    int64
	docs     map[string]int64
	busy     map[string]time.Duration
	inFlight map[int64]string // request id -> collection
}

func newCommandStats() *commandStats {
	return &commandStats{docs: map[string]int64{}, busy: map[string]time.Duration{}, inFlight: map[int64]string{}}
}

func (s *commandStats) monitor() *event.CommandMonitor {
	return &event.CommandMonitor{
		Started: func(_ context.Context, e *event.CommandStartedEvent) {
			coll, _ := e.Command.Lookup(e.CommandName).StringValueOK()
			n := 0
			// The statements of a write travel in a document sequence, which
			// the event shows as an array.
			for _, field := range []string{"documents", "updates", "deletes"} {
				if arr, ok := e.Command.Lookup(field).ArrayOK(); ok {
					vals, _ := arr.Values()
					n = len(vals)
				}
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			s.commands++
			s.bytes += int64(len(e.Command))
			s.docs[coll] += int64(n)
			s.inFlight[e.RequestID] = coll
		},
		Succeeded: func(_ context.Context, e *event.CommandSucceededEvent) { s.done(e.RequestID, e.Duration) },
		Failed:    func(_ context.Context, e *event.CommandFailedEvent) { s.done(e.RequestID, e.Duration) },
	}
}

func (s *commandStats) done(id int64, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.busy[s.inFlight[id]] += d
	delete(s.inFlight, id)
}

func (s *commandStats) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.commands, s.bytes = 0, 0
	clear(s.docs)
	clear(s.busy)
}

// perSecond is the documents of coll the server took per second of its
// answering time.
func (s *commandStats) perSecond(coll string) float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.busy[coll] == 0 {
		return 0
	}
	return float64(s.docs[coll]) / s.busy[coll].Seconds()
}

// benchClient connects to MONGODB_URI with stats' monitor, or skips.
func benchClient(b *testing.B, stats *commandStats) *mongo.Client {
	b.Helper()
	uri := os.Getenv("MONGODB_URI")
	if uri == "" {
		b.Skip("MONGODB_URI not set: skipping MongoDB benchmark (set MONGODB_URI=mongodb://127.0.0.1:27018/)")
	}
	c, err := mongo.Connect(options.Client().ApplyURI(uri).SetServerSelectionTimeout(10 * time.Second).SetMonitor(stats.monitor()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Disconnect(context.Background()) })
	return c
}

// benchOptions are the sink's options for the server c talks to: FerretDB
// needs small update commands (see WithMaxBulk).
func benchOptions(b *testing.B, c *mongo.Client) []Option {
	var info bson.M
	if err := c.Database("admin").RunCommand(b.Context(), bson.D{{Key: "buildInfo", Value: 1}}).Decode(&info); err != nil {
		b.Fatal(err)
	}
	if _, ferret := info["ferretdbVersion"]; ferret {
		return []Option{WithMaxBulk(32)}
	}
	return nil
}

func benchSink(b *testing.B, c *mongo.Client) *Sink {
	b.Helper()
	s, err := New(c, mongotest.Database(b, c, "cs_bench_sink_"), benchOptions(b, c)...)
	if err != nil {
		b.Fatal(err)
	}
	if err := s.EnsureIndexes(b.Context()); err != nil {
		b.Fatal(err)
	}
	return s
}

// minuteOfEvents returns the batches a partition writes for minute i of a
// stream of 10,000 events a minute, in ticks update ticks: each batch with a
// running update of the open window and the sessions that closed in it (one
// per 8 events, 1,250 in all), the last with the final window, the funnel
// minute that turned final, and the next window's first running update. Ids
// differ from minute to minute. With 20 ticks (an update every 3 s) it is
// the mix of a partition at 167 events/s; with one, that of a partition
// whose update tick holds 10,000 events or more.
func minuteOfEvents(i, ticks int) []*sinks.Batch {
	const sessions = 1250
	m := minuteAt(i)
	bs := make([]*sinks.Batch, ticks)
	for k := range bs {
		first := int64(i)*10_000 + int64(k)*10_000/int64(ticks)
		b := &sinks.Batch{Topic: "clicks", FirstOffset: first, NextOffset: first + 10_000/int64(ticks),
			Progress: sinks.Progress{Partitions: 1, Watermark: m + int64(k)*60_000/int64(ticks), FunnelBefore: m - 30*60_000}}
		for u := k * sessions / ticks; u < (k+1)*sessions/ticks; u++ {
			b.Sessions = append(b.Sessions, sinktest.SessionRecord(i*sessions+u, u%13))
		}
		if k < ticks-1 {
			b.KPIs = []kpi.Minute{sinktest.Window(m, k, false)}
		} else {
			b.KPIs = []kpi.Minute{sinktest.Window(m, 99, true), sinktest.Window(minuteAt(i+1), 0, false)}
			b.Funnel = []funnel.Record{sinktest.FunnelRecord(m-30*60_000, i)}
			b.Progress.Watermark = minuteAt(i + 1)
		}
		bs[k] = b
	}
	return bs
}

// BenchmarkWrite10k writes the results of 10,000 events (one minute of a
// partition, see minuteOfEvents) per iteration and reports what that costs
// in round trips and bytes sent, and how many documents per second the
// server took in each collection (documents over the time it took to answer
// their commands).
func BenchmarkWrite10k(b *testing.B) {
	for _, ticks := range []int{20, 1} {
		b.Run("batches="+strconv.Itoa(ticks), func(b *testing.B) {
			stats := newCommandStats()
			s := benchSink(b, benchClient(b, stats))
			stats.reset()
			b.ReportAllocs()
			i := 0
			start := time.Now()
			for b.Loop() {
				for _, batch := range minuteOfEvents(i, ticks) {
					if err := s.Write(b.Context(), batch); err != nil {
						b.Fatal(err)
					}
				}
				i++
			}
			elapsed := time.Since(start)
			stats.mu.Lock()
			commands, bytes := stats.commands, stats.bytes
			stats.mu.Unlock()
			b.ReportMetric(float64(commands)/float64(i), "round-trips/10k-events")
			b.ReportMetric(float64(bytes)/float64(i), "bytes-sent/10k-events")
			b.ReportMetric(float64(i)*10_000/elapsed.Seconds(), "events/s")
			for name, coll := range map[string]*mongo.Collection{"sessions": s.sessions, "kpis": s.kpis, "funnel": s.funnel, "progress": s.progress} {
				b.ReportMetric(stats.perSecond(coll.Name()), name+"-docs/s")
			}
		})
	}
}

// BenchmarkReplay10k writes the results of 10,000 events in one batch (see
// minuteOfEvents), then, timed, writes them again as a replay after a crash
// does: every session and funnel minute a duplicate key, rewritten on its
// _id.
func BenchmarkReplay10k(b *testing.B) {
	stats := newCommandStats()
	s := benchSink(b, benchClient(b, stats))
	i := 0
	var replay time.Duration
	var commands int64
	for b.Loop() {
		b.StopTimer()
		bs := minuteOfEvents(i, 1)
		for _, batch := range bs {
			if err := s.Write(b.Context(), batch); err != nil {
				b.Fatal(err)
			}
		}
		fresh, err := New(s.kpis.Database().Client(), s.kpis.Database().Name(), benchOptions(b, s.kpis.Database().Client())...)
		if err != nil {
			b.Fatal(err)
		}
		stats.reset()
		b.StartTimer()
		t := time.Now()
		for _, batch := range bs {
			if err := fresh.Write(b.Context(), batch); err != nil {
				b.Fatal(err)
			}
		}
		replay += time.Since(t)
		stats.mu.Lock()
		commands += stats.commands
		stats.mu.Unlock()
		i++
	}
	b.ReportMetric(float64(i)*10_000/replay.Seconds(), "replayed-events/s")
	b.ReportMetric(float64(commands)/float64(i), "round-trips/10k-events")
}

// BenchmarkInsertCommands sends session documents in unordered insert
// commands of size documents, new ones and then the same again (a replay:
// every one a duplicate key), and reports documents per second. FerretDB
// takes large insert commands, all duplicates too, where an update command
// of over 100 matched statements deadlocks it (see WithMaxBulk).
func BenchmarkInsertCommands(b *testing.B) {
	for _, size := range []int{32, 1000, 5000} {
		b.Run("size="+strconv.Itoa(size), func(b *testing.B) {
			stats := newCommandStats()
			s := benchSink(b, benchClient(b, stats))
			docs := func(from int) []any {
				out := make([]any, size)
				for i := range out {
					r := sinktest.SessionRecord(from+i, i%13)
					out[i] = sessionDoc{ID: docID("clicks", 0, sessionKey(&r)), SessionID: r.SessionID(), UserID: r.UserID,
						Topic: "clicks", Start: bson.DateTime(r.Start), End: bson.DateTime(r.End), Events: r.Events}
				}
				return out
			}
			var inserted, dups int
			var tNew, tDup time.Duration
			for b.Loop() {
				d := docs(inserted)
				t := time.Now()
				if _, err := s.sessions.InsertMany(b.Context(), d, options.InsertMany().SetOrdered(false)); err != nil {
					b.Fatal(err)
				}
				tNew += time.Since(t)
				t = time.Now()
				_, err := s.sessions.InsertMany(b.Context(), d, options.InsertMany().SetOrdered(false))
				tDup += time.Since(t)
				var bwe mongo.BulkWriteException
				if !errors.As(err, &bwe) || len(bwe.WriteErrors) != size {
					b.Fatalf("insert of %d duplicates: %v", size, err)
				}
				inserted += size
				dups += size
			}
			b.ReportMetric(float64(inserted)/tNew.Seconds(), "new-docs/s")
			b.ReportMetric(float64(dups)/tDup.Seconds(), "duplicate-docs/s")
		})
	}
}

// fill inserts n documents made by doc into coll, 1,000 per command.
func fill(b *testing.B, coll *mongo.Collection, n int, doc func(i int) bson.D) {
	b.Helper()
	for from := 0; from < n; from += 1000 {
		docs := make([]any, 0, 1000)
		for i := from; i < min(from+1000, n); i++ {
			docs = append(docs, doc(i))
		}
		if _, err := coll.InsertMany(b.Context(), docs, options.InsertMany().SetOrdered(false)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSessionsAt writes batches of 125 new sessions (the sessions of
// 1,000 events) into a sessions collection already holding docs documents.
func BenchmarkSessionsAt(b *testing.B) {
	for _, docs := range []int{10_000, 50_000} {
		b.Run("docs="+strconv.Itoa(docs), func(b *testing.B) {
			stats := newCommandStats()
			s := benchSink(b, benchClient(b, stats))
			fill(b, s.sessions, docs, func(i int) bson.D {
				r := sinktest.SessionRecord(-1-i, i%13)
				return bson.D{{Key: "_id", Value: docID("clicks", 0, sessionKey(&r))}, {Key: "session_id", Value: r.SessionID()},
					{Key: "user_id", Value: r.UserID}, {Key: "topic", Value: "clicks"}, {Key: "partition", Value: int32(0)},
					{Key: "start", Value: bson.DateTime(r.Start)}, {Key: "end", Value: bson.DateTime(r.End)},
					{Key: "events", Value: r.Events}, {Key: "revenue", Value: r.Revenue}}
			})
			const per = 125
			u := 0
			start := time.Now()
			for b.Loop() {
				batch := &sinks.Batch{Topic: "clicks", Progress: sinks.Progress{Watermark: int64(u)}}
				for range per {
					batch.Sessions = append(batch.Sessions, sinktest.SessionRecord(u, u%13))
					u++
				}
				if err := s.Write(b.Context(), batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(u)/time.Since(start).Seconds(), "sessions/s")
		})
	}
}

// BenchmarkKPIUpdatesAt writes one running update of the open window per
// batch (what every update tick writes: into the partition's progress
// document) beside a KPI collection already holding docs final windows.
func BenchmarkKPIUpdatesAt(b *testing.B) {
	for _, docs := range []int{1_000, 10_000, 50_000} {
		b.Run("docs="+strconv.Itoa(docs), func(b *testing.B) {
			stats := newCommandStats()
			s := benchSink(b, benchClient(b, stats))
			fill(b, s.kpis, docs, func(i int) bson.D {
				m := minuteAt(-1 - i)
				return bson.D{{Key: "_id", Value: docID("clicks", 0, clickstream.FormatTime(m))}, {Key: "minute", Value: bson.DateTime(m)},
					{Key: "topic", Value: "clicks"}, {Key: "partition", Value: int32(0)}, {Key: "final", Value: true},
					{Key: "events", Value: int64(i)}}
			})
			k := 0
			start := time.Now()
			for b.Loop() {
				batch := &sinks.Batch{Topic: "clicks", KPIs: []kpi.Minute{sinktest.Window(minuteAt(0), k, false)},
					Progress: sinks.Progress{Watermark: int64(k)}}
				if err := s.Write(b.Context(), batch); err != nil {
					b.Fatal(err)
				}
				k++
			}
			b.ReportMetric(float64(k)/time.Since(start).Seconds(), "updates/s")
		})
	}
}

// BenchmarkReadAt reads the last hour as the read API does (/kpis:
// LatestMinutes and Minutes; /anomalies: Anomalies; /funnel: Funnel) from
// KPI and funnel collections holding docs windows.
func BenchmarkReadAt(b *testing.B) {
	for _, docs := range []int{10_000, 50_000} {
		b.Run("docs="+strconv.Itoa(docs), func(b *testing.B) {
			stats := newCommandStats()
			s := benchSink(b, benchClient(b, stats))
			w := sinktest.Window(0, 1, true)
			doc := kpiDoc{Topic: "clicks", Final: true, Values: newKPIValues(&w, 0)}
			fill(b, s.kpis, docs, func(i int) bson.D {
				d := doc
				d.ID, d.Minute = docID("clicks", 0, clickstream.FormatTime(minuteAt(i))), bson.DateTime(minuteAt(i))
				raw, err := bson.Marshal(d)
				if err != nil {
					b.Fatal(err)
				}
				var out bson.D
				if err := bson.Unmarshal(raw, &out); err != nil {
					b.Fatal(err)
				}
				return out
			})
			if err := s.Write(b.Context(), &sinks.Batch{Topic: "clicks", Progress: done(1)}); err != nil {
				b.Fatal(err)
			}
			from, to := t0.Add(time.Duration(docs-60)*time.Minute), t0.Add(time.Duration(docs)*time.Minute)
			reads := map[string]func() error{
				"LatestMinutes": func() error { _, err := s.LatestMinutes(b.Context(), 60); return err },
				"Minutes":       func() error { _, err := s.Minutes(b.Context(), from, to); return err },
				"Anomalies": func() error {
					d, err := kpi.NewDetector(kpi.DefaultAnomalyWindow, kpi.DefaultAnomalyMinPoints, kpi.DefaultAnomalyZ)
					if err != nil {
						return err
					}
					_, _, err = s.Anomalies(b.Context(), from, to, d)
					return err
				},
			}
			for _, name := range []string{"LatestMinutes", "Minutes", "Anomalies"} {
				b.Run(name, func(b *testing.B) {
					for b.Loop() {
						if err := reads[name](); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		})
	}
}

// liveRound returns what one partition of the live demo writes on an update
// tick at 1,250 events/s: running updates of three open windows, each with a
// latency sketch of 200-odd bins, and of two funnel minutes, each with
// conversions conversion times broken down into four parts. k varies the
// values from round to round.
func liveRound(k, conversions int) *sinks.Batch {
	b := &sinks.Batch{Topic: "clicks", Progress: sinks.Progress{Partitions: 1, Watermark: minuteAt(0) + int64(k)}}
	for w := range 3 {
		m := sinktest.Window(minuteAt(w), k, false)
		for i := range 2_000 {
			m.Latency.Add(float64(i*i%100_000) + float64(k))
		}
		b.KPIs = append(b.KPIs, m)
	}
	for f := range 2 {
		r := funnel.Record{Minute: minuteAt(f), Steps: []int64{int64(3 * conversions), int64(2 * conversions), int64(conversions)}}
		values := []string{"google", "direct", "social", funnel.None}
		r.By = make([]funnel.Part, len(values))
		for i, v := range values {
			r.By[i] = funnel.Part{Value: v, Steps: make([]int64, 3)}
		}
		for c := range conversions {
			t := int64(c*7_919%600_000 + k)
			p := &r.By[c%len(values)]
			p.TimesMs = append(p.TimesMs, t)
			r.TimesMs = append(r.TimesMs, t)
		}
		for i := range r.By {
			slices.Sort(r.By[i].TimesMs)
			n := int64(len(r.By[i].TimesMs))
			r.By[i].Steps = []int64{3 * n, 2 * n, n}
		}
		slices.Sort(r.TimesMs)
		b.Funnel = append(b.Funnel, funnel.Merge(r))
	}
	return b
}

// BenchmarkLiveRound writes one update round of a live partition (see
// liveRound) per iteration, the same five documents each time, and reports
// the bytes each round sends.
func BenchmarkLiveRound(b *testing.B) {
	for _, conversions := range []int{300, 2_700} {
		b.Run("conversions="+strconv.Itoa(conversions), func(b *testing.B) {
			stats := newCommandStats()
			s := benchSink(b, benchClient(b, stats))
			stats.reset()
			k := 0
			for b.Loop() {
				if err := s.Write(b.Context(), liveRound(k, conversions)); err != nil {
					b.Fatal(err)
				}
				k++
			}
			stats.mu.Lock()
			bytes := stats.bytes
			stats.mu.Unlock()
			b.ReportMetric(float64(bytes)/float64(k), "bytes-sent/round")
		})
	}
}
