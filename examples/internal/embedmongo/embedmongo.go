package embedmongo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/FerretDB/FerretDB/ferretdb"
)

// Server is a running embedded FerretDB instance.
type Server struct {
	uri    string
	addr   string
	cancel context.CancelFunc
	done   chan struct{}

	closeOnce sync.Once
	runErr    error
}

// Start starts a MongoDB-wire server listening on addr (for example
// "127.0.0.1:27018", or "127.0.0.1:0" for a free port) that stores its data in
// SQLite files under dir, which is created if needed.
//
// The server runs until Close is called or ctx is canceled. Its logs go to
// logger at warning level and above; a nil logger discards them.
func Start(ctx context.Context, addr, dir string, logger *slog.Logger) (*Server, error) {
	if addr == "" {
		return nil, errors.New("embedmongo: empty listen address")
	}
	if dir == "" {
		return nil, errors.New("embedmongo: empty data directory")
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

	f, err := ferretdb.New(&ferretdb.Config{
		Listener: ferretdb.ListenerConfig{TCP: addr},
		Logger:   slog.New(h).With("component", "ferretdb"),
		Handler:  "sqlite",
		// A directory URI: FerretDB keeps one SQLite file per database in it.
		SQLiteURL: (&url.URL{Scheme: "file", Path: filepath.ToSlash(abs) + "/"}).String(),
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
	}

	go func() {
		defer close(s.done)
		s.runErr = f.Run(runCtx)
	}()

	return s, nil
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
type minLevelHandler struct {
	slog.Handler
	min slog.Level
}

func (h *minLevelHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h *minLevelHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelError && strings.HasPrefix(r.Message, "Response ") {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h *minLevelHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &minLevelHandler{Handler: h.Handler.WithAttrs(attrs), min: h.min}
}

func (h *minLevelHandler) WithGroup(name string) slog.Handler {
	return &minLevelHandler{Handler: h.Handler.WithGroup(name), min: h.min}
}
