package embedmongo_test

import (
	"context"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"

	"github.com/clickstreamkit/clickstream/examples/internal/embedmongo"
)

type row struct {
	Day   string `bson:"day"`
	Page  string `bson:"page"`
	Views int64  `bson:"views"`
	Users int64  `bson:"users"`
}

func TestServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, err := embedmongo.Start(ctx, "127.0.0.1:0", t.TempDir(), logger)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, srv.Close()) })

	_, port, err := net.SplitHostPort(srv.Addr())
	require.NoError(t, err)
	require.NotEqual(t, "0", port, "real port must be reported")
	require.Equal(t, "mongodb://127.0.0.1:"+port+"/", srv.URI())

	// Record the writeConcern the driver sends with each write command.
	var mu sync.Mutex
	sentWC := map[string]bson.Raw{}
	monitor := &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		if wc, err := e.Command.LookupErr("writeConcern"); err == nil {
			mu.Lock()
			sentWC[e.CommandName] = wc.Document()
			mu.Unlock()
		}
	}}

	client, err := mongo.Connect(options.Client().ApplyURI(srv.URI()).
		SetTimeout(10 * time.Second).SetMonitor(monitor))
	require.NoError(t, err)
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	require.NoError(t, client.Ping(ctx, nil))

	coll := client.Database("clickstream").Collection("page_stats",
		options.Collection().SetWriteConcern(writeconcern.Majority()))

	name, err := coll.Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys:    bson.D{{Key: "day", Value: 1}, {Key: "page", Value: 1}},
		Options: options.Index().SetUnique(true).SetName("day_page_unique"),
	})
	require.NoError(t, err)
	require.Equal(t, "day_page_unique", name)

	upsertAll := func(rows []row, ordered bool) *mongo.BulkWriteResult {
		models := make([]mongo.WriteModel, 0, len(rows))
		for _, r := range rows {
			models = append(models, mongo.NewUpdateOneModel().
				SetFilter(bson.D{{Key: "day", Value: r.Day}, {Key: "page", Value: r.Page}}).
				SetUpdate(bson.D{{Key: "$set", Value: r}}).
				SetUpsert(true))
		}
		res, err := coll.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(ordered))
		require.NoError(t, err)
		return res
	}

	first := []row{
		{Day: "2026-11-24", Page: "/b", Views: 3, Users: 2},
		{Day: "2026-11-24", Page: "/a", Views: 5, Users: 4},
		{Day: "2026-11-23", Page: "/a", Views: 1, Users: 1},
	}
	res := upsertAll(first, false)
	require.EqualValues(t, 3, res.UpsertedCount)
	require.EqualValues(t, 0, res.MatchedCount)

	// Re-upsert of the same keys with new values replaces them, adds no document.
	second := []row{
		{Day: "2026-11-24", Page: "/b", Views: 7, Users: 5},
		{Day: "2026-11-24", Page: "/a", Views: 5, Users: 4}, // unchanged
	}
	res = upsertAll(second, true)
	require.EqualValues(t, 0, res.UpsertedCount)
	require.EqualValues(t, 2, res.MatchedCount)
	require.EqualValues(t, 1, res.ModifiedCount)

	// Replaying the same batch is idempotent.
	res = upsertAll(second, false)
	require.EqualValues(t, 0, res.UpsertedCount)
	require.EqualValues(t, 2, res.MatchedCount)
	require.EqualValues(t, 0, res.ModifiedCount)

	// w:majority went out with the createIndexes and update commands and was
	// accepted (FerretDB v1 parses writeConcern and ignores it).
	for _, cmd := range []string{"createIndexes", "update"} {
		mu.Lock()
		wc, ok := sentWC[cmd]
		mu.Unlock()
		require.True(t, ok, "%s command carried no writeConcern", cmd)
		require.Equal(t, "majority", wc.Lookup("w").StringValue(), cmd)
	}

	n, err := coll.CountDocuments(ctx, bson.D{})
	require.NoError(t, err)
	require.EqualValues(t, 3, n)

	cur, err := coll.Find(ctx, bson.D{},
		options.Find().SetSort(bson.D{{Key: "day", Value: 1}, {Key: "page", Value: 1}}).
			SetProjection(bson.D{{Key: "_id", Value: 0}}))
	require.NoError(t, err)
	var got []row
	require.NoError(t, cur.All(ctx, &got))
	require.Equal(t, []row{
		{Day: "2026-11-23", Page: "/a", Views: 1, Users: 1},
		{Day: "2026-11-24", Page: "/a", Views: 5, Users: 4},
		{Day: "2026-11-24", Page: "/b", Views: 7, Users: 5},
	}, got)

	// The unique compound index is enforced.
	_, err = coll.InsertOne(ctx, row{Day: "2026-11-24", Page: "/a"})
	require.Error(t, err)
	require.True(t, mongo.IsDuplicateKeyError(err), "want duplicate key error, got %v", err)
}

func TestStartErrors(t *testing.T) {
	_, err := embedmongo.Start(context.Background(), "", t.TempDir(), nil)
	require.Error(t, err)
	_, err = embedmongo.Start(context.Background(), "127.0.0.1:0", t.TempDir(), nil, embedmongo.WithInterval(-time.Second))
	require.Error(t, err)
	_, err = embedmongo.Start(context.Background(), "127.0.0.1:0", t.TempDir(), nil, embedmongo.WithSynchronous("off"))
	require.Error(t, err)

	srv, err := embedmongo.Start(context.Background(), "127.0.0.1:0", t.TempDir(), nil)
	require.NoError(t, err)
	defer srv.Close()

	// The same address twice fails.
	_, err = embedmongo.Start(context.Background(), srv.Addr(), t.TempDir(), nil)
	require.Error(t, err)
}
