// Command mongoserver runs a MongoDB-wire server (embedded FerretDB with its
// SQLite backend, see internal/embedmongo) until SIGINT or SIGTERM.
//
//	go run ./mongoserver -addr 127.0.0.1:27018 -dir /tmp/clickstream-services/mongo/data
//
// Once it listens it prints MONGODB_URI=mongodb://HOST:PORT/ on stdout.
// scripts/services.sh builds and starts it next to a local Kafka broker.
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
	flag.Parse()

	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(*addr, *dir, logger); err != nil {
		logger.Error("mongoserver failed", "err", err)
		os.Exit(1)
	}
}

func run(addr, dir string, logger *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	srv, err := embedmongo.Start(ctx, addr, dir, logger)
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
