// Command minimal is the smallest exactly-once pipeline: events from a Kafka
// topic, SEMANTICS' KPIs, sessions and funnel into MongoDB, with the
// checkpoints in MongoDB too. Ctrl-C stops it after writing what it read.
//
//	go run ./examples/minimal -brokers 127.0.0.1:9092 -topic events -mongo mongodb://127.0.0.1:27017/
package main

import (
	"context"
	"errors"
	"flag"
	"log"
	"os/signal"
	"strings"
	"syscall"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	cpmongo "github.com/clickstreamkit/clickstream/checkpoint/mongo"
	"github.com/clickstreamkit/clickstream/pipeline"
	mongosink "github.com/clickstreamkit/clickstream/sinks/mongo"
	"github.com/clickstreamkit/clickstream/sources/kafka"
)

func main() {
	brokers := flag.String("brokers", "127.0.0.1:9092", "Kafka brokers, comma-separated")
	topic := flag.String("topic", "events", "topic of the events")
	uri := flag.String("mongo", "mongodb://127.0.0.1:27017/", "MongoDB URI")
	db := flag.String("database", "clickstream", "MongoDB database")
	bounded := flag.Bool("bounded", false, "stop at the end of what the topic holds now")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, strings.Split(*brokers, ","), *topic, *uri, *db, *bounded); err != nil && !errors.Is(err, context.Canceled) {
		log.Fatal(err)
	}
}

func run(ctx context.Context, brokers []string, topic, uri, db string, bounded bool) error {
	client, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		return err
	}
	defer client.Disconnect(context.WithoutCancel(ctx))
	var opts []kafka.Option
	if bounded {
		opts = append(opts, kafka.WithBounded())
	}
	src, err := kafka.New(brokers, topic, "clickstream-minimal", opts...)
	if err != nil {
		return err
	}
	defer src.Close(context.WithoutCancel(ctx))
	sink, err := mongosink.New(client, db) // on FerretDB add mongosink.WithMaxBulk(32)
	if err != nil {
		return err
	}
	store, err := cpmongo.New(client, db)
	if err != nil {
		return err
	}
	r, err := pipeline.NewRunner(src, sink, store, pipeline.DefaultConfig())
	if err != nil {
		return err
	}
	return r.Run(ctx)
}
