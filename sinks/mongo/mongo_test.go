package mongo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"reflect"
	"slices"
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
	"github.com/clickstreamkit/clickstream/session"
	"github.com/clickstreamkit/clickstream/sinks"
	"github.com/clickstreamkit/clickstream/sinks/sinktest"
	"github.com/clickstreamkit/clickstream/window"
)

func testClient(t *testing.T) *mongo.Client { return mongotest.Client(t) }

// monitoredClient connects to MONGODB_URI, calling started with every
// command sent, or skips the test without it.
func monitoredClient(t *testing.T, started func(*event.CommandStartedEvent)) *mongo.Client {
	t.Helper()
	uri := os.Getenv("MONGODB_URI")
	if uri == "" {
		t.Skip("MONGODB_URI not set: skipping MongoDB integration test (run `bash scripts/services.sh up` and set MONGODB_URI=mongodb://127.0.0.1:27018/)")
	}
	monitor := &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) { started(e) }}
	c, err := mongo.Connect(options.Client().ApplyURI(uri).SetServerSelectionTimeout(10 * time.Second).
		SetTimeout(60 * time.Second).SetMonitor(monitor))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Disconnect(context.Background()) })
	return c
}

// statements returns how many statements a write command carries: they
// travel in a document sequence, which the event shows as an array.
func statements(e *event.CommandStartedEvent, field string) int {
	arr, ok := e.Command.Lookup(field).ArrayOK()
	if !ok {
		return 0
	}
	vals, _ := arr.Values()
	return len(vals)
}

