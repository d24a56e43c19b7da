package sinktest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/clickstreamkit/clickstream"
	"github.com/clickstreamkit/clickstream/funnel"
	"github.com/clickstreamkit/clickstream/kpi"
	"github.com/clickstreamkit/clickstream/session"
	"github.com/clickstreamkit/clickstream/sinks"
)

// Target is a sink under test and the way to read back what it holds.
type Target struct {
	Sink sinks.Sink
	// Read returns what the sink holds now: per key, the value that counts
	// (see Snapshot). A recorder that keeps every value written reads back
	// the last one per key, a final window over running updates.
	Read func(ctx context.Context) (Snapshot, error)
	// PerPartition is true when Read reports each result's topic and
	// partition, keeping apart those of different partitions with the same
	// minute or session id. Without it the suite writes to one partition
	// only, compares no topics or partitions, and skips the partition case.
	PerPartition bool
}

// Run checks the properties the pipeline relies on (SEMANTICS §6, §10)
// against a fresh target per case from newTarget:
//
//   - a batch without results writes nothing and succeeds;
//   - what is written reads back unchanged (times at millisecond precision,
//     floats exactly, the latency sketch by bins);
//   - writing a batch twice leaves what writing it once left (idempotence);
//   - a newer running update replaces an older one, a final window or
//     funnel minute replaces a running update, and a running update never
//     replaces a final one, across batches and within one batch;
//   - partitions are kept apart (PerPartition targets);
//   - the sink keeps no reference to the batch: the pipeline reuses its
//     slices after Write returns;
//   - the sink does not modify the batch;
//   - a random sequence of batches and replays leaves what the Reference
//     holds;
//   - Close may be called twice.
func Run(t *testing.T, newTarget func(t *testing.T) Target) {
	cases := []struct {
		name string
		f    func(t *testing.T, h *harness)
	}{
		{"Empty", testEmpty},
		{"RoundTrip", testRoundTrip},
		{"Idempotent", testIdempotent},
		{"RunningThenFinal", testRunningThenFinal},
		{"FinalThenStaleRunning", testFinalThenStale},
		{"FinalWinsWithinBatch", testFinalWithinBatch},
		{"Partitions", testPartitions},
		{"NoRetention", testNoRetention},
		{"Unchanged", testUnchanged},
		{"RandomReplays", testRandomReplays},
		{"Rounds", testRounds},
		{"CloseTwice", testCloseTwice},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tg := newTarget(t)
			c.f(t, &harness{t: t, tg: tg, ref: &Reference{}})
		})
	}
}

// harness writes to the target and the Reference alike.
type harness struct {
	t   *testing.T
	tg  Target
	ref *Reference
}

func (h *harness) write(bs ...*sinks.Batch) {
	h.t.Helper()
	if err := h.tg.Sink.Write(h.t.Context(), bs...); err != nil {
		h.t.Fatalf("Write of %d batches, first %s/%d [%d, %d)): %v", len(bs), bs[0].Topic, bs[0].Partition, bs[0].FirstOffset, bs[0].NextOffset, err)
	}
	for _, b := range bs { // the Reference one batch at a time
		if err := h.ref.Write(h.t.Context(), b); err != nil {
			h.t.Fatalf("Reference.Write: %v", err)
		}
	}
}

func (h *harness) read() Snapshot {
	h.t.Helper()
	s, err := h.tg.Read(h.t.Context())
	if err != nil {
		h.t.Fatalf("Read: %v", err)
	}
	return s.normalize(h.tg.PerPartition)
}

// check compares what the target holds with what the Reference holds.
func (h *harness) check(what string) Snapshot {
	h.t.Helper()
	got := h.read()
	want := h.ref.Snapshot().normalize(h.tg.PerPartition)
	if d := diff(got, want); d != "" {
		h.t.Fatalf("%s: the sink holds other results than the reference:\n%s", what, d)
	}
	return got
}

// The suite's data: windows of 2024-05-01 from 10:00 UTC.
var base = time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC).UnixMilli()

func minute(i int) int64 { return base + int64(i)*60_000 }

