package parquet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/clickstreamkit/clickstream"
	"github.com/clickstreamkit/clickstream/kpi"
	"github.com/clickstreamkit/clickstream/sinks"
)

// stream is a deterministic partition input: the accepted events (sparse
// offsets) and final minutes, each final at an offset, as a pipeline
// replaying the same messages would emit them whatever the batching.
type stream struct {
	topic     string
	partition int32
	total     int64 // offsets [0, total)
	events    []sinks.Accepted
	minutes   []finalMinute
}

type finalMinute struct {
	at int64 // the offset whose processing makes it final
	m  kpi.Minute
}

var (
	eventTypes = []string{"page_view", "page_view", "page_view", "add_to_cart", "purchase", "search"}
	currencies = []string{"EUR", "USD", "EUR", "GBP"}
	t0         = int64(1_741_953_600_000) // 2025-03-14T12:00:00Z
)

func genStream(seed uint64, topic string, partition int32, total int64) *stream {
	r := rand.New(rand.NewPCG(seed, 7))
	s := &stream{topic: topic, partition: partition, total: total}
	pick := func(xs []string) string { return xs[r.IntN(len(xs))] }
	maybe := func(v string) string {
		if r.IntN(3) == 0 {
			return ""
		}
		return v
	}
	for off := range total {
		if r.IntN(4) == 0 { // invalid, late or duplicate: no accepted event
			continue
		}
		e := clickstream.Event{
			EventID:   fmt.Sprintf("e-%d-%d", partition, off),
			EventType: pick(eventTypes),
			TS:        t0 + off*1_700 + int64(r.IntN(900)),
			UserID:    fmt.Sprintf("u%d", r.IntN(50)),
			SessionID: maybe(fmt.Sprintf("s%d", r.IntN(80))),
			Page:      maybe(fmt.Sprintf("/p/%d", r.IntN(30))),
			ProductID: maybe(fmt.Sprintf("sku-%d", r.IntN(20))),
			UTM:       clickstream.UTM{Source: maybe("google"), Medium: maybe("cpc"), Campaign: maybe("spring")},
			Device:    clickstream.Device{UA: maybe("Mozilla/5.0"), OS: maybe(pick([]string{"ios", "android", "linux"})), Mobile: r.IntN(2) == 0},
			Geo:       clickstream.Geo{Country: maybe(pick([]string{"DE", "FR", "US"})), City: maybe("Berlin")},
		}
		if e.Kind() == clickstream.KindPurchase || r.IntN(10) == 0 {
			e.Price, e.HasPrice, e.Currency = float64(r.IntN(10_000))/100, true, pick(currencies)
		}
		s.events = append(s.events, sinks.Accepted{Offset: off, Event: e})
	}
	// Minutes 7 hours apart, so that a stream spans several UTC days.
	for i, at := int64(0), int64(5); at < total; i, at = i+1, at+1+int64(r.IntN(60)) {
		m := kpi.Minute{Minute: floor(t0, 60_000) + i*7*3600_000, Final: true,
			Counts: kpi.Counts{Events: int64(r.IntN(100)), PageViews: int64(r.IntN(50)), Purchases: int64(r.IntN(5)),
				Sessions: int64(r.IntN(20)), Revenue: float64(r.IntN(100_000)) / 100, RevenuePurchases: int64(r.IntN(5))},
			RevenueByCurrency: map[string]float64{"EUR": float64(r.IntN(1000)) / 10, "USD": 1.5},
			TopProducts:       []kpi.Product{{ProductID: "sku-1", Views: 3, Purchases: 1, Revenue: 9.99}},
		}
		if i%3 != 0 {
			for range 20 {
				m.Latency.Add(float64(r.IntN(500)))
			}
		}
		s.minutes = append(s.minutes, finalMinute{at: at, m: m})
	}
	return s
}

// batch returns the batch covering [first, next) as a pipeline would emit
// it, with running updates mixed in (they must not be archived).
func (s *stream) batch(first, next int64, end bool) *sinks.Batch {
	b := &sinks.Batch{Topic: s.topic, Partition: s.partition, FirstOffset: first, NextOffset: next, End: end}
	for _, a := range s.events {
		if a.Offset >= first && a.Offset < next {
			b.Events = append(b.Events, a)
		}
	}
	for _, f := range s.minutes {
		if f.at >= first && f.at < next {
			upd := f.m
			upd.Final, upd.Events = false, upd.Events/2
			b.KPIs = append(b.KPIs, upd, f.m)
		}
	}
	return b
}

