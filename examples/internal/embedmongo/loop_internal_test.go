package embedmongo

import (
	"context"
	"database/sql"
	"net/url"
	"path/filepath"
	"strings"
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
