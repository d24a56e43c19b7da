// Command producer makes clickstream data: `generate` writes a synthetic data
// set as JSON lines, `replay` sends such a file to Kafka at a given rate, and
// `wikimedia` turns Wikimedia's live recent-changes stream into events.
//
//	go run ./examples/producer generate -n 100000 -seed 1 -o events.jsonl
//	go run ./examples/producer replay -file events.jsonl -brokers 127.0.0.1:19092 -rate 500
//	go run ./examples/producer replay -file events.jsonl -loop   # forever, event_ts shifted to now
//	go run ./examples/producer wikimedia -brokers 127.0.0.1:19092
//
// replay and wikimedia key each message by its user_id and produce through an
// idempotent sarama producer (acks=all); they stop on SIGINT or SIGTERM after
// flushing what they sent.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/clickstreamkit/clickstream/internal/gen"
)

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(os.Args[1:], log); err != nil {
		log.Error("producer failed", "err", err)
		os.Exit(1)
	}
}

func run(args []string, log *slog.Logger) error {
	if len(args) == 0 {
		return errors.New("usage: producer generate|replay|wikimedia [flags]")
	}
	switch args[0] {
	case "generate":
		return generate(args[1:], log)
	case "replay", "wikimedia":
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		if args[0] == "replay" {
			return replayCmd(ctx, args[1:], log)
		}
		return wikimediaCmd(ctx, args[1:], log)
	}
	return fmt.Errorf("unknown command %q", args[0])
}

func generate(args []string, log *slog.Logger) error {
	fs := flag.NewFlagSet("generate", flag.ContinueOnError)
	n := fs.Int("n", 100_000, "number of events")
	users := fs.Int("users", 0, "number of users (0: one per 8 events)")
	seed := fs.Uint64("seed", 1, "random seed")
	out := fs.String("o", "events.jsonl", "output file")
	rate := fs.Float64("rate", 50, "events per second of event time")
	dup := fs.Float64("duplicates", 0.02, "fraction re-sent with the same id")
	late := fs.Float64("late", 0.01, "fraction sent behind the watermark")
	invalid := fs.Float64("invalid", 0.01, "fraction of invalid messages")
	disorder := fs.Duration("disorder", 2*time.Minute, "how far events arrive out of order")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c := gen.Default(*n, *seed)
	if *users > 0 {
		c.Users = *users
	}
	c.Rate, c.Duplicate, c.Late, c.Invalid, c.Disorder = *rate, *dup, *late, *invalid, *disorder
	msgs := gen.Generate(c)
	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	for _, m := range msgs {
		w.Write(m.Value)
		w.WriteByte('\n')
	}
	if err := errors.Join(w.Flush(), f.Sync(), f.Close()); err != nil {
		return err
	}
	log.Info("generated", "messages", len(msgs), "file", *out)
	return nil
}