// Window returns a deterministic KPI partial of the minute start m, varied by
// seed, with every field set (currencies, products, latency).
func Window(m int64, seed int, final bool) kpi.Minute {
	s := int64(seed)
	w := kpi.Minute{Minute: m, Final: final,
		Counts: kpi.Counts{Events: 20 + s, PageViews: 10 + s, AddToCarts: 3 + s%4, Purchases: 1 + s%3,
			Sessions: 5 + s%6, Revenue: 12.25*float64(1+s%3) + 0.5, RevenuePurchases: 1 + s%3},
		RevenueByCurrency: map[string]float64{"EUR": 12.25*float64(1+s%3) + 0.5},
	}
	if seed%2 == 1 {
		w.RevenueByCurrency["USD"] = 7.75 + float64(s)
	}
	for i := range 3 + seed%3 {
		w.TopProducts = append(w.TopProducts, kpi.Product{ProductID: fmt.Sprintf("p%02d", (seed+i)%17),
			Views: int64(9 - i), Carts: int64(3 - i%3), Purchases: int64(4 - i), Revenue: 9.5 * float64(4-i)})
	}
	for _, v := range []float64{0, 3 + float64(seed), 42.5, 250 * float64(1+seed%4), 1e4} {
		w.Latency.Add(v)
	}
	return w
}

// SessionRecord returns a deterministic final session of user u, varied by seed.
func SessionRecord(u, seed int) session.Record {
	start := base + int64(u)*7_000
	end := start + int64(seed)*1_000
	ev := 1 + int64(seed%5)
	pur := int64(seed % 2)
	return session.Record{
		UserID: fmt.Sprintf("user-%d", u), Start: start, End: end, DurationMs: end - start,
		Events: ev, PageViews: ev - pur, Purchases: pur, Revenue: 19.75 * float64(pur),
		Bounced: ev == 1, Converted: pur > 0}
}

// FunnelRecord returns a deterministic final funnel record of the start
// minute m, varied by seed.
func FunnelRecord(m int64, seed int) funnel.Record {
	s := int64(seed)
	r := funnel.Record{Minute: m, Steps: []int64{6 + s, 3 + s%3, s % 3}, Final: true}
	for i := range r.Steps[2] {
		r.TimesMs = append(r.TimesMs, 1_000*(i+1)+s)
	}
	if seed%2 == 0 { // broken down: the converted ones and the others
		conv := []int64{r.Steps[2], r.Steps[2], r.Steps[2]}
		rest := []int64{r.Steps[0] - conv[0], r.Steps[1] - conv[1], 0}
		r.By = []funnel.Part{{Value: "google", Steps: conv, TimesMs: r.TimesMs}, {Value: funnel.None, Steps: rest}}
	}
	return funnel.Merge(r) // sets the rates and the median
}

// RunningFunnel is FunnelRecord as a running update.
func RunningFunnel(m int64, seed int) funnel.Record {
	r := FunnelRecord(m, seed)
	r.Final = false
	return r
}

func withFunnel(b *sinks.Batch, fs ...funnel.Record) *sinks.Batch {
	b.Funnel = fs
	return b
}

func (h *harness) topic() (string, int32) { return "clicks", 0 }

func batch(topic string, partition int32, first, next int64) *sinks.Batch {
	return &sinks.Batch{Topic: topic, Partition: partition, FirstOffset: first, NextOffset: next,
		Counters: sinks.Counters{Read: next, Accepted: next}}
}

func testEmpty(t *testing.T, h *harness) {
	h.check("fresh sink")
	tp, p := h.topic()
	h.write(batch(tp, p, 0, 10))
	h.write(&sinks.Batch{Topic: tp, Partition: p, FirstOffset: 10, NextOffset: 10, End: true})
	if got := h.check("after batches without results"); len(got.KPIs)+len(got.Sessions)+len(got.Funnel) != 0 {
		t.Fatalf("results appeared: %s", format(got))
	}
}

func fullBatch(tp string, p int32, first int64) *sinks.Batch {
	b := batch(tp, p, first, first+100)
	b.KPIs = []kpi.Minute{Window(minute(0), 1, true), Window(minute(1), 2, true), Window(minute(2), 3, false)}
	b.Sessions = []session.Record{SessionRecord(1, 1), SessionRecord(2, 4), SessionRecord(3, 7)}
	b.Funnel = []funnel.Record{FunnelRecord(minute(0), 1), FunnelRecord(minute(1), 5)}
	b.Counters.Invalid = 2
	b.DeadLetters = []sinks.DeadLetter{{Reason: "malformed_json", Topic: tp, Partition: p, Offset: first + 3, Raw: []byte("{")}}
	return b
}

