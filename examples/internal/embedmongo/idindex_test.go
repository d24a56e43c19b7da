package embedmongo_test

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	_ "modernc.org/sqlite"

	"github.com/clickstreamkit/clickstream/checkpoint"
	cpmongo "github.com/clickstreamkit/clickstream/checkpoint/mongo"
	"github.com/clickstreamkit/clickstream/examples/internal/embedmongo"
	"github.com/clickstreamkit/clickstream/sinks"
	mongosink "github.com/clickstreamkit/clickstream/sinks/mongo"
)

// start starts a server in a fresh directory and connects a client to it.
func start(tb testing.TB, dir string, logger *slog.Logger, opts ...embedmongo.Option) (*embedmongo.Server, *mongo.Client) {
	tb.Helper()
	srv, err := embedmongo.Start(context.Background(), "127.0.0.1:0", dir, logger, opts...)
	require.NoError(tb, err)
	tb.Cleanup(func() { require.NoError(tb, srv.Close()) })
	client, err := mongo.Connect(options.Client().ApplyURI(srv.URI()).SetTimeout(60 * time.Second))
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	return srv, client
}

// openFile opens a database file of the server read-only, beside it.
func openFile(tb testing.TB, path string) *sql.DB {
	tb.Helper()
	_, err := os.Stat(path)
	require.NoError(tb, err, "the database lives in the directory passed to Start")
	u := &url.URL{Scheme: "file", Path: filepath.ToSlash(path), RawQuery: "mode=ro&_pragma=busy_timeout(10000)"}
	db, err := sql.Open("sqlite", u.String())
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = db.Close() })
	return db
}

// tables returns the SQLite table of each collection, from FerretDB's
// metadata.
func tables(tb testing.TB, db *sql.DB) map[string]string {
	tb.Helper()
	rows, err := db.Query(`SELECT name, table_name FROM _ferretdb_collections`)
	require.NoError(tb, err)
	defer rows.Close()
	m := map[string]string{}
	for rows.Next() {
		var c, t string
		require.NoError(tb, rows.Scan(&c, &t))
		m[c] = t
	}
	require.NoError(tb, rows.Err())
	return m
}

// plan returns SQLite's plan for stmt, with %s the quoted table, and the
// SJSON of a string _id as its one parameter.
func plan(tb testing.TB, db *sql.DB, stmt, table string) string {
	tb.Helper()
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	require.NoError(tb, err)
	defer conn.Close()
	// EXPLAIN reads no table, so it would not notice an index another
	// connection added since this one last did (any statement that reads
	// does, FerretDB's among them).
	_, err = conn.ExecContext(ctx, `SELECT count(*) FROM sqlite_master`)
	require.NoError(tb, err)
	rows, err := conn.QueryContext(ctx, "EXPLAIN QUERY PLAN "+fmt.Sprintf(stmt, `"`+table+`"`), `"k0001"`)
	require.NoError(tb, err)
	defer rows.Close()
	var details []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		require.NoError(tb, rows.Scan(&id, &parent, &unused, &detail))
		details = append(details, detail)
	}
	require.NoError(tb, rows.Err())
	return strings.Join(details, "; ")
}

// FerretDB's statements with an _id filter (internal/backends/sqlite:
// Query, UpdateAll, DeleteAll).
var idStatements = []string{
	`SELECT _ferretdb_sjson FROM %s WHERE _ferretdb_sjson->'$._id' = ?`,
	`UPDATE %s SET _ferretdb_sjson = '{}' WHERE _ferretdb_sjson->'$._id' = ?`,
	`DELETE FROM %s WHERE _ferretdb_sjson->'$._id' IN (?)`,
}

func insertDocs(tb testing.TB, coll *mongo.Collection, from, to int) {
	tb.Helper()
	for lo := from; lo < to; lo += 1000 {
		docs := make([]any, 0, 1000)
		for i := lo; i < min(lo+1000, to); i++ {
			docs = append(docs, bson.D{{Key: "_id", Value: fmt.Sprintf("k%04d", i)}, {Key: "v", Value: int64(i)}})
		}
		_, err := coll.InsertMany(context.Background(), docs, options.InsertMany().SetOrdered(false))
		require.NoError(tb, err)
	}
}

