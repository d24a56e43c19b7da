package mongo_test

import (
	"context"
	"log"
	"os"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	cpmongo "github.com/clickstreamkit/clickstream/checkpoint/mongo"
)

// Checkpoints in the database the results go to, for pipeline.NewRunner.
func Example() {
	uri := os.Getenv("MONGODB_URI")
	if uri == "" {
		return // needs a server
	}
	client, err := mongo.Connect(options.Client().ApplyURI(uri).SetServerSelectionTimeout(5 * time.Second))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Disconnect(context.Background())
	store, err := cpmongo.New(client, "clickstream")
	if err != nil {
		log.Fatal(err)
	}
	_ = store // pipeline.NewRunner(src, sink, store, cfg)
}