// FullBatch returns a deterministic batch of offsets [first, first+100) of
// the partition with every kind of result: final and running windows,
// sessions, funnel records, a dead letter and accepted events.
func FullBatch(topic string, partition int32, first int64) *sinks.Batch {
	b := fullBatch(topic, partition, first)
	for i := range int64(5) {
		off := first + 10 + 2*i
		b.Events = append(b.Events, sinks.Accepted{Offset: off, Event: clickstream.Event{
			EventID: fmt.Sprintf("e%d", off), EventType: "page_view", TS: minute(int(i % 2)), UserID: fmt.Sprintf("user-%d", i),
			Page: "/p", ProductID: "p01", Price: 9.5, HasPrice: i%2 == 0, Currency: "EUR",
			UTM: clickstream.UTM{Source: "google"}, Device: clickstream.Device{OS: "ios", Mobile: true}}})
	}
	return b
}

// The sink only reads the batches: a Tee hands the same ones to several
// sinks at once.
func testUnchanged(t *testing.T, h *harness) {
	tp, p := h.topic()
	b, want := FullBatch(tp, p, 0), FullBatch(tp, p, 0)
	h.write(b)
	if !reflect.DeepEqual(b, want) {
		t.Fatalf("Write changed the batch:\n got %+v\nwant %+v", b, want)
	}
}

func testRoundTrip(t *testing.T, h *harness) {
	tp, p := h.topic()
	h.write(fullBatch(tp, p, 0))
	got := h.check("after one batch")
	if len(got.KPIs) != 3 || len(got.Sessions) != 3 || len(got.Funnel) != 2 {
		t.Fatalf("read back %d windows, %d sessions, %d funnel records; want 3, 3, 2", len(got.KPIs), len(got.Sessions), len(got.Funnel))
	}
}

func testIdempotent(t *testing.T, h *harness) {
	tp, p := h.topic()
	b := fullBatch(tp, p, 0)
	h.write(b)
	once := h.check("after one write")
	h.write(b)
	twice := h.check("after the same batch again")
	if d := diff(twice, once); d != "" {
		t.Fatalf("writing a batch twice differs from once:\n%s", d)
	}
}

func (h *harness) expectWindow(m int64, want kpi.Minute) {
	h.t.Helper()
	for _, k := range h.read().KPIs {
		if k.Minute.Minute == m {
			got := KPI{Minute: k.Minute}
			w := Snapshot{KPIs: []KPI{{Minute: want}}}.normalize(false).KPIs[0]
			if d := diff(Snapshot{KPIs: []KPI{got}}, Snapshot{KPIs: []KPI{w}}); d != "" {
				h.t.Fatalf("window %s:\n%s", clickstream.FormatTime(m), d)
			}
			return
		}
	}
	h.t.Fatalf("window %s not found", clickstream.FormatTime(m))
}

func kpiBatch(tp string, p int32, first int64, ms ...kpi.Minute) *sinks.Batch {
	b := batch(tp, p, first, first+10)
	b.KPIs = ms
	return b
}

func testRunningThenFinal(t *testing.T, h *harness) {
	tp, p := h.topic()
	m := minute(5)
	h.write(withFunnel(kpiBatch(tp, p, 0, Window(m, 1, false)), RunningFunnel(m, 1)))
	h.expectWindow(m, Window(m, 1, false))
	h.check("after a running update")
	h.write(withFunnel(kpiBatch(tp, p, 10, Window(m, 2, false)), RunningFunnel(m, 2)))
	h.expectWindow(m, Window(m, 2, false))
	h.check("after a second running update")
	h.write(withFunnel(kpiBatch(tp, p, 20, Window(m, 3, true)), FunnelRecord(m, 3)))
	h.expectWindow(m, Window(m, 3, true))
	h.check("after running updates and the final")
}