// Without the index FerretDB's _id statements scan the table; with it
// they search the index on the expression they compare.
func TestIDIndexPlan(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	srv, client := start(t, dir, nil, embedmongo.WithInterval(0))
	insertDocs(t, client.Database("clickstream").Collection("kpis_minute"), 0, 100)

	db := openFile(t, filepath.Join(dir, "clickstream.sqlite"))
	var journal string
	require.NoError(t, db.QueryRow(`PRAGMA journal_mode`).Scan(&journal))
	require.Equal(t, "wal", journal, "WithSynchronous's argument assumes WAL mode")

	table := tables(t, db)["kpis_minute"]
	require.NotEmpty(t, table)
	for _, s := range idStatements {
		p := plan(t, db, s, table)
		require.Contains(t, p, "SCAN "+table, "without the index: %s", s)
		require.NotContains(t, p, "USING INDEX", s)
	}

	require.NoError(t, srv.EnsureIndexes(ctx, "clickstream"))
	for _, s := range idStatements {
		p := plan(t, db, s, table)
		require.Contains(t, p, "SEARCH "+table+" USING INDEX _ferretdb_idexpr_"+table+" (<expr>=?)", s)
	}

	// The index is SQLite's alone: MongoDB clients see FerretDB's indexes.
	cur, err := client.Database("clickstream").Collection("kpis_minute").Indexes().List(ctx)
	require.NoError(t, err)
	var ixs []bson.M
	require.NoError(t, cur.All(ctx, &ixs))
	require.Len(t, ixs, 1)
	require.Equal(t, "_id_", ixs[0]["name"])

	require.NoError(t, srv.EnsureIndexes(ctx, "clickstream"), "idempotent")
	require.NoError(t, srv.EnsureIndexes(ctx, "nosuchdb"), "a database yet to be made")
	require.Error(t, srv.EnsureIndexes(ctx, "../clickstream"))
	require.Error(t, srv.EnsureIndexes(ctx, ""))

	require.NoError(t, srv.Close())
	require.ErrorIs(t, srv.EnsureIndexes(ctx, "clickstream"), embedmongo.ErrClosed)
}

// The collections from before a restart get the index at Start.
func TestIDIndexAtStart(t *testing.T) {
	dir := t.TempDir()
	srv, client := start(t, dir, nil, embedmongo.WithIDIndex(false))
	insertDocs(t, client.Database("clickstream").Collection("sessions"), 0, 10)
	require.NoError(t, client.Disconnect(context.Background()))
	require.NoError(t, srv.Close())

	db := openFile(t, filepath.Join(dir, "clickstream.sqlite"))
	table := tables(t, db)["sessions"]
	require.Contains(t, plan(t, db, idStatements[0], table), "SCAN", "WithIDIndex(false) adds no index")

	_, client = start(t, dir, nil, embedmongo.WithInterval(0))
	require.Contains(t, plan(t, db, idStatements[0], table), "USING INDEX _ferretdb_idexpr_"+table)
	n, err := client.Database("clickstream").Collection("sessions").CountDocuments(context.Background(), bson.D{})
	require.NoError(t, err)
	require.EqualValues(t, 10, n)
}

// Every collection the demo writes through the MongoDB sink and the
// checkpoint store gets the index.
func TestIDIndexDemoCollections(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	srv, client := start(t, dir, nil, embedmongo.WithInterval(0))

	sink, err := mongosink.New(client, "clickstream", mongosink.WithWindowSize(time.Minute))
	require.NoError(t, err)
	require.NoError(t, sink.EnsureIndexes(ctx))
	require.NoError(t, sink.Write(ctx, &sinks.Batch{Topic: "events_raw", Partition: 0, NextOffset: 1,
		Progress: sinks.Progress{Partitions: 1, Watermark: 1}}))
	store, err := cpmongo.New(client, "clickstream")
	require.NoError(t, err)
	cp := checkpoint.Checkpoint{Topic: "events_raw", Partition: 0, Next: 10, State: []byte("head"),
		Segments: []checkpoint.Segment{{ID: 1, Data: []byte("segment")}}}
	require.NoError(t, store.Save(ctx, cp))

	require.NoError(t, srv.EnsureIndexes(ctx, "clickstream"))

	db := openFile(t, filepath.Join(dir, "clickstream.sqlite"))
	colls := tables(t, db)
	names := slices.Sorted(func(yield func(string) bool) {
		for c := range colls {
			if !yield(c) {
				return
			}
		}
	})
	require.Equal(t, []string{"checkpoints", "checkpoints_segments", mongosink.DefaultFunnel, mongosink.DefaultKPIs,
		mongosink.DefaultProgress, mongosink.DefaultSessions}, names)
	for c, table := range colls {
		for _, s := range idStatements {
			require.Contains(t, plan(t, db, s, table), "USING INDEX _ferretdb_idexpr_"+table, "%s: %s", c, s)
		}
	}

	got, err := store.Load(ctx, "events_raw", 0)
	require.NoError(t, err)
	require.Equal(t, cp, got)
}

type doc struct {
	ID string `bson:"_id"`
	V  int64  `bson:"v"`
	N  int64  `bson:"n"`
}

