package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/IBM/sarama"

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
		if err := waitKafka(ctx, u.Brokers, o.connectTimeout); err != nil {
			return input{}, err
		}
		return openKafka(u, log, c)
	}
	return input{}, fmt.Errorf("-source %q: want embedded, file:PATH or kafka://HOST:PORT/TOPIC?group=NAME", o.source)
}

// waitKafka fetches the cluster's metadata from brokers until that works or
// timeout passes. The source itself connects on its first read and the
// runner retries that without end, which is right for an outage but hides
// a wrong address: at start, one is an error.
func waitKafka(ctx context.Context, brokers []string, timeout time.Duration) error {
	cfg := sarama.NewConfig()
	cfg.Net.DialTimeout = min(timeout, cfg.Net.DialTimeout)
	cfg.Metadata.Retry.Max = 0 // retried here, until the deadline
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		res := make(chan error, 1)
		go func() { // sarama takes no context: a dial may outlive the deadline
			client, err := sarama.NewClient(brokers, cfg)
			if err == nil {
				err = client.Close()
			}
			res <- err
		}()
		select {
		case err := <-res:
			if err == nil {
				return nil
			}
			last = err
		case <-wctx.Done():
		}
		if wctx.Err() != nil || !pause(wctx, 250*time.Millisecond) {
			if err := ctx.Err(); err != nil {
				return err
			}
			if last == nil {
				last = wctx.Err()
			}
			return fmt.Errorf("kafka brokers %s: not reachable within -connect-timeout %v (connect_timeout): %w",
				strings.Join(brokers, ","), timeout, last)
		}
	}
}

// pause waits d or until ctx ends, and reports whether d passed.
func pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
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
