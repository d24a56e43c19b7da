package embedmongo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

// ErrClosed is returned by EnsureIndexes once the server is closed.
var ErrClosed = errors.New("embedmongo: server closed")

// Server is a running embedded FerretDB instance. Its methods are safe for
// concurrent use.
type Server struct {
	uri    string
	addr   string
	cancel context.CancelFunc
	done   chan struct{}
	ix     *indexer // nil without the _id index

	closeOnce sync.Once
	runErr    error
}

// Option configures Start.
type Option func(*config)

type config struct {
	idIndex  bool
	interval time.Duration
	walLimit int64
	sync     string
	tick     <-chan time.Time // replaces the interval's ticker in tests
}

// WithIDIndex adds (true) or leaves out (false) an SQLite index on the
// expression FerretDB's _id filter compares, on every collection. Without
// it SQLite scans the whole collection for every lookup, update, upsert or
// delete by _id (FerretDB's own unique _id index is on another expression),
// so their rate falls with the collection's size; with it they cost the
// same at any size. Default true.
//
// The index is invisible to MongoDB clients (listIndexes does not show it)
// and goes with its collection when that is dropped. Collections are made
// by their first write, so the server adds the index to those it finds at
// Start, every WithInterval, and on EnsureIndexes.
func WithIDIndex(on bool) Option { return func(c *config) { c.idIndex = on } }

// WithInterval sets how often the server looks after its database files:
// for collections without the _id index (see WithIDIndex), which it
// indexes, and for write-ahead logs past the limit (see WithWALLimit),
// which it truncates; 0 looks only at Start and on EnsureIndexes. A look
// opens each database file, reads its list of collections in a read
// transaction and closes it; only a collection without the index takes
// SQLite's write lock, for as long as indexing what it holds takes.
// Default 1s.
func WithInterval(d time.Duration) Option { return func(c *config) { c.interval = d } }

// WithWALLimit sets the size in bytes past which a look (see WithInterval)
// truncates a database file's write-ahead log; 0 never does. Default
// DefaultWALLimit.
//
// SQLite copies the log into the database file as it goes, but writes the
// log from its start again only when a writer finds no reader using it;
// FerretDB's connections keep readers and writers overlapping under a
// steady load, so the file grows without end: 1.85 GB after 6 minutes of
// the demo at 5,000 events/s, for a database file of 630 KB. A truncation
// (wal_checkpoint(TRUNCATE)) holds new writers back while it waits up to
// 200 ms for the readers of the moment to finish, then empties the log; if
// they have not finished, the next look tries again.
func WithWALLimit(bytes int64) Option { return func(c *config) { c.walLimit = bytes } }

// WithSynchronous sets SQLite's synchronous pragma on every connection:
// "normal", "full" or "extra". Default "normal".
//
// FerretDB runs SQLite in WAL mode. With synchronous=NORMAL a commit is
// written to the WAL file, not fsynced: SQLite fsyncs the WAL only before
// it checkpoints it into the database file. The write has completed when
// the commit returns, so the commit lives in the operating system's page
// cache, and a crash of the process (SIGKILL, a panic, the OOM killer)
// loses nothing; the database is never corrupted either way. Only a crash
// of the operating system or a power loss can lose the commits since the
// last checkpoint, rolling the database back to an earlier consistent
// state: a prefix of its commits. The demo's exactly-once claims, and the
// restart tests that SIGKILL it, are about process crashes, so NORMAL keeps
// them and makes each write cheaper (one fsync per checkpoint, not per
// commit; see BenchmarkUpsertByID). After a power loss, results in the
// database may be behind offsets checkpointed elsewhere (the embedded
// source's checkpoint files are fsynced), and the lost results would not
// be written again; checkpoints in the same database roll back with the
// results they cover. Choose "full" where a power loss matters.
func WithSynchronous(mode string) Option { return func(c *config) { c.sync = mode } }

