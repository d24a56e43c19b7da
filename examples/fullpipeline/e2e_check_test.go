package main

// Helpers of the end-to-end tests: what the run wrote to MongoDB, Parquet
// and the dead-letter topic, read back on its own (not through the sinks'
// queries) and compared with the replay.

import (
	"context"
	"errors"
	"math"
	"net/url"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	mongoopts "go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/clickstreamkit/clickstream"
	"github.com/clickstreamkit/clickstream/funnel"
	"github.com/clickstreamkit/clickstream/sinks/kafkadl"
	mongosink "github.com/clickstreamkit/clickstream/sinks/mongo"
	"github.com/clickstreamkit/clickstream/sinks/parquet"
)

type e2eKPIDoc struct {
	ID                string             `bson:"_id"`
	Minute            bson.DateTime      `bson:"minute"`
	Topic             string             `bson:"topic"`
	Partition         int32              `bson:"partition"`
	Final             bool               `bson:"final"`
	Events            int64              `bson:"events"`
	PageViews         int64              `bson:"page_views"`
	AddToCarts        int64              `bson:"add_to_carts"`
	Purchases         int64              `bson:"purchases"`
	Sessions          int64              `bson:"sessions"`
	Revenue           float64            `bson:"revenue"`
	RevenuePurchases  int64              `bson:"revenue_purchases"`
	RevenueByCurrency map[string]float64 `bson:"revenue_by_currency"`
	ConversionRate    float64            `bson:"conversion_rate"`
	AOV               float64            `bson:"aov"`
	TopProducts       mongosink.Products `bson:"top_products"`
}

type e2eSessionDoc struct {
	ID         string        `bson:"_id"`
	SessionID  string        `bson:"session_id"`
	UserID     string        `bson:"user_id"`
	Topic      string        `bson:"topic"`
	Partition  int32         `bson:"partition"`
	Start      bson.DateTime `bson:"start"`
	End        bson.DateTime `bson:"end"`
	DurationMs int64         `bson:"duration_ms"`
	Events     int64         `bson:"events"`
	PageViews  int64         `bson:"page_views"`
	AddToCarts int64         `bson:"add_to_carts"`
	Purchases  int64         `bson:"purchases"`
	Revenue    float64       `bson:"revenue"`
	Bounced    bool          `bson:"bounced"`
	Converted  bool          `bson:"converted"`
}

type e2eFunnelDoc struct {
	ID                    string          `bson:"_id"`
	Minute                bson.DateTime   `bson:"minute"`
	Topic                 string          `bson:"topic"`
	Partition             int32           `bson:"partition"`
	Entered               int64           `bson:"entered"`
	Steps                 []int64         `bson:"steps"`
	StepRates             []float64       `bson:"step_rates"`
	OverallRate           float64         `bson:"overall_rate"`
	MedianTimeToConvertMs *int64          `bson:"median_time_to_convert_ms"`
	TimesMs               mongosink.Times `bson:"times_ms"`
	Final                 bool            `bson:"final"`
	Running               *struct {
		Steps []int64 `bson:"steps"`
	} `bson:"running"`
}

// e2eMongo connects to uri for reading results.
func e2eMongo(t *testing.T, uri string) *mongo.Client {
	t.Helper()
	c, err := mongo.Connect(mongoopts.Client().ApplyURI(uri).SetTimeout(30 * time.Second))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Disconnect(context.Background()) })
	return c
}

// dropDatabaseAtEnd drops the run's database when the test ends.
func (r *e2eRun) dropDatabaseAtEnd(c *mongo.Client) {
	r.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = c.Database(r.database).Drop(ctx)
	})
}

// countFinals counts the final KPI documents and the sessions in the run's
// database, for the log.
func (r *e2eRun) countFinals(c *mongo.Client) (finals, sessions int64) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db := c.Database(r.database)
	finals, _ = db.Collection("kpis_minute").CountDocuments(ctx, bson.D{{Key: "final", Value: true}})
	sessions, _ = db.Collection("sessions").CountDocuments(ctx, bson.D{})
	return finals, sessions
}

