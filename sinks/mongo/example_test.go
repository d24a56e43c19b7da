package mongo_test

import (
	"context"
	"fmt"
	"github.com/clickstreamkit/clickstream/sinks"
	"log"
	"os"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	mongosink "github.com/clickstreamkit/clickstream/sinks/mongo"
)

// A sink on the user's client, with timeouts short enough that an outage
// surfaces as an error the pipeline retries, and the last minutes read back
// as the read API serves them: final only once every partition of the topic
// has passed the window, with how many have.
func Example() {
	uri := os.Getenv("MONGODB_URI")
	if uri == "" {
		return // needs a server
	}
	client, err := mongo.Connect(options.Client().ApplyURI(uri).
		SetServerSelectionTimeout(5 * time.Second).SetConnectTimeout(5 * time.Second))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Disconnect(context.Background())
	sink, err := mongosink.New(client, "clickstream", mongosink.WithWriteTimeout(30*time.Second),
		mongosink.WithWindowSize(time.Minute))
	if err != nil {
		log.Fatal(err)
	}
	// ... pipeline.NewRunner(source, sink, store, cfg).Run(ctx) writes into it.
	minutes, err := sink.LatestMinutes(context.Background(), 5)
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range sinks.GlobalKPIRecords(minutes) {
		fmt.Println(r.Minute, r.Final, r.PartitionsComplete, "of", r.PartitionsTotal, r.ConversionRate)
	}
}