// Start starts a MongoDB-wire server listening on addr (for example
// "127.0.0.1:27018", or "127.0.0.1:0" for a free port) that stores its data in
// SQLite files under dir, one <database>.sqlite each, creating dir if needed.
//
// The server runs until Close is called or ctx is canceled. Its logs go to
// logger at warning level and above; a nil logger discards them. Before
// it listens it adds the _id index (see WithIDIndex) to the collections
// already in dir; a failure to add it is logged, not returned.
func Start(ctx context.Context, addr, dir string, logger *slog.Logger, opts ...Option) (*Server, error) {
	c := config{idIndex: true, interval: time.Second, walLimit: DefaultWALLimit, sync: "normal"}
	for _, o := range opts {
		o(&c)
	}
	switch {
	case addr == "":
		return nil, errors.New("embedmongo: empty listen address")
	case dir == "":
		return nil, errors.New("embedmongo: empty data directory")
	case c.interval < 0:
		return nil, errors.New("embedmongo: negative interval")
	case c.walLimit < 0:
		return nil, errors.New("embedmongo: negative WAL limit")
	case c.sync != "normal" && c.sync != "full" && c.sync != "extra":
		return nil, fmt.Errorf("embedmongo: synchronous %q: want normal, full or extra", c.sync)
	}

	// ferretdb.New leaks its SQLite backend when it cannot listen, and
	// FerretDB's leak check panics when the garbage collector finds it:
	// refuse a taken address before. (A race with another process taking
	// it between the two remains.)
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("embedmongo: %w", err)
	}
	if err = l.Close(); err != nil {
		return nil, fmt.Errorf("embedmongo: %w", err)
	}

	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("embedmongo: %w", err)
	}
	if err = os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("embedmongo: %w", err)
	}

	// FerretDB logs every connection and command at info/debug level; keep
	// only warnings and errors.
	var h slog.Handler = slog.DiscardHandler
	if logger != nil {
		h = &minLevelHandler{Handler: logger.Handler(), min: slog.LevelWarn}
	}
	log := slog.New(h)

	var ix *indexer
	var looks []look
	if c.idIndex {
		// Before FerretDB opens the files: nothing writes to them yet.
		ix = &indexer{dir: abs, log: log, warned: map[string]bool{}}
		if err := ix.all(ctx); err != nil {
			log.Warn("embedmongo: _id expression index not added", "err", err)
		}
		looks = append(looks, look{ix.all, "embedmongo: _id expression index not added"})
	}
	if c.walLimit > 0 {
		w := &walKeeper{dir: abs, limit: c.walLimit, log: log, busy: map[string]int{}}
		looks = append(looks, look{w.all, "embedmongo: WAL not truncated"})
	}

	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: addr},
		Logger:    log.With("component", "ferretdb"),
		Handler:   "sqlite",
		SQLiteURL: sqliteURL(abs, c.sync),
	})
	if err != nil {
		return nil, fmt.Errorf("embedmongo: %w", err)
	}

	// ferretdb.New has already bound the listener, so the URI (with the real
	// port when addr ends in ":0") is known before Run.
	uri := f.MongoDBURI()
	u, err := url.Parse(uri)
	if err != nil {
		return nil, fmt.Errorf("embedmongo: parse %q: %w", uri, err)
	}

	runCtx, cancel := context.WithCancel(ctx)
	s := &Server{
		uri:    uri,
		addr:   u.Host,
		cancel: cancel,
		done:   make(chan struct{}),
		ix:     ix,
	}

	var wg sync.WaitGroup
	wg.Go(func() {
		defer cancel() // stops the loop if FerretDB stops on its own
		s.runErr = f.Run(runCtx)
	})
	tick := c.tick
	if tick == nil && len(looks) > 0 && c.interval > 0 {
		t := time.NewTicker(c.interval)
		context.AfterFunc(runCtx, t.Stop)
		tick = t.C
	}
	if len(looks) > 0 && tick != nil {
		wg.Go(func() { loop(runCtx, tick, log, looks) })
	}
	go func() {
		wg.Wait()
		close(s.done)
	}()

	return s, nil
}

// sqliteURL is FerretDB's SQLite URL for the directory dir: a directory
// URI, since FerretDB keeps one file per database in it. FerretDB adds its
// defaults (busy_timeout(10000), journal_mode(wal), auto_vacuum(none)).
func sqliteURL(dir, sync string) string {
	q := url.Values{"_pragma": {"synchronous(" + sync + ")"}}
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(dir) + "/", RawQuery: q.Encode()}).String()
}

// look is one thing loop does on every tick, and what it logs when that
// fails.
type look struct {
	run  func(context.Context) error
	fail string
}

// loop runs the looks on every tick: indexing the collections made since
// the last, truncating logs grown past the limit.
func loop(ctx context.Context, tick <-chan time.Time, log *slog.Logger, looks []look) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
			for _, l := range looks {
				if err := l.run(ctx); err != nil && ctx.Err() == nil {
					log.Warn(l.fail, "err", err)
				}
			}
		}
	}
}

// EnsureIndexes adds the _id index (see WithIDIndex) to every collection
// of database that lacks it, now, and returns when it is done: call it
// after creating collections that will grow before the next periodic look.
// A database that does not exist yet has nothing to index. A collection
// whose SQLite table is not laid out as expected is left without the
// index, with a warning in the log, not an error. Without WithIDIndex it
// does nothing.
func (s *Server) EnsureIndexes(ctx context.Context, database string) error {
	if s.ix == nil {
		return nil
	}
	select {
	case <-s.done:
		return ErrClosed
	default:
	}
	return s.ix.database(ctx, database)
}

// URI returns the server's MongoDB connection string, like
// "mongodb://127.0.0.1:27018/".
func (s *Server) URI() string { return s.uri }

// Addr returns the host:port the server listens on.
func (s *Server) Addr() string { return s.addr }

// Done is closed when the server has stopped.
func (s *Server) Done() <-chan struct{} { return s.done }

// Close stops the server, closes client connections and the SQLite databases,
// and waits until that is done. It is safe to call more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.cancel()
		<-s.done
	})
	return s.runErr
}

// minLevelHandler drops records below min before passing them on.
//
// It also drops FerretDB's warning-level dumps of every error response
// ("Response header: ..." / "Response message: ..."): the client receives
// those errors anyway, and every driver disconnect would otherwise log one
// for the endSessions command that FerretDB v1 does not implement.
//
// FerretDB derives a logger with attributes for every command it answers;
// the handler applies them to the next handler only when a record gets
// through (a text handler formats them as they are added: 4 % of the CPU at
// 5,000 events/s, for records that are all dropped).
type minLevelHandler struct {
	slog.Handler
	min slog.Level
	// with are the WithAttrs and WithGroup calls since Handler, in order.
	with []func(slog.Handler) slog.Handler
}

func (h *minLevelHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h *minLevelHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelError && strings.HasPrefix(r.Message, "Response ") {
		return nil
	}
	next := h.Handler
	for _, w := range h.with {
		next = w(next)
	}
	return next.Handle(ctx, r)
}

func (h *minLevelHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return h.and(func(next slog.Handler) slog.Handler { return next.WithAttrs(attrs) })
}

func (h *minLevelHandler) WithGroup(name string) slog.Handler {
	return h.and(func(next slog.Handler) slog.Handler { return next.WithGroup(name) })
}

func (h *minLevelHandler) and(w func(slog.Handler) slog.Handler) slog.Handler {
	return &minLevelHandler{Handler: h.Handler, min: h.min, with: append(h.with[:len(h.with):len(h.with)], w)}
}
