package embedmongo_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/clickstreamkit/clickstream/examples/internal/embedmongo"
)

// benchSink keeps the benchmarks' results alive.
var benchSink int64

// benchValue makes every upsert's value new, across the runs of a
// benchmark too, so that each one writes; negated, unlike the inserted.
var benchValue atomic.Int64

var benchModes = []struct {
	name string
	opts []embedmongo.Option
}{
	{"sync=normal/index=on", []embedmongo.Option{embedmongo.WithSynchronous("normal")}},
	{"sync=full/index=on", []embedmongo.Option{embedmongo.WithSynchronous("full")}},
	{"sync=normal/index=off", []embedmongo.Option{embedmongo.WithSynchronous("normal"), embedmongo.WithIDIndex(false)}},
	{"sync=full/index=off", []embedmongo.Option{embedmongo.WithSynchronous("full"), embedmongo.WithIDIndex(false)}},
}

// BenchmarkUpsertByID measures the MongoDB sink's kind of write, an
// upsert by string _id of a document that exists, by 1 and 4 concurrent
// writers, as the collection grows to 50,000 documents: docs/s is
// upserts per second.
func BenchmarkUpsertByID(b *testing.B) {
	for _, m := range benchModes {
		b.Run(m.name, func(b *testing.B) {
			// run once: the sub-benchmarks share the growing collection
			srv, client := start(b, b.TempDir(), nil, append(m.opts, embedmongo.WithInterval(0))...)
			coll := client.Database("bench").Collection("kpis_minute")
			have := 0
			for _, n := range []int{1_000, 10_000, 50_000} {
				insertDocs(b, coll, have, n)
				have = n
				require.NoError(b, srv.EnsureIndexes(context.Background(), "bench"))
				for _, writers := range []int{1, 4} {
					b.Run(fmt.Sprintf("docs=%d/writers=%d", n, writers), func(b *testing.B) {
						upsertByID(b, coll, n, writers)
					})
				}
			}
		})
	}
}

// upsertByID runs b.N upserts of the n documents' ids, spread over
// writers goroutines (so b.N, not b.Loop, which one goroutine runs).
func upsertByID(b *testing.B, coll *mongo.Collection, n, writers int) {
	b.ReportAllocs()
	ctx := context.Background()
	var next, modified atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for range writers {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				id := fmt.Sprintf("k%04d", i*7919%int64(n)) // 7919 is prime: every id in turn
				res, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}},
					bson.D{{Key: "$set", Value: bson.D{{Key: "v", Value: -benchValue.Add(1)}}}}, options.UpdateOne().SetUpsert(true))
				if err != nil {
					b.Error(err)
					return
				}
				modified.Add(res.ModifiedCount)
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	require.EqualValues(b, b.N, modified.Load(), "every upsert replaces an existing document")
	benchSink = modified.Load()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "docs/s")
}

// BenchmarkInsertMany measures unordered InsertMany of 1,000 new
// documents a call: docs/s is documents inserted per second.
func BenchmarkInsertMany(b *testing.B) {
	const batch = 1_000
	for _, m := range benchModes {
		b.Run(m.name, func(b *testing.B) {
			ctx := context.Background()
			srv, client := start(b, b.TempDir(), nil, append(m.opts, embedmongo.WithInterval(0))...)
			coll := client.Database("bench").Collection("kpis_minute")
			insertDocs(b, coll, 0, batch)
			require.NoError(b, srv.EnsureIndexes(ctx, "bench"))
			docs := make([]any, batch)
			next := batch
			b.ReportAllocs()
			for b.Loop() {
				for i := range docs {
					docs[i] = bson.D{{Key: "_id", Value: fmt.Sprintf("k%04d", next)}, {Key: "v", Value: int64(next)}}
					next++
				}
				res, err := coll.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
				require.NoError(b, err)
				benchSink += int64(len(res.InsertedIDs))
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "docs/s")
		})
	}
}

// BenchmarkEnsureIndexes measures a look that finds nothing to do, the
// periodic one's usual case, in a database with the demo's six
// collections.
func BenchmarkEnsureIndexes(b *testing.B) {
	ctx := context.Background()
	srv, client := start(b, b.TempDir(), nil, embedmongo.WithInterval(0))
	for _, c := range []string{"kpis_minute", "sessions", "funnel_minute", "progress", "checkpoints", "checkpoints_segments"} {
		insertDocs(b, client.Database("bench").Collection(c), 0, 10)
	}
	require.NoError(b, srv.EnsureIndexes(ctx, "bench"))
	b.ReportAllocs()
	for b.Loop() {
		require.NoError(b, srv.EnsureIndexes(ctx, "bench"))
	}
}
