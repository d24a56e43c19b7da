package main

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/clickstreamkit/clickstream"
	"github.com/clickstreamkit/clickstream/examples/internal/embedkafka"
	"github.com/clickstreamkit/clickstream/examples/internal/replay"
	"github.com/clickstreamkit/clickstream/internal/gen"
	"github.com/clickstreamkit/clickstream/pipeline"
	"github.com/clickstreamkit/clickstream/sources/kafka"
)

// The embedded demo's topics.
const (
	rawTopic             = "events_raw"
	rawPartitions        = 4
	demoEvents           = 200_000 // the generated data set the producer loops over
	demoSeed      uint64 = 1
	demoGroup            = "fullpipeline"
)

// embeddedDir is where, under -data, the embedded broker's log and the
// pipeline's checkpoints of it live: they belong together.
func embeddedDir(data string) string { return filepath.Join(data, "embedded-kafka") }

// openEmbedded starts an in-process Kafka-protocol broker, refills it from
// its log under -data (every record at its old offset), starts a replay
// producer feeding it a generated data set at o.rate events/s with event
// times shifted to now, resuming after the records of earlier runs, and
// opens a consumer-group source on it.
func openEmbedded(ctx context.Context, o options, cfg *pipeline.Config, log *slog.Logger, c *closers) (input, error) {
	broker, err := embedkafka.Start(ctx, "127.0.0.1:0", map[string]int32{rawTopic: rawPartitions, o.deadletterTopic: 1})
	if err != nil {
		return input{}, err
	}
	c.add(func() error { broker.Close(); return nil })
	blog, err := embedkafka.OpenLog(filepath.Join(embeddedDir(o.data), "log"), rawTopic, rawPartitions)
	if err != nil {
		return input{}, err
	}
	c.add(blog.Close)
	dec, err := clickstream.NewDecoder()
	if err != nil {
		return input{}, err
	}
	latest := latestEventTime(blog, dec)
	if err := blog.Restore(ctx, broker); err != nil {
		return input{}, err
	}
	log.Info("embedded Kafka-protocol broker", "addr", broker.Addrs()[0], "topic", rawTopic, "partitions", rawPartitions,
		"restored", blog.Total())

	// The same data set every run: the producer resumes after the lines it
	// sent before (the log's records), so no id comes back for a retry.
	g := gen.Default(demoEvents, demoSeed)
	// event time runs as fast as the producer sends, and disorder stays within
	// the watermark, so only the data set's deliberate late events are late
	g.Rate = max(o.rate, 1)
	g.Disorder = min(g.Disorder, cfg.WatermarkDelay/2)
	g.LateBy = max(g.LateBy, cfg.WatermarkDelay+time.Minute)
	msgs := gen.Generate(g)
	lines := make([][]byte, len(msgs))
	for i, m := range msgs {
		lines[i] = m.Value
	}
	prod, err := embedkafka.NewProducer(broker, blog)
	if err != nil {
		return input{}, err
	}
	// MaxLead 1s: the data's event time runs a little faster than the
	// producer sends (duplicates and invalid lines are sent too), and event
	// times ahead of the clock would make the newest minute start after it
	ro := replay.Options{Rate: o.rate, Loop: true, Live: true, Skip: blog.Total(), NotBefore: latest, MaxLead: time.Second}
	pctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := replay.Run(pctx, logProducer{prod}, lines, ro)
		if err != nil && !errors.Is(err, context.Canceled) {
			log.Error("embedded producer stopped", "err", err)
		}
		done <- err
	}()
	c.add(func() error {
		stop()
		err := <-done
		if errors.Is(err, context.Canceled) {
			err = nil
		}
		return errors.Join(err, prod.Close())
	})

	in, err := openKafka(kafka.URL{Brokers: broker.Addrs(), Topic: rawTopic, Group: demoGroup}, log, c)
	if err != nil {
		return input{}, err
	}
	c.add(trimEvery(ctx, broker, trimInterval, log))
	return in, nil
}

// trimInterval is how often the embedded broker drops what the pipeline
// has committed: at 5,000 events/s that is about 20 MB a time.
const trimInterval = 10 * time.Second

// trimEvery drops from broker, every d, the records of the raw topic the
// demo's group has committed past (they stay in the log on disk), so that
// the broker's memory stays bounded however long the demo runs. It returns
// the function that stops it.
func trimEvery(ctx context.Context, broker *embedkafka.Broker, d time.Duration, log *slog.Logger) func() error {
	ctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		every(ctx, d, func() {
			if err := broker.Trim(ctx, rawTopic, demoGroup); err != nil && ctx.Err() == nil {
				log.Warn("embedded broker: committed records not dropped", "err", err)
			}
		})
	}()
	return func() error { stop(); <-done; return nil }
}

// latestEventTime returns the latest event_ts among the last records of
// each partition of the log (zero when it has none): a resumed producer's
// events go on from there, since MaxLead may have let them run ahead of
// the clock, and behind it they would be late.
func latestEventTime(l *embedkafka.Log, dec *clickstream.Decoder) time.Time {
	var e clickstream.Event
	var latest int64
	for p := range l.Partitions() {
		for _, r := range l.Tail(p, 64) {
			// a far clock: only event_ts matters, not whether it is ahead
			if dec.DecodeAt(r.Value, &e, 1<<62) == nil {
				latest = max(latest, e.TS)
			}
		}
	}
	if latest == 0 {
		return time.Time{}
	}
	return time.UnixMilli(latest)
}

// logProducer feeds replay's messages to the embedded broker through its
// log.
type logProducer struct{ *embedkafka.Producer }

func (p logProducer) Send(ctx context.Context, m replay.Message) error {
	return p.Producer.Send(ctx, m.Key, m.Value, m.Timestamp)
}