// Upserts, finds, replaces and deletes by _id give MongoDB's results with
// the index, checked against a map on a random sequence of them.
func TestIDIndexResults(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	srv, client := start(t, dir, nil, embedmongo.WithInterval(0))
	coll := client.Database("clickstream").Collection("kpis_minute")
	insertDocs(t, coll, 0, 50)
	require.NoError(t, srv.EnsureIndexes(ctx, "clickstream"))
	db := openFile(t, filepath.Join(dir, "clickstream.sqlite"))
	require.Contains(t, plan(t, db, idStatements[0], tables(t, db)["kpis_minute"]), "USING INDEX")

	model := map[string]doc{}
	for i := range 50 {
		id := fmt.Sprintf("k%04d", i)
		model[id] = doc{ID: id, V: int64(i)}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for step := range 2000 {
		id := fmt.Sprintf("k%04d", r.IntN(80)) // some absent
		want, exists := model[id]
		switch op := r.IntN(5); op {
		case 0: // the sink's upsert
			v := int64(r.IntN(3))
			res, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}},
				bson.D{{Key: "$set", Value: bson.D{{Key: "v", Value: v}}}, {Key: "$inc", Value: bson.D{{Key: "n", Value: 1}}}},
				options.UpdateOne().SetUpsert(true))
			require.NoError(t, err)
			if exists {
				require.EqualValues(t, 1, res.MatchedCount, "step %d", step)
				require.EqualValues(t, 1, res.ModifiedCount, "step %d", step)
				require.Nil(t, res.UpsertedID)
			} else {
				require.EqualValues(t, 1, res.UpsertedCount, "step %d", step)
				require.Equal(t, id, res.UpsertedID)
			}
			model[id] = doc{ID: id, V: v, N: want.N + 1}
		case 1: // the checkpoint store's upsert
			d := doc{ID: id, V: int64(step)}
			res, err := coll.ReplaceOne(ctx, bson.D{{Key: "_id", Value: id}}, d, options.Replace().SetUpsert(true))
			require.NoError(t, err)
			require.EqualValues(t, !exists, res.UpsertedCount == 1, "step %d", step)
			model[id] = d
		case 2:
			res, err := coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}})
			require.NoError(t, err)
			require.EqualValues(t, map[bool]int64{true: 1}[exists], res.DeletedCount, "step %d", step)
			delete(model, id)
		case 3:
			_, err := coll.InsertOne(ctx, doc{ID: id, V: -1})
			if exists {
				require.True(t, mongo.IsDuplicateKeyError(err), "step %d: %v", step, err)
			} else {
				require.NoError(t, err)
				model[id] = doc{ID: id, V: -1}
			}
		default:
			var got doc
			err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&got)
			if exists {
				require.NoError(t, err)
				require.Equal(t, want, got, "step %d", step)
			} else {
				require.ErrorIs(t, err, mongo.ErrNoDocuments, "step %d", step)
			}
		}
	}

	cur, err := coll.Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	require.NoError(t, err)
	var got []doc
	require.NoError(t, cur.All(ctx, &got))
	want := make([]doc, 0, len(model))
	for _, d := range model {
		want = append(want, d)
	}
	slices.SortFunc(want, func(a, b doc) int { return strings.Compare(a.ID, b.ID) })
	require.Equal(t, want, got)

	// An ObjectID _id is pushed down too; other types are not, and still work.
	other := client.Database("clickstream").Collection("other")
	oid := bson.NewObjectID()
	_, err = other.InsertMany(ctx, []any{bson.D{{Key: "_id", Value: oid}, {Key: "v", Value: 1}},
		bson.D{{Key: "_id", Value: 7}, {Key: "v", Value: 2}}})
	require.NoError(t, err)
	require.NoError(t, srv.EnsureIndexes(ctx, "clickstream"))
	for id, v := range map[any]int32{oid: 1, 7: 2} {
		var m bson.M
		require.NoError(t, other.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&m))
		require.Equal(t, v, m["v"])
	}
}

// A table not laid out as expected keeps working without the index, with
// one warning.
func TestIDIndexLayoutWarning(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	// a FerretDB database whose one collection's table has another column
	u := &url.URL{Scheme: "file", Path: filepath.ToSlash(filepath.Join(dir, "odd.sqlite"))}
	db, err := sql.Open("sqlite", u.String())
	require.NoError(t, err)
	for _, q := range []string{
		`CREATE TABLE _ferretdb_collections (name TEXT NOT NULL UNIQUE, table_name TEXT NOT NULL UNIQUE, settings TEXT NOT NULL) STRICT`,
		`INSERT INTO _ferretdb_collections VALUES ('c', 'c_00000001', '{}')`,
		`CREATE TABLE c_00000001 (doc TEXT) STRICT`,
	} {
		_, err := db.Exec(q)
		require.NoError(t, err, q)
	}
	require.NoError(t, db.Close())

	var logs embedmongo.SyncBuffer
	srv, _ := start(t, dir, slog.New(slog.NewTextHandler(&logs, nil)), embedmongo.WithInterval(0))
	require.NoError(t, srv.EnsureIndexes(ctx, "odd"))
	require.Equal(t, 1, strings.Count(logs.String(), "level=WARN msg=\"embedmongo: FerretDB's SQLite layout is not the one expected"), logs.String())
	require.Contains(t, logs.String(), "table=c_00000001 problem=\"no _ferretdb_sjson column\"")

	db = openFile(t, filepath.Join(dir, "odd.sqlite"))
	var n int
	require.NoError(t, db.QueryRow(`SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name LIKE '_ferretdb_idexpr_%'`).Scan(&n))
	require.Zero(t, n)
}