// newTestSink returns a sink on a fresh database, dropped when the test ends.
func newTestSink(t *testing.T, c *mongo.Client, opts ...Option) *Sink {
	t.Helper()
	s, err := New(c, mongotest.Database(t, c, "cs_test_sink_"), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// readBack returns every partial the sink holds, per partition.
func (s *Sink) readBack(ctx context.Context) (sinktest.Snapshot, error) {
	var snap sinktest.Snapshot
	kpis, err := findAll[kpiDoc](ctx, s.kpis, bson.D{})
	if err != nil {
		return snap, err
	}
	progress, err := findAll[progressDoc](ctx, s.progress, bson.D{})
	if err != nil {
		return snap, err
	}
	// a running record of the progress documents stands where no final
	// document of its key is (over a running one of an earlier version)
	type key struct {
		part
		minute int64
	}
	finalKPIs := map[key]bool{}
	for i := range kpis {
		d := &kpis[i]
		if k := (key{part{d.Topic, d.Partition}, int64(d.Minute)}); d.Final {
			finalKPIs[k] = true
		} else if runningKPIOf(progress, k.part, k.minute) {
			continue
		}
		snap.KPIs = append(snap.KPIs, sinktest.KPI{Topic: d.Topic, Partition: d.Partition, Minute: d.minute()})
	}
	sess, err := findAll[sessionDoc](ctx, s.sessions, bson.D{})
	if err != nil {
		return snap, err
	}
	for i := range sess {
		snap.Sessions = append(snap.Sessions, sinktest.Session{Topic: sess[i].Topic, Partition: sess[i].Partition, Record: sess[i].record()})
	}
	fun, err := findAll[funnelDoc](ctx, s.funnel, bson.D{})
	if err != nil {
		return snap, err
	}
	for i := range fun {
		snap.Funnel = append(snap.Funnel, sinktest.Funnel{Topic: fun[i].Topic, Partition: fun[i].Partition, Record: fun[i].record()})
	}
	for i := range progress {
		d := &progress[i]
		p := part{d.Topic, d.Partition}
		for _, w := range d.RunningKPIs {
			if !finalKPIs[key{p, int64(w.Minute)}] {
				snap.KPIs = append(snap.KPIs, sinktest.KPI{Topic: d.Topic, Partition: d.Partition, Minute: w.Values.minute(int64(w.Minute), false)})
			}
		}
	}
	return snap, nil
}

// runningKPIOf reports whether a progress document holds a running window
// of p starting at minute.
func runningKPIOf(progress []progressDoc, p part, minute int64) bool {
	for i := range progress {
		if d := &progress[i]; d.Topic == p.topic && d.Partition == p.partition {
			_, ok := d.RunningKPIs[runningKey(minute)]
			return ok
		}
	}
	return false
}

func TestConformance(t *testing.T) {
	c := testClient(t)
	sinktest.Run(t, func(t *testing.T) sinktest.Target {
		s := newTestSink(t, c)
		return sinktest.Target{Sink: s, Read: s.readBack, PerPartition: true}
	})
}

func write(t *testing.T, s *Sink, bs ...*sinks.Batch) {
	t.Helper()
	for _, b := range bs {
		if err := s.Write(t.Context(), b); err != nil {
			t.Fatalf("Write(%s/%d): %v", b.Topic, b.Partition, err)
		}
	}
}

var t0 = time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)

func minuteAt(i int) int64 { return t0.Add(time.Duration(i) * time.Minute).UnixMilli() }

type part struct {
	topic     string
	partition int32
}

// Parts in (topic, partition) order: the order the queries merge in.
var parts = []part{{"clicks", 0}, {"clicks", 1}, {"clicks", 2}, {"views", 0}}

// done is a progress past every window and funnel minute.
func done(partitions int32) sinks.Progress {
	return sinks.Progress{Partitions: partitions, Watermark: window.PosInf, FunnelBefore: window.PosInf}
}

// at is a progress with the watermark and the funnel's bound at t.
func at(partitions int32, t int64) sinks.Progress {
	return sinks.Progress{Partitions: partitions, Watermark: t, FunnelBefore: t}
}

func TestMergedMinutes(t *testing.T) {
	s := newTestSink(t, testClient(t))
	byMinute := map[int64][]kpi.Minute{}
	// Written in an order other than the merge order.
	for pi := len(parts) - 1; pi >= 0; pi-- {
		p := parts[pi]
		b := &sinks.Batch{Topic: p.topic, Partition: p.partition, NextOffset: 100,
			Progress: at(map[string]int32{"clicks": 3, "views": 1}[p.topic], minuteAt(4))}
		for i := range 4 {
			if i == 3 && pi == 1 {
				continue // a minute some partitions have no events in
			}
			final := !(i == 2 && pi == 2) // one partition still running in minute 2
			w := sinktest.Window(minuteAt(i), 10*i+pi, final)
			b.KPIs = append(b.KPIs, w)
			byMinute[w.Minute] = append([]kpi.Minute{w}, byMinute[w.Minute]...)
		}
		if pi == 2 {
			b.Progress.Watermark = minuteAt(2) + 30_000
		}
		write(t, s, b)
	}
	var want []sinks.MergedMinute
	for i := range 4 {
		m := sinks.MergedMinute{Minute: kpi.Merge(byMinute[minuteAt(i)]...), Completeness: sinks.Completeness{PartitionsComplete: 4, PartitionsTotal: 4}}
		if i >= 2 { // clicks/2 has not passed minutes 2 and 3
			m.Final, m.PartitionsComplete = false, 3
		}
		want = append(want, m)
	}
	if !want[0].Final || !kpi.Merge(byMinute[minuteAt(3)]...).Final {
		t.Fatal("test data: minutes 0 and 3 should merge final partials")
	}
	got, err := s.Minutes(t.Context(), t0, t0.Add(4*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	expectMinutes(t, "Minutes", got, want)

	got, err = s.Minutes(t.Context(), t0.Add(time.Minute), t0.Add(3*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	expectMinutes(t, "Minutes of [1, 3)", got, want[1:3])

	for n, w := range map[int][]sinks.MergedMinute{0: nil, 1: want[3:], 2: want[2:], 10: want} {
		got, err := s.LatestMinutes(t.Context(), n)
		if err != nil {
			t.Fatal(err)
		}
		expectMinutes(t, "LatestMinutes", got, w)
	}

	// The records the read API serves are those of sinks.NewKPIRecord, with
	// the completeness.
	got, err = s.Minutes(t.Context(), t0, t0.Add(4*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	recs := sinks.GlobalKPIRecords(got)
	for i := range want {
		wr := sinks.GlobalKPIRecord{KPIRecord: sinks.NewKPIRecord(&want[i].Minute), Completeness: want[i].Completeness}
		if !reflect.DeepEqual(recs[i], wr) {
			t.Errorf("KPIRecords[%d] = %+v, want %+v", i, recs[i], wr)
		}
	}
	js, err := json.Marshal(recs[3])
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	if err := json.Unmarshal(js, &fields); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"minute", "final", "events", "page_views", "add_to_carts", "purchases", "sessions",
		"revenue", "revenue_purchases", "revenue_by_currency", "conversion_rate", "aov", "top_products", "latency_ms_p95",
		"partitions_complete", "partitions_total"} {
		if _, ok := fields[f]; !ok {
			t.Errorf("KPI record lacks %q: %s", f, js)
		}
	}
	if fields["final"] != false || fields["partitions_complete"] != 3.0 || fields["partitions_total"] != 4.0 {
		t.Errorf("KPI record of minute 3: final %v, %v of %v partitions; want false, 3 of 4: %s",
			fields["final"], fields["partitions_complete"], fields["partitions_total"], js)
	}
}

func expectMinutes(t *testing.T, what string, got, want []sinks.MergedMinute) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d minutes, want %d", what, len(got), len(want))
	}
	for i := range want {
		if !reflect.DeepEqual(got[i], want[i]) {
			gj, _ := json.Marshal(sinks.GlobalKPIRecords(got[i : i+1]))
			wj, _ := json.Marshal(sinks.GlobalKPIRecords(want[i : i+1]))
			t.Fatalf("%s: minute %d:\n got %s\nwant %s", what, i, gj, wj)
		}
	}
}

// merged is the merge of parts with the given completeness, final when
// complete.
func merged(complete, total int, parts ...kpi.Minute) sinks.MergedMinute {
	m := sinks.MergedMinute{Minute: kpi.Merge(parts...), Completeness: sinks.Completeness{PartitionsComplete: complete, PartitionsTotal: total}}
	m.Final = m.Final && complete == total
	return m
}

// SEMANTICS §11: a merged window is final only when every partition of the
// topic has passed it, not just those that wrote it. Of a 4-partition topic,
// partition 2 has no event in minute 0 but its watermark passed it, so it
// counts; partition 3 lags (first unread, then behind): the minute stays
// provisional until it catches up, then shows the exact merged finals.
func TestLaggingPartition(t *testing.T) {
	s := newTestSink(t, testClient(t))
	m0 := minuteAt(0)
	finals := []kpi.Minute{sinktest.Window(m0, 1, true), sinktest.Window(m0, 2, true), sinktest.Window(m0, 4, true)}
	fun := []funnel.Record{sinktest.FunnelRecord(m0, 1), sinktest.FunnelRecord(m0, 2), sinktest.FunnelRecord(m0, 4)}
	write(t, s,
		&sinks.Batch{Topic: "clicks", Partition: 0, KPIs: finals[:1], Funnel: fun[:1], Progress: at(4, minuteAt(2))},
		&sinks.Batch{Topic: "clicks", Partition: 1, KPIs: finals[1:2], Funnel: fun[1:2], Progress: at(4, minuteAt(2))},
		&sinks.Batch{Topic: "clicks", Partition: 2, Progress: at(4, minuteAt(2))}, // no events in minute 0
	)
	check := func(what string, wantKPI sinks.MergedMinute, wantFunnel sinks.MergedFunnel) {
		t.Helper()
		got, err := s.Minutes(t.Context(), t0, t0.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		expectMinutes(t, what+": Minutes", got, []sinks.MergedMinute{wantKPI})
		if got, err = s.LatestMinutes(t.Context(), 5); err != nil {
			t.Fatal(err)
		}
		expectMinutes(t, what+": LatestMinutes", got, []sinks.MergedMinute{wantKPI})
		gotF, err := s.Funnel(t.Context(), t0, t0.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(gotF, []sinks.MergedFunnel{wantFunnel}) {
			t.Fatalf("%s: Funnel = %+v, want %+v", what, gotF, wantFunnel)
		}
	}
	provisional := mergedFunnel(sinks.Completeness{PartitionsComplete: 3, PartitionsTotal: 4}, fun[:2]...)
	check("partition 3 not read yet", merged(3, 4, finals[:2]...), provisional)

	running := sinktest.Window(m0, 9, false)
	write(t, s, &sinks.Batch{Topic: "clicks", Partition: 3, KPIs: []kpi.Minute{running},
		Funnel: []funnel.Record{sinktest.FunnelRecord(m0, 9)}, Progress: sinks.Progress{Partitions: 4, Watermark: m0 + 30_000, FunnelBefore: m0}})
	check("partition 3 behind", merged(3, 4, finals[0], finals[1], running),
		mergedFunnel(sinks.Completeness{PartitionsComplete: 3, PartitionsTotal: 4}, fun[0], fun[1], sinktest.FunnelRecord(m0, 9)))

	// Watermark at the window's end: passed. The funnel minute is final once
	// the bound is above it.
	write(t, s, &sinks.Batch{Topic: "clicks", Partition: 3, KPIs: finals[2:], Funnel: fun[2:],
		Progress: sinks.Progress{Partitions: 4, Watermark: minuteAt(1), FunnelBefore: m0 + 1}})
	want := sinks.MergedMinute{Minute: kpi.Merge(finals...), Completeness: sinks.Completeness{PartitionsComplete: 4, PartitionsTotal: 4}}
	if !want.Final {
		t.Fatal("test data: finals should merge final")
	}
	check("partition 3 caught up", want, mergedFunnel(sinks.Completeness{PartitionsComplete: 4, PartitionsTotal: 4}, fun...))
	recs := sinks.GlobalFunnelRecords([]sinks.MergedFunnel{mergedFunnel(sinks.Completeness{PartitionsComplete: 4, PartitionsTotal: 4}, fun[0])})
	js, err := json.Marshal(recs[0])
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	if err := json.Unmarshal(js, &fields); err != nil {
		t.Fatal(err)
	}
	for f, v := range map[string]any{"minute": "2024-05-01T10:00:00.000Z", "final": true, "partitions_complete": 4.0,
		"partitions_total": 4.0, "entered": float64(fun[0].Entered)} {
		if fields[f] != v {
			t.Errorf("funnel record %s = %v, want %v: %s", f, fields[f], v, js)
		}
	}
}

// A partition's count comes from any of its topic's progress documents,
// and a partition that wrote a window counts, progress or not.
func TestCompletenessMembers(t *testing.T) {
	s := newTestSink(t, testClient(t))
	m0 := minuteAt(0)
	write(t, s,
		&sinks.Batch{Topic: "clicks", Partition: 0, KPIs: []kpi.Minute{sinktest.Window(m0, 1, true)}, Progress: done(2)},
		&sinks.Batch{Topic: "views", Partition: 1, KPIs: []kpi.Minute{sinktest.Window(m0, 2, true)}},
	)
	if _, err := s.progress.DeleteMany(t.Context(), bson.D{{Key: "_id", Value: progressID("views", 1)}}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Minutes(t.Context(), t0, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	// clicks/0 and /1 (count 2), views/0 and /1 (views/1 wrote it): only
	// clicks/0 passed it.
	expectMinutes(t, "Minutes", got, []sinks.MergedMinute{merged(1, 4, sinktest.Window(m0, 1, true), sinktest.Window(m0, 2, true))})
}

// A replay after a crash sends older progress: the stored one keeps each
// field's maximum, whichever sink writes it. A batch without results is
// written only when it carries progress beyond what the sink published.
func TestProgressNeverBackwards(t *testing.T) {
	c := testClient(t)
	clock := t0
	s := newTestSink(t, c, WithClock(func() time.Time { return clock }))
	read := func() Progress {
		t.Helper()
		ps, err := s.Progress(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if len(ps) != 1 {
			t.Fatalf("Progress = %+v, want one partition", ps)
		}
		return ps[0]
	}
	first := &sinks.Batch{Topic: "clicks", Partition: 3, Progress: sinks.Progress{Watermark: window.NegInf, FunnelBefore: window.NegInf}}
	write(t, s, first)
	if got := read(); got.Watermark != window.NegInf || got.FunnelBefore != window.NegInf || got.Partitions != 0 ||
		got.Topic != "clicks" || got.Partition != 3 || !got.UpdatedAt.Equal(t0) {
		t.Fatalf("before any event: %+v", got)
	}
	far := sinks.Progress{Partitions: 4, Watermark: minuteAt(9), FunnelBefore: minuteAt(5)}
	clock = t0.Add(time.Minute)
	write(t, s, &sinks.Batch{Topic: "clicks", Partition: 3, KPIs: []kpi.Minute{sinktest.Window(minuteAt(8), 1, true)}, Progress: far})
	clock = t0.Add(2 * time.Minute)
	write(t, s, &sinks.Batch{Topic: "clicks", Partition: 3, Progress: far}) // nothing new: not written
	if got := read(); got.Progress != far || !got.UpdatedAt.Equal(t0.Add(time.Minute)) {
		t.Fatalf("after the same progress again: %+v, want %+v written at %v", got, far, t0.Add(time.Minute))
	}

	// The replay, through this sink and through a fresh one (a restarted
	// process), with results and without.
	s2, err := New(c, s.kpis.Database().Name())
	if err != nil {
		t.Fatal(err)
	}
	old := sinks.Progress{Partitions: 2, Watermark: minuteAt(3), FunnelBefore: minuteAt(1)}
	for _, sk := range []*Sink{s, s2} {
		write(t, sk, &sinks.Batch{Topic: "clicks", Partition: 3, KPIs: []kpi.Minute{sinktest.Window(minuteAt(2), 1, true)}, Progress: old},
			&sinks.Batch{Topic: "clicks", Partition: 3, Progress: old}, first)
		if got := read(); got.Progress != far {
			t.Fatalf("after a replay: %+v, want %+v", got.Progress, far)
		}
	}
	// One field ahead is enough to be written; the others keep their max.
	write(t, s, &sinks.Batch{Topic: "clicks", Partition: 3, Progress: sinks.Progress{Partitions: 4, Watermark: minuteAt(7), FunnelBefore: minuteAt(6)}})
	if got := read(); got.Progress != (sinks.Progress{Partitions: 4, Watermark: minuteAt(9), FunnelBefore: minuteAt(6)}) ||
		!got.UpdatedAt.Equal(t0.Add(2*time.Minute)) {
		t.Fatalf("after a funnel advance: %+v", got)
	}
	write(t, s, &sinks.Batch{Topic: "clicks", Partition: 3, End: true, Progress: done(4)})
	if got := read(); got.Progress != done(4) {
		t.Fatalf("after the end of input: %+v, want %+v", got.Progress, done(4))
	}
}

// Progress is published only once the batch's results are durable, in a
// command after theirs: a reader that sees it finds them.
func TestProgressAfterResults(t *testing.T) {
	var mu sync.Mutex
	var order []string
	c := monitoredClient(t, func(e *event.CommandStartedEvent) {
		if e.CommandName == "update" || e.CommandName == "insert" {
			mu.Lock()
			order = append(order, e.Command.Lookup(e.CommandName).StringValue())
			mu.Unlock()
		}
	})
	s := newTestSink(t, c)
	write(t, s, &sinks.Batch{Topic: "clicks", KPIs: []kpi.Minute{sinktest.Window(minuteAt(0), 1, true)},
		Sessions: []session.Record{sinktest.SessionRecord(1, 1)}, Funnel: []funnel.Record{sinktest.FunnelRecord(minuteAt(0), 1)},
		Progress: done(1)})
	mu.Lock()
	defer mu.Unlock()
	if want := []string{DefaultKPIs, DefaultSessions, DefaultFunnel, DefaultProgress}; !slices.Equal(order, want) {
		t.Fatalf("write commands on %v, want %v", order, want)
	}
}

// A running update never replaces a final window, also through the merged
// view and when it comes with other windows in a batch.
func TestFinalNeverOverwritten(t *testing.T) {
	s := newTestSink(t, testClient(t))
	m := minuteAt(0)
	final := sinktest.Window(m, 5, true)
	write(t, s, &sinks.Batch{Topic: "clicks", Partition: 0, KPIs: []kpi.Minute{sinktest.Window(m, 1, false)}},
		&sinks.Batch{Topic: "clicks", Partition: 0, KPIs: []kpi.Minute{final}, Progress: at(1, minuteAt(1))})
	var before bson.M
	if err := s.kpis.FindOne(t.Context(), bson.D{}).Decode(&before); err != nil {
		t.Fatal(err)
	}

	clock := func() time.Time { return t0.Add(time.Hour) }
	s2, err := New(s.kpis.Database().Client(), s.kpis.Database().Name(), WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	write(t, s2, &sinks.Batch{Topic: "clicks", Partition: 0,
		KPIs: []kpi.Minute{sinktest.Window(m, 9, false), sinktest.Window(minuteAt(1), 9, false)}})
	got, err := s2.Minutes(t.Context(), t0, t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	expectMinutes(t, "after a stale running update", got, []sinks.MergedMinute{merged(1, 1, final)})
	var after bson.M
	if err := s.kpis.FindOne(t.Context(), bson.D{{Key: "_id", Value: docID("clicks", 0, clickstream.FormatTime(m))}}).Decode(&after); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(after, before) {
		t.Fatalf("final document touched:\n was %v\n now %v", before, after)
	}
	if n, err := s.kpis.CountDocuments(t.Context(), bson.D{}); err != nil || n != 1 {
		t.Fatalf("documents = %d, %v; want the final one alone", n, err)
	}
	got, err = s2.Minutes(t.Context(), t0, t0.Add(2*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	expectMinutes(t, "the other window's running update", got, []sinks.MergedMinute{merged(1, 1, final),
		merged(0, 1, sinktest.Window(minuteAt(1), 9, false))})
}

func TestFunnelMerged(t *testing.T) {
	s := newTestSink(t, testClient(t))
	var want []sinks.MergedFunnel
	for i := range 3 {
		var ps []funnel.Record
		for pi, p := range parts {
			if i == 1 && pi == 0 {
				continue // clicks/0 has no session starting in minute 1, and passed it
			}
			r := sinktest.FunnelRecord(minuteAt(i), 3*i+pi+1)
			ps = append(ps, r)
			// Partition counts unknown: the partition numbers tell.
			write(t, s, &sinks.Batch{Topic: p.topic, Partition: p.partition, Funnel: []funnel.Record{r}, Progress: done(0)})
		}
		want = append(want, mergedFunnel(sinks.Completeness{PartitionsComplete: 4, PartitionsTotal: 4}, ps...))
	}
	got, err := s.Funnel(t.Context(), t0, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Funnel =\n%+v\nwant\n%+v", got, want)
	}
	// The merged median is taken over every partition's conversion times.
	all := slices.Concat(sinktest.FunnelRecord(minuteAt(0), 1).TimesMs, sinktest.FunnelRecord(minuteAt(0), 2).TimesMs,
		sinktest.FunnelRecord(minuteAt(0), 3).TimesMs, sinktest.FunnelRecord(minuteAt(0), 4).TimesMs)
	slices.Sort(all)
	if !got[0].HasMedian || got[0].MedianTimeToConvertMs != all[(len(all)-1)/2] {
		t.Fatalf("median = %d (has %v), want %d of %v", got[0].MedianTimeToConvertMs, got[0].HasMedian, all[(len(all)-1)/2], all)
	}
}

func TestSessions(t *testing.T) {
	s := newTestSink(t, testClient(t))
	var all []session.Record
	for u := 5; u >= 0; u-- {
		r := sinktest.SessionRecord(u, u+1)
		all = append(all, r)
		write(t, s, &sinks.Batch{Topic: "clicks", Partition: int32(u % 2), Sessions: []session.Record{r}})
	}
	slices.SortFunc(all, func(a, b session.Record) int { return int(a.Start - b.Start) })
	from, to := time.UnixMilli(all[1].Start), time.UnixMilli(all[4].Start)
	got, err := s.Sessions(t.Context(), from, to)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, all[1:4]) {
		t.Fatalf("Sessions =\n%+v\nwant\n%+v", got, all[1:4])
	}
}

// TestSessionsUnderEarlierKeys stores sessions as an earlier version of
// the sink did, under their session_id, then writes them again (a replay
// after an upgrade): each is then stored under both keys, and Sessions
// returns it once. The new key leads with the start.
func TestSessionsUnderEarlierKeys(t *testing.T) {
	s := newTestSink(t, testClient(t))
	var all []session.Record
	var old []any
	for u := range 4 {
		r := sinktest.SessionRecord(u, u+1)
		all = append(all, r)
		old = append(old, sessionDoc{ID: docID("clicks", 0, r.SessionID()), SessionID: r.SessionID(), UserID: r.UserID,
			Topic: "clicks", Start: bson.DateTime(r.Start), End: bson.DateTime(r.End), DurationMs: r.DurationMs,
			Events: r.Events, PageViews: r.PageViews, Purchases: r.Purchases, Revenue: r.Revenue,
			Bounced: r.Bounced, Converted: r.Converted})
	}
	if _, err := s.sessions.InsertMany(t.Context(), old); err != nil {
		t.Fatal(err)
	}
	write(t, s, &sinks.Batch{Topic: "clicks", Sessions: all})
	n, err := s.sessions.CountDocuments(t.Context(), bson.D{})
	if err != nil || n != int64(2*len(all)) {
		t.Fatalf("documents under the earlier and the new keys: %d, %v; want %d", n, err, 2*len(all))
	}
	var doc sessionDoc
	id := "clicks/0/" + clickstream.FormatTime(all[0].Start) + "/" + all[0].UserID
	if err := s.sessions.FindOne(t.Context(), bson.D{{Key: "_id", Value: id}}).Decode(&doc); err != nil || doc.SessionID != all[0].SessionID() {
		t.Fatalf("session under %s: %+v, %v", id, doc, err)
	}
	got, err := s.Sessions(t.Context(), time.UnixMilli(all[0].Start), time.UnixMilli(all[len(all)-1].Start+1))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, all) {
		t.Fatalf("Sessions =\n%+v\nwant\n%+v", got, all)
	}
}

// anomalyMinute is a window with the given sessions and purchases.
func anomalyMinute(i int, sessions, purchases int64, final bool) kpi.Minute {
	return kpi.Minute{Minute: minuteAt(i), Final: final, RevenueByCurrency: map[string]float64{},
		Counts: kpi.Counts{Events: 3 * sessions, PageViews: 2 * sessions, Sessions: sessions, Purchases: purchases}}
}

// Anomalies are scored on the merged view (SEMANTICS §8): each partition
// alone shows no anomaly where the sum does. They are scored only on windows
// every partition has passed (SEMANTICS §11), in minute order, each once:
// while partition 1 lags, the spike of minute 15 is provisional and not
// scored; once it catches up, the spike is found, by the same detector
// going on from where the first call stopped.
func TestAnomalies(t *testing.T) {
	s := newTestSink(t, testClient(t))
	var p0, p1, all []kpi.Minute
	for i := range 20 {
		a, b := anomalyMinute(i, 10, 1+int64(i%2), true), anomalyMinute(i, 10, 1, true)
		switch i {
		case 15: // conversion jumps from ~0.12 to 0.5
			a.Purchases = 9
		case 18: // no sessions: neither scored nor in a baseline
			a, b = anomalyMinute(i, 0, 0, true), anomalyMinute(i, 0, 0, true)
		}
		p0, p1 = append(p0, a), append(p1, b)
		all = append(all, kpi.Merge(a, b))
	}
	newDetector := func() *kpi.Detector {
		d, err := kpi.NewDetector(kpi.DefaultAnomalyWindow, kpi.DefaultAnomalyMinPoints, kpi.DefaultAnomalyZ)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	ref := newDetector()
	var want []kpi.Anomaly
	for i := range all {
		if a, ok := ref.Observe(&all[i]); ok {
			want = append(want, a)
		}
	}
	if len(want) != 1 || want[0].Minute != minuteAt(15) || want[0].Direction != "spike" || want[0].Value != 0.5 {
		t.Fatalf("test data: the merged minutes should hold one spike of 0.5 at minute 15, not %+v", want)
	}

	// Partition 0 is past minute 19; partition 1 wrote minutes 0..13 and is
	// past 13 only, though its running update of 15 is written.
	running := anomalyMinute(15, 10, 1, false)
	write(t, s, &sinks.Batch{Topic: "clicks", Partition: 0, KPIs: p0, Progress: at(2, minuteAt(20)+5_000)},
		&sinks.Batch{Topic: "clicks", Partition: 1, KPIs: append(slices.Clone(p1[:14]), running), Progress: at(2, minuteAt(14)+20_000)})
	end := t0.Add(time.Hour)
	d := newDetector()
	got, next, err := s.Anomalies(t.Context(), t0, end, d)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 || !next.Equal(t0.Add(14*time.Minute)) {
		t.Fatalf("while partition 1 lags: Anomalies = %+v, next %v; want none, next minute 14", got, next)
	}
	if ms, err := s.Minutes(t.Context(), t0.Add(15*time.Minute), t0.Add(16*time.Minute)); err != nil ||
		len(ms) != 1 || ms[0].Final || ms[0].Completeness != (sinks.Completeness{PartitionsComplete: 1, PartitionsTotal: 2}) || ms[0].ConversionRate() != 0.5 {
		t.Fatalf("minute 15 = %+v, %v; want the provisional spike, 1 of 2 partitions", ms, err)
	}
	if len(d.Baseline()) != 14 {
		t.Fatalf("baseline holds %d minutes, want the 14 final ones", len(d.Baseline()))
	}

	// Partition 1 catches up to minute 20 (where partition 0 is): minutes
	// 14..19 turn final; minute 20, which nobody wrote yet, is not passed.
	write(t, s, &sinks.Batch{Topic: "clicks", Partition: 1, KPIs: p1[14:], Progress: at(2, minuteAt(21))})
	got, next, err = s.Anomalies(t.Context(), next, end, d)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) || !next.Equal(t0.Add(20*time.Minute)) {
		t.Fatalf("once final: Anomalies = %+v, next %v; want %+v, next minute 20", got, next, want)
	}
	base := d.Baseline()
	got, again, err := s.Anomalies(t.Context(), next, end, d)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 || !again.Equal(next) || !slices.Equal(d.Baseline(), base) {
		t.Fatalf("going on from %v: Anomalies = %+v, next %v, baseline changed %v; want nothing new", next, got, again,
			!slices.Equal(d.Baseline(), base))
	}

	// The end of both inputs: the whole range is done.
	write(t, s, &sinks.Batch{Topic: "clicks", Partition: 0, Progress: done(2)},
		&sinks.Batch{Topic: "clicks", Partition: 1, Progress: done(2)})
	if got, next, err = s.Anomalies(t.Context(), next, end, d); err != nil || len(got) != 0 || !next.Equal(end) {
		t.Fatalf("after the end: Anomalies = %+v, next %v, %v; want none, next %v", got, next, err, end)
	}
	if _, _, err := s.Anomalies(t.Context(), t0, end, nil); err == nil {
		t.Fatal("Anomalies with a nil detector: no error")
	}
}

func TestDocumentsAndIndexes(t *testing.T) {
	s := newTestSink(t, testClient(t))
	if err := s.EnsureIndexes(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureIndexes(t.Context()); err != nil {
		t.Fatalf("second EnsureIndexes: %v", err)
	}
	for coll, key := range map[*mongo.Collection]string{s.kpis: "minute_1", s.funnel: "minute_1", s.sessions: "start_1"} {
		specs, err := coll.Indexes().ListSpecifications(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(specs, func(sp mongo.IndexSpecification) bool { return sp.Name == key }) {
			t.Errorf("%s has no index %s: %+v", coll.Name(), key, specs)
		}
	}
	write(t, s, &sinks.Batch{Topic: "clicks", Partition: 3,
		KPIs:     []kpi.Minute{sinktest.Window(minuteAt(0), 1, true)},
		Sessions: []session.Record{sinktest.SessionRecord(1, 2)},
		Funnel:   []funnel.Record{sinktest.FunnelRecord(minuteAt(0), 2), {Minute: minuteAt(1), Steps: []int64{0, 0, 0}, Final: true}}})
	for coll, fields := range map[*mongo.Collection][]string{
		s.kpis: {"_id", "minute", "topic", "partition", "final", "events", "page_views", "add_to_carts", "purchases",
			"sessions", "revenue", "revenue_purchases", "revenue_by_currency", "conversion_rate", "aov",
			"top_products", "latency_bins", "latency_ms_p95", "updated_at"},
		s.sessions: {"_id", "session_id", "user_id", "topic", "partition", "start", "end", "duration_ms", "events",
			"page_views", "add_to_carts", "purchases", "revenue", "bounced", "converted", "updated_at"},
		s.funnel: {"_id", "minute", "topic", "partition", "final", "entered", "steps", "step_rates", "overall_rate",
			"median_time_to_convert_ms", "times_ms", "by", "updated_at", "running"},
		s.progress: {"_id", "topic", "partition", "partitions", "watermark", "funnel_before", "updated_at"},
	} {
		var raw bson.D
		if err := coll.FindOne(t.Context(), bson.D{}, options.FindOne().SetSort(bson.D{{Key: "_id", Value: 1}})).Decode(&raw); err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range raw {
			names = append(names, e.Key)
		}
		slices.Sort(names)
		slices.Sort(fields)
		if !slices.Equal(names, fields) {
			t.Errorf("%s document fields = %v, want %v", coll.Name(), names, fields)
		}
		for _, e := range raw {
			if e.Key == "minute" || e.Key == "start" || e.Key == "updated_at" {
				if _, ok := e.Value.(bson.DateTime); !ok {
					t.Errorf("%s.%s is %T, want a BSON date", coll.Name(), e.Key, e.Value)
				}
			}
		}
	}
	var id struct {
		ID string `bson:"_id"`
	}
	if err := s.kpis.FindOne(t.Context(), bson.D{}).Decode(&id); err != nil || id.ID != "clicks/3/2024-05-01T10:00:00.000Z" {
		t.Errorf("kpi _id = %q, %v", id.ID, err)
	}
	if err := s.progress.FindOne(t.Context(), bson.D{}).Decode(&id); err != nil || id.ID != "clicks/3" {
		t.Errorf("progress _id = %q, %v", id.ID, err)
	}
	fs, err := s.Funnel(t.Context(), t0, t0.Add(time.Hour))
	if err != nil || len(fs) != 2 || fs[1].HasMedian {
		t.Errorf("Funnel = %+v, %v; want a minute without median", fs, err)
	}
}

// unreachable returns a client of a server that does not exist, failing
// server selection fast.
func unreachable(t *testing.T) *mongo.Client {
	c, err := mongo.Connect(options.Client().ApplyURI("mongodb://127.0.0.1:1/").
		SetServerSelectionTimeout(300 * time.Millisecond).SetConnectTimeout(300 * time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Disconnect(context.Background()) })
	return c
}

func TestWriteUnreachable(t *testing.T) {
	s, err := New(unreachable(t), "unused")
	if err != nil {
		t.Fatal(err)
	}
	b := &sinks.Batch{Topic: "clicks", KPIs: []kpi.Minute{sinktest.Window(minuteAt(0), 1, true)}}
	if err := s.Write(t.Context(), b); err == nil {
		t.Fatal("Write to an unreachable server returned nil")
	}
	s.indexed = true // past the indexes, the bulk write fails too
	if err := s.Write(t.Context(), b); err == nil {
		t.Fatal("Write to an unreachable server returned nil")
	}
	if _, err := s.Minutes(t.Context(), t0, t0.Add(time.Hour)); err == nil {
		t.Fatal("Minutes from an unreachable server returned nil error")
	}
}

func TestWriteAfterClose(t *testing.T) {
	s, err := New(unreachable(t), "unused")
	if err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(s.Close(t.Context()), s.Close(t.Context())); err != nil {
		t.Fatal(err)
	}
	err = s.Write(t.Context(), &sinks.Batch{KPIs: []kpi.Minute{sinktest.Window(0, 1, true)}})
	if !errors.Is(err, ErrClosed) {
		t.Fatalf("Write after Close = %v, want ErrClosed", err)
	}
}

func TestNewValidates(t *testing.T) {
	c := unreachable(t)
	for name, opts := range map[string][]Option{
		"empty collection": {WithKPICollection("")},
		"same collections": {WithFunnelCollection("sessions")},
		"negative timeout": {WithWriteTimeout(-time.Second)},
		"nil logger":       {WithLogger(nil)},
		"empty progress":   {WithProgressCollection("")},
		"same as progress": {WithProgressCollection("kpis_minute")},
		"zero window":      {WithWindowSize(0)},
		"zero max bulk":    {WithMaxBulk(0)},
		"negative bulk":    {WithMaxBulk(-1)},
	} {
		if _, err := New(c, "db", opts...); err == nil {
			t.Errorf("New with %s: no error", name)
		}
	}
	if _, err := New(nil, "db"); err == nil {
		t.Error("New with a nil client: no error")
	}
	if _, err := New(c, ""); err == nil {
		t.Error("New without a database: no error")
	}
}

// kpiRaw returns the stored document of a window of clicks/0.
func kpiRaw(t *testing.T, s *Sink, minute int64) bson.M {
	t.Helper()
	var d bson.M
	if err := s.kpis.FindOne(t.Context(), bson.D{{Key: "_id", Value: docID("clicks", 0, clickstream.FormatTime(minute))}}).Decode(&d); err != nil {
		t.Fatalf("window %s: %v", clickstream.FormatTime(minute), err)
	}
	return d
}

// A running window lives in its partition's progress document, under
// running_kpis.m<start millis>, and leaves it when final: the final one is a
// document of its own, its values at the top.
func TestKPIDocumentShapes(t *testing.T) {
	s := newTestSink(t, testClient(t))
	m0, m1 := minuteAt(0), minuteAt(1)
	write(t, s, &sinks.Batch{Topic: "clicks", KPIs: []kpi.Minute{sinktest.Window(m0, 1, false), sinktest.Window(m1, 2, false)}})
	progress := func() bson.M {
		t.Helper()
		var d bson.M
		if err := s.progress.FindOne(t.Context(), bson.D{{Key: "_id", Value: progressID("clicks", 0)}}).Decode(&d); err != nil {
			t.Fatal(err)
		}
		return d
	}
	runningOf := func(d bson.M) map[string]bson.M {
		out := map[string]bson.M{}
		rk, _ := d["running_kpis"].(bson.D)
		for _, e := range rk {
			w := bson.M{}
			for _, f := range e.Value.(bson.D) {
				w[f.Key] = f.Value
			}
			out[e.Key] = w
		}
		return out
	}
	k0, k1 := runningKey(m0), runningKey(m1)
	if k0 != fmt.Sprintf("m%d", m0) {
		t.Fatalf("running key %q, want m and the start in Unix millis", k0)
	}
	r := runningOf(progress())
	if len(r) != 2 || r[k0]["events"] != sinktest.Window(m0, 1, false).Events || r[k1]["minute"] != bson.DateTime(m1) {
		t.Fatalf("running windows = %v, want both", r)
	}
	if _, ok := r[k1]["updated_at"].(bson.DateTime); !ok {
		t.Errorf("running updated_at is %T, want a BSON date", r[k1]["updated_at"])
	}
	if n, err := s.kpis.CountDocuments(t.Context(), bson.D{}); err != nil || n != 0 {
		t.Fatalf("%d KPI documents, %v; want none while every window runs", n, err)
	}
	write(t, s, &sinks.Batch{Topic: "clicks", KPIs: []kpi.Minute{sinktest.Window(m0, 3, true), sinktest.Window(m1, 4, false)}})
	if r := runningOf(progress()); len(r) != 1 || r[k1]["events"] != sinktest.Window(m1, 4, false).Events {
		t.Fatalf("running windows after the final = %v, want the second update of minute 1 alone", r)
	}
	final := kpiRaw(t, s, m0)
	if _, ok := final["running"]; ok || final["final"] != true || final["events"] != sinktest.Window(m0, 3, true).Events {
		t.Errorf("final document = %v, want its values at the top and no running", final)
	}
	// the watermark past minute 1's end: its running record is stale, and
	// goes with the next write of the partition
	write(t, s, &sinks.Batch{Topic: "clicks", Progress: at(1, minuteAt(2))})
	if r := runningOf(progress()); len(r) != 0 {
		t.Fatalf("running windows after the watermark passed them = %v, want none", r)
	}
}

// Documents of earlier versions of the sink hold a running window's values
// at the top level and no running field: they read back, a running update
// takes over from them, and a final replaces them.
func TestEarlierDocuments(t *testing.T) {
	s := newTestSink(t, testClient(t))
	m0, m1 := minuteAt(0), minuteAt(1)
	old := func(m int64, seed int, final bool) bson.D {
		w := sinktest.Window(m, seed, final)
		raw, err := bson.Marshal(kpiDoc{ID: docID("clicks", 0, clickstream.FormatTime(m)), Minute: bson.DateTime(m),
			Topic: "clicks", Final: final, Values: newKPIValues(&w, 0)})
		if err != nil {
			t.Fatal(err)
		}
		var d bson.D
		if err := bson.Unmarshal(raw, &d); err != nil {
			t.Fatal(err)
		}
		return slices.DeleteFunc(d, func(e bson.E) bool { return e.Key == "running" })
	}
	if _, err := s.kpis.InsertMany(t.Context(), []any{old(m0, 1, true), old(m1, 2, false)}); err != nil {
		t.Fatal(err)
	}
	check := func(what string, want ...kpi.Minute) {
		t.Helper()
		snap, err := s.readBack(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		var got []kpi.Minute
		for _, k := range snap.KPIs {
			got = append(got, k.Minute)
		}
		slices.SortFunc(got, func(a, b kpi.Minute) int { return int(a.Minute - b.Minute) })
		if len(got) != len(want) {
			t.Fatalf("%s: %d windows, want %d", what, len(got), len(want))
		}
		for i := range want {
			if got[i].Final != want[i].Final || got[i].Counts != want[i].Counts || !reflect.DeepEqual(got[i].Latency.Bins(), want[i].Latency.Bins()) {
				t.Fatalf("%s: window %d = %+v, want %+v", what, i, got[i].Counts, want[i].Counts)
			}
		}
	}
	check("as written earlier", sinktest.Window(m0, 1, true), sinktest.Window(m1, 2, false))
	write(t, s, &sinks.Batch{Topic: "clicks", KPIs: []kpi.Minute{sinktest.Window(m1, 3, false)}})
	check("after a running update", sinktest.Window(m0, 1, true), sinktest.Window(m1, 3, false))
	write(t, s, &sinks.Batch{Topic: "clicks", KPIs: []kpi.Minute{sinktest.Window(m1, 4, true)}})
	check("after the final", sinktest.Window(m0, 1, true), sinktest.Window(m1, 4, true))
	if d := kpiRaw(t, s, m1); d["running"] != nil {
		t.Fatalf("final over an earlier running document kept running: %v", d)
	}
}

// A stale running update (a replay's, or a zombie writer's, from a sink
// that knows nothing of what is final) leaves the final window's document
// as it is and does not show through the merged view; the batch's other
// records land.
func TestStaleRunningAmongOthers(t *testing.T) {
	c := testClient(t)
	s := newTestSink(t, c)
	final := sinktest.Window(minuteAt(0), 1, true)
	write(t, s, &sinks.Batch{Topic: "clicks", KPIs: []kpi.Minute{final, sinktest.Window(minuteAt(1), 2, false)}, Progress: done(1)})
	before := kpiRaw(t, s, minuteAt(0))
	others := []kpi.Minute{sinktest.Window(minuteAt(1), 8, false), sinktest.Window(minuteAt(2), 9, true), sinktest.Window(minuteAt(3), 10, false)}
	fresh, err := New(c, s.kpis.Database().Name())
	if err != nil {
		t.Fatal(err)
	}
	write(t, fresh, &sinks.Batch{Topic: "clicks", KPIs: slices.Insert(slices.Clone(others), 1, sinktest.Window(minuteAt(0), 7, false))})
	if after := kpiRaw(t, s, minuteAt(0)); !reflect.DeepEqual(after, before) {
		t.Fatalf("final document touched:\n was %v\n now %v", before, after)
	}
	got, err := s.Minutes(t.Context(), t0, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	expectMinutes(t, "after the batch", got, []sinks.MergedMinute{merged(1, 1, final), merged(1, 1, others[0]),
		merged(1, 1, others[1]), merged(1, 1, others[2])})
}

// Sessions and funnel minutes are inserted; on a replay, only the documents
// already there are rewritten, on their _id, with the replay's values: the
// last write of a key wins. FerretDB, like MongoDB, goes on past each
// duplicate of an unordered insert and names every one.
func TestInsertReplayRewritesDuplicates(t *testing.T) {
	var mu sync.Mutex
	counts := map[string]int{} // command/collection -> statements
	c := monitoredClient(t, func(e *event.CommandStartedEvent) {
		field := map[string]string{"insert": "documents", "update": "updates"}[e.CommandName]
		if field == "" {
			return
		}
		mu.Lock()
		counts[e.CommandName+"/"+e.Command.Lookup(e.CommandName).StringValue()] += statements(e, field)
		mu.Unlock()
	})
	s := newTestSink(t, c)
	first := &sinks.Batch{Topic: "clicks"}
	for u := range 10 {
		first.Sessions = append(first.Sessions, sinktest.SessionRecord(u, u))
	}
	first.Funnel = []funnel.Record{sinktest.FunnelRecord(minuteAt(0), 1), sinktest.FunnelRecord(minuteAt(1), 2)}
	write(t, s, first)
	// Users 2, 5 and 7 again, with other values, among new ones; funnel
	// minute 1 again.
	replay := &sinks.Batch{Topic: "clicks"}
	want := map[string]session.Record{}
	for _, r := range first.Sessions {
		want[r.SessionID()] = r
	}
	for _, u := range []int{10, 2, 11, 5, 12, 7, 13} {
		r := sinktest.SessionRecord(u, u)
		if u < 10 {
			r.Events, r.Revenue = 99, 1.25
		}
		replay.Sessions = append(replay.Sessions, r)
		want[r.SessionID()] = r
	}
	f1 := sinktest.FunnelRecord(minuteAt(1), 9)
	replay.Funnel = []funnel.Record{f1, sinktest.FunnelRecord(minuteAt(2), 3)}
	mu.Lock()
	clear(counts)
	mu.Unlock()
	write(t, s, replay)
	mu.Lock()
	got := maps.Clone(counts)
	mu.Unlock()
	if w := map[string]int{"insert/sessions": 7, "update/sessions": 3, "insert/funnel_minute": 2, "update/funnel_minute": 1}; !reflect.DeepEqual(got, w) {
		t.Errorf("statements sent = %v, want %v", got, w)
	}
	sess, err := s.Sessions(t.Context(), t0.Add(-time.Hour), t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(sess) != len(want) {
		t.Fatalf("%d sessions, want %d", len(sess), len(want))
	}
	for _, r := range sess {
		if w := want[r.SessionID()]; !reflect.DeepEqual(r, w) {
			t.Errorf("session %s = %+v, want %+v", r.SessionID(), r, w)
		}
	}
	fs, err := s.Funnel(t.Context(), t0, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 3 || !reflect.DeepEqual(fs[1], mergedFunnel(fs[1].Completeness, f1)) {
		t.Fatalf("funnel = %+v, want minute 1 as replayed", fs)
	}
}

// settle reads both behaviours of an unordered bulk write after write
// errors: going on past them and naming each (MongoDB; FerretDB's inserts),
// and stopping at the first with an answer that names it loosely
// (FerretDB's updates: one error at index 0, nothing counted), which bulk
// must not trust; and it refuses unexpected errors and answers it cannot
// account for.
func TestSettle(t *testing.T) {
	dup := func(_, code int) bool { return code == codeDuplicateKey }
	for _, c := range []struct {
		name      string
		n         int
		applied   int64
		idx       []int
		codes     []int
		ok, whole bool
	}{
		{"went on past three duplicates", 6, 3, []int{0, 2, 4}, []int{11000, 11000, 11000}, true, true},
		{"a single statement failed", 1, 0, []int{0}, []int{11000}, true, true},
		{"stopped at the first duplicate", 6, 2, []int{2}, []int{11000}, true, false},
		{"stopped, named loosely", 4, 0, []int{0}, []int{11000}, true, false},
		{"stopped at another error", 4, 0, []int{0}, []int{2}, false, false},
		{"another error", 6, 5, []int{1}, []int{2}, false, false},
		{"more applied than sent", 3, 3, []int{1}, []int{11000}, false, false},
		{"index out of range", 3, 2, []int{3}, []int{11000}, false, false},
		{"one index twice", 3, 1, []int{1, 1}, []int{11000, 11000}, false, false},
	} {
		ok, whole := settle(c.n, c.applied, c.idx, c.codes, dup)
		if ok != c.ok || whole != c.whole {
			t.Errorf("%s: settle = %v, %v; want %v, %v", c.name, ok, whole, c.ok, c.whole)
		}
	}
	// Only statement 2, a running update, may meet a final window.
	stale := func(i, code int) bool { return i == 2 && code == codePathNotViable }
	if ok, whole := settle(4, 3, []int{2}, []int{codePathNotViable}, stale); !ok || !whole {
		t.Errorf("statement 2 refused, the rest applied: settle = %v, %v; want true, true", ok, whole)
	}
	if ok, _ := settle(4, 3, []int{0}, []int{codePathNotViable}, stale); ok {
		t.Error("statement 0 refused, the rest applied: settle accepted a failure no statement 0 may have")
	}
	if ok, whole := settle(4, 0, []int{0}, []int{codePathNotViable}, stale); !ok || whole {
		t.Errorf("FerretDB's answer (index 0, nothing counted): settle = %v, %v; want true, false (send each again)", ok, whole)
	}
}

// FerretDB v1 (SQLite) deadlocks, for good, on an update command of more
// than 100 statements that match existing documents: a replay rewriting a
// large batch. With WithMaxBulk(32) the rewrites go in commands of at most
// 32 statements, while inserts, which hold no matched documents, go in
// larger commands. The large replay happens only once a smaller one (under
// 100 statements, harmless unsplit) was seen split, so that a regression
// cannot wedge the shared test server.
func TestRewriteInSmallCommands(t *testing.T) {
	var mu sync.Mutex
	largest := map[string]int{}
	c := monitoredClient(t, func(e *event.CommandStartedEvent) {
		field := map[string]string{"insert": "documents", "update": "updates"}[e.CommandName]
		if field == "" {
			return
		}
		if e.Command.Lookup(e.CommandName).StringValue() != DefaultSessions {
			return
		}
		mu.Lock()
		largest[e.CommandName] = max(largest[e.CommandName], statements(e, field))
		mu.Unlock()
	})
	if s := newTestSink(t, c); s.maxBulk != DefaultMaxBulk {
		t.Fatalf("default max bulk %d, want %d", s.maxBulk, DefaultMaxBulk)
	}
	s := newTestSink(t, c, WithMaxBulk(32))
	b := &sinks.Batch{Topic: "clicks", FirstOffset: 0, NextOffset: 1000}
	for u := range 150 {
		b.Sessions = append(b.Sessions, sinktest.SessionRecord(u, u))
	}
	largestOf := func(cmd string) int {
		mu.Lock()
		defer mu.Unlock()
		n := largest[cmd]
		largest[cmd] = 0
		return n
	}
	write(t, s, b)
	if ins, upd := largestOf("insert"), largestOf("update"); ins != 150 || upd != 0 {
		t.Fatalf("first write: largest insert command %d, update command %d; want 150 (one command) and none", ins, upd)
	}
	small := &sinks.Batch{Topic: "clicks", Sessions: b.Sessions[:40]}
	write(t, s, small)
	if got := largestOf("update"); got == 0 || got > 32 {
		t.Fatalf("replay of 40 sessions: largest update command %d statements, want 1..32", got)
	}
	write(t, s, b) // the replay: every statement matches a document
	if got := largestOf("update"); got == 0 || got > 32 {
		t.Fatalf("replay of 150 sessions: largest update command %d statements, want 1..32", got)
	}
	n, err := s.sessions.CountDocuments(t.Context(), bson.D{})
	if err != nil || n != 150 {
		t.Fatalf("after the rewrite: %d sessions, %v", n, err)
	}
}

// mergedFunnel is what Funnel answers for the records parts of one minute
// with completeness c.
func mergedFunnel(c sinks.Completeness, parts ...funnel.Record) sinks.MergedFunnel {
	r := funnel.Merge(parts...)
	r.Final = c.Complete()
	return sinks.MergedFunnel{Record: r, Completeness: c}
}

// Two batches of a partition in one Write reach its progress document in
// order: the later running window wins, and the later batch's final
// removes what the earlier one set.
func TestProgressDocumentInOrder(t *testing.T) {
	s := newTestSink(t, testClient(t))
	m0, m1 := minuteAt(0), minuteAt(1)
	if err := s.Write(t.Context(),
		&sinks.Batch{Topic: "clicks", KPIs: []kpi.Minute{sinktest.Window(m0, 1, false), sinktest.Window(m1, 2, false)}},
		&sinks.Batch{Topic: "clicks", KPIs: []kpi.Minute{sinktest.Window(m0, 3, true), sinktest.Window(m1, 4, false)}, Progress: at(1, m1)},
	); err != nil {
		t.Fatal(err)
	}
	var d progressDoc
	if err := s.progress.FindOne(t.Context(), bson.D{{Key: "_id", Value: progressID("clicks", 0)}}).Decode(&d); err != nil {
		t.Fatal(err)
	}
	if len(d.RunningKPIs) != 1 || d.RunningKPIs[runningKey(m1)].Values.Events != sinktest.Window(m1, 4, false).Events {
		t.Fatalf("running windows %+v, want minute 1 of the second batch alone", d.RunningKPIs)
	}
	got, err := s.Minutes(t.Context(), t0, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	expectMinutes(t, "after both batches", got, []sinks.MergedMinute{merged(1, 1, sinktest.Window(m0, 3, true)),
		merged(0, 1, sinktest.Window(m1, 4, false))})
}