// run writes [from, to) in batches ending at cuts (and to), End on the last
// when end.
func (s *stream) run(t testing.TB, sink *Sink, from, to int64, cuts []int64, end bool) {
	t.Helper()
	for _, c := range append(slices.Clone(cuts), to) {
		if c <= from && !(c == to && end) {
			continue
		}
		if err := sink.Write(context.Background(), s.batch(from, c, end && c == to)); err != nil {
			t.Fatalf("write [%d, %d): %v", from, c, err)
		}
		from = c
	}
}

func newSink(t testing.TB, dir string, opts ...Option) *Sink {
	t.Helper()
	s, err := New(dir, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// files returns the Parquet files under dir by relative path.
func files(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".parquet") {
			return err
		}
		b, err := os.ReadFile(path)
		rel, _ := filepath.Rel(dir, path)
		out[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func cleanRun(t testing.TB, s *stream, chunk int64) string {
	t.Helper()
	dir := t.TempDir()
	sink := newSink(t, dir, WithChunkSize(chunk))
	s.run(t, sink, 0, s.total, nil, true)
	if err := sink.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	return dir
}

// sameFiles checks that dirs hold the same Parquet files, byte for byte.
func sameFiles(t testing.TB, want, got string) {
	t.Helper()
	w, g := files(t, want), files(t, got)
	if !reflect.DeepEqual(slices.Sorted(mapsKeys(w)), slices.Sorted(mapsKeys(g))) {
		t.Fatalf("files differ:\nwant %v\ngot  %v", slices.Sorted(mapsKeys(w)), slices.Sorted(mapsKeys(g)))
	}
	for name := range w {
		if !bytes.Equal(w[name], g[name]) {
			t.Errorf("%s: bytes differ (%d vs %d bytes)", name, len(w[name]), len(g[name]))
		}
	}
	sameRows(t, want, got)
}

func sameRows(t testing.TB, want, got string) {
	t.Helper()
	we, err := ReadEvents(want)
	if err != nil {
		t.Fatal(err)
	}
	ge, err := ReadEvents(got)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(we, ge) {
		t.Errorf("events differ: %d vs %d rows", len(we), len(ge))
	}
	wk, err := ReadKPIs(want)
	if err != nil {
		t.Fatal(err)
	}
	gk, err := ReadKPIs(got)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(wk, gk) {
		t.Errorf("KPIs differ: %d vs %d rows", len(wk), len(gk))
	}
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// checkArchive checks that dir holds exactly the stream's accepted events
// and final minutes, each once.
func checkArchive(t testing.TB, dir string, streams ...*stream) {
	t.Helper()
	var wantEv []Row
	var wantK []KPIRow
	for _, s := range streams {
		for _, a := range s.events {
			wantEv = append(wantEv, Row{Topic: s.topic, Partition: s.partition, Offset: a.Offset, Event: a.Event})
		}
		for _, f := range s.minutes {
			wantK = append(wantK, newKPIRow(s.topic, s.partition, &f.m))
		}
	}
	gotEv, err := ReadEvents(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(gotEv) != len(wantEv) {
		t.Fatalf("read %d events, want %d", len(gotEv), len(wantEv))
	}
	for i := range wantEv {
		if !reflect.DeepEqual(gotEv[i], wantEv[i]) {
			t.Fatalf("event %d:\ngot  %+v\nwant %+v", i, gotEv[i], wantEv[i])
		}
	}
	gotK, err := ReadKPIs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(gotK) != len(wantK) {
		t.Fatalf("read %d minutes, want %d", len(gotK), len(wantK))
	}
	for i := range wantK {
		if !reflect.DeepEqual(gotK[i], wantK[i]) {
			t.Fatalf("minute %d:\ngot  %+v\nwant %+v", i, gotK[i], wantK[i])
		}
	}
}

func TestWriteReadBack(t *testing.T) {
	dir := t.TempDir()
	sink := newSink(t, dir, WithChunkSize(100))
	a := genStream(1, "clicks", 0, 1000)
	b := genStream(2, "odd/topic name", 3, 450)
	a.run(t, sink, 0, 1000, []int64{17, 120, 121, 350, 399, 400, 777}, true)
	b.run(t, sink, 0, 450, []int64{50, 260}, true)
	if err := sink.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(context.Background()); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	checkArchive(t, dir, a, b)

	var names []string
	for name := range files(t, dir) {
		if strings.HasPrefix(name, "events/topic=odd%2Ftopic%20name/") {
			names = append(names, strings.TrimPrefix(name, "events/topic=odd%2Ftopic%20name/"))
		}
	}
	slices.Sort(names)
	want := []string{
		"partition=3/00000000000000000000-00000000000000000100.parquet",
		"partition=3/00000000000000000100-00000000000000000200.parquet",
		"partition=3/00000000000000000200-00000000000000000300.parquet",
		"partition=3/00000000000000000300-00000000000000000400.parquet",
		"partition=3/00000000000000000400-00000000000000000450.parquet", // the tail ends with the input
	}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("files:\n%s\nwant\n%s", strings.Join(names, "\n"), strings.Join(want, "\n"))
	}
	days := 0
	for name := range files(t, dir) {
		if strings.HasPrefix(name, "kpis/topic=clicks/partition=0/2025-") {
			days++
		}
	}
	if last := a.minutes[len(a.minutes)-1].m.Minute; days != int((floor(last, dayMs)-floor(t0, dayMs))/dayMs+1) {
		t.Errorf("%d KPI files for %d minutes, want one per UTC day", days, len(a.minutes))
	}
}

// One Write of several partitions' rounds writes them in parallel, each
// partition's batches in order; a bad batch of one partition fails the
// call, and the other partitions' batches of the call are written.
func TestWriteRoundsOfPartitions(t *testing.T) {
	dir := t.TempDir()
	sink := newSink(t, dir, WithChunkSize(100))
	streams := []*stream{genStream(11, "clicks", 0, 600), genStream(12, "clicks", 1, 450), genStream(13, "clicks", 2, 510)}
	cuts := []int64{0, 90, 230, 231, 400}
	for r := 1; r < len(cuts); r++ {
		var round []*sinks.Batch
		for _, s := range streams {
			half := cuts[r-1] + (cuts[r]-cuts[r-1])/2 // two batches of a partition in one call
			round = append(round, s.batch(cuts[r-1], half, false), s.batch(half, cuts[r], false))
		}
		if err := sink.Write(context.Background(), round...); err != nil {
			t.Fatalf("round %d: %v", r, err)
		}
	}
	bad := &sinks.Batch{Topic: "clicks", Partition: 1, FirstOffset: 5, NextOffset: 4}
	round := []*sinks.Batch{bad, streams[1].batch(400, 450, true)}
	for _, s := range []*stream{streams[0], streams[2]} {
		round = append(round, s.batch(400, s.total, true))
	}
	if err := sink.Write(context.Background(), round...); !errors.Is(err, ErrBadBatch) {
		t.Fatalf("a round with a bad batch: %v, want ErrBadBatch", err)
	}
	if err := sink.Write(context.Background(), streams[1].batch(400, 450, true)); err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkArchive(t, dir, streams...)
}

func TestWriteAfterClose(t *testing.T) {
	sink := newSink(t, t.TempDir())
	if err := sink.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := sink.Write(context.Background(), &sinks.Batch{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Write after Close: %v, want ErrClosed", err)
	}
}

func TestNewRejects(t *testing.T) {
	if _, err := New(""); err == nil {
		t.Error("New with no directory: no error")
	}
	if _, err := New(t.TempDir(), WithChunkSize(0)); err == nil {
		t.Error("New with chunk size 0: no error")
	}
}

func TestBadBatch(t *testing.T) {
	sink := newSink(t, t.TempDir())
	e := clickstream.Event{EventID: "a", EventType: "page_view", UserID: "u"}
	for name, b := range map[string]*sinks.Batch{
		"offsets backwards":  {FirstOffset: 5, NextOffset: 4},
		"event before first": {FirstOffset: 5, NextOffset: 10, Events: []sinks.Accepted{{Offset: 4, Event: e}}},
		"event at next":      {FirstOffset: 5, NextOffset: 10, Events: []sinks.Accepted{{Offset: 10, Event: e}}},
		"out of order":       {FirstOffset: 5, NextOffset: 10, Events: []sinks.Accepted{{Offset: 7, Event: e}, {Offset: 6, Event: e}}},
	} {
		if err := sink.Write(context.Background(), b); !errors.Is(err, ErrBadBatch) {
			t.Errorf("%s: %v, want ErrBadBatch", name, err)
		}
	}
}

// SEMANTICS §10: a batch crossing several chunk boundaries writes every
// chunk it completes; a chunk without accepted events has no file.
func TestBatchCrossesSeveralChunks(t *testing.T) {
	dir := t.TempDir()
	sink := newSink(t, dir, WithChunkSize(100))
	s := genStream(3, "t", 0, 800)
	// no accepted event in [200, 300)
	s.events = slices.DeleteFunc(s.events, func(a sinks.Accepted) bool { return a.Offset >= 200 && a.Offset < 300 })
	if err := sink.Write(context.Background(), s.batch(0, 40, false)); err != nil {
		t.Fatal(err)
	}
	if err := sink.Write(context.Background(), s.batch(40, 550, false)); err != nil {
		t.Fatal(err)
	}
	got := slices.Sorted(mapsKeys(files(t, filepath.Join(dir, DirEvents))))
	want := []string{
		"topic=t/partition=0/00000000000000000000-00000000000000000100.parquet",
		"topic=t/partition=0/00000000000000000100-00000000000000000200.parquet",
		"topic=t/partition=0/00000000000000000300-00000000000000000400.parquet",
		"topic=t/partition=0/00000000000000000400-00000000000000000500.parquet",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("files after [0, 550):\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	rows, err := ReadEvents(dir)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(rows); n == 0 || rows[n-1].Offset >= 500 {
		t.Fatalf("rows beyond the complete chunks: %d, last %+v", n, rows[n-1].Offset)
	}
	st := sink.parts[partKey{"t", 0}].events.st
	if st.start != 500 || st.n == 0 || st.last >= 550 {
		t.Fatalf("staging holds chunk %d, %d records up to %d; want chunk 500 with [500, 550)", st.start, st.n, st.last)
	}
	if err := sink.Write(context.Background(), s.batch(550, 800, true)); err != nil {
		t.Fatal(err)
	}
	checkArchive(t, dir, s)
}

// SEMANTICS §10: a crash, then a replay from an earlier offset with other
// batch boundaries, leaves the same files as a clean run.
func TestReplayAfterCrash(t *testing.T) {
	s := genStream(4, "clicks", 2, 1000)
	want := cleanRun(t, s, 100)

	dir := t.TempDir()
	first := newSink(t, dir, WithChunkSize(100))
	s.run(t, first, 0, 1000, []int64{130, 260, 333, 480, 620, 777, 910}, false)
	// crash: the sink is dropped without Close, its files stay as they are
	replay := newSink(t, dir, WithChunkSize(100))
	s.run(t, replay, 300, 1000, []int64{305, 399, 401, 650, 999}, true)
	if err := replay.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	sameFiles(t, want, dir)
	checkArchive(t, dir, s)
}

// The replay starts in a chunk whose file was already written: the chunk is
// reopened from its file.
func TestReplayReopensWrittenChunk(t *testing.T) {
	s := genStream(5, "clicks", 0, 600)
	want := cleanRun(t, s, 100)

	dir := t.TempDir()
	first := newSink(t, dir, WithChunkSize(100))
	s.run(t, first, 0, 600, []int64{90, 250, 420}, false) // wrote chunks up to 400, staged [400, 420)
	replay := newSink(t, dir, WithChunkSize(100))
	s.run(t, replay, 120, 600, []int64{150, 190, 333}, true) // back into chunk 100
	sameFiles(t, want, dir)
}

// A write failing at any point (as a crash there would), then the retry of
// the same batch or a replay from before it, leaves the clean run's files.
func TestFaultPoints(t *testing.T) {
	s := genStream(6, "clicks", 0, 700)
	want := cleanRun(t, s, 100)
	for _, point := range []string{"events-complete", "events-staged", "kpis-complete"} {
		for _, replayFrom := range []int64{180, 250} {
			t.Run(fmt.Sprintf("%s/from%d", point, replayFrom), func(t *testing.T) {
				t.Parallel()
				dir := t.TempDir()
				sink := newSink(t, dir, WithChunkSize(100))
				s.run(t, sink, 0, 250, []int64{180}, false)
				sink.fault = func(p string) error {
					if p == point {
						return errors.New("injected crash at " + p)
					}
					return nil
				}
				if err := sink.Write(context.Background(), s.batch(250, 640, false)); err == nil {
					t.Fatalf("no failure injected at %s", point)
				}
				// the same sink retries, then crashes before its checkpoint
				sink.fault = nil
				if err := sink.Write(context.Background(), s.batch(250, 640, false)); err != nil {
					t.Fatal(err)
				}
				replay := newSink(t, dir, WithChunkSize(100))
				s.run(t, replay, replayFrom, 700, []int64{600}, true)
				sameFiles(t, want, dir)
			})
		}
	}
}

// A crash during a staging append leaves a torn record: it is dropped on
// reopening, and the replay writes it again.
func TestTornStaging(t *testing.T) {
	s := genStream(7, "clicks", 0, 500)
	want := cleanRun(t, s, 1000)

	for _, cut := range []int{1, 3, 9, 30} {
		t.Run(fmt.Sprint(cut), func(t *testing.T) {
			dir := t.TempDir()
			sink := newSink(t, dir, WithChunkSize(1000))
			s.run(t, sink, 0, 300, []int64{100, 200}, false)
			path := filepath.Join(sink.parts[partKey{"clicks", 0}].events.st.path)
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			// the last write [200, 300) never finished its fsync
			if err := os.Truncate(path, fi.Size()-int64(cut)); err != nil {
				t.Fatal(err)
			}
			replay := newSink(t, dir, WithChunkSize(1000))
			s.run(t, replay, 200, 500, []int64{250}, true)
			sameFiles(t, want, dir)
		})
	}
	t.Run("garbage", func(t *testing.T) {
		dir := t.TempDir()
		sink := newSink(t, dir, WithChunkSize(1000))
		s.run(t, sink, 0, 300, []int64{100, 200}, false)
		path := sink.parts[partKey{"clicks", 0}].events.st.path
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.Write([]byte{200, 0, 0, 0, 1, 2, 3}) // a frame header promising more than follows
		f.Close()
		replay := newSink(t, dir, WithChunkSize(1000))
		s.run(t, replay, 300, 500, nil, true)
		sameFiles(t, want, dir)
	})
}

// SEMANTICS §6, §10: final minutes go to one file per partition and UTC day.
// A replay that writes a day's file again with the same minutes keeps it (a
// new latency_ms_p95, which is not deterministic, included); one with other
// minutes fails with a permanent ErrConflict and leaves the file alone.
func TestKPIDaysNeverOverwritten(t *testing.T) {
	dir := t.TempDir()
	sink := newSink(t, dir)
	day := floor(t0, dayMs)
	minute := func(d, m int64, events int64, latency ...float64) kpi.Minute {
		km := kpi.Minute{Minute: day + d*dayMs + m*60_000, Final: true, Counts: kpi.Counts{Events: events, Sessions: 2, Purchases: 1}}
		for _, l := range latency {
			km.Latency.Add(l)
		}
		return km
	}
	write := func(first, next int64, ms ...kpi.Minute) error {
		t.Helper()
		return sink.Write(context.Background(), &sinks.Batch{Topic: "t", FirstOffset: first, NextOffset: next, KPIs: ms})
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(write(0, 10, minute(0, 1, 5), minute(0, 2, 6)))
	must(write(10, 20, minute(0, 3, 7, 40), minute(1, 0, 1))) // day 0 complete
	must(write(20, 30, minute(1, 5, 2), minute(2, 9, 3)))     // day 1 complete
	before := files(t, dir)
	if got, want := slices.Sorted(mapsKeys(before)), []string{"kpis/topic=t/partition=0/2025-03-14.parquet", "kpis/topic=t/partition=0/2025-03-15.parquet"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("files %v, want %v", got, want)
	}

	// crash; the replay from offset 10 emits the same minutes, minute 3
	// with another latency: the files stay
	sink = newSink(t, dir)
	must(write(10, 25, minute(0, 3, 7, 900), minute(1, 0, 1), minute(1, 5, 2)))
	must(write(25, 30, minute(2, 9, 3)))
	if after := files(t, dir); !reflect.DeepEqual(after, before) {
		t.Fatal("a replay of the same minutes changed the files")
	}

	// crash; a replay with another count for minute 3 of day 0
	sink = newSink(t, dir)
	err := write(10, 25, minute(0, 3, 70), minute(1, 0, 1), minute(1, 5, 2))
	if !errors.Is(err, ErrConflict) || !errors.Is(err, clickstream.ErrPermanent) || !strings.Contains(err.Error(), "2025-03-14.parquet") {
		t.Fatalf("replay with other minutes: %v, want a permanent ErrConflict naming the file", err)
	}
	if after := files(t, dir); !reflect.DeepEqual(after, before) {
		t.Fatal("a conflicting replay changed the files")
	}
	rows, err := ReadKPIs(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rows {
		got = append(got, fmt.Sprintf("%s=%d", clickstream.FormatTime(r.Minute), r.Events))
	}
	want := []string{"2025-03-14T00:01:00.000Z=5", "2025-03-14T00:02:00.000Z=6", "2025-03-14T00:03:00.000Z=7",
		"2025-03-15T00:00:00.000Z=1", "2025-03-15T00:05:00.000Z=2"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("minutes\n%v\nwant\n%v", got, want)
	}
	if r := rows[0]; r.ConversionRate != 0.5 || r.RevenueByCurrency == nil || r.TopProducts == nil || r.LatencyMsP95 != nil {
		t.Errorf("row %+v: want conversion 0.5, empty currency map and products, no latency", r)
	}
	if r := rows[2]; r.LatencyMsP95 == nil || *r.LatencyMsP95 > 41 {
		t.Errorf("minute 3's latency %v: want the first run's 40", r.LatencyMsP95)
	}
}

// A day written at the end of an input is named by its last minute, so a
// longer input later writes the day under another name and removes it.
func TestKPIPartialDayNamed(t *testing.T) {
	dir := t.TempDir()
	sink := newSink(t, dir)
	m := func(min int64) kpi.Minute {
		return kpi.Minute{Minute: t0 + min*60_000, Final: true, Counts: kpi.Counts{Events: 1}}
	}
	if err := sink.Write(context.Background(), &sinks.Batch{Topic: "t", FirstOffset: 0, NextOffset: 5, End: true, KPIs: []kpi.Minute{m(0)}}); err != nil {
		t.Fatal(err)
	}
	first := slices.Sorted(mapsKeys(files(t, dir)))
	if err := sink.Write(context.Background(), &sinks.Batch{Topic: "t", FirstOffset: 5, NextOffset: 9, End: true, KPIs: []kpi.Minute{m(2)}}); err != nil {
		t.Fatal(err)
	}
	second := slices.Sorted(mapsKeys(files(t, dir)))
	day := "kpis/topic=t/partition=0/" + time.UnixMilli(t0).UTC().Format(time.DateOnly)
	want1 := []string{day + time.UnixMilli(t0).UTC().Format("T150405.000Z") + ".parquet"}
	want2 := []string{day + time.UnixMilli(t0+120_000).UTC().Format("T150405.000Z") + ".parquet"}
	if !reflect.DeepEqual(first, want1) || !reflect.DeepEqual(second, want2) {
		t.Fatalf("files %v then %v, want %v then %v", first, second, want1, want2)
	}
}

// SEMANTICS §10: an events file is never replaced by other content: a
// replay that accepts other events than the first run (a clock-dependent
// check, say) fails with a permanent ErrConflict and the file stays; a replay
// of the same events rewrites nothing.
func TestEventsNeverOverwritten(t *testing.T) {
	s := genStream(9, "t", 0, 600)
	other := genStream(9, "t", 0, 600)
	other.events = slices.DeleteFunc(other.events, func(a sinks.Accepted) bool { return a.Offset%7 == 0 })

	dir := t.TempDir()
	sink := newSink(t, dir, WithChunkSize(100))
	s.run(t, sink, 0, 350, []int64{50}, false)
	before := files(t, dir)
	s.run(t, newSink(t, dir, WithChunkSize(100)), 0, 350, []int64{120}, false)
	if after := files(t, dir); !reflect.DeepEqual(after, before) {
		t.Fatal("a replay of the same events changed the files")
	}

	err := newSink(t, dir, WithChunkSize(100)).Write(context.Background(), other.batch(0, 150, false))
	if !errors.Is(err, ErrConflict) || !errors.Is(err, clickstream.ErrPermanent) ||
		!strings.Contains(err.Error(), "00000000000000000000-00000000000000000100.parquet") {
		t.Fatalf("replay with other events: %v, want a permanent ErrConflict naming the file", err)
	}
	if after := files(t, dir); !reflect.DeepEqual(after, before) {
		t.Fatal("a conflicting replay changed the files")
	}
}

// A batch of only running updates writes nothing.
func TestUpdatesIgnored(t *testing.T) {
	dir := t.TempDir()
	sink := newSink(t, dir)
	b := &sinks.Batch{Topic: "t", FirstOffset: 0, NextOffset: 5, End: true,
		KPIs: []kpi.Minute{{Minute: t0, Counts: kpi.Counts{Events: 3}}}}
	if err := sink.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if f := files(t, dir); len(f) != 0 {
		t.Fatalf("files %v, want none", slices.Sorted(mapsKeys(f)))
	}
}

// A finite input that grows: the end-of-input file of the open chunk is
// replaced by the complete chunk's file, never kept beside it.
func TestTailReplacedWhenInputGrows(t *testing.T) {
	s := genStream(8, "t", 0, 300)
	want := cleanRun(t, s, 100)
	dir := t.TempDir()
	sink := newSink(t, dir, WithChunkSize(100))
	s.run(t, sink, 0, 150, nil, true)
	if _, ok := files(t, dir)["events/topic=t/partition=0/00000000000000000100-00000000000000000150.parquet"]; !ok {
		t.Fatal("no tail file at the end of the first input")
	}
	sink = newSink(t, dir, WithChunkSize(100))
	s.run(t, sink, 150, 300, []int64{220}, true)
	sameFiles(t, want, dir)
}

// Property: random batch boundaries, crashes at random points (before or
// after a write, inside one, with a torn staging file) and replays from the
// last checkpoint leave the same files, byte for byte, as a clean run.
func TestRandomCrashesMatchCleanRun(t *testing.T) {
	for seed := range uint64(25) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			r := rand.New(rand.NewPCG(seed, 99))
			total := int64(300 + r.IntN(900))
			chunk := int64(20 + r.IntN(200))
			s := genStream(seed, "clicks", int32(seed%3), total)
			want := cleanRun(t, s, chunk)

			dir := t.TempDir()
			sink := newSink(t, dir, WithChunkSize(chunk))
			ckpt, crashes := int64(0), 0
			crash := func() {
				sink = newSink(t, dir, WithChunkSize(chunk))
				crashes++
			}
			for done := false; !done; {
				next := min(ckpt+1+int64(r.IntN(int(chunk)*2)), total)
				b := s.batch(ckpt, next, next == total)
				switch mode := r.IntN(10); {
				case mode == 0 && crashes < 8: // a write fails at one of its steps
					point := []string{"events-complete", "events-staged", "kpis-complete"}[r.IntN(3)]
					sink.fault = func(p string) error {
						if p == point {
							return errors.New("crash")
						}
						return nil
					}
					sink.Write(context.Background(), b)
					crash()
				case mode == 1 && crashes < 8: // durable write, no checkpoint
					if err := sink.Write(context.Background(), b); err != nil {
						t.Fatal(err)
					}
					crash()
				case mode == 2 && crashes < 8: // torn staging append
					// (only an append can tear: a new staging file is renamed
					// into place once complete)
					path := filepath.Join(sink.partDir(DirEvents, partKey{s.topic, s.partition}), stagingName)
					before, _ := os.Stat(path)
					appends := before != nil && floor(ckpt, chunk) == floor(next, chunk)
					if p := sink.parts[partKey{s.topic, s.partition}]; p == nil || p.events.st == nil || p.events.st.start != floor(ckpt, chunk) {
						appends = false
					}
					if err := sink.Write(context.Background(), b); err != nil {
						t.Fatal(err)
					}
					if after, err := os.Stat(path); appends && err == nil && after.Size() > before.Size() {
						os.Truncate(path, before.Size()+r.Int64N(after.Size()-before.Size()))
					}
					crash()
				default:
					if err := sink.Write(context.Background(), b); err != nil {
						t.Fatal(err)
					}
					ckpt, done = next, next == total
				}
			}
			if err := sink.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			sameFiles(t, want, dir)
			checkArchive(t, dir, s)
		})
	}
}

// Two processes sharing the directory own a partition in turn (a
// rebalance): each notices the other's writes and the files stay those of a
// clean run.
func TestOwnershipMovesBetweenSinks(t *testing.T) {
	s := genStream(10, "t", 0, 900)
	want := cleanRun(t, s, 100)
	dir := t.TempDir()
	a := newSink(t, dir, WithChunkSize(100))
	b := newSink(t, dir, WithChunkSize(100))
	s.run(t, a, 0, 250, []int64{120}, false)
	s.run(t, b, 250, 480, []int64{260}, false) // b takes the partition over
	s.run(t, a, 480, 700, nil, false)          // and a gets it back
	s.run(t, b, 600, 900, nil, true)           // b replays from an older commit
	sameFiles(t, want, dir)
}

func TestChunkSizeKept(t *testing.T) {
	dir := t.TempDir()
	s := genStream(12, "t", 0, 300)
	s.run(t, newSink(t, dir, WithChunkSize(100)), 0, 250, nil, false)
	other := newSink(t, dir, WithChunkSize(64))
	if err := other.Write(context.Background(), s.batch(250, 300, true)); err == nil {
		t.Fatal("a sink with another chunk size wrote into the directory")
	}
}

// The staged chunk's Parquet file grows with each staged batch, so that
// completing the chunk only ends it; a replay that cuts staged records
// drops it, the chunk's file is then written whole, and either way the
// files are a clean run's. Close leaves no temporary file.
func TestGrowingChunkFile(t *testing.T) {
	const chunk = 100
	s := genStream(3, "clicks", 0, 450)
	want := cleanRun(t, s, chunk)
	dir := t.TempDir()
	sink := newSink(t, dir, WithChunkSize(chunk))
	k := partKey{s.topic, s.partition}
	growing := func() (start int64, rows int) {
		l := sink.parts[k].events
		if l.growing == nil {
			return -1, 0
		}
		if l.growing.rows != l.st.n {
			t.Fatalf("growing file holds %d rows, the staging file %d", l.growing.rows, l.st.n)
		}
		return l.st.start, l.growing.rows
	}
	write := func(first, next int64) {
		t.Helper()
		if err := sink.Write(context.Background(), s.batch(first, next, false)); err != nil {
			t.Fatal(err)
		}
	}
	write(0, 40)
	write(40, 90)
	if start, rows := growing(); start != 0 || rows == 0 {
		t.Fatalf("growing chunk %d with %d rows after [0, 90), want chunk 0 with its events", start, rows)
	}
	write(90, 130) // completes chunk 0 from the growing file
	if start, _ := growing(); start != 100 {
		t.Fatalf("growing chunk %d after [90, 130), want 100", start)
	}
	write(120, 170) // a replay from 120 cuts what was staged from there
	if start, _ := growing(); start != -1 {
		t.Fatalf("growing chunk %d after a replay cut the staged records, want none", start)
	}
	write(170, 210) // completes chunk 100 from the staging file
	if start, _ := growing(); start != 200 {
		t.Fatalf("growing chunk %d after [170, 210), want 200", start)
	}
	s.run(t, sink, 210, s.total, []int64{260, 330, 390}, true)
	if err := sink.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	sameFiles(t, want, dir)
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && strings.Contains(d.Name(), ".tmp-") {
			t.Errorf("left behind: %s", path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}
