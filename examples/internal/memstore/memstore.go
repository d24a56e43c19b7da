// Package memstore holds the read API's global view in memory: a
// [readapi.Store] fed with every round of batches the sinks have made
// durable, loaded at start from what the MongoDB sink holds. The read API's
// answers then cost the same whatever the history's size and whatever the
// MongoDB-wire server can push down (FerretDB on SQLite scans a collection
// for every range), and each answer is as new as the last durable write.
//
//	st, err := memstore.New(cfg, 25*time.Hour)
//	loaded := st.Load(ctx, mongoSink)      // before the pipeline writes; loads in the background
//	runner, err := pipeline.NewRunner(src, st.Wrap(sinks), store, cfg)
//	h := readapi.New(st, cfg, readapi.Options{...})
//	err = <-loaded
//
// While it loads, the pipeline's writes go on into the view, and queries
// answer ErrLoading (the read API's 503): a day of history takes FerretDB
// most of a minute to read, and the pipeline does not wait for it.
//
// It answers like the MongoDB sink's queries, through the same
// [sinks.View]: the windows and funnel minutes merged over partitions, final
// on the global view of SEMANTICS §11. It scores each window for anomalies
// once, when it becomes final, in window order, against one baseline for the
// whole run (SEMANTICS §8). Of the sessions it keeps sums by start time,
// which is what /sessions/summary answers. It keeps the windows, funnel
// minutes, session sums and anomalies of the last retain of event time (from
// the newest window) and forgets older ones. A Store is safe for concurrent
// use.
package memstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/clickstreamkit/clickstream/examples/internal/readapi"
	"github.com/clickstreamkit/clickstream/kpi"
	"github.com/clickstreamkit/clickstream/pipeline"
	"github.com/clickstreamkit/clickstream/session"
	"github.com/clickstreamkit/clickstream/sinks"
	mongosink "github.com/clickstreamkit/clickstream/sinks/mongo"
	"github.com/clickstreamkit/clickstream/window"
)

var _ readapi.Store = (*Store)(nil)

// Store is the global view in memory. Create it with New.
type Store struct {
	retain int64 // millis

	mu        sync.RWMutex
	view      *sinks.View
	newest    int64 // the newest window start held
	detector  *kpi.Detector
	scored    int64 // the windows before it are scored
	anomalies []kpi.Anomaly
	updated   map[part]time.Time // when each partition's progress was last published
	bucket    int64              // millis: the span of the sessions' start times a sessionBucket sums
	seed      maphash.Seed
	sessions  map[int64]*sessionBucket // by the start of the bucket
	starts    []int64                  // the keys of sessions, in order
	loading   bool                     // a Load has not ended yet
	failed    error                    // why the Load failed
}

// sessionBucket sums the sessions that start in one bucket of time. seen
// holds a hash of each one's user and start, so that a session written
// twice (read by Load and written since, or replayed after a restart)
// counts once: what the store keeps per session is 8 bytes and a map slot,
// not the record.
type sessionBucket struct {
	totals session.Totals
	seen   map[uint64]struct{}
}

// ErrLoading is what queries answer while Load reads the history.
var ErrLoading = errors.New("memstore: loading the history from MongoDB")

// History is what Load reads: the MongoDB sink's progress, view and
// sessions (*mongosink.Sink).
type History interface {
	Progress(ctx context.Context) ([]mongosink.Progress, error)
	ReadView(ctx context.Context, from, to time.Time) (*sinks.View, error)
	Sessions(ctx context.Context, from, to time.Time) ([]session.Record, error)
}

type part struct {
	topic     string
	partition int32
}

type sessionKey struct {
	user  string
	start int64
}