func e2eFind[T any](t *testing.T, coll *mongo.Collection) []T {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cur, err := coll.Find(ctx, bson.D{})
	require.NoError(t, err, "find in %s", coll.Name())
	var out []T
	require.NoError(t, cur.All(ctx, &out), "read %s", coll.Name())
	return out
}

// e2eClose says whether a and b agree within 1e-9 relative.
func e2eClose(a, b float64) bool {
	if a == b {
		return true
	}
	return math.Abs(a-b) <= 1e-9*max(math.Abs(a), math.Abs(b))
}

func e2eCloseSlices(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !e2eClose(a[i], b[i]) {
			return false
		}
	}
	return true
}

func e2eCloseMaps(a, b map[string]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || !e2eClose(v, w) {
			return false
		}
	}
	return true
}

// e2eCheckOptions says what a scenario allows.
type e2eCheckOptions struct {
	// dedupeDeadLetters allows the same dead letter (same source partition
	// and offset, same content) more than once in the dead-letter topic.
	dedupeDeadLetters bool
}

// check compares everything the run produced with the replay: MongoDB's
// final KPI, session and funnel documents, the Parquet archive, the
// dead-letter topic and the group's committed offsets.
func (r *e2eRun) check(exp map[int32]*e2ePartExpect, mc *mongo.Client, opt e2eCheckOptions) {
	t := r.t
	t.Helper()
	r.checkMongo(exp, mc)
	r.checkParquet(exp)
	r.checkDeadLetters(exp, opt)
	ends := r.ends()
	c, err := r.committed()
	require.NoError(t, err, "committed offsets")
	for p, end := range ends {
		assert.Equal(t, end, c[p], "committed offset of partition %d must reach its end", p)
	}
}

