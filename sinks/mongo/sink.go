package mongo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"

	"github.com/clickstreamkit/clickstream/sinks"
)

var _ sinks.Sink = (*Sink)(nil)

// The default collection names.
const (
	DefaultKPIs     = "kpis_minute"
	DefaultSessions = "sessions"
	DefaultFunnel   = "funnel_minute"
	DefaultProgress = "progress"
)

// DefaultWriteTimeout bounds one Write (and EnsureIndexes).
const DefaultWriteTimeout = 60 * time.Second

// DefaultMaxBulk is the default of WithMaxBulk: statements per update
// command, and the least documents per insert command.
const DefaultMaxBulk = 1000

// ErrClosed is returned by Write after Close.
var ErrClosed = errors.New("mongo sink: closed")

// Sink writes the pipeline's results to MongoDB (SEMANTICS §6, §7, §10): one
// document per final (minute, topic, partition) in the KPI and funnel
// collections, one per (session, topic, partition) in the sessions
// collection, all inserted; a replayed batch's duplicates are replaced on
// their _id. After them, it publishes the partition's progress, one
// document per (topic, partition) that never moves backwards and holds the
// partition's running windows and funnel minutes, updated on its _id alone:
// a running record never replaces a final one. Queries merge the
// partitions' partials into the global view, final only where every
// partition's progress has passed it (SEMANTICS §11).
//
// Write makes every result of the batch durable with write concern majority
// in unordered bulk writes (see WithMaxBulk for their size), and does not
// retry: the pipeline's Runner retries a failed batch whole with back-off.
//
// A Sink is safe for concurrent use.
type Sink struct {
	kpis, sessions, funnel, progress *mongo.Collection
	log                              *slog.Logger
	timeout                          time.Duration
	window                           int64 // window size, millis
	now                              func() time.Time
	maxBulk                          int

	mu      sync.Mutex
	indexed bool
	closed  bool
	// published is, per partition, the progress this sink has made durable:
	// the stored one is at least as far.
	published map[partKey]sinks.Progress
	// held is, per partition, what this sink set in its progress document
	// and has not removed since.
	held map[partKey]held
}

// partKey names a source partition.
type partKey struct {
	topic     string
	partition int32
}

// Option configures a Sink.
type Option func(*config)

type config struct {
	kpis, sessions, funnel, progress string
	log                              *slog.Logger
	timeout                          time.Duration
	window                           time.Duration
	now                              func() time.Time
	maxBulk                          int
}

// WithLogger sets the logger. Default: discard.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.log = l } }

// WithKPICollection names the KPI collection. Default "kpis_minute".
func WithKPICollection(name string) Option { return func(c *config) { c.kpis = name } }

// WithSessionsCollection names the sessions collection. Default "sessions".
func WithSessionsCollection(name string) Option { return func(c *config) { c.sessions = name } }

// WithFunnelCollection names the funnel collection. Default "funnel_minute".
func WithFunnelCollection(name string) Option { return func(c *config) { c.funnel = name } }

// WithProgressCollection names the collection of the partitions' progress.
// Default "progress".
func WithProgressCollection(name string) Option { return func(c *config) { c.progress = name } }

// WithWindowSize is the pipeline's window size (SEMANTICS §6 window_size):
// a merged window starting at m is final once every partition's watermark
// reaches m plus it. Default 1m.
func WithWindowSize(d time.Duration) Option { return func(c *config) { c.window = d } }

// WithWriteTimeout bounds each Write and EnsureIndexes call, on top of the
// caller's context, so that a stalled server surfaces as an error the Runner
// retries; 0 leaves only the caller's context. Default 60s. How fast an
// unreachable server is reported depends on the client's server selection
// timeout (see the package documentation).
func WithWriteTimeout(d time.Duration) Option { return func(c *config) { c.timeout = d } }

