package embedmongo

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// A collection made after Start gets the index on the next periodic look.
func TestIndexLoop(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	tick := make(chan time.Time)
	srv, err := Start(ctx, "127.0.0.1:0", dir, nil, func(c *config) { c.tick = tick })
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, srv.Close()) })
	client, err := mongo.Connect(options.Client().ApplyURI(srv.URI()).SetTimeout(30 * time.Second))
	require.NoError(t, err)
	t.Cleanup(func() { _ = client.Disconnect(ctx) })

	_, err = client.Database("clickstream").Collection("progress").InsertOne(ctx, bson.D{{Key: "_id", Value: "events_raw/0"}})
	require.NoError(t, err)

	u := &url.URL{Scheme: "file", Path: filepath.ToSlash(filepath.Join(dir, "clickstream.sqlite")), RawQuery: "mode=ro"}
	db, err := sql.Open("sqlite", u.String())
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	indexes := func() int {
		var n int
		require.NoError(t, db.QueryRow(`SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name LIKE '_ferretdb_idexpr_progress_%'`).Scan(&n))
		return n
	}
	require.Zero(t, indexes(), "no look yet")

	tick <- time.Time{}
	tick <- time.Time{} // received once the first look is over
	require.Equal(t, 1, indexes())
}

func TestSQLiteURL(t *testing.T) {
	u := sqliteURL("/data/my dir", "normal")
	require.Equal(t, "file:///data/my%20dir/?_pragma=synchronous%28normal%29", u)
	require.True(t, strings.HasSuffix(must(url.Parse(u)).Path, "/"), "FerretDB wants a directory")
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// A write-ahead log past the limit is emptied on the next look, not while a
// reader holds it: then every fourth look in a row warns.
func TestWALLoop(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	tick := make(chan time.Time)
	var logs syncBuffer
	const limit = 256 << 10
	srv, err := Start(ctx, "127.0.0.1:0", dir, slog.New(slog.NewTextHandler(&logs, nil)),
		WithWALLimit(limit), func(c *config) { c.tick = tick })
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, srv.Close()) })
	client, err := mongo.Connect(options.Client().ApplyURI(srv.URI()).SetTimeout(30 * time.Second))
	require.NoError(t, err)
	t.Cleanup(func() { _ = client.Disconnect(ctx) })
	coll := client.Database("clickstream").Collection("sessions")
	wal := filepath.Join(dir, "clickstream.sqlite-wal")
	size := func() int64 {
		fi, err := os.Stat(wal)
		if errors.Is(err, fs.ErrNotExist) {
			return 0
		}
		require.NoError(t, err)
		return fi.Size()
	}
	n := 0
	write := func() {
		for size() <= limit {
			docs := make([]any, 100)
			for i := range docs {
				docs[i] = bson.D{{Key: "_id", Value: n}, {Key: "pad", Value: strings.Repeat("x", 1000)}}
				n++
			}
			_, err := coll.InsertMany(ctx, docs)
			require.NoError(t, err)
		}
	}
	look := func() {
		tick <- time.Time{}
		tick <- time.Time{} // received once the look before is over
	}

	write()
	look()
	require.Zero(t, size(), "the log truncated")
	count, err := coll.CountDocuments(ctx, bson.D{})
	require.NoError(t, err)
	require.Equal(t, int64(n), count, "every document kept")

	// A reader in a transaction holds the log.
	write()
	u := &url.URL{Scheme: "file", Path: filepath.ToSlash(filepath.Join(dir, "clickstream.sqlite")), RawQuery: "mode=ro"}
	db, err := sql.Open("sqlite", u.String())
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	tx, err := db.Begin()
	require.NoError(t, err)
	var objects int
	require.NoError(t, tx.QueryRow("SELECT count(*) FROM sqlite_master").Scan(&objects))
	for range 4 {
		look()
	}
	require.Greater(t, size(), int64(limit), "not truncated under a reader")
	require.Contains(t, logs.String(), "the WAL stays in use")
	require.NoError(t, tx.Rollback())
	look()
	require.Zero(t, size(), "truncated once the reader is gone")
}

// syncBuffer is a bytes.Buffer for a logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// The handler keeps warnings and errors with the attributes and groups of
// their logger, and drops the rest and FerretDB's response dumps.
func TestMinLevelHandler(t *testing.T) {
	var out syncBuffer
	text := slog.NewTextHandler(&out, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}})
	root := slog.New(&minLevelHandler{Handler: text, min: slog.LevelWarn})
	l := root.With("a", 1).WithGroup("g").With("b", 2)
	l.Info("dropped")
	l.Warn("Response header: dropped")
	l.Warn("kept", "c", 3)
	root.Error("Response message: kept as an error")
	want := "level=WARN msg=kept a=1 g.b=2 g.c=3\nlevel=ERROR msg=\"Response message: kept as an error\"\n"
	require.Equal(t, want, out.String())
}