func (r *e2eRun) checkMongo(exp map[int32]*e2ePartExpect, mc *mongo.Client) {
	t := r.t
	t.Helper()
	db := mc.Database(r.database)
	topicID := url.PathEscape(r.topic)

	// KPI windows
	kpiDocs := e2eFind[e2eKPIDoc](t, db.Collection("kpis_minute"))
	got := map[int32]map[int64]e2eKPIDoc{}
	for _, d := range kpiDocs {
		require.Equal(t, r.topic, d.Topic, "kpis_minute document %s of another topic", d.ID)
		if got[d.Partition] == nil {
			got[d.Partition] = map[int64]e2eKPIDoc{}
		}
		got[d.Partition][int64(d.Minute)] = d
	}
	nKPIs, kpiBad := 0, 0
	for part, e := range exp {
		nKPIs += len(e.KPIs)
		assert.Len(t, got[part], len(e.KPIs), "partition %d: kpis_minute documents vs final minutes of the replay", part)
		for minute, want := range e.KPIs {
			d, ok := got[part][minute]
			if !ok {
				kpiBad++
				t.Errorf("partition %d minute %s: no kpis_minute document", part, clickstream.FormatTime(minute))
				continue
			}
			id := topicID + "/" + strconv.Itoa(int(part)) + "/" + clickstream.FormatTime(minute)
			ok = d.ID == id && d.Final && d.Events == want.Events && d.PageViews == want.PageViews &&
				d.AddToCarts == want.AddToCarts && d.Purchases == want.Purchases && d.Sessions == want.Sessions &&
				d.RevenuePurchases == want.RevenuePurchases && e2eClose(d.Revenue, want.Revenue) &&
				e2eClose(d.ConversionRate, want.ConversionRate()) && e2eClose(d.AOV, want.AOV()) &&
				e2eCloseMaps(d.RevenueByCurrency, want.RevenueByCurrency) && len(d.TopProducts) == len(want.TopProducts)
			for i := 0; ok && i < len(d.TopProducts); i++ {
				g, w := d.TopProducts[i], want.TopProducts[i]
				ok = g.ProductID == w.ProductID && g.Views == w.Views && g.Carts == w.Carts && g.Purchases == w.Purchases &&
					e2eClose(g.Revenue, w.Revenue)
			}
			if !ok {
				kpiBad++
				if kpiBad <= 5 {
					t.Errorf("partition %d minute %s: kpis_minute document differs from the replay:\n got  %+v\n want %+v (conversion_rate %v, aov %v)",
						part, clickstream.FormatTime(minute), d, want, want.ConversionRate(), want.AOV())
				}
			}
		}
	}
	assert.Len(t, kpiDocs, nKPIs, "kpis_minute documents in all")
	assert.Zero(t, kpiBad, "kpis_minute documents differing from the replay")

	// sessions
	sessDocs := e2eFind[e2eSessionDoc](t, db.Collection("sessions"))
	gotS := map[int32]map[string]e2eSessionDoc{}
	for _, d := range sessDocs {
		require.Equal(t, r.topic, d.Topic, "sessions document %s of another topic", d.ID)
		if gotS[d.Partition] == nil {
			gotS[d.Partition] = map[string]e2eSessionDoc{}
		}
		gotS[d.Partition][d.SessionID] = d
	}
	nSess, sessBad := 0, 0
	for part, e := range exp {
		nSess += len(e.Sessions)
		assert.Len(t, gotS[part], len(e.Sessions), "partition %d: sessions documents vs sessions of the replay", part)
		for id, w := range e.Sessions {
			d, ok := gotS[part][id]
			ok = ok && d.ID == topicID+"/"+strconv.Itoa(int(part))+"/"+clickstream.FormatTime(w.Start)+"/"+w.UserID && d.UserID == w.UserID &&
				int64(d.Start) == w.Start && int64(d.End) == w.End && d.DurationMs == w.DurationMs &&
				d.Events == w.Events && d.PageViews == w.PageViews && d.AddToCarts == w.AddToCarts &&
				d.Purchases == w.Purchases && e2eClose(d.Revenue, w.Revenue) && d.Bounced == w.Bounced && d.Converted == w.Converted
			if !ok {
				sessBad++
				if sessBad <= 5 {
					t.Errorf("partition %d session %s: document differs from the replay or is missing:\n got  %+v\n want %+v", part, id, d, w)
				}
			}
		}
	}
	assert.Len(t, sessDocs, nSess, "sessions documents in all")
	assert.Zero(t, sessBad, "sessions differing from the replay")

	// funnel
	funDocs := e2eFind[e2eFunnelDoc](t, db.Collection("funnel_minute"))
	gotF := map[int32]map[int64]e2eFunnelDoc{}
	finals := 0
	for _, d := range funDocs {
		require.Equal(t, r.topic, d.Topic, "funnel_minute document %s of another topic", d.ID)
		if !d.Final {
			// After the end of input only a minute whose sessions all moved
			// to an earlier one keeps running values: zeros, or what was
			// shown before a restart that lost the zero record. The merged
			// views leave them out (sinks.View); the replay has no record of
			// the minute, which the counts below check.
			require.NotNil(t, d.Running, "funnel_minute document %s neither final nor running", d.ID)
			continue
		}
		finals++
		if gotF[d.Partition] == nil {
			gotF[d.Partition] = map[int64]e2eFunnelDoc{}
		}
		gotF[d.Partition][int64(d.Minute)] = d
	}
	nFun, funBad := 0, 0
	for part, e := range exp {
		nFun += len(e.Funnel)
		assert.Len(t, gotF[part], len(e.Funnel), "partition %d: funnel_minute documents vs funnel minutes of the replay", part)
		for minute, w := range e.Funnel {
			d, ok := gotF[part][minute]
			ok = ok && d.ID == topicID+"/"+strconv.Itoa(int(part))+"/"+clickstream.FormatTime(minute) &&
				d.Entered == w.Entered && slices.Equal(d.Steps, w.Steps) && e2eCloseSlices(d.StepRates, w.StepRates) &&
				e2eClose(d.OverallRate, w.OverallRate) && slices.Equal(e2eNonNilInts(d.TimesMs), e2eNonNilInts(w.TimesMs)) &&
				(d.MedianTimeToConvertMs != nil) == w.HasMedian &&
				(!w.HasMedian || *d.MedianTimeToConvertMs == w.MedianTimeToConvertMs)
			if !ok {
				funBad++
				if funBad <= 5 {
					t.Errorf("partition %d funnel minute %s: document differs from the replay or is missing:\n got  %+v\n want %+v",
						part, clickstream.FormatTime(minute), d, w)
				}
			}
		}
	}
	assert.Equal(t, nFun, finals, "final funnel_minute documents in all")
	assert.Zero(t, funBad, "funnel minutes differing from the replay")

	// The merged view of every minute, stale running documents left out,
	// is the replay's records merged over partitions.
	ms, err := mongosink.New(mc, r.database)
	require.NoError(t, err)
	merged, err := ms.Funnel(context.Background(), time.UnixMilli(0), time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC))
	require.NoError(t, err)
	byMinute := map[int64][]funnel.Record{}
	for _, e := range exp {
		for minute, w := range e.Funnel {
			byMinute[minute] = append(byMinute[minute], w)
		}
	}
	assert.Len(t, merged, len(byMinute), "merged funnel minutes vs the replay's")
	for _, m := range merged {
		w := funnel.Merge(byMinute[m.Minute]...)
		assert.True(t, m.Final && m.Entered == w.Entered && slices.Equal(m.Steps, w.Steps),
			"merged funnel minute %s: got %v %v final %v, want %v %v", clickstream.FormatTime(m.Minute), m.Entered, m.Steps, m.Final, w.Entered, w.Steps)
	}
}