func testFinalThenStale(t *testing.T, h *harness) {
	tp, p := h.topic()
	m := minute(7)
	final := withFunnel(kpiBatch(tp, p, 10, Window(m, 4, true), Window(minute(8), 5, false)),
		FunnelRecord(m, 4), RunningFunnel(minute(8), 5))
	h.write(final)
	// A replay from an older checkpoint: a stale running update of the final
	// window and funnel minute, and a newer running update of the open ones.
	h.write(withFunnel(kpiBatch(tp, p, 0, Window(m, 1, false), Window(minute(8), 6, false)),
		RunningFunnel(m, 1), RunningFunnel(minute(8), 6)))
	h.expectWindow(m, Window(m, 4, true))
	h.expectWindow(minute(8), Window(minute(8), 6, false))
	h.write(final)
	h.expectWindow(m, Window(m, 4, true))
	h.check("after a stale running update")
}

func testFinalWithinBatch(t *testing.T, h *harness) {
	tp, p := h.topic()
	m0, m1 := minute(3), minute(4)
	h.write(withFunnel(kpiBatch(tp, p, 0,
		Window(m0, 1, false), Window(m0, 2, true), Window(m0, 3, false),
		Window(m1, 4, false), Window(m1, 5, false)),
		RunningFunnel(m0, 1), FunnelRecord(m0, 2), RunningFunnel(m0, 3), RunningFunnel(m1, 4), RunningFunnel(m1, 5)))
	h.expectWindow(m0, Window(m0, 2, true))
	h.expectWindow(m1, Window(m1, 5, false))
	h.check("after one batch with running updates and a final")
}

func testPartitions(t *testing.T, h *harness) {
	if !h.tg.PerPartition {
		t.Skip("the target does not tell partitions apart (PerPartition false)")
	}
	m := minute(1)
	parts := []struct {
		topic string
		p     int32
	}{{"clicks", 0}, {"clicks", 1}, {"a/b c", 0}, {"a", 12}, {"a/1", 2}}
	for i, pt := range parts {
		b := kpiBatch(pt.topic, pt.p, 0, Window(m, 10+i, true), Window(minute(2), 20+i, false))
		b.Sessions = []session.Record{SessionRecord(1, 1+i)}
		b.Funnel = []funnel.Record{FunnelRecord(m, 2+i)}
		h.write(b)
	}
	// A running update in one partition leaves the others' finals alone.
	h.write(kpiBatch("clicks", 1, 10, Window(m, 30, false)))
	got := h.check("after five partitions")
	if len(got.KPIs) != 2*len(parts) || len(got.Sessions) != len(parts) || len(got.Funnel) != len(parts) {
		t.Fatalf("read back %d windows, %d sessions, %d funnel records; want %d, %d, %d",
			len(got.KPIs), len(got.Sessions), len(got.Funnel), 2*len(parts), len(parts), len(parts))
	}
}

func testNoRetention(t *testing.T, h *harness) {
	tp, p := h.topic()
	b := fullBatch(tp, p, 0)
	h.write(b)
	before := h.check("after the write")
	// What pipeline.Processor.Reset does, then new results in the old slots.
	clear(b.KPIs)
	clear(b.Sessions)
	clear(b.Funnel)
	clear(b.DeadLetters)
	b.KPIs[0] = Window(minute(0), 99, false)
	b.Sessions[0] = SessionRecord(1, 99)
	b.Funnel[0] = FunnelRecord(minute(0), 99)
	b.Topic, b.Partition = "other", 9
	after := h.read()
	if d := diff(after, before); d != "" {
		t.Fatalf("changing the batch after Write changed the sink:\n%s", d)
	}
}

