package embedmongo

import (
	"context"
	"fmt"
	"log/slog"
	"os"
)

// DefaultWALLimit is WithWALLimit's default: 64 MiB.
const DefaultWALLimit = 64 << 20

// walBusyTimeout, in milliseconds, bounds how long a truncation waits for
// the readers of the moment, holding new writers back meanwhile.
const walBusyTimeout = 200

// walKeeper truncates the write-ahead logs of the database files in dir that
// have grown past limit bytes.
type walKeeper struct {
	dir   string
	limit int64
	log   *slog.Logger
	busy  map[string]int // looks in a row that found a file's log in use
}

// all truncates every log in the directory that is past the limit. The
// server's loop alone calls it.
func (w *walKeeper) all(ctx context.Context) error {
	paths, err := databaseFiles(w.dir)
	if err != nil {
		return err
	}
	for _, path := range paths {
		if fi, err := os.Stat(path + "-wal"); err != nil || fi.Size() <= w.limit {
			continue
		}
		if err := w.truncate(ctx, path); err != nil {
			return err
		}
	}
	return nil
}

// truncate checkpoints the database file's log into it and empties the log,
// unless a reader still uses it after walBusyTimeout: then a later look
// tries again, and the fourth look in a row that fails warns.
func (w *walKeeper) truncate(ctx context.Context, path string) error {
	conn, closeConn, err := openFile(ctx, path, walBusyTimeout)
	if err != nil || conn == nil {
		return err
	}
	defer closeConn()
	var busy, frames, done int
	if err := conn.QueryRowContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &frames, &done); err != nil {
		return fmt.Errorf("embedmongo: %s: checkpoint the WAL: %w", path, err)
	}
	if busy == 0 {
		delete(w.busy, path)
		return nil
	}
	if w.busy[path]++; w.busy[path]%4 == 0 {
		w.log.Warn("embedmongo: the WAL stays in use; not truncated", "file", path, "looks", w.busy[path], "frames", frames)
	}
	return nil
}
