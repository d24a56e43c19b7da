package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	mongoopts "go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/clickstreamkit/clickstream/checkpoint"
	cpmongo "github.com/clickstreamkit/clickstream/checkpoint/mongo"
	"github.com/clickstreamkit/clickstream/examples/internal/embedmongo"
	"github.com/clickstreamkit/clickstream/pipeline"
	"github.com/clickstreamkit/clickstream/sinks"
	"github.com/clickstreamkit/clickstream/sinks/kafkadl"
	mongosink "github.com/clickstreamkit/clickstream/sinks/mongo"
	"github.com/clickstreamkit/clickstream/sinks/parquet"
)

// output is the assembled sink and what the API and progress read from it.
type output struct {
	sink        sinks.Sink
	mongo       *mongosink.Sink // nil with -mongo off
	checkpoints checkpoint.Store
	dead        *deadLetters
}

func openSinks(ctx context.Context, o options, cfg *pipeline.Config, in input, lt *latencyTracker, log *slog.Logger, c *closers) (output, error) {
	var out output
	var all []sinks.Sink
	if o.mongo != "off" {
		client, err := connectMongo(ctx, o, log, c)
		if err != nil {
			return out, err
		}
		bulk, err := mongoMaxBulk(ctx, client, o.mongoMaxBulk, log)
		if err != nil {
			return out, err
		}
		if out.mongo, err = mongosink.New(client, o.database, mongosink.WithLogger(log), mongosink.WithWindowSize(cfg.WindowSize),
			mongosink.WithMaxBulk(bulk)); err != nil {
			return out, err
		}
		all = append(all, lt.timed("mongo", out.mongo))
		if o.checkpoints == "mongo" && in.brokers != nil {
			if out.checkpoints, err = cpmongo.New(client, o.database); err != nil {
				return out, err
			}
		}
	}
	if o.parquet != "off" {
		pq, err := parquet.New(o.parquet, parquet.WithChunkSize(o.parquetChunk), parquet.WithLogger(log))
		if err != nil {
			return out, err
		}
		all = append(all, lt.timed("parquet", pq))
	}
	if o.jsonl != "off" {
		j, err := sinks.NewJSONL(o.jsonl, cfg.WindowSize, cfg.NewDetector)
		if err != nil {
			return out, err
		}
		all = append(all, lt.timed("jsonl", j))
	}
	if in.brokers != nil {
		dl, err := kafkadl.New(in.brokers, kafkadl.WithTopic(o.deadletterTopic), kafkadl.WithLogger(log))
		if err != nil {
			return out, err
		}
		all = append(all, lt.timed("deadletters", dl))
		switch {
		case o.source == "embedded":
			// beside the embedded broker's log, which keeps the offsets they cover
			dir, err := checkpoint.NewDir(filepath.Join(embeddedDir(o.data), "checkpoints"))
			if err != nil {
				return out, err
			}
			out.checkpoints = dir
		case out.checkpoints != nil:
		default:
			if o.checkpoints == "mongo" {
				return out, fmt.Errorf("-checkpoints mongo needs -mongo")
			}
			dir, err := checkpoint.NewDir(o.checkpoints)
			if err != nil {
				return out, err
			}
			out.checkpoints = dir
		}
	}
	if out.checkpoints == nil { // a file source: replayed from its start by every run
		out.checkpoints = &checkpoint.Memory{}
	}
	out.dead = &deadLetters{byReason: map[string]int64{}}
	out.sink = out.dead.wrap(sinks.NewTee(all, sinks.WithTeeLogger(log)))
	return out, nil
}

