package pipeline_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/clickstreamkit/clickstream"
	"github.com/clickstreamkit/clickstream/checkpoint"
	cpmongo "github.com/clickstreamkit/clickstream/checkpoint/mongo"
	"github.com/clickstreamkit/clickstream/internal/gen"
	"github.com/clickstreamkit/clickstream/internal/mongotest"
	"github.com/clickstreamkit/clickstream/internal/snap"
	"github.com/clickstreamkit/clickstream/pipeline"
	"github.com/clickstreamkit/clickstream/sinks"
	"github.com/clickstreamkit/clickstream/sources"
)

// benchData is a realistic data set: sessions walking the funnel, 2 %
// duplicates, 1 % late, 1 % invalid, two minutes of disorder.
func benchData(b *testing.B, n int) [][]byte {
	b.Helper()
	msgs := gen.Generate(gen.Default(n, 1))
	out := make([][]byte, len(msgs))
	for i, m := range msgs {
		out[i] = m.Value
	}
	return out
}

// BenchmarkOperators runs decoded events through the operator chain (late
// check, dedup, sessions, KPI windows, funnel) on one core, in steady state:
// the data set repeats, shifted in time, so windows and sessions keep closing.
func BenchmarkOperators(b *testing.B) {
	values := benchData(b, 1<<20)
	dec := mustDecoder(clickstream.WithClock(func() time.Time { return processingTime }))
	var events []clickstream.Event
	for _, v := range values {
		var e clickstream.Event
		if dec.Decode(v, &e) == nil {
			events = append(events, e)
		}
	}
	span := events[len(events)-1].TS - events[0].TS + 3_600_000
	p, err := pipeline.NewProcessor(pipeline.DefaultConfig(), "bench", 0)
	if err != nil {
		b.Fatal(err)
	}
	var m sources.Message
	run := func(i int) {
		e := events[i%len(events)]
		e.TS += int64(i/len(events)) * span
		m.Offset = int64(i)
		p.ProcessEvent(&e, &m, processingTime)
		if i%4096 == 0 { // a sink takes the results
			p.Updates()
			p.Reset()
		}
		if i%(1<<20) == 0 { // a checkpoint, as the runner's every 5 s
			if _, err := p.Checkpoint(); err != nil {
				b.Fatal(err)
			}
			p.Saved()
		}
	}
	for i := range len(events) { // warm up: one full pass
		run(i)
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	mallocs := ms.Mallocs
	i := len(events)
	b.ReportAllocs()
	for b.Loop() {
		run(i)
		i++
	}
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(ms.Mallocs-mallocs)/float64(b.N), "allocs/event")
}

