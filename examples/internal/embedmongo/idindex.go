package embedmongo

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	_ "modernc.org/sqlite" // the driver FerretDB uses; registers "sqlite"
)

// FerretDB v1's SQLite layout (internal/backends/sqlite/metadata in
// v1.24.2; v1 is finished, so it stays). Each database is a file
// <name>.sqlite; its table _ferretdb_collections maps a collection's name
// to its table; a table keeps each document as SJSON text in one column.
// FerretDB's unique _id index is on _ferretdb_sjson->"_id", but its _id
// filter (a query, the UPDATE of an update, a DELETE) compares
// _ferretdb_sjson->'$._id', which that index does not serve: SQLite scans
// the table. An index on exactly that expression turns the scan into a
// search.
const (
	dbExt         = ".sqlite"
	metadataTable = "_ferretdb_collections"
	docColumn     = "_ferretdb_sjson"
	idExpr        = docColumn + "->'$._id'"

	// idIndexPrefix starts the name of the index on table T: FerretDB's
	// own index names start with T, which never starts with its reserved
	// prefix "_ferretdb_".
	idIndexPrefix = "_ferretdb_idexpr_"

	// busyTimeout, in milliseconds, is FerretDB's: a writer waits that
	// long for another connection's write to end.
	busyTimeout = 10000
)