func connectMongo(ctx context.Context, o options, log *slog.Logger, c *closers) (*mongo.Client, error) {
	uri := o.mongo
	if uri == "embedded" {
		// The server outlives a Ctrl-C, which cancels ctx: the runner's last
		// write goes to it; the closers stop it after.
		srv, err := embedmongo.Start(context.WithoutCancel(ctx), "127.0.0.1:0", filepath.Join(o.data, "mongo"), log)
		if err != nil {
			return nil, err
		}
		c.add(srv.Close)
		uri = srv.URI()
		log.Info("embedded MongoDB-wire server", "uri", uri)
	} else if !strings.HasPrefix(uri, "mongodb://") && !strings.HasPrefix(uri, "mongodb+srv://") {
		return nil, fmt.Errorf("-mongo %q: want embedded, mongodb://... or off", uri)
	}
	// Short selection and connect timeouts make an outage show as an error
	// the pipeline retries, instead of a write that hangs.
	opts := mongoopts.Client().ApplyURI(uri).
		SetServerSelectionTimeout(5 * time.Second).SetConnectTimeout(5 * time.Second)
	client, err := mongo.Connect(opts)
	if err != nil {
		return nil, fmt.Errorf("mongo: %w", err)
	}
	c.add(func() error { return client.Disconnect(context.Background()) })
	if err := waitMongo(ctx, client, opts.Hosts, o.connectTimeout); err != nil {
		return nil, err
	}
	return client, nil
}

// ferretDBMaxBulk is the most statements of an update command FerretDB 1.x
// on SQLite takes: each statement that matches holds one of its 100 pooled
// connections until the command ends, and past the pool it deadlocks.
const ferretDBMaxBulk = 32

// mongoMaxBulk returns the bulk size of the sink's update commands: the flag's
// when set, ferretDBMaxBulk when the server says it is FerretDB (buildInfo
// has ferretdbVersion), else the sink's default.
func mongoMaxBulk(ctx context.Context, client *mongo.Client, flagged int, log *slog.Logger) (int, error) {
	if flagged != 0 {
		if flagged < 0 {
			return 0, fmt.Errorf("-mongo-max-bulk %d: want more than 0", flagged)
		}
		return flagged, nil
	}
	var info bson.M
	if err := client.Database("admin").RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Decode(&info); err != nil {
		return 0, fmt.Errorf("mongo: buildInfo: %w", err)
	}
	if _, ok := info["ferretdbVersion"]; ok {
		log.Info("MongoDB-wire server is FerretDB: update commands of at most 32 writes", "version", info["version"])
		return ferretDBMaxBulk, nil
	}
	return mongosink.DefaultMaxBulk, nil
}

// waitMongo pings the server until it answers or timeout passes. The sinks
// retry failed writes without end, which is right for an outage but hides
// a wrong address: at start, one is an error. hosts name the server without
// the URI's credentials.
func waitMongo(ctx context.Context, client *mongo.Client, hosts []string, timeout time.Duration) error {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		err := client.Ping(wctx, nil)
		if err == nil {
			return nil
		}
		if wctx.Err() != nil || !pause(wctx, 250*time.Millisecond) {
			if err := ctx.Err(); err != nil {
				return err
			}
			return fmt.Errorf("mongodb %s: not reachable within -connect-timeout %v (connect_timeout): %w",
				strings.Join(hosts, ","), timeout, err)
		}
	}
}

// deadLetters counts dead letters by reason as batches become durable.
type deadLetters struct {
	mu       sync.Mutex
	byReason map[string]int64
	total    int64
}

func (d *deadLetters) wrap(next sinks.Sink) sinks.Sink {
	return &countingSink{Sink: next, d: d}
}

type countingSink struct {
	sinks.Sink
	d *deadLetters
}

func (s *countingSink) Write(ctx context.Context, bs ...*sinks.Batch) error {
	if err := s.Sink.Write(ctx, bs...); err != nil {
		return err
	}
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	for _, b := range bs {
		for _, dl := range b.DeadLetters {
			s.d.byReason[string(dl.Reason)]++
			s.d.total++
		}
	}
	return nil
}

// snapshot returns the counts so far.
func (d *deadLetters) snapshot() (map[string]int64, int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	m := make(map[string]int64, len(d.byReason))
	for k, v := range d.byReason {
		m[k] = v
	}
	return m, d.total
}
