package main

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/clickstreamkit/clickstream/examples/internal/embedkafka"
	"github.com/clickstreamkit/clickstream/examples/internal/replay"
	"github.com/clickstreamkit/clickstream/internal/gen"
	"github.com/clickstreamkit/clickstream/pipeline"
	"github.com/clickstreamkit/clickstream/sources/kafka"
)

// The embedded demo's topics.
const (
	rawTopic      = "events_raw"
	rawPartitions = 4
	demoEvents    = 200_000 // the generated data set the producer loops over
	demoGroup     = "fullpipeline"
)

// openEmbedded starts an in-process Kafka-protocol broker, a replay producer
// feeding it a generated data set at o.rate events/s with event times shifted
// to now, and a consumer-group source on it.
func openEmbedded(ctx context.Context, o options, cfg *pipeline.Config, log *slog.Logger, c *closers) (input, error) {
	broker, err := embedkafka.Start(ctx, "127.0.0.1:0", map[string]int32{rawTopic: rawPartitions, cfg.DeadletterTopic: 1})
	if err != nil {
		return input{}, err
	}
	c.add(func() error { broker.Close(); return nil })
	log.Info("embedded Kafka-protocol broker", "addr", broker.Addrs()[0], "topic", rawTopic, "partitions", rawPartitions)

	// a new seed each start: a restart resumes from checkpoints, whose dedup
	// state would take replayed ids for retries
	g := gen.Default(demoEvents, uint64(time.Now().UnixNano()))
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
	prod, err := replay.NewSarama(broker.Addrs(), rawTopic, nil)
	if err != nil {
		return input{}, err
	}
	pctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := replay.Run(pctx, prod, lines, replay.Options{Rate: o.rate, Loop: true, Live: true})
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
	return in, err
}