// BenchmarkReplay is the finite replay of the example, bytes in to files
// out, against merely decoding the same file with encoding/json.
func BenchmarkReplay(b *testing.B) {
	values := benchData(b, 200_000)
	dir := b.TempDir()
	path := filepath.Join(dir, "events.jsonl")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	for _, v := range values {
		w.Write(v)
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	cfg := pipeline.DefaultConfig()
	b.Run("pipeline", func(b *testing.B) {
		for b.Loop() {
			src, err := sources.OpenFile(path, cfg.MaxEventBytes)
			if err != nil {
				b.Fatal(err)
			}
			sink, err := sinks.NewJSONL(filepath.Join(dir, "out"), cfg.WindowSize, cfg.NewDetector)
			if err != nil {
				b.Fatal(err)
			}
			r, err := pipeline.NewRunner(src, sink, &checkpoint.Memory{}, cfg)
			if err != nil {
				b.Fatal(err)
			}
			if err := r.Run(context.Background()); err != nil {
				b.Fatal(err)
			}
			if err := sink.Close(context.Background()); err != nil {
				b.Fatal(err)
			}
			src.Close(context.Background())
		}
		b.ReportMetric(float64(b.N*len(values))/b.Elapsed().Seconds(), "events/s")
	})
	b.Run("encoding_json_decode_only", func(b *testing.B) {
		for b.Loop() {
			f, err := os.Open(path)
			if err != nil {
				b.Fatal(err)
			}
			sc := bufio.NewScanner(f)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for sc.Scan() {
				var e gen.Baseline
				_ = json.Unmarshal(sc.Bytes(), &e)
			}
			f.Close()
		}
		b.ReportMetric(float64(b.N*len(values))/b.Elapsed().Seconds(), "events/s")
	})
}

// BenchmarkCheckpoint5k is a partition at 5,000 accepted events/s with the
// default settings (10-minute watermark delay, 30-minute session gap), in
// sessions of 8 events 20 s apart (625 sessions starting a second, each held
// for the gap and the delay after its last event: about 1.6M open), checkpointed
// every 5 s of event time into a Dir store, and into the MongoDB store when
// MONGODB_URI is set: each iteration is one interval, its events, Checkpoint
// and Save. It reports the
// head (watermark, windows, funnel) and new segment sizes, the dedup state
// retained over the horizon and its bytes per id, the open sessions' segments,
// and the time of a checkpoint, of a save and of a restore.
func BenchmarkCheckpoint5k(b *testing.B) {
	b.Run("dir", func(b *testing.B) {
		store, err := checkpoint.NewDir(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		benchCheckpoint5k(b, store)
	})
	b.Run("mongo", func(b *testing.B) {
		c := mongotest.Client(b)
		store, err := cpmongo.New(c, mongotest.Database(b, c, "bench_"))
		if err != nil {
			b.Fatal(err)
		}
		benchCheckpoint5k(b, store)
	})
}

func benchCheckpoint5k(b *testing.B, store checkpoint.Store) {
	const rate, perSession, spacing, interval = 5000, 8, 20, 5 * time.Second
	p, err := pipeline.NewProcessor(pipeline.DefaultConfig(), "bench", 0)
	if err != nil {
		b.Fatal(err)
	}
	types := []string{"page_view", "page_view", "page_view", "add_to_cart", "purchase"}
	var m sources.Message
	n, ts := 0, processingTime.Add(-24*time.Hour).UnixMilli()
	perInterval := int(rate * interval.Seconds())
	step := func() (cp checkpoint.Checkpoint, ckpt, save time.Duration) {
		for range perInterval {
			k := n % perSession // the k-th event of the session that started k*spacing s ago
			user := n/perSession - k*spacing*rate/perSession
			e := clickstream.Event{EventID: fmt.Sprintf("b1a9e1f0-2aee-4dfb-%012x", n), EventType: types[k%len(types)],
				TS: ts + int64(n)*1000/rate, UserID: fmt.Sprintf("user-%09d", user), ProductID: "sku-1"}
			if e.EventType == "purchase" {
				e.Price, e.Currency = 10, "EUR"
			}
			m.Offset = int64(n)
			p.ProcessEvent(&e, &m, processingTime)
			n++
		}
		p.Updates()
		p.Reset()
		t := time.Now()
		cp, err := p.Checkpoint()
		if err != nil {
			b.Fatal(err)
		}
		ckpt = time.Since(t)
		t = time.Now()
		if err := store.Save(context.Background(), cp); err != nil {
			b.Fatal(err)
		}
		p.Saved()
		return cp, ckpt, time.Since(t)
	}
	for range int(15 * time.Minute / interval) { // past the horizon: steady state
		step()
	}
	var cp checkpoint.Checkpoint
	var ckpt, save time.Duration
	b.ReportAllocs()
	for b.Loop() {
		var c, s time.Duration
		cp, c, s = step()
		ckpt, save = ckpt+c, save+s
	}
	full, err := store.Load(context.Background(), "bench", 0)
	if err != nil {
		b.Fatal(err)
	}
	segBytes, sessBytes, newBytes := 0, 0, 0
	for _, s := range full.Segments {
		if snap.NewReader(s.Data).String() == "session-segment" {
			sessBytes += len(s.Data)
		} else {
			segBytes += len(s.Data)
		}
	}
	for _, s := range cp.Segments {
		newBytes += len(s.Data)
	}
	b.StopTimer()
	q, err := pipeline.NewProcessor(pipeline.DefaultConfig(), "bench", 0)
	if err != nil {
		b.Fatal(err)
	}
	t := time.Now()
	if err := q.Restore(full); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(time.Since(t).Milliseconds()), "restore_ms")
	retained := float64(rate) * (pipeline.DefaultConfig().WatermarkDelay.Seconds() + interval.Seconds())
	b.ReportMetric(float64(len(cp.State))/1e6, "head_MB")
	b.ReportMetric(float64(newBytes)/1e3, "new_segment_KB")
	b.ReportMetric(float64(segBytes)/1e6, "ids_users_MB") // dedup ids and the (user, window) pairs of kpi.Users
	b.ReportMetric(float64(sessBytes)/1e6, "sessions_MB")
	b.ReportMetric(float64(segBytes)/retained, "bytes/event")
	b.ReportMetric(float64(len(cp.Segments)), "segments")
	b.ReportMetric(float64(ckpt.Milliseconds())/float64(b.N), "checkpoint_ms")
	b.ReportMetric(float64(save.Milliseconds())/float64(b.N), "save_ms")
}
