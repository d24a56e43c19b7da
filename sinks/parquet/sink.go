package parquet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/clickstreamkit/clickstream"
	"github.com/clickstreamkit/clickstream/sinks"
)

var _ sinks.Sink = (*Sink)(nil)

// Errors of the package.
var (
	// ErrClosed is returned by Write after Close.
	ErrClosed = errors.New("parquet: sink closed")
	// ErrCorrupt is wrapped when a staging or Parquet file cannot be decoded.
	ErrCorrupt = errors.New("parquet: corrupt file")
	// ErrBadBatch is wrapped when a batch breaks the sinks.Batch contract:
	// NextOffset below FirstOffset, or events not in increasing offset order
	// within [FirstOffset, NextOffset).
	ErrBadBatch = errors.New("parquet: bad batch")
	// ErrConflict is wrapped when a file to write exists with other
	// content: a replay produced other rows than the run that wrote it (an
	// event accepted by one clock and rejected by the other, another chunk
	// size or input). The file is left as it is and the write fails; the
	// error is permanent (clickstream.ErrPermanent), since retrying gives
	// the same rows.
	ErrConflict = fmt.Errorf("parquet: a file of that name exists with other content: %w", clickstream.ErrPermanent)
)

// DefaultChunkSize is how many offsets an events file covers by default.
const DefaultChunkSize = 100_000

// Directories under the sink's root.
const (
	DirEvents = "events"
	DirKPIs   = "kpis"
)

// Sink archives a pipeline's accepted events and final minute KPIs as
// Parquet files (see the package documentation for the layout and
// guarantees). Create it with New. It is safe for concurrent use: the
// writes of one partition are serialized, those of different partitions run
// in parallel.
type Sink struct {
	dir string
	config

	mu     sync.Mutex // guards parts and closed; taken before a partition's
	parts  map[partKey]*partition
	closed bool

	// fault, when set by tests, is called at named points of a write and
	// fails it with the error it returns, as a crash there would.
	fault func(point string) error
}

type partKey struct {
	topic     string
	partition int32
}

type partition struct {
	mu     sync.Mutex // serializes the partition's writes
	closed bool       // its files released: a write must take the partition anew
	events *eventLog
	kpis   *kpiLog
}

// config is what the options set.
type config struct {
	chunk int64
	log   *slog.Logger
}

// Option configures a Sink.
type Option func(*config)

// WithChunkSize sets how many offsets an events file covers: chunk k of a
// partition holds the accepted events with offsets in [k*n, (k+1)*n).
// Default DefaultChunkSize. Changing it for a directory that already holds
// files breaks the determinism of file boundaries: use a new directory.
func WithChunkSize(n int64) Option { return func(c *config) { c.chunk = n } }

// WithLogger sets the logger for files written and repairs made. Default:
// discard.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.log = l } }

// New returns a sink writing under dir, which it creates if missing. It reads
// nothing yet: each partition's state is loaded from its files on the
// partition's first write.
func New(dir string, opts ...Option) (*Sink, error) {
	if dir == "" {
		return nil, errors.New("parquet: a directory is required")
	}
	c := config{chunk: DefaultChunkSize}
	for _, o := range opts {
		o(&c)
	}
	if c.chunk <= 0 {
		return nil, fmt.Errorf("parquet: chunk size %d, want > 0", c.chunk)
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("parquet: %w", err)
	}
	return &Sink{dir: dir, config: c, parts: map[partKey]*partition{}}, nil
}

