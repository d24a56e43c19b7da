// Command mongoserver runs a MongoDB-wire server (embedded FerretDB with its
// SQLite backend, see internal/embedmongo) until SIGINT or SIGTERM.
//
//	go run ./mongoserver -addr 127.0.0.1:27018 -dir /tmp/clickstream-services/mongo/data
//
// Once it listens it prints MONGODB_URI=mongodb://HOST:PORT/ on stdout.
// scripts/services.sh builds and starts it next to a local Kafka broker.
//
// By default it runs the server as the demo does: every collection gets an
// SQLite index on the expression FerretDB's _id filter compares (found at
// start and every -interval), so upserts by _id cost the same at any
// collection size; each look also truncates write-ahead logs past 64 MiB
// (see embedmongo.WithWALLimit); and SQLite runs with synchronous=NORMAL,
// which loses nothing on a crash of the process, only the last commits on
// a power loss (see embedmongo.WithSynchronous). -id-index=false and
// -synchronous full turn either off.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/clickstreamkit/clickstream/examples/internal/embedmongo"
)

func defaultDir() string {
	state := os.Getenv("CLICKSTREAM_STATE")
	if state == "" {
		state = filepath.Join(os.TempDir(), "clickstream-services")
	}
	return filepath.Join(state, "mongo", "data")
}

func main() {
	addr := flag.String("addr", "127.0.0.1:27018", "TCP address to listen on (port 0 picks a free port)")
	dir := flag.String("dir", defaultDir(), "directory for the SQLite database files")
	idIndex := flag.Bool("id-index", true, "index the _id expression of FerretDB's SQLite tables")
	interval := flag.Duration("interval", time.Second, "how often to look for collections to index and write-ahead logs to truncate (0: only at start)")
	sync := flag.String("synchronous", "normal", "SQLite synchronous pragma: normal, full or extra")
	flag.Parse()

	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	opts := []embedmongo.Option{embedmongo.WithIDIndex(*idIndex), embedmongo.WithInterval(*interval),
		embedmongo.WithSynchronous(*sync)}
	if err := run(*addr, *dir, logger, opts...); err != nil {
		logger.Error("mongoserver failed", "err", err)
		os.Exit(1)
	}
}

func run(addr, dir string, logger *slog.Logger, opts ...embedmongo.Option) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	srv, err := embedmongo.Start(ctx, addr, dir, logger, opts...)
	if err != nil {
		return err
	}
	logger.Info("mongoserver listening", "uri", srv.URI(), "dir", dir)
	fmt.Printf("MONGODB_URI=%s\n", srv.URI())

	select {
	case <-ctx.Done():
		logger.Info("mongoserver stopping")
	case <-srv.Done():
		logger.Warn("mongoserver stopped on its own")
	}
	if err := srv.Close(); err != nil {
		return err
	}
	logger.Info("mongoserver stopped")
	return nil
}
