package embedmongo_test

import (
	"context"
	"fmt"
	"os"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/clickstreamkit/clickstream/examples/internal/embedmongo"
)

func ExampleStart() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "embedmongo")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	srv, err := embedmongo.Start(ctx, "127.0.0.1:0", dir, nil)
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	client, err := mongo.Connect(options.Client().ApplyURI(srv.URI()))
	if err != nil {
		panic(err)
	}
	defer client.Disconnect(ctx)

	coll := client.Database("clickstream").Collection("progress")
	for _, wm := range []int64{10, 20} {
		_, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: "events_raw/0"}},
			bson.D{{Key: "$max", Value: bson.D{{Key: "watermark", Value: wm}}}}, options.UpdateOne().SetUpsert(true))
		if err != nil {
			panic(err)
		}
	}
	// Index what the writes created now, not at the next periodic look.
	if err := srv.EnsureIndexes(ctx, "clickstream"); err != nil {
		panic(err)
	}
	var p struct {
		Watermark int64 `bson:"watermark"`
	}
	if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: "events_raw/0"}}).Decode(&p); err != nil {
		panic(err)
	}
	_, err = os.Stat(dir + "/clickstream.sqlite")
	fmt.Println(p.Watermark, err == nil)
	// Output: 20 true
}
