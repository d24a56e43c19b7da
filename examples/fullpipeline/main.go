// Command fullpipeline runs the clickstream pipeline end to end: a source of
// JSON events, the operators of SEMANTICS, and the sinks.
//
//	go run ./examples/fullpipeline -source file:PATH -jsonl DIR -mongo off -parquet off -http off
//
// reads a JSON-lines file as a finite replay and writes SEMANTICS §9's files
// into DIR.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/clickstreamkit/clickstream/pipeline"
	"github.com/clickstreamkit/clickstream/sinks"
	"github.com/clickstreamkit/clickstream/sources"
)

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if err := run(context.Background(), os.Args[1:], log); err != nil {
		log.Error("fullpipeline failed", "err", err)
		os.Exit(1)
	}
}

type options struct {
	source, jsonl, mongo, parquet, http string
}

func parseFlags(args []string) (options, error) {
	fs := flag.NewFlagSet("fullpipeline", flag.ContinueOnError)
	var o options
	fs.StringVar(&o.source, "source", "", "file:PATH (a JSON-lines replay)")
	fs.StringVar(&o.jsonl, "jsonl", "off", "DIR for SEMANTICS §9's JSON-lines outputs, or off")
	fs.StringVar(&o.mongo, "mongo", "off", "off")
	fs.StringVar(&o.parquet, "parquet", "off", "off")
	fs.StringVar(&o.http, "http", "off", "off")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	for name, v := range map[string]string{"-mongo": o.mongo, "-parquet": o.parquet, "-http": o.http} {
		if v != "off" {
			return o, fmt.Errorf("%s %s: only off is available in this build", name, v)
		}
	}
	return o, nil
}

func run(ctx context.Context, args []string, log *slog.Logger) error {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	cfg := pipeline.DefaultConfig()
	cfg.Logger = log
	if err := cfg.Validate(); err != nil {
		return err
	}
	path, ok := strings.CutPrefix(o.source, "file:")
	if !ok {
		return fmt.Errorf("-source %q: want file:PATH", o.source)
	}
	src, err := sources.OpenFile(path, cfg.MaxEventBytes)
	if err != nil {
		return err
	}
	defer src.Close(ctx)
	var sink sinks.Sink = sinks.SinkFunc(func(context.Context, *sinks.Batch) error { return nil })
	if o.jsonl != "off" {
		if sink, err = sinks.NewJSONL(o.jsonl, cfg.NewDetector); err != nil {
			return err
		}
	}
	runner, err := pipeline.NewRunner(src, sink, cfg)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	runErr := runner.Run(ctx)
	closeErr := sink.Close(context.WithoutCancel(ctx))
	st := runner.Stats()
	log.Info("done", "read", st.Counters.Read, "accepted", st.Counters.Accepted, "invalid", st.Counters.Invalid,
		"late", st.Counters.Late, "duplicates", st.Counters.Duplicates, "elapsed", time.Since(start).Round(time.Millisecond))
	if errors.Is(runErr, context.Canceled) {
		runErr = nil
	}
	return errors.Join(runErr, closeErr)
}