// WithMaxBulk sets the most statements sent in one update command (the
// progress documents, and the rewrites of documents a replay inserts again);
// insert commands (final windows, sessions, funnel minutes) carry up to
// max(n, DefaultMaxBulk) documents. Default 1,000, for MongoDB; the driver
// splits commands further where the server's limits require.
//
// FerretDB v1 on SQLite needs a small value, 32: within one update command
// it keeps one pooled SQLite connection per statement that matched a
// document until the command ends; past 100 (its pool) the command waits for
// a connection forever while holding locks every other write needs, and the
// server stops accepting writes for good. The replay of a batch after a
// crash, an outage or a rebalance matches every document it rewrites, and
// concurrent writers (a consumer group's members, a crashed process's last
// command still running) share the pool, hence well below 100. Its insert
// commands hold no matched document: commands of 20,000 documents, new or
// all duplicates, and four such at once, go through.
func WithMaxBulk(n int) Option { return func(c *config) { c.maxBulk = n } }

// WithClock sets the clock of the updated_at fields. Default time.Now.
func WithClock(now func() time.Time) Option { return func(c *config) { c.now = now } }

// New returns a sink writing into database through client, which the caller
// owns (connects, configures and disconnects). It checks its arguments and
// starts nothing; indexes are created by EnsureIndexes or the first Write.
func New(client *mongo.Client, database string, opts ...Option) (*Sink, error) {
	c := config{kpis: DefaultKPIs, sessions: DefaultSessions, funnel: DefaultFunnel, progress: DefaultProgress,
		log: slog.New(slog.DiscardHandler), timeout: DefaultWriteTimeout, window: time.Minute, now: time.Now,
		maxBulk: DefaultMaxBulk}
	for _, o := range opts {
		o(&c)
	}
	switch {
	case client == nil:
		return nil, errors.New("mongo sink: nil client")
	case database == "":
		return nil, errors.New("mongo sink: empty database name")
	case c.kpis == "" || c.sessions == "" || c.funnel == "" || c.progress == "":
		return nil, errors.New("mongo sink: empty collection name")
	case len(map[string]bool{c.kpis: true, c.sessions: true, c.funnel: true, c.progress: true}) < 4:
		return nil, errors.New("mongo sink: collection names must differ")
	case c.timeout < 0:
		return nil, errors.New("mongo sink: negative write timeout")
	case c.window < time.Millisecond:
		return nil, errors.New("mongo sink: window size under a millisecond")
	case c.log == nil || c.now == nil:
		return nil, errors.New("mongo sink: nil logger or clock")
	case c.maxBulk <= 0:
		return nil, fmt.Errorf("mongo sink: max bulk %d: want at least 1 statement per command", c.maxBulk)
	}
	wc := options.Collection().SetWriteConcern(writeconcern.Majority())
	db := client.Database(database)
	return &Sink{
		kpis: db.Collection(c.kpis, wc), sessions: db.Collection(c.sessions, wc), funnel: db.Collection(c.funnel, wc),
		progress: db.Collection(c.progress, wc),
		log:      c.log, timeout: c.timeout, window: c.window.Milliseconds(), now: c.now, maxBulk: c.maxBulk,
		published: map[partKey]sinks.Progress{}, held: map[partKey]held{},
	}, nil
}

func (s *Sink) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if s.timeout > 0 {
		return context.WithTimeout(ctx, s.timeout)
	}
	return context.WithCancel(ctx)
}

// EnsureIndexes creates the indexes the queries use: minute on the KPI and
// funnel collections, start on the sessions collection. It is idempotent;
// Write calls it once before its first write.
func (s *Sink) EnsureIndexes(ctx context.Context) error {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	return s.ensureIndexes(ctx)
}

func (s *Sink) ensureIndexes(ctx context.Context) error {
	for _, ix := range []struct {
		coll *mongo.Collection
		key  string
	}{{s.kpis, "minute"}, {s.funnel, "minute"}, {s.sessions, "start"}} {
		m := mongo.IndexModel{Keys: bson.D{{Key: ix.key, Value: 1}}}
		if _, err := ix.coll.Indexes().CreateOne(ctx, m); err != nil {
			return fmt.Errorf("mongo sink: create index %s on %s: %w", ix.key, ix.coll.Name(), err)
		}
	}
	s.mu.Lock()
	s.indexed = true
	s.mu.Unlock()
	return nil
}

