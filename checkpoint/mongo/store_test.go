package mongo_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/clickstreamkit/clickstream"
	"github.com/clickstreamkit/clickstream/checkpoint"
	"github.com/clickstreamkit/clickstream/checkpoint/checkpointtest"
	cpmongo "github.com/clickstreamkit/clickstream/checkpoint/mongo"
	"github.com/clickstreamkit/clickstream/internal/mongotest"
)

func client(t *testing.T) *mongo.Client { return mongotest.Client(t) }

func database(t *testing.T, c *mongo.Client) string { return mongotest.Database(t, c, "cs_test_ckpt_") }

func TestStore(t *testing.T) {
	c := client(t)
	checkpointtest.Run(t, func(t *testing.T) checkpoint.Store {
		s, err := cpmongo.New(c, database(t, c))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestStoreTooLarge(t *testing.T) {
	c, err := mongo.Connect(options.Client().ApplyURI("mongodb://127.0.0.1:1/"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(context.Background())
	s, err := cpmongo.New(c, "unused")
	if err != nil {
		t.Fatal(err)
	}
	for name, cp := range map[string]checkpoint.Checkpoint{
		"state":   {Topic: "clicks", State: make([]byte, cpmongo.MaxState+1)},
		"head":    {Topic: "clicks", State: make([]byte, cpmongo.MaxState-100), Segments: make([]checkpoint.Segment, 10)},
		"segment": {Topic: "clicks", Segments: []checkpoint.Segment{{ID: 1, Data: []byte{1}}, {ID: 2, Data: make([]byte, cpmongo.MaxState+1)}}},
	} {
		err := s.Save(t.Context(), cp)
		if !errors.Is(err, cpmongo.ErrStateTooLarge) || !errors.Is(err, clickstream.ErrPermanent) {
			t.Errorf("Save of a %s over MaxState = %v, want a permanent ErrStateTooLarge", name, err)
		}
	}
}

// segmentIDs lists the _id of the documents in the segment collection.
func segmentIDs(t *testing.T, coll *mongo.Collection) []string {
	t.Helper()
	cur, err := coll.Find(t.Context(), bson.D{}, options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		t.Fatal(err)
	}
	var docs []struct {
		ID string `bson:"_id"`
	}
	if err := cur.All(t.Context(), &docs); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, d := range docs {
		ids = append(ids, d.ID)
	}
	slices.Sort(ids)
	return ids
}

func newStore(t *testing.T, opts ...cpmongo.Option) (*cpmongo.Store, *mongo.Database) {
	t.Helper()
	c := client(t)
	db := database(t, c)
	s, err := cpmongo.New(c, db, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s, c.Database(db)
}

// A Save removes the documents of the segments it drops, in the segment
// collection named by WithSegmentCollection.
func TestStoreRemovesDropped(t *testing.T) {
	s, db := newStore(t, cpmongo.WithSegmentCollection("ids"))
	seg := func(id uint64) checkpoint.Segment { return checkpoint.Segment{ID: id, Data: []byte{byte(id)}} }
	for _, cp := range []checkpoint.Checkpoint{
		{Topic: "a/b", Partition: 1, Next: 1, Segments: []checkpoint.Segment{seg(1), seg(2), seg(3)}},
		{Topic: "a/b", Partition: 1, Next: 2, Segments: []checkpoint.Segment{{ID: 3}, seg(4)}},
		{Topic: "a/b", Partition: 2, Next: 1, Segments: []checkpoint.Segment{seg(1)}},
	} {
		if err := s.Save(t.Context(), cp); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := segmentIDs(t, db.Collection("ids")), []string{"a%2Fb/1/3", "a%2Fb/1/4", "a%2Fb/2/1"}; !slices.Equal(got, want) {
		t.Fatalf("segment documents = %v, want %v", got, want)
	}
	if n, err := db.Collection("checkpoints_segments").EstimatedDocumentCount(t.Context()); err != nil || n != 0 {
		t.Fatalf("default segment collection holds %d, %v; want it unused", n, err)
	}
}

// Segments a crash left unlisted are removed by Load once the head is past
// the Save that wrote them; those of a Save that may still land stay.
func TestStoreRemovesGarbage(t *testing.T) {
	s, db := newStore(t)
	segs := db.Collection("checkpoints_segments")
	if err := s.Save(t.Context(), checkpoint.Checkpoint{Topic: "clicks", Partition: 0, Next: 100, Generation: 1,
		Segments: []checkpoint.Segment{{ID: 1, Data: []byte("one")}}}); err != nil {
		t.Fatal(err)
	}
	left := func(id string, seg, gen, next int64) bson.D {
		return bson.D{{Key: "_id", Value: id}, {Key: "topic", Value: "clicks"}, {Key: "partition", Value: int32(0)},
			{Key: "seg", Value: seg}, {Key: "generation", Value: gen}, {Key: "next", Value: next}, {Key: "data", Value: []byte("left")}}
	}
	if _, err := segs.InsertMany(t.Context(), []any{
		left("clicks/0/7", 7, 1, 90),  // its Save is behind the head: it can never land
		left("clicks/0/8", 8, 0, 200), // an older generation
		left("clicks/0/9", 9, 1, 150), // ahead of the head: its Save may still land
		left("clicks/1/7", 7, 0, 0),   // another partition
	}); err != nil {
		t.Fatal(err)
	}
	if cp, err := s.Load(t.Context(), "clicks", 0); err != nil || cp.Next != 100 || len(cp.Segments) != 1 {
		t.Fatalf("Load = %+v, %v; want the saved checkpoint", cp, err)
	}
	if got, want := segmentIDs(t, segs), []string{"clicks/0/1", "clicks/0/9", "clicks/1/7"}; !slices.Equal(got, want) {
		t.Fatalf("segment documents after Load = %v, want %v", got, want)
	}
	// A new owner saves: the Save of segment 9 can no longer land.
	if err := s.Save(t.Context(), checkpoint.Checkpoint{Topic: "clicks", Partition: 0, Next: 120, Generation: 2,
		Segments: []checkpoint.Segment{{ID: 1}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(t.Context(), "clicks", 0); err != nil {
		t.Fatal(err)
	}
	if got, want := segmentIDs(t, segs), []string{"clicks/0/1", "clicks/1/7"}; !slices.Equal(got, want) {
		t.Fatalf("segment documents after the second Load = %v, want %v", got, want)
	}
}

// A listed segment missing is a permanent error.
func TestStoreMissingSegment(t *testing.T) {
	s, db := newStore(t)
	if err := s.Save(t.Context(), checkpoint.Checkpoint{Topic: "clicks", Partition: 0, Next: 1,
		Segments: []checkpoint.Segment{{ID: 1, Data: []byte("one")}, {ID: 2, Data: []byte("two")}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Collection("checkpoints_segments").DeleteOne(t.Context(), bson.D{{Key: "_id", Value: "clicks/0/2"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(t.Context(), "clicks", 0); !errors.Is(err, clickstream.ErrPermanent) {
		t.Fatalf("Load with a listed segment missing = %v, want a permanent error", err)
	}
}

func BenchmarkSave5k(b *testing.B) {
	c := mongotest.Client(b)
	s, err := cpmongo.New(c, mongotest.Database(b, c, "cs_bench_ckpt_"))
	if err != nil {
		b.Fatal(err)
	}
	checkpointtest.Save5k(b, s)
}

func BenchmarkLoad5k(b *testing.B) {
	c := mongotest.Client(b)
	s, err := cpmongo.New(c, mongotest.Database(b, c, "cs_bench_ckpt_"))
	if err != nil {
		b.Fatal(err)
	}
	checkpointtest.Load5k(b, s)
}

func TestStoreUnreachable(t *testing.T) {
	c, err := mongo.Connect(options.Client().ApplyURI("mongodb://127.0.0.1:1/").
		SetServerSelectionTimeout(300 * time.Millisecond).SetConnectTimeout(300 * time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(context.Background())
	s, err := cpmongo.New(c, "unused")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Save(t.Context(), checkpoint.Checkpoint{Topic: "clicks", Next: 1}); err == nil {
		t.Fatal("Save to an unreachable server returned nil")
	}
	if _, err := s.Load(t.Context(), "clicks", 0); err == nil || errors.Is(err, checkpoint.ErrNotFound) {
		t.Fatalf("Load from an unreachable server = %v, want an error other than ErrNotFound", err)
	}
}

func TestNewValidates(t *testing.T) {
	c, err := mongo.Connect(options.Client().ApplyURI("mongodb://127.0.0.1:1/"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(context.Background())
	for name, f := range map[string]func() (*cpmongo.Store, error){
		"nil client":       func() (*cpmongo.Store, error) { return cpmongo.New(nil, "db") },
		"no database":      func() (*cpmongo.Store, error) { return cpmongo.New(c, "") },
		"no collection":    func() (*cpmongo.Store, error) { return cpmongo.New(c, "db", cpmongo.WithCollection("")) },
		"negative timeout": func() (*cpmongo.Store, error) { return cpmongo.New(c, "db", cpmongo.WithTimeout(-time.Second)) },
		"one collection": func() (*cpmongo.Store, error) {
			return cpmongo.New(c, "db", cpmongo.WithCollection("x"), cpmongo.WithSegmentCollection("x"))
		},
	} {
		if _, err := f(); err == nil {
			t.Errorf("New with %s: no error", name)
		}
	}
}