// New returns an empty store for cfg's windows and anomaly settings that
// keeps the last retain of event time. It sums sessions by start time in
// buckets of the greatest common divisor of the window size and a minute:
// the read API's ranges (whole minutes back from a window's start) are made
// of whole buckets.
func New(cfg pipeline.Config, retain time.Duration) (*Store, error) {
	d, err := cfg.NewDetector()
	if err != nil {
		return nil, err
	}
	return &Store{retain: retain.Milliseconds(), view: sinks.NewView(cfg.WindowSize),
		newest: window.NegInf, detector: d, scored: window.NegInf, updated: map[part]time.Time{},
		bucket: gcd(cfg.WindowSize.Milliseconds(), 60_000), seed: maphash.MakeSeed(),
		sessions: map[int64]*sessionBucket{}}, nil
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// Load reads what h holds of the retained range into the store, in a
// goroutine of its own, and sends its result on the channel it returns: the
// progress, windows and funnel minutes (mongosink.Sink.ReadView) and the
// sessions, one query of each collection. Call it before the pipeline
// writes through Wrap; the writes may go on meanwhile. Until it ends,
// queries answer ErrLoading and no window is scored; then what it read fills
// in under what was written since (sinks.View.Fill: a newer value of a key
// stays), and the windows are scored in order. A failed Load leaves the
// store answering its error.
func (s *Store) Load(ctx context.Context, h History) <-chan error {
	s.mu.Lock()
	s.loading = true
	s.mu.Unlock()
	done := make(chan error, 1)
	go func() {
		err := s.load(ctx, h)
		s.mu.Lock()
		if err != nil {
			s.failed = fmt.Errorf("memstore: load the history from MongoDB: %w", err)
		} else {
			s.loading = false
		}
		s.mu.Unlock()
		done <- err
	}()
	return done
}

func (s *Store) load(ctx context.Context, h History) error {
	// Progress first: results read after it are at least as new.
	ps, err := h.Progress(ctx)
	if err != nil {
		return err
	}
	v, err := h.ReadView(ctx, minTime, maxTime)
	if err != nil {
		return err
	}
	newest := window.NegInf
	if latest := v.Latest(1); len(latest) > 0 {
		newest = latest[0].Minute.Minute
	}
	var ss []session.Record
	if newest != window.NegInf {
		if ss, err = h.Sessions(ctx, time.UnixMilli(newest-s.retain), maxTime); err != nil {
			return err
		}
	}
	for _, p := range ps {
		v.SetProgress(p.Topic, p.Partition, p.Progress)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.view.Fill(v)
	s.newest = max(s.newest, newest)
	for _, p := range ps {
		if k := (part{p.Topic, p.Partition}); s.updated[k].IsZero() {
			s.updated[k] = p.UpdatedAt
		}
	}
	for i := range ss {
		s.addSession(&ss[i]) // once, if written since
	}
	s.score()
	s.forget()
	return nil
}

// ready returns the error queries answer now, nil once loaded. The caller
// holds s.mu.
func (s *Store) ready() error {
	switch {
	case s.failed != nil:
		return s.failed
	case s.loading:
		return ErrLoading
	}
	return nil
}

// The range of event times RFC 3339 can write (SEMANTICS §1).
var (
	minTime = time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
)

// Wrap returns next, which the store learns every round of batches from
// once next has written it.
func (s *Store) Wrap(next sinks.Sink) sinks.Sink { return &sink{next, s} }

type sink struct {
	sinks.Sink
	s *Store
}

func (w *sink) Write(ctx context.Context, bs ...*sinks.Batch) error {
	if err := w.Sink.Write(ctx, bs...); err != nil {
		return err
	}
	w.s.add(bs)
	return nil
}

func (s *Store) add(bs []*sinks.Batch) {
	now := time.Now().UTC()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range bs {
		s.view.Add(b)
		for i := range b.KPIs {
			s.newest = max(s.newest, b.KPIs[i].Minute)
		}
		for i := range b.Sessions {
			s.addSession(&b.Sessions[i])
		}
		s.updated[part{b.Topic, b.Partition}] = now
	}
	if !s.loading {
		s.score()
	}
	s.forget()
}

// score scores the windows that became final since the last call.
func (s *Store) score() {
	found, until := s.view.Score(s.detector, s.scored, window.PosInf)
	s.anomalies = append(s.anomalies, found...)
	s.scored = until
}

// addSession counts a session in its bucket, unless the bucket counted it
// before (a user has one session starting at a time: SEMANTICS §5). Two
// sessions whose hashes collide count once; with 64-bit hashes and a
// bucket's sessions in the tens of thousands, that is a chance of about
// 1 in 10^10 per bucket.
func (s *Store) addSession(r *session.Record) {
	start := s.floor(r.Start)
	b := s.sessions[start]
	if b == nil {
		b = &sessionBucket{seen: map[uint64]struct{}{}}
		s.sessions[start] = b
		i, _ := slices.BinarySearch(s.starts, start)
		s.starts = slices.Insert(s.starts, i, start)
	}
	h := maphash.Comparable(s.seed, sessionKey{r.UserID, r.Start})
	if _, ok := b.seen[h]; ok {
		return
	}
	b.seen[h] = struct{}{}
	b.totals.Add(r)
}

// floor returns the start of t's bucket.
func (s *Store) floor(t int64) int64 { return t - (t%s.bucket+s.bucket)%s.bucket }

// forget drops what is older than the retained range.
func (s *Store) forget() {
	if s.newest == window.NegInf {
		return
	}
	cut := s.newest - s.retain
	s.view.Forget(cut)
	i, _ := slices.BinarySearchFunc(s.anomalies, cut, func(a kpi.Anomaly, t int64) int { return cmp.Compare(a.Minute, t) })
	s.anomalies = slices.Delete(s.anomalies, 0, i)
	i, _ = slices.BinarySearch(s.starts, cut)
	for _, start := range s.starts[:i] {
		delete(s.sessions, start)
	}
	s.starts = slices.Delete(s.starts, 0, i)
}

// LatestMinutes returns the n newest windows, oldest first.
func (s *Store) LatestMinutes(_ context.Context, n int) ([]sinks.MergedMinute, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.ready(); err != nil {
		return nil, err
	}
	return s.view.Latest(n), nil
}

// Funnel returns the funnel start minutes in [from, to), by minute.
func (s *Store) Funnel(_ context.Context, from, to time.Time) ([]sinks.MergedFunnel, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.ready(); err != nil {
		return nil, err
	}
	return s.view.Funnel(from.UnixMilli(), to.UnixMilli()), nil
}

// SessionTotals sums the sessions that start in [from, to), from and to
// rounded down to a bucket (see New).
func (s *Store) SessionTotals(_ context.Context, from, to time.Time) (session.Totals, error) {
	f, t := from.UnixMilli(), to.UnixMilli()
	s.mu.RLock()
	defer s.mu.RUnlock()
	var sum session.Totals
	if err := s.ready(); err != nil {
		return sum, err
	}
	i, _ := slices.BinarySearch(s.starts, s.floor(f))
	j, _ := slices.BinarySearch(s.starts, s.floor(t))
	for _, start := range s.starts[i:j] {
		sum.Merge(s.sessions[start].totals)
	}
	return sum, nil
}

// Anomalies returns the anomalies of the windows of [from, to) scored so
// far, and where scoring has got to: the start of the first window not
// final yet, or to.
func (s *Store) Anomalies(_ context.Context, from, to time.Time) ([]kpi.Anomaly, time.Time, error) {
	f, t := from.UnixMilli(), to.UnixMilli()
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.ready(); err != nil {
		return nil, time.Time{}, err
	}
	var out []kpi.Anomaly
	for _, a := range s.anomalies {
		if a.Minute >= f && a.Minute < t {
			out = append(out, a)
		}
	}
	return out, time.UnixMilli(min(max(s.scored, f), t)).UTC(), nil
}

// Progress returns every partition's progress, by topic and partition.
func (s *Store) Progress(context.Context) ([]mongosink.Progress, error) {
	s.mu.RLock()
	if err := s.ready(); err != nil {
		s.mu.RUnlock()
		return nil, err
	}
	out := make([]mongosink.Progress, 0, len(s.updated))
	for k, at := range s.updated {
		p, _ := s.view.Progress(k.topic, k.partition)
		out = append(out, mongosink.Progress{Topic: k.topic, Partition: k.partition, Progress: p, UpdatedAt: at})
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b mongosink.Progress) int {
		return cmp.Or(strings.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	return out, nil
}
