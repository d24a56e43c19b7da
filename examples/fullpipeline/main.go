// Command fullpipeline runs the clickstream pipeline end to end: events from
// Kafka (or a file), the operators of SEMANTICS.md, and the results in
// MongoDB, Parquet and JSON-lines files, with a read API and a live dashboard.
//
// With no flags it is a self-contained demo: an in-process Kafka-protocol
// broker fed by a replay producer at 500 events/s, an embedded MongoDB-wire
// server, Parquet under ./data and the dashboard on http://127.0.0.1:8080.
// Its data (the broker's log, checkpoints, MongoDB's files, Parquet) stays
// in ./data (-data), so a restart goes on where the last run stopped.
//
//	go run ./examples/fullpipeline -source file:PATH -jsonl DIR -mongo off -parquet off -http off
//
// is a finite replay writing SEMANTICS §9's files into DIR.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/clickstreamkit/clickstream/examples/internal/memstore"
	"github.com/clickstreamkit/clickstream/pipeline"
	"github.com/clickstreamkit/clickstream/sinks/parquet"
)

// main exits 0 after a clean shutdown on SIGINT (Ctrl-C), SIGTERM or
// SIGHUP (the terminal went away; unless started with it ignored, as by
// nohup), and 1 on an error.
func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	sigs := []os.Signal{os.Interrupt, syscall.SIGTERM}
	if !signal.Ignored(syscall.SIGHUP) {
		sigs = append(sigs, syscall.SIGHUP)
	}
	ctx, stop := signal.NotifyContext(context.Background(), sigs...)
	err := run(ctx, os.Args[1:], log)
	stop()
	switch {
	case err == nil:
	case ctx.Err() != nil && errors.Is(err, context.Canceled):
		log.Info("stopped during start-up")
	default:
		log.Error("fullpipeline failed", "err", err)
		os.Exit(1)
	}
}

type options struct {
	source, jsonl, mongo, parquet, http string
	config, checkpoints, data, token    string
	cpuprofile, pprof                   string
	database                            string
	rate                                float64
	parquetChunk                        int64
	mongoMaxBulk                        int
	progress                            time.Duration
	connectTimeout                      time.Duration
	connectTimeoutSet                   bool   // given on the command line: wins over the -config file's
	deadletterTopic                     string // the -config file's
}