func testRandomReplays(t *testing.T, h *harness) {
	rng := rand.New(rand.NewPCG(20240501, 1))
	type part struct {
		topic string
		p     int32
	}
	parts := []part{{"clicks", 0}, {"clicks", 1}, {"views", 0}}
	if !h.tg.PerPartition {
		tp, p := h.topic()
		parts = []part{{tp, p}}
	}
	next := map[part]int64{}
	var written []*sinks.Batch
	for step := range 40 {
		var b *sinks.Batch
		if len(written) > 0 && rng.IntN(10) < 3 {
			b = written[rng.IntN(len(written))] // a replay after a crash
		} else {
			pi := rng.IntN(len(parts))
			pt := parts[pi]
			n := int64(1 + rng.IntN(20))
			b = batch(pt.topic, pt.p, next[pt], next[pt]+n)
			next[pt] += n
			for range 1 + rng.IntN(3) {
				mi := rng.IntN(5)
				if rng.IntN(3) == 0 { // a final is the same in every run
					b.KPIs = append(b.KPIs, Window(minute(mi), 100+10*mi+pi, true))
				} else {
					b.KPIs = append(b.KPIs, Window(minute(mi), rng.IntN(50), false))
				}
			}
			for range rng.IntN(3) {
				u := rng.IntN(6)
				b.Sessions = append(b.Sessions, SessionRecord(u, 3*u+pi))
			}
			if rng.IntN(3) == 0 {
				mi := rng.IntN(5)
				b.Funnel = append(b.Funnel, FunnelRecord(minute(mi), 7*mi+pi))
			}
			written = append(written, b)
		}
		h.write(b)
		if step%20 == 19 {
			h.check(fmt.Sprintf("after step %d", step))
		}
	}
}

// testRounds writes the batches of several partitions in one call, as the
// pipeline hands over an update round, and replays such rounds: the result
// is that of writing them one by one.
func testRounds(t *testing.T, h *harness) {
	parts := []int32{0, 1, 2}
	if !h.tg.PerPartition {
		parts = parts[:1]
	}
	tp, _ := h.topic()
	var rounds [][]*sinks.Batch
	for r := range 3 {
		var round []*sinks.Batch
		for _, p := range parts {
			b := kpiBatch(tp, p, int64(10*r), Window(minute(r), 40+r+int(p), true), Window(minute(r+1), r+int(p), false))
			b.NextOffset = int64(10*r + 10)
			b.Sessions = []session.Record{SessionRecord(r, r+int(p)), SessionRecord(r+3, 2*r+int(p))}
			b.Funnel = []funnel.Record{FunnelRecord(minute(r), r+int(p))}
			round = append(round, b)
		}
		rounds = append(rounds, round)
		h.write(round...)
	}
	h.check("after three rounds")
	h.write(rounds[1]...) // replays after a crash
	h.write(rounds[2]...)
	h.check("after the replay of two rounds")
}

func testCloseTwice(t *testing.T, h *harness) {
	tp, p := h.topic()
	h.write(fullBatch(tp, p, 0))
	if err := h.tg.Sink.Close(t.Context()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := h.tg.Sink.Close(t.Context()); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// diff describes how got differs from want, "" when it does not.
func diff(got, want Snapshot) string {
	var sb strings.Builder
	list := func(what string, g, w []string) {
		for i := range max(len(g), len(w)) {
			gs, ws := "(none)", "(none)"
			if i < len(g) {
				gs = g[i]
			}
			if i < len(w) {
				ws = w[i]
			}
			if gs != ws {
				fmt.Fprintf(&sb, "%s %d:\n  got  %s\n  want %s\n", what, i, gs, ws)
			}
		}
	}
	gs, ws := lines(got), lines(want)
	list("window", gs[0], ws[0])
	list("session", gs[1], ws[1])
	list("funnel", gs[2], ws[2])
	if sb.Len() == 0 && !reflect.DeepEqual(got, want) {
		sb.WriteString("snapshots differ in a way their formatting hides")
	}
	return sb.String()
}

func lines(s Snapshot) [3][]string {
	var out [3][]string
	for _, k := range s.KPIs {
		out[0] = append(out[0], fmt.Sprintf("%s/%d %s final=%v %+v by_currency=%v top=%+v latency=%v",
			k.Topic, k.Partition, clickstream.FormatTime(k.Minute.Minute), k.Final, k.Counts,
			k.RevenueByCurrency, k.TopProducts, k.Latency.Bins()))
	}
	for _, x := range s.Sessions {
		out[1] = append(out[1], fmt.Sprintf("%s/%d %+v", x.Topic, x.Partition, x.Record))
	}
	for _, f := range s.Funnel {
		out[2] = append(out[2], fmt.Sprintf("%s/%d %s %+v", f.Topic, f.Partition, clickstream.FormatTime(f.Minute), f.Record))
	}
	return out
}

func format(s Snapshot) string {
	l := lines(s)
	return strings.Join(slices.Concat(l[0], l[1], l[2]), "\n")
}