// Write makes each batch's accepted events and final minutes durable: in
// the staging file of their open period, or in the Parquet files of the
// periods the batch completes. Running updates (Final false) and b's other results are
// ignored. A batch covering offsets written before replaces what they
// produced.
//
// The partitions' files are independent: the batches of different
// partitions are written in parallel, those of one partition in turn. A
// failed batch stops the later ones of its partition, not the others'.
func (s *Sink) Write(ctx context.Context, bs ...*sinks.Batch) error {
	var keys []partKey
	byPart := map[partKey][]*sinks.Batch{}
	for _, b := range bs {
		k := partKey{b.Topic, b.Partition}
		if _, ok := byPart[k]; !ok {
			keys = append(keys, k)
		}
		byPart[k] = append(byPart[k], b)
	}
	if len(keys) <= 1 {
		return sinks.WriteEach(ctx, bs, s.write)
	}
	errs := make([]error, len(keys))
	var wg sync.WaitGroup
	for i, k := range keys {
		wg.Go(func() { errs[i] = sinks.WriteEach(ctx, byPart[k], s.write) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (s *Sink) write(ctx context.Context, b *sinks.Batch) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if b.NextOffset < b.FirstOffset {
		return fmt.Errorf("%w: %s/%d: offsets [%d, %d)", ErrBadBatch, b.Topic, b.Partition, b.FirstOffset, b.NextOffset)
	}
	k := partKey{b.Topic, b.Partition}
	for {
		p, err := s.partition(k)
		if err != nil {
			return err
		}
		p.mu.Lock()
		if p.closed { // released meanwhile (a reload by a concurrent write): take it anew
			p.mu.Unlock()
			continue
		}
		if err = p.events.write(b); err == nil {
			err = p.kpis.write(b)
		}
		failed := err != nil && !errors.Is(err, ErrBadBatch)
		if failed {
			// The files may be ahead of the state in memory: reload them on
			// the retry.
			p.close()
		}
		p.mu.Unlock()
		if failed {
			s.mu.Lock()
			if s.parts[k] == p {
				delete(s.parts, k)
			}
			s.mu.Unlock()
		}
		return err
	}
}

// Durable reports true: Write returns once the staged rows are fsynced.
func (*Sink) Durable() bool { return true }

// Close releases the open staging files. It writes nothing: the staging
// files already hold, durably, what the Parquet files do not. Close may be
// called more than once.
func (s *Sink) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	for k, p := range s.parts {
		p.mu.Lock()
		if !p.closed {
			errs = append(errs, p.close())
		}
		p.mu.Unlock()
		delete(s.parts, k)
	}
	return errors.Join(errs...)
}

// partition returns the partition's open files, loading them on its first
// write, or anew when another process wrote them meanwhile.
func (s *Sink) partition(k partKey) (*partition, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	if p, ok := s.parts[k]; ok {
		p.mu.Lock()
		current := !p.closed && !p.events.moved() && !p.kpis.moved()
		if !current && !p.closed {
			// Another process owned the partition meanwhile (a rebalance)
			// and wrote here: what this one knows is out of date.
			s.log.Info("parquet: partition changed on disk, reloading", "topic", k.topic, "partition", k.partition)
			p.close()
		}
		p.mu.Unlock()
		if current {
			return p, nil
		}
		delete(s.parts, k)
	}
	ev := &eventLog{stagedLog: stagedLog{s: s, id: stagingID{"events", k.topic, k.partition}, dir: s.partDir(DirEvents, k)}}
	if err := ev.load(); err != nil {
		return nil, err
	}
	kp := &kpiLog{stagedLog: stagedLog{s: s, id: stagingID{"kpis", k.topic, k.partition}, dir: s.partDir(DirKPIs, k)}}
	if err := kp.load(); err != nil {
		ev.st.close()
		return nil, err
	}
	p := &partition{events: ev, kpis: kp}
	s.parts[k] = p
	return p, nil
}

// close releases the partition's files; p.mu must be held.
func (p *partition) close() error {
	p.closed = true
	p.events.dropGrowing()
	return errors.Join(p.events.st.close(), p.kpis.st.close())
}

func (s *Sink) partDir(kind string, k partKey) string {
	return filepath.Join(s.dir, kind, "topic="+url.PathEscape(k.topic), "partition="+strconv.Itoa(int(k.partition)))
}

func (s *Sink) failAt(point string) error {
	if s.fault == nil {
		return nil
	}
	return s.fault(point)
}

// period is a Parquet file of a partition directory.
type period struct {
	name string
	end  int64
}

// listDir lists dir's Parquet files by the start of their period, parsed
// from their names by parse, and removes temporary files: a crash's, or the
// growing file of a process that owned the partition before.
// When two files share a start (a crash between writing a chunk's full file
// and removing its earlier end-of-input file), the one reaching further
// wins and the other is removed.
func (s *Sink) listDir(dir string, parse func(name string) (start, end int64, ok bool)) (map[int64]period, error) {
	files := map[int64]period{}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return files, nil
	}
	if err != nil {
		return nil, fmt.Errorf("parquet: %w", err)
	}
	removed := false
	remove := func(name, why string) error {
		s.log.Warn("parquet: removing "+why, "file", filepath.Join(dir, name))
		removed = true
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("parquet: %w", err)
		}
		return nil
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") && strings.Contains(name, ".tmp-") {
			if err := remove(name, "temporary file (left by a crash, or the open chunk of a process that owned the partition)"); err != nil {
				return nil, err
			}
			continue
		}
		start, end, ok := parse(name)
		if !ok {
			continue
		}
		if old, dup := files[start]; dup {
			loser := name
			if end > old.end {
				loser = old.name
				files[start] = period{name, end}
			}
			if err := remove(loser, "superseded file"); err != nil {
				return nil, err
			}
			continue
		}
		files[start] = period{name, end}
	}
	if removed {
		if err := syncDir(dir); err != nil {
			return nil, fmt.Errorf("parquet: %w", err)
		}
	}
	return files, nil
}

// removeFiles removes the files of the given periods from dir and files.
func (s *Sink) removeFiles(dir string, files map[int64]period, starts []int64) error {
	if len(starts) == 0 {
		return nil
	}
	for _, st := range starts {
		s.log.Info("parquet: removing file of a period left empty by a replay", "file", filepath.Join(dir, files[st].name))
		if err := os.Remove(filepath.Join(dir, files[st].name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("parquet: %w", err)
		}
		delete(files, st)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("parquet: %w", err)
	}
	return nil
}

// makeDir creates dir and makes its entry durable in each parent it
// created, up to the sink's root.
func (s *Sink) makeDir(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("parquet: %w", err)
	}
	root := filepath.Clean(s.dir)
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		if err := syncDir(d); err != nil {
			return fmt.Errorf("parquet: %w", err)
		}
		if d == root || d == filepath.Dir(d) {
			return nil
		}
	}
}

// floor returns the start of the period of length n holding v.
func floor(v, n int64) int64 {
	q := v / n
	if v%n != 0 && v < 0 {
		q--
	}
	return q * n
}
