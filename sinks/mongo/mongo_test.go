package mongo

import (
	"context"
	"encoding/json"
	"errors"
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
)

func testClient(t *testing.T) *mongo.Client { return mongotest.Client(t) }

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
	for i := range kpis {
		snap.KPIs = append(snap.KPIs, sinktest.KPI{Topic: kpis[i].Topic, Partition: kpis[i].Partition, Minute: kpis[i].minute()})
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
	return snap, nil
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

func TestMergedMinutes(t *testing.T) {
	s := newTestSink(t, testClient(t))
	byMinute := map[int64][]kpi.Minute{}
	// Written in an order other than the merge order.
	for pi := len(parts) - 1; pi >= 0; pi-- {
		p := parts[pi]
		b := &sinks.Batch{Topic: p.topic, Partition: p.partition, NextOffset: 100}
		for i := range 4 {
			if i == 3 && pi == 1 {
				continue // a minute some partitions have no events in
			}
			final := !(i == 2 && pi == 2) // one partition still running in minute 2
			w := sinktest.Window(minuteAt(i), 10*i+pi, final)
			b.KPIs = append(b.KPIs, w)
			byMinute[w.Minute] = append([]kpi.Minute{w}, byMinute[w.Minute]...)
		}
		write(t, s, b)
	}
	var want []kpi.Minute
	for i := range 4 {
		want = append(want, kpi.Merge(byMinute[minuteAt(i)]...))
	}
	if !want[0].Final || want[2].Final {
		t.Fatal("test data: minute 0 should merge final, minute 2 not")
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

	for n, w := range map[int][]kpi.Minute{0: nil, 1: want[3:], 2: want[2:], 10: want} {
		got, err := s.LatestMinutes(t.Context(), n)
		if err != nil {
			t.Fatal(err)
		}
		expectMinutes(t, "LatestMinutes", got, w)
	}

	// The records the read API serves are those of sinks.NewKPIRecord.
	got, err = s.Minutes(t.Context(), t0, t0.Add(4*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	recs := KPIRecords(got)
	for i := range want {
		if wr := sinks.NewKPIRecord(&want[i]); !reflect.DeepEqual(recs[i], wr) {
			t.Errorf("KPIRecords[%d] = %+v, want %+v", i, recs[i], wr)
		}
	}
	js, err := json.Marshal(recs[0])
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	json.Unmarshal(js, &fields)
	for _, f := range []string{"minute", "final", "events", "page_views", "add_to_carts", "purchases", "sessions",
		"revenue", "revenue_purchases", "revenue_by_currency", "conversion_rate", "aov", "top_products", "latency_ms_p95"} {
		if _, ok := fields[f]; !ok {
			t.Errorf("KPI record lacks %q: %s", f, js)
		}
	}
}

func expectMinutes(t *testing.T, what string, got, want []kpi.Minute) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d minutes, want %d", what, len(got), len(want))
	}
	for i := range want {
		if !reflect.DeepEqual(got[i], want[i]) {
			gr, wr := sinks.NewKPIRecord(&got[i]), sinks.NewKPIRecord(&want[i])
			gj, _ := json.Marshal(gr)
			wj, _ := json.Marshal(wr)
			t.Fatalf("%s: minute %d:\n got %s\nwant %s", what, i, gj, wj)
		}
	}
}

// A running update never replaces a final window, also through the merged
// view and when it comes with other windows in a batch.
func TestFinalNeverOverwritten(t *testing.T) {
	s := newTestSink(t, testClient(t))
	m := minuteAt(0)
	final := sinktest.Window(m, 5, true)
	write(t, s, &sinks.Batch{Topic: "clicks", Partition: 0, KPIs: []kpi.Minute{sinktest.Window(m, 1, false)}},
		&sinks.Batch{Topic: "clicks", Partition: 0, KPIs: []kpi.Minute{final}})
	var raw bson.M
	if err := s.kpis.FindOne(t.Context(), bson.D{}).Decode(&raw); err != nil {
		t.Fatal(err)
	}
	written := raw["updated_at"]

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
	expectMinutes(t, "after a stale running update", got, []kpi.Minute{kpi.Merge(final)})
	if err := s.kpis.FindOne(t.Context(), bson.D{{Key: "_id", Value: docID("clicks", 0, clickstream.FormatTime(m))}}).Decode(&raw); err != nil {
		t.Fatal(err)
	}
	if raw["final"] != true || raw["updated_at"] != written {
		t.Fatalf("final document touched: final=%v updated_at=%v, was %v", raw["final"], raw["updated_at"], written)
	}
	if n, err := s.kpis.CountDocuments(t.Context(), bson.D{}); err != nil || n != 2 {
		t.Fatalf("documents = %d, %v; want 2 (the other window's update landed)", n, err)
	}
}

func TestFunnelMerged(t *testing.T) {
	s := newTestSink(t, testClient(t))
	var want []funnel.Record
	for i := range 3 {
		var ps []funnel.Record
		for pi, p := range parts {
			if i == 1 && pi == 0 {
				continue
			}
			r := sinktest.FunnelRecord(minuteAt(i), 3*i+pi+1)
			ps = append(ps, r)
			write(t, s, &sinks.Batch{Topic: p.topic, Partition: p.partition, Funnel: []funnel.Record{r}})
		}
		want = append(want, funnel.Merge(ps...))
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

// anomalyMinute is a window with the given sessions and purchases.
func anomalyMinute(i int, sessions, purchases int64, final bool) kpi.Minute {
	return kpi.Minute{Minute: minuteAt(i), Final: final, RevenueByCurrency: map[string]float64{},
		Counts: kpi.Counts{Events: 3 * sessions, PageViews: 2 * sessions, Sessions: sessions, Purchases: purchases}}
}

// Anomalies are scored on the merged view (SEMANTICS §8): each partition
// alone shows no anomaly where the sum does, and a window not yet final in
// every partition is not scored.
func TestAnomalies(t *testing.T) {
	s := newTestSink(t, testClient(t))
	b0 := &sinks.Batch{Topic: "clicks", Partition: 0}
	b1 := &sinks.Batch{Topic: "clicks", Partition: 1}
	var merged []kpi.Minute
	for i := range 20 {
		p0, p1 := anomalyMinute(i, 10, 1+int64(i%2), true), anomalyMinute(i, 10, 1, true)
		switch i {
		case 15: // conversion jumps from ~0.12 to 0.5
			p0.Purchases = 9
		case 17: // would be a drop, but partition 1 is not final yet
			p0.Purchases, p1.Purchases, p1.Final = 0, 0, false
		case 18: // no sessions: neither scored nor in a baseline
			p0, p1 = anomalyMinute(i, 0, 0, true), anomalyMinute(i, 0, 0, true)
		}
		b0.KPIs = append(b0.KPIs, p0)
		b1.KPIs = append(b1.KPIs, p1)
		merged = append(merged, kpi.Merge(p0, p1))
	}
	write(t, s, b0, b1)

	ref, err := kpi.NewDetector(kpi.DefaultAnomalyWindow, kpi.DefaultAnomalyMinPoints, kpi.DefaultAnomalyZ)
	if err != nil {
		t.Fatal(err)
	}
	var want []kpi.Anomaly
	for i := range merged {
		if a, ok := ref.Observe(&merged[i]); ok && merged[i].Final {
			want = append(want, a)
		}
	}
	d, err := kpi.NewDetector(kpi.DefaultAnomalyWindow, kpi.DefaultAnomalyMinPoints, kpi.DefaultAnomalyZ)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Anomalies(t.Context(), t0, t0.Add(time.Hour), d)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Minute != minuteAt(15) || got[0].Direction != "spike" || got[0].Value != 0.5 {
		t.Fatalf("Anomalies = %+v, want one spike of 0.5 at minute 15", got)
	}
	if want[0] != got[0] {
		t.Fatalf("Anomalies = %+v, want %+v (a detector fed the merged final minutes)", got, want)
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
		Funnel:   []funnel.Record{sinktest.FunnelRecord(minuteAt(0), 2), {Minute: minuteAt(1), Steps: []int64{0, 0, 0}}}})
	for coll, fields := range map[*mongo.Collection][]string{
		s.kpis: {"_id", "minute", "topic", "partition", "final", "events", "page_views", "add_to_carts", "purchases",
			"sessions", "revenue", "revenue_purchases", "revenue_by_currency", "conversion_rate", "aov",
			"top_products", "latency_bins", "latency_ms_p95", "updated_at"},
		s.sessions: {"_id", "session_id", "user_id", "topic", "partition", "start", "end", "duration_ms", "events",
			"page_views", "add_to_carts", "purchases", "revenue", "bounced", "converted", "updated_at"},
		s.funnel: {"_id", "minute", "topic", "partition", "entered", "steps", "step_rates", "overall_rate",
			"median_time_to_convert_ms", "times_ms", "updated_at"},
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

// A final window written between writeKPIs' look and its bulk write makes a
// guarded upsert meet a duplicate key. bulk may call that done only when the
// server applied everything else; else it must fail, so the batch is retried.
// (MongoDB reports the rest applied; FerretDB stops at the error.)
func TestGuardedUpsertMeetsFinal(t *testing.T) {
	s := newTestSink(t, testClient(t))
	m0, m1 := sinktest.Window(minuteAt(0), 1, true), sinktest.Window(minuteAt(1), 2, false)
	write(t, s, &sinks.Batch{Topic: "clicks", KPIs: []kpi.Minute{m0, m1}})
	now := bson.NewDateTimeFromTime(time.Now())
	ups := kpiUpserts(&sinks.Batch{Topic: "clicks", KPIs: []kpi.Minute{
		sinktest.Window(minuteAt(0), 7, false), // stale: meets the final document
		sinktest.Window(minuteAt(1), 8, false),
		sinktest.Window(minuteAt(2), 9, true),
	}}, now)
	models := []mongo.WriteModel{ups[0].model, ups[1].model, ups[2].model}
	kept, err := bulk(t.Context(), s.kpis, models, []bool{true, true, false})
	got, rerr := s.Minutes(t.Context(), t0, t0.Add(time.Hour))
	if rerr != nil {
		t.Fatal(rerr)
	}
	if !got[0].Final || got[0].Events != m0.Events {
		t.Fatalf("the final window changed: %+v", got[0].Counts)
	}
	if err != nil {
		t.Logf("bulk reported the race as an error: %v", err)
		// The retry sees the final window and leaves its update out.
		if kept, err = s.writeKPIs(t.Context(), ups); err != nil {
			t.Fatalf("retry: %v", err)
		}
		if got, err = s.Minutes(t.Context(), t0, t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	if kept != 1 || len(got) != 3 || got[1].Events != sinktest.Window(0, 8, false).Events || !got[2].Final {
		t.Fatalf("bulk or its retry returned nil (kept %d) but not everything else was applied: %d windows", kept, len(got))
	}
}

// FerretDB v1 (SQLite) deadlocks, for good, on an update command of more
// than 100 statements that match existing documents: a replay rewriting a
// large batch. Write must send small commands. The rewrite happens only once
// the first write was seen split, so that a regression cannot wedge the
// shared test server.
func TestRewriteInSmallCommands(t *testing.T) {
	uri := os.Getenv("MONGODB_URI")
	if uri == "" {
		t.Skip("MONGODB_URI not set: skipping MongoDB integration test (run `bash scripts/services.sh up` and set MONGODB_URI=mongodb://127.0.0.1:27018/)")
	}
	var mu sync.Mutex
	largest := 0
	monitor := &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		if e.CommandName != "update" {
			return
		}
		// The statements go in a document sequence, not in the body.
		n := 0
		if seq, ok := e.Command.Lookup("updates").ArrayOK(); ok {
			vals, _ := seq.Values()
			n = len(vals)
		}
		mu.Lock()
		largest = max(largest, n)
		mu.Unlock()
	}}
	c, err := mongo.Connect(options.Client().ApplyURI(uri).SetServerSelectionTimeout(10 * time.Second).
		SetTimeout(30 * time.Second).SetMonitor(monitor))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Disconnect(context.Background()) })
	s := newTestSink(t, c)
	b := &sinks.Batch{Topic: "clicks", FirstOffset: 0, NextOffset: 1000}
	for u := range 150 {
		b.Sessions = append(b.Sessions, sinktest.SessionRecord(u, u))
	}
	write(t, s, b)
	mu.Lock()
	got := largest
	mu.Unlock()
	if got == 0 || got > maxBulk {
		t.Fatalf("largest update command: %d statements, want 1..%d", got, maxBulk)
	}
	t.Logf("largest update command: %d statements", got)
	write(t, s, b) // the replay: every statement matches a document
	n, err := s.sessions.CountDocuments(t.Context(), bson.D{})
	if err != nil || n != 150 {
		t.Fatalf("after the rewrite: %d sessions, %v", n, err)
	}
}