func e2eNonNilInts(s []int64) []int64 {
	if s == nil {
		return []int64{}
	}
	return s
}

func (r *e2eRun) checkParquet(exp map[int32]*e2ePartExpect) {
	t := r.t
	t.Helper()
	rows, err := parquet.ReadEvents(r.parquetDir)
	require.NoError(t, err, "parquet.ReadEvents")
	got := map[int32][]parquet.Row{}
	for _, row := range rows {
		require.Equal(t, r.topic, row.Topic, "parquet row of another topic")
		got[row.Partition] = append(got[row.Partition], row)
	}
	n := 0
	for part, e := range exp {
		n += len(e.Events)
		g := got[part]
		bad := 0
		if len(g) != len(e.Events) {
			t.Errorf("partition %d: %d Parquet event rows, the replay accepted %d events", part, len(g), len(e.Events))
		}
		for i := range min(len(g), len(e.Events)) {
			if g[i].Offset != e.Events[i].Offset || g[i].Event != e.Events[i].Event {
				bad++
				if bad <= 5 {
					t.Errorf("partition %d: Parquet row %d differs from the replay's accepted event:\n got  offset %d %+v\n want offset %d %+v",
						part, i, g[i].Offset, g[i].Event, e.Events[i].Offset, e.Events[i].Event)
				}
			}
		}
		seen := map[int64]bool{}
		for _, row := range g {
			if seen[row.Offset] {
				t.Errorf("partition %d: offset %d archived more than once", part, row.Offset)
			}
			seen[row.Offset] = true
		}
	}
	assert.Len(t, rows, n, "Parquet event rows in all")

	// The KPI archive: every final minute of the replay, counts exact.
	kpis, err := parquet.ReadKPIs(r.parquetDir)
	require.NoError(t, err, "parquet.ReadKPIs")
	gotK := map[int32]map[int64]parquet.KPIRow{}
	for _, k := range kpis {
		if gotK[k.Partition] == nil {
			gotK[k.Partition] = map[int64]parquet.KPIRow{}
		}
		gotK[k.Partition][k.Minute] = k
	}
	nk := 0
	for part, e := range exp {
		nk += len(e.KPIs)
		for minute, w := range e.KPIs {
			g, ok := gotK[part][minute]
			if !ok || g.Events != w.Events || g.PageViews != w.PageViews || g.AddToCarts != w.AddToCarts ||
				g.Purchases != w.Purchases || g.Sessions != w.Sessions || g.RevenuePurchases != w.RevenuePurchases ||
				!e2eClose(g.Revenue, w.Revenue) {
				t.Errorf("partition %d minute %s: Parquet KPI row differs from the replay or is missing:\n got  %+v\n want %+v",
					part, clickstream.FormatTime(minute), g, w.Counts)
			}
		}
	}
	assert.Len(t, kpis, nk, "Parquet KPI rows in all")
}

