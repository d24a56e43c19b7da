package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/clickstreamkit/clickstream/examples/internal/replay"
)

// defaultBrokers is $KAFKA_BROKERS, or the broker scripts/services.sh starts.
func defaultBrokers() string {
	if b := os.Getenv("KAFKA_BROKERS"); b != "" {
		return b
	}
	return "127.0.0.1:19092"
}

func splitBrokers(s string) ([]string, error) {
	var out []string
	for b := range strings.SplitSeq(s, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("-brokers: none given")
	}
	return out, nil
}

func replayCmd(ctx context.Context, args []string, log *slog.Logger) error {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	file := fs.String("file", "events.jsonl", "JSON-lines file to send")
	brokers := fs.String("brokers", defaultBrokers(), "comma-separated Kafka bootstrap brokers")
	topic := fs.String("topic", "events_raw", "topic to produce to")
	rate := fs.Float64("rate", 500, "messages per second; 0 = as fast as Kafka takes them")
	loop := fs.Bool("loop", false, "replay again and again until interrupted (implies -live)")
	live := fs.Bool("live", false, "shift event_ts so the data looks current (default: the value of -loop)")
	maxLead := fs.Duration("max-lead", time.Minute, "with -live: how far ahead of the clock an event_ts may be moved")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	liveSet := false
	fs.Visit(func(f *flag.Flag) { liveSet = liveSet || f.Name == "live" })
	if !liveSet {
		*live = *loop
	}
	bs, err := splitBrokers(*brokers)
	if err != nil {
		return err
	}
	lines, err := replay.ReadFile(*file)
	if err != nil {
		return err
	}
	p, err := replay.NewSarama(bs, *topic, nil)
	if err != nil {
		return err
	}
	log.Info("replaying", "file", *file, "lines", len(lines), "brokers", *brokers, "topic", *topic,
		"rate", *rate, "loop", *loop, "live", *live)
	st, err := replay.Run(ctx, p, lines, replay.Options{Rate: *rate, Loop: *loop, Live: *live, MaxLead: *maxLead, Logger: log})
	err = errors.Join(err, p.Close())
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		err = nil // interrupted: what was sent is flushed
	}
	delivered, failed := p.Counts()
	log.Info("replay finished", "sent", st.Sent, "delivered", delivered, "failed", failed,
		"keyless", st.Keyless, "passes", st.Passes)
	return err
}