func parseFlags(args []string) (options, error) {
	fs := flag.NewFlagSet("fullpipeline", flag.ContinueOnError)
	var o options
	fs.StringVar(&o.source, "source", "embedded", "embedded | file:PATH | kafka://HOST:PORT[,HOST:PORT]/TOPIC?group=NAME[&bounded=true]")
	fs.StringVar(&o.mongo, "mongo", "embedded", "embedded | mongodb://... | off")
	fs.StringVar(&o.parquet, "parquet", "", "DIR for the Parquet archive (default DATA/parquet, DATA the -data directory) | off")
	fs.Int64Var(&o.parquetChunk, "parquet-chunk", parquet.DefaultChunkSize, "offsets per Parquet events file (keep it for a directory)")
	fs.StringVar(&o.jsonl, "jsonl", "off", "DIR for SEMANTICS §9's JSON-lines files | off")
	fs.StringVar(&o.http, "http", "127.0.0.1:8080", "ADDR of the read API and dashboard | off")
	fs.Float64Var(&o.rate, "rate", 500, "events/s of the embedded replay producer")
	fs.StringVar(&o.config, "config", "", "project.yaml with SEMANTICS settings (defaults when empty)")
	fs.StringVar(&o.checkpoints, "checkpoints", "data/checkpoints", "DIR of per-partition checkpoints (Kafka sources other than embedded, whose go under -data) | mongo")
	fs.StringVar(&o.data, "data", "data", "DIR for the embedded services' data, kept across restarts")
	fs.StringVar(&o.database, "database", "clickstream", "MongoDB database")
	fs.IntVar(&o.mongoMaxBulk, "mongo-max-bulk", 0, "most writes in one MongoDB update command (0: 32 on FerretDB, which deadlocks on larger ones, else the sink's default of 1,000)")
	fs.StringVar(&o.token, "token", os.Getenv("CLICKSTREAM_TOKEN"), "bearer token the read API requires (default $CLICKSTREAM_TOKEN; empty: none)")
	fs.DurationVar(&o.progress, "progress", 5*time.Second, "interval of the progress line")
	fs.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of the run to FILE")
	fs.StringVar(&o.pprof, "pprof", "off", "ADDR serving net/http/pprof's profiles (heap, CPU, goroutines) under /debug/pprof/ | off")
	fs.DurationVar(&o.connectTimeout, "connect-timeout", defaultConnectTimeout,
		"how long start-up waits for each external service (MongoDB's ping, a kafka:// source's brokers) before it fails; outages after start are retried (-config key connect_timeout)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	fs.Visit(func(f *flag.Flag) { o.connectTimeoutSet = o.connectTimeoutSet || f.Name == "connect-timeout" })
	if o.connectTimeout <= 0 {
		return o, fmt.Errorf("-connect-timeout %v: want more than 0", o.connectTimeout)
	}
	if o.parquet == "" {
		o.parquet = filepath.Join(o.data, "parquet")
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.http != "off" && o.mongo == "off" {
		return o, errors.New("the read API serves MongoDB's contents: -http needs -mongo, or use -http off")
	}
	return o, nil
}

// connectTimeoutFor is the connect timeout in force: -connect-timeout when
// given, else the -config file's connect_timeout, else the default.
func (o options) connectTimeoutFor(p project) time.Duration {
	if !o.connectTimeoutSet && p.connectTimeout > 0 {
		return p.connectTimeout
	}
	return o.connectTimeout
}

func run(ctx context.Context, args []string, log *slog.Logger) error {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	proj, err := loadProject(o.config)
	if err != nil {
		return err
	}
	cfg := proj.pipeline
	o.connectTimeout = o.connectTimeoutFor(proj)
	o.deadletterTopic = proj.deadletterTopic
	cfg.Logger = log
	cfg.KeepEvents = o.parquet != "off"
	if o.cpuprofile != "" {
		f, err := os.Create(o.cpuprofile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}

	var closers closers
	defer func() {
		if err := closers.close(); err != nil {
			log.Warn("shutdown", "err", err)
		}
	}()
	if o.pprof != "off" {
		if _, err := servePprof(o.pprof, log, &closers); err != nil {
			return err
		}
	}
	in, err := openSource(ctx, o, &cfg, log, &closers)
	if err != nil {
		return err
	}
	lt := newLatencyTracker()
	out, err := openSinks(ctx, o, &cfg, in, lt, log, &closers)
	if err != nil {
		return err
	}
	var view *memstore.Store // the read API's global view, fed by the sinks' writes
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if o.http != "off" {
		if view, err = memstore.New(cfg, apiRetention(cfg)); err != nil {
			return err
		}
		// In the background: the pipeline need not wait for a long history
		// (a day of it takes FerretDB most of a minute), and the read API
		// answers 503 until it is in.
		loaded, loadStart := view.Load(ctx, out.mongo), time.Now()
		go func() {
			if err := <-loaded; err != nil {
				cancel(fmt.Errorf("%w: %w", errViewLoad, err))
				return
			}
			log.Info("read API view loaded", "elapsed", time.Since(loadStart).Round(time.Millisecond))
		}()
		out.sink = view.Wrap(out.sink)
	}
	in.src, out.sink = lt.source(in.src), lt.sink(out.sink)
	runner, err := pipeline.NewRunner(in.src, out.sink, out.checkpoints, cfg)
	if err != nil {
		return err
	}
	prog := newProgress(runner.Stats, in.lag, out.dead, lt, log, time.Now)
	if o.http != "off" {
		srv, err := startServer(ctx, o, cfg, view, prog, log)
		if err != nil {
			return err
		}
		closers.add(srv.Close)
	}
	progCtx, stopProgress := context.WithCancel(ctx)
	go prog.run(progCtx, o.progress)
	start := time.Now()
	runErr := runner.Run(ctx)
	stopProgress()
	closeErr := out.sink.Close(context.WithoutCancel(ctx))
	st := runner.Stats()
	log.Info("done", "read", st.Counters.Read, "accepted", st.Counters.Accepted, "invalid", st.Counters.Invalid,
		"late", st.Counters.Late, "duplicates", st.Counters.Duplicates, "elapsed", time.Since(start).Round(time.Millisecond))
	if cause := context.Cause(ctx); errors.Is(cause, errViewLoad) {
		runErr = cause
	} else if errors.Is(runErr, context.Canceled) {
		runErr = nil // Ctrl-C: the runner flushed and checkpointed
	}
	return errors.Join(runErr, closeErr)
}

// errViewLoad wraps the error of the read API's load from MongoDB, which
// ends the run.
var errViewLoad = errors.New("read API: load from MongoDB")

// apiRetention is how much event time the read API's view keeps: its
// longest range (minutes_back up to 1440) and the anomaly baseline before it.
func apiRetention(cfg pipeline.Config) time.Duration {
	return 1441*time.Minute + time.Duration(cfg.AnomalyWindow)*cfg.WindowSize
}

// closers runs cleanups in reverse order.
type closers []func() error

func (c *closers) add(f func() error) { *c = append(*c, f) }

func (c *closers) close() error {
	var errs []error
	for i := len(*c) - 1; i >= 0; i-- {
		errs = append(errs, (*c)[i]())
	}
	*c = nil
	return errors.Join(errs...)
}