// databaseName is FerretDB's rule for database names, so a name maps to
// one file in the directory.
var databaseName = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,63}$`)

// indexer adds the _id expression index to the collection tables of the
// database files in dir. Its methods are safe for concurrent use: SQLite
// serializes the index creation of concurrent passes.
type indexer struct {
	dir string
	log *slog.Logger

	mu     sync.Mutex
	warned map[string]bool // layout problems already logged, by file, table and problem
}

// all indexes every database file in the directory.
func (x *indexer) all(ctx context.Context) error {
	paths, err := databaseFiles(x.dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, path := range paths {
		errs = append(errs, x.file(ctx, path))
	}
	return errors.Join(errs...)
}

// databaseFiles returns the paths of the database files in dir.
func databaseFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("embedmongo: %w", err)
	}
	var paths []string
	for _, e := range entries {
		if e.Type().IsRegular() && strings.HasSuffix(e.Name(), dbExt) {
			paths = append(paths, filepath.Join(dir, e.Name()))
		}
	}
	return paths, nil
}

// database indexes the named database's file; a database without one has
// nothing to index yet.
func (x *indexer) database(ctx context.Context, name string) error {
	if !databaseName.MatchString(name) {
		return fmt.Errorf("embedmongo: invalid database name %q", name)
	}
	return x.file(ctx, filepath.Join(x.dir, name+dbExt))
}

// file indexes the tables of one database file that lack the index. A
// read-only pass looks first, so a file with nothing to do never takes
// the write lock; the pass that creates the indexes looks again under it.
func (x *indexer) file(ctx context.Context, path string) error {
	conn, closeConn, err := openFile(ctx, path, busyTimeout)
	if err != nil || conn == nil {
		return err
	}
	defer closeConn()

	var missing []string
	err = inTx(ctx, conn, "BEGIN", func() error {
		missing, err = x.plan(ctx, conn, path)
		return err
	})
	if err != nil || len(missing) == 0 {
		return err
	}
	return inTx(ctx, conn, "BEGIN IMMEDIATE", func() error {
		if missing, err = x.plan(ctx, conn, path); err != nil {
			return err
		}
		for _, t := range missing {
			q := fmt.Sprintf("CREATE INDEX IF NOT EXISTS %s ON %s (%s)", quote(idIndexPrefix+t), quote(t), idExpr)
			if _, err := conn.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("embedmongo: %s: index table %s: %w", path, t, err)
			}
			x.log.Debug("embedmongo: _id expression index created", "file", path, "table", t)
		}
		return nil
	})
}

// openFile opens a connection to the database file at path that waits
// busyMs milliseconds for a lock, and a function that closes it; none
// (nil, nil, nil) when the file has been dropped. mode=rw: a file FerretDB
// has just dropped must not come back empty.
//
// The connection lives for one look alone. FerretDB drops a database by
// closing its connections and removing the file; a look that has it open
// then closes last, which removes the file's WAL as well. Only a database
// dropped and made again under the same name during a look (a few
// milliseconds) could meet a WAL that is not its own; the demo never drops
// one, and the tests drop only databases of random names.
func openFile(ctx context.Context, path string, busyMs int) (*sql.Conn, func(), error) {
	dsn := (&url.URL{
		Scheme:   "file",
		Path:     filepath.ToSlash(path),
		RawQuery: fmt.Sprintf("mode=rw&_pragma=busy_timeout(%d)", busyMs),
	}).String()
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, nil, fmt.Errorf("embedmongo: open %s: %w", path, err)
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		db.Close()
		if _, serr := os.Stat(path); errors.Is(serr, fs.ErrNotExist) {
			return nil, nil, nil // dropped meanwhile
		}
		return nil, nil, fmt.Errorf("embedmongo: open %s: %w", path, err)
	}
	return conn, func() { conn.Close(); db.Close() }, nil
}

// inTx runs f in a transaction begun with begin on conn.
func inTx(ctx context.Context, conn *sql.Conn, begin string, f func() error) error {
	if _, err := conn.ExecContext(ctx, begin); err != nil {
		return fmt.Errorf("embedmongo: %s: %w", strings.ToLower(begin), err)
	}
	if err := f(); err != nil {
		// not ctx: a canceled one must still end the transaction
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
		return err
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
		return fmt.Errorf("embedmongo: commit: %w", err)
	}
	return nil
}

// plan returns the collection tables of the database that lack the index,
// warning about (and leaving out) those not laid out as expected. It reads
// in the caller's transaction, a snapshot: since FerretDB creates a table
// before listing it and unlists it before dropping it, a listed table
// exists.
func (x *indexer) plan(ctx context.Context, conn *sql.Conn, path string) ([]string, error) {
	var objects, meta int
	err := conn.QueryRowContext(ctx,
		"SELECT count(*), count(*) FILTER (WHERE type = 'table' AND name = ?) FROM sqlite_master", metadataTable).
		Scan(&objects, &meta)
	if err != nil {
		return nil, fmt.Errorf("embedmongo: %s: %w", path, err)
	}
	switch {
	case objects == 0:
		return nil, nil // just created: FerretDB has yet to add its metadata table
	case meta == 0:
		x.warn(path, "", "no "+metadataTable+" table")
		return nil, nil
	}
	cols, err := columns(ctx, conn, metadataTable)
	if err != nil {
		return nil, fmt.Errorf("embedmongo: %s: %w", path, err)
	}
	if cols["name"] == "" || cols["table_name"] == "" {
		x.warn(path, metadataTable, "no name or table_name column")
		return nil, nil
	}

	rows, err := conn.QueryContext(ctx, fmt.Sprintf("SELECT table_name FROM %s ORDER BY table_name", quote(metadataTable)))
	if err != nil {
		return nil, fmt.Errorf("embedmongo: %s: %w", path, err)
	}
	var tables []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			rows.Close()
			return nil, fmt.Errorf("embedmongo: %s: %w", path, err)
		}
		tables = append(tables, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("embedmongo: %s: %w", path, err)
	}

	var missing []string
	for _, t := range tables {
		cols, err := columns(ctx, conn, t)
		if err != nil {
			return nil, fmt.Errorf("embedmongo: %s: %w", path, err)
		}
		switch typ, ok := cols[docColumn]; {
		case len(cols) == 0:
			x.warn(path, t, "listed in "+metadataTable+" but missing")
			continue
		case !ok:
			x.warn(path, t, "no "+docColumn+" column")
			continue
		case !strings.EqualFold(typ, "TEXT"):
			x.warn(path, t, docColumn+" column of type "+typ+", not TEXT")
			continue
		}
		var on sql.NullString
		err = conn.QueryRowContext(ctx, "SELECT tbl_name FROM sqlite_master WHERE type = 'index' AND name = ?",
			idIndexPrefix+t).Scan(&on)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			missing = append(missing, t)
		case err != nil:
			return nil, fmt.Errorf("embedmongo: %s: %w", path, err)
		case on.String != t:
			x.warn(path, t, "index name "+idIndexPrefix+t+" taken by table "+on.String)
		}
	}
	return missing, nil
}

// columns returns the columns of table by name, with their declared types;
// none when it does not exist.
func columns(ctx context.Context, conn *sql.Conn, table string) (map[string]string, error) {
	rows, err := conn.QueryContext(ctx, "SELECT name, type FROM pragma_table_info(?)", table)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols := map[string]string{}
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			return nil, err
		}
		cols[name] = typ
	}
	return cols, rows.Err()
}

// warn logs a layout problem once: the collection works, but every _id
// lookup in it scans the table.
func (x *indexer) warn(path, table, problem string) {
	key := path + "\x00" + table + "\x00" + problem
	x.mu.Lock()
	seen := x.warned[key]
	x.warned[key] = true
	x.mu.Unlock()
	if !seen {
		x.log.Warn("embedmongo: FerretDB's SQLite layout is not the one expected; "+
			"no _id expression index, so _id lookups scan the whole collection",
			"file", path, "table", table, "problem", problem)
	}
}

// quote quotes an SQLite identifier.
func quote(name string) string { return `"` + strings.ReplaceAll(name, `"`, `""`) + `"` }