// e2eDead is a dead letter as read from the dead-letter topic.
type e2eDead struct {
	Reason, Field, SourceTopic string
	SourcePartition            int32
	SourceOffset               int64
	Raw                        string
}

func (r *e2eRun) readDeadLetters() []e2eDead {
	t := r.t
	t.Helper()
	end, err := r.client.GetOffset(r.dlTopic, 0, sarama.OffsetNewest)
	require.NoError(t, err)
	var out []e2eDead
	if end == 0 {
		return out
	}
	consumer, err := sarama.NewConsumerFromClient(r.client)
	require.NoError(t, err)
	defer consumer.Close()
	pc, err := consumer.ConsumePartition(r.dlTopic, 0, sarama.OffsetOldest)
	require.NoError(t, err)
	defer pc.Close()
	timeout := time.After(time.Minute)
	for {
		select {
		case m := <-pc.Messages():
			h := map[string]string{}
			for _, rh := range m.Headers {
				h[string(rh.Key)] = string(rh.Value)
			}
			part, err1 := strconv.ParseInt(h[kafkadl.HeaderSourcePartition], 10, 32)
			off, err2 := strconv.ParseInt(h[kafkadl.HeaderSourceOffset], 10, 64)
			require.NoError(t, errors.Join(err1, err2), "dead letter at %d: headers %v", m.Offset, h)
			out = append(out, e2eDead{Reason: h[kafkadl.HeaderReason], Field: h[kafkadl.HeaderField],
				SourceTopic: h[kafkadl.HeaderSourceTopic], SourcePartition: int32(part), SourceOffset: off, Raw: string(m.Value)})
			if m.Offset+1 >= end {
				return out
			}
		case err := <-pc.Errors():
			t.Fatalf("reading %s: %v", r.dlTopic, err)
		case <-timeout:
			t.Fatalf("timed out reading %s: %d of %d records", r.dlTopic, len(out), end)
		}
	}
}

func (r *e2eRun) checkDeadLetters(exp map[int32]*e2ePartExpect, opt e2eCheckOptions) {
	t := r.t
	t.Helper()
	type key struct {
		part int32
		off  int64
	}
	got := map[key]e2eDead{}
	dups := 0
	for _, d := range r.readDeadLetters() {
		k := key{d.SourcePartition, d.SourceOffset}
		if prev, ok := got[k]; ok {
			dups++
			assert.Equal(t, prev, d, "a dead letter produced twice must be the same")
			continue
		}
		got[k] = d
	}
	if opt.dedupeDeadLetters {
		t.Logf("dead-letter topic: %d distinct dead letters, %d produced again by replays after a crash", len(got), dups)
	} else {
		assert.Zero(t, dups, "dead letters produced more than once in a run without crashes")
	}
	want := map[key]e2eDead{}
	reasons := map[string]int{}
	for part, e := range exp {
		for _, d := range e.Dead {
			want[key{part, d.Offset}] = e2eDead{Reason: string(d.Reason), Field: d.Field, SourceTopic: r.topic,
				SourcePartition: part, SourceOffset: d.Offset, Raw: string(d.Raw)}
			reasons[string(d.Reason)]++
		}
	}
	t.Logf("expected dead letters by reason: %v", reasons)
	require.NotZero(t, reasons["late"], "the data set must hold late events")
	bad := 0
	for k, w := range want {
		if g, ok := got[k]; !ok || g != w {
			bad++
			if bad <= 5 {
				t.Errorf("dead letter of partition %d offset %d differs or is missing:\n got  %+v\n want %+v", k.part, k.off, g, w)
			}
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			bad++
			if bad <= 10 {
				t.Errorf("unexpected dead letter of partition %d offset %d: %+v", k.part, k.off, g)
			}
		}
	}
	assert.Len(t, got, len(want), "distinct dead letters")
	assert.Zero(t, bad, "dead letters differing from the replay's invalid and late messages")
}
