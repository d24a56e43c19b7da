package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/clickstreamkit/clickstream/pipeline"
	"github.com/clickstreamkit/clickstream/sources"
	"github.com/clickstreamkit/clickstream/sources/kafka"
)

// input is the opened source and what the rest needs to know of it.
type input struct {
	src     sources.Source
	brokers []string     // Kafka sources: where dead letters go; nil for files
	lag     func() int64 // messages not yet read, summed over partitions
}

func openSource(ctx context.Context, o options, cfg *pipeline.Config, log *slog.Logger, c *closers) (input, error) {
	switch {
	case o.source == "embedded":
		return openEmbedded(ctx, o, cfg, log, c)
	case strings.HasPrefix(o.source, "file:"):
		src, err := sources.OpenFile(strings.TrimPrefix(o.source, "file:"), cfg.MaxEventBytes)
		if err != nil {
			return input{}, err
		}
		c.add(func() error { return src.Close(context.Background()) })
		return input{src: src, lag: func() int64 { return 0 }}, nil
	case strings.HasPrefix(o.source, "kafka://"):
		u, err := kafka.ParseURL(o.source)
		if err != nil {
			return input{}, err
		}
		return openKafka(u, log, c)
	}
	return input{}, fmt.Errorf("-source %q: want embedded, file:PATH or kafka://HOST:PORT/TOPIC?group=NAME", o.source)
}

func openKafka(u kafka.URL, log *slog.Logger, c *closers) (input, error) {
	src, err := kafka.New(u.Brokers, u.Topic, u.Group, append(u.Options(), kafka.WithLogger(log))...)
	if err != nil {
		return input{}, err
	}
	c.add(func() error { return src.Close(context.Background()) })
	lag := func() int64 {
		var n int64
		for _, l := range src.Lag() {
			n += l
		}
		return n
	}
	return input{src: src, brokers: u.Brokers, lag: lag}, nil
}