// Write writes the batches' final windows, sessions and final funnel
// records, as inserts, in as few commands as maxBulk allows; then, once those
// are durable (write concern majority), each partition's progress document
// in one update statement: the batch's running windows and funnel minutes
// set in it, its final ones (and running ones the progress has passed)
// removed from it, its Progress raised. A batch with no window or funnel
// record and no progress beyond what this sink already published writes no
// progress. A stored progress never moves backwards: each field keeps its
// maximum, so a replay's older watermark changes nothing. Dead letters,
// events and counters are not written: other sinks keep them. Within a
// batch, the last value of a key wins, except that a final record beats
// running ones; a running record never replaces a final one, in the
// database or in what the queries read.
func (s *Sink) Write(ctx context.Context, bs ...*sinks.Batch) error {
	now := bson.NewDateTimeFromTime(s.now())
	type progressWrite struct {
		b    *sinks.Batch
		u    bson.D
		next held
	}
	var results []*sinks.Batch
	var writes []progressWrite
	s.mu.Lock()
	closed, indexed := s.closed, s.indexed
	published := map[partKey]sinks.Progress{}
	holds := map[partKey]held{}
	for _, b := range bs {
		if len(b.KPIs) > 0 || len(b.Sessions) > 0 || len(b.Funnel) > 0 {
			results = append(results, b)
		}
		key := partKey{b.Topic, b.Partition}
		if _, ok := holds[key]; !ok { // a partition's later batches follow its earlier ones
			holds[key] = s.held[key]
			if p, ok := s.published[key]; ok {
				published[key] = p
			}
		}
		last, had := published[key]
		u, next, send := progressUpdate(b, last, had, holds[key], s.window, now)
		if send {
			writes = append(writes, progressWrite{b, u, next})
			holds[key], published[key] = next, b.Progress.Max(last)
			if !had {
				published[key] = b.Progress
			}
		}
	}
	s.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if len(results) == 0 && len(writes) == 0 {
		return nil
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	if !indexed {
		if err := s.ensureIndexes(ctx); err != nil {
			return err
		}
	}
	if err := s.writeResults(ctx, results, now); err != nil {
		return err
	}
	// Only now: a reader that sees this progress must find the results it
	// covers durable. In order: a partition's later batch follows its
	// earlier one.
	models := make([]mongo.WriteModel, len(writes))
	moved := make([]*sinks.Batch, len(writes))
	for i, w := range writes {
		models[i] = mongo.NewUpdateOneModel().SetFilter(bson.D{{Key: "_id", Value: progressID(w.b.Topic, w.b.Partition)}}).
			SetUpdate(w.u).SetUpsert(true)
		moved[i] = w.b
	}
	for start := 0; start < len(models); start += s.maxBulk {
		if _, err := s.progress.BulkWrite(ctx, models[start:min(start+s.maxBulk, len(models))], options.BulkWrite().SetOrdered(true)); err != nil {
			return fmt.Errorf("mongo sink: write %s of %s: %w", s.progress.Name(), where(moved), err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, w := range writes {
		key := partKey{w.b.Topic, w.b.Partition}
		p := w.b.Progress
		if q, ok := s.published[key]; ok {
			p = p.Max(q)
		}
		s.published[key], s.held[key] = p, w.next
	}
	return nil
}

// where names the batches in errors: partitions and offsets.
func where(bs []*sinks.Batch) string {
	parts := make([]string, len(bs))
	for i, b := range bs {
		parts[i] = fmt.Sprintf("%s/%d offsets [%d, %d)", b.Topic, b.Partition, b.FirstOffset, b.NextOffset)
	}
	return strings.Join(parts, ", ")
}

// writeResults inserts the batches' final windows and sessions, then
// writes their funnel minutes: running updates, then finals inserted.
func (s *Sink) writeResults(ctx context.Context, bs []*sinks.Batch, now bson.DateTime) error {
	var kpis, sessions, funnels []any
	var runningFunnel []update
	for _, b := range bs {
		kpis = append(kpis, kpiFinals(b, now)...)
		sessions = append(sessions, sessionDocs(b, now)...)
		finals, running, err := funnelWrites(b, now)
		if err != nil {
			return fmt.Errorf("mongo sink: %s: %w", where(bs), err)
		}
		funnels, runningFunnel = append(funnels, finals...), append(runningFunnel, running...)
	}
	for _, w := range []struct {
		coll *mongo.Collection
		docs []any
	}{{s.kpis, kpis}, {s.sessions, sessions}} {
		if len(w.docs) == 0 {
			continue
		}
		if err := s.insert(ctx, w.coll, w.docs); err != nil {
			return fmt.Errorf("mongo sink: write %s of %s: %w", w.coll.Name(), where(bs), err)
		}
	}
	// running updates before the finals: a final of the same minute in the
	// same round then replaces its running update
	refused, err := s.update(ctx, s.funnel, runningFunnel)
	if err != nil {
		return fmt.Errorf("mongo sink: write %s of %s: %w", s.funnel.Name(), where(bs), err)
	}
	if refused > 0 {
		s.log.Debug("running updates of final funnel minutes refused", "n", refused)
	}
	if len(funnels) > 0 {
		if err := s.insert(ctx, s.funnel, funnels); err != nil {
			return fmt.Errorf("mongo sink: write %s of %s: %w", s.funnel.Name(), where(bs), err)
		}
	}
	s.log.Debug("batches written", "partitions", len(bs), "windows", len(kpis), "sessions", len(sessions),
		"funnel", len(funnels), "running funnel", len(runningFunnel))
	return nil
}

// update sends ws in update commands of at most maxBulk statements, and
// returns how many running updates met a final document (the server
// refused them, which leaves the final as it is).
func (s *Sink) update(ctx context.Context, coll *mongo.Collection, ws []update) (n int, err error) {
	models := make([]mongo.WriteModel, len(ws))
	for i := range ws {
		models[i] = ws[i].model
	}
	for start := 0; start < len(models); start += s.maxBulk {
		end := min(start+s.maxBulk, len(models))
		failed, err := bulk(ctx, coll, models[start:end], func(i, code int) bool {
			return code == codePathNotViable && ws[start+i].running
		})
		if err != nil {
			return 0, err
		}
		n += len(failed)
	}
	return n, nil
}

// insert writes final records, which never change once written, as
// unordered inserts in commands of at most max(maxBulk, DefaultMaxBulk)
// documents. A replay inserts documents that are there already: the
// duplicate key answers name them, and just those are replaced, on their
// _id alone, in update commands of at most maxBulk statements. Their content
// is the same by construction, but the last write of a key wins all the
// same.
func (s *Sink) insert(ctx context.Context, coll *mongo.Collection, docs []any) error {
	per := max(s.maxBulk, DefaultMaxBulk)
	var again []mongo.WriteModel
	for start := 0; start < len(docs); start += per {
		end := min(start+per, len(docs))
		models := make([]mongo.WriteModel, 0, end-start)
		for _, d := range docs[start:end] {
			models = append(models, mongo.NewInsertOneModel().SetDocument(d))
		}
		dups, err := bulk(ctx, coll, models, func(_, code int) bool { return code == codeDuplicateKey || code == codeDuplicateKeyOld })
		if err != nil {
			return err
		}
		for _, i := range dups {
			d := docs[start+i]
			again = append(again, mongo.NewReplaceOneModel().SetFilter(bson.D{{Key: "_id", Value: idOf(d)}}).
				SetReplacement(d).SetUpsert(true))
		}
	}
	for start := 0; start < len(again); start += s.maxBulk {
		if _, err := bulk(ctx, coll, again[start:min(start+s.maxBulk, len(again))], nil); err != nil {
			return err
		}
	}
	return nil
}

// idOf returns the _id of a document of kpiFinals, sessionDocs or
// funnelWrites.
func idOf(d any) string {
	switch d := d.(type) {
	case kpiDoc:
		return d.ID
	case sessionDoc:
		return d.ID
	case funnelDoc:
		return d.ID
	}
	panic(fmt.Sprintf("mongo sink: no _id in %T", d))
}

// The write error codes bulk's callers expect.
const (
	codePathNotViable   = 28    // a running update's running.* under a final's null
	codeDuplicateKey    = 11000 // an insert of an _id already there
	codeDuplicateKeyOld = 11001
)

// bulk sends models as one unordered bulk write and returns the statements
// that failed as expected: with a write error for which expected reports
// true. Any other error is returned (the batch is then retried whole, which
// the idempotent statements allow). Servers differ in what an unordered bulk
// write does after a write error: MongoDB goes on with the other statements
// and names each failed one; FerretDB does so for inserts, but stops an
// update command at its first error and answers with one error at index 0
// and nothing counted, whichever statement failed. An answer that does not
// account for every statement is therefore not trusted: bulk then sends each
// statement again in a command of its own.
func bulk(ctx context.Context, coll *mongo.Collection, models []mongo.WriteModel, expected func(i, code int) bool) (failed []int, err error) {
	failed, whole, err := bulkOnce(ctx, coll, models, expected)
	if err != nil || whole || len(models) == 1 {
		return failed, err
	}
	failed = failed[:0]
	for i := range models {
		f, _, err := bulkOnce(ctx, coll, models[i:i+1], func(_, code int) bool { return expected != nil && expected(i, code) })
		if err != nil {
			return nil, err
		}
		if len(f) > 0 {
			failed = append(failed, i)
		}
	}
	return failed, nil
}

// bulkOnce is one command of bulk; whole reports whether its answer
// accounts for every statement.
func bulkOnce(ctx context.Context, coll *mongo.Collection, models []mongo.WriteModel, expected func(i, code int) bool) (failed []int, whole bool, err error) {
	res, err := coll.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(false))
	if err == nil {
		return nil, true, nil
	}
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || bwe.WriteConcernError != nil || len(bwe.WriteErrors) == 0 || res == nil {
		return nil, false, err
	}
	idx := make([]int, len(bwe.WriteErrors))
	codes := make([]int, len(bwe.WriteErrors))
	for i, we := range bwe.WriteErrors {
		idx[i], codes[i] = we.Index, we.Code
	}
	ok, whole := settle(len(models), res.InsertedCount+res.MatchedCount+res.UpsertedCount, idx, codes, func(i, code int) bool {
		return expected != nil && expected(i, code)
	})
	if !ok {
		return nil, false, err
	}
	return idx, whole, nil
}

// settle reads the answer to an unordered bulk write of n statements, of
// which applied were applied and those at idx failed with codes. When the
// answer accounts for every statement (each applied or failed), whole is
// true and ok reports whether each failure is expected. When it accounts
// for fewer, its indexes are not trusted: ok reports whether each code is
// one some statement may expectedly fail with.
func settle(n int, applied int64, idx, codes []int, expected func(i, code int) bool) (ok, whole bool) {
	done := applied + int64(len(idx))
	if done > int64(n) {
		return false, false
	}
	if done < int64(n) {
		for _, code := range codes {
			some := false
			for i := 0; i < n && !some; i++ {
				some = expected(i, code)
			}
			if !some {
				return false, false
			}
		}
		return true, false
	}
	seen := make(map[int]bool, len(idx))
	for k, i := range idx {
		if i < 0 || i >= n || seen[i] || !expected(i, codes[k]) {
			return false, false
		}
		seen[i] = true
	}
	return true, true
}

// Durable reports true: Write returns once the server acknowledged the
// writes with write concern majority.
func (*Sink) Durable() bool { return true }

// Close marks the sink closed; later Writes fail. It leaves the client alone
// and may be called more than once.
func (s *Sink) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}
