package mongo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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

// ErrClosed is returned by Write after Close.
var ErrClosed = errors.New("mongo sink: closed")

// Sink writes the pipeline's results to MongoDB (SEMANTICS §6, §7, §10): one
// document per (minute, topic, partition) in the KPI and funnel collections,
// one per (session, topic, partition) in the sessions collection, each
// upserted whole, so a replayed batch rewrites the same documents. A running
// KPI update never replaces a final window. After the results, it publishes
// the partition's progress, one document per (topic, partition) that never
// moves backwards. Queries merge the partitions' partials into the global
// view, final only where every partition's progress has passed it
// (SEMANTICS §11).
//
// Write makes every result of the batch durable with write concern majority
// in one unordered bulk write per collection, and does not retry: the
// pipeline's Runner retries a failed batch whole with back-off.
//
// A Sink is safe for concurrent use.
type Sink struct {
	kpis, sessions, funnel, progress *mongo.Collection
	log                              *slog.Logger
	timeout                          time.Duration
	window                           int64 // window size, millis
	now                              func() time.Time

	mu      sync.Mutex
	indexed bool
	closed  bool
	// published is, per partition, the progress this sink has made durable:
	// the stored one is at least as far.
	published map[partKey]sinks.Progress
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

// WithClock sets the clock of the updated_at fields. Default time.Now.
func WithClock(now func() time.Time) Option { return func(c *config) { c.now = now } }

// New returns a sink writing into database through client, which the caller
// owns (connects, configures and disconnects). It checks its arguments and
// starts nothing; indexes are created by EnsureIndexes or the first Write.
func New(client *mongo.Client, database string, opts ...Option) (*Sink, error) {
	c := config{kpis: DefaultKPIs, sessions: DefaultSessions, funnel: DefaultFunnel, progress: DefaultProgress,
		log: slog.New(slog.DiscardHandler), timeout: DefaultWriteTimeout, window: time.Minute, now: time.Now}
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
	}
	wc := options.Collection().SetWriteConcern(writeconcern.Majority())
	db := client.Database(database)
	return &Sink{
		kpis: db.Collection(c.kpis, wc), sessions: db.Collection(c.sessions, wc), funnel: db.Collection(c.funnel, wc),
		progress: db.Collection(c.progress, wc),
		log:      c.log, timeout: c.timeout, window: c.window.Milliseconds(), now: c.now,
		published: map[partKey]sinks.Progress{},
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

// Write upserts b's KPI windows, sessions and funnel records and returns nil
// once they are durable (write concern majority); then it publishes
// b.Progress, unless this sink already published a progress of the
// partition at least as far in every field (so a batch without results but
// with new progress writes only that). A stored progress never moves
// backwards: each field keeps its maximum, so a replay's older watermark
// changes nothing. Dead letters, events and counters are not written: other
// sinks keep them. Within a batch, the last value of a key wins, except that
// a final window beats running updates; a running update of a window
// already final in the database changes nothing.
func (s *Sink) Write(ctx context.Context, b *sinks.Batch) error {
	key := partKey{b.Topic, b.Partition}
	s.mu.Lock()
	closed, indexed := s.closed, s.indexed
	last, ok := s.published[key]
	s.mu.Unlock()
	if closed {
		return ErrClosed
	}
	results := len(b.KPIs) > 0 || len(b.Sessions) > 0 || len(b.Funnel) > 0
	advance := !ok || ahead(b.Progress, last)
	if !results && !advance {
		return nil
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	where := fmt.Sprintf("%s/%d offsets [%d, %d)", b.Topic, b.Partition, b.FirstOffset, b.NextOffset)
	now := bson.NewDateTimeFromTime(s.now())
	if results {
		if err := s.writeResults(ctx, b, indexed, where, now); err != nil {
			return err
		}
	}
	if !advance {
		return nil
	}
	// Only now: a reader that sees this progress must find the results it
	// covers durable.
	if _, err := s.progress.UpdateOne(ctx, bson.D{{Key: "_id", Value: progressID(b.Topic, b.Partition)}},
		progressUpdate(b, now), options.UpdateOne().SetUpsert(true)); err != nil {
		return fmt.Errorf("mongo sink: write %s of %s: %w", s.progress.Name(), where, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p := b.Progress
	if q, ok := s.published[key]; ok {
		p = sinks.Progress{Partitions: max(p.Partitions, q.Partitions), Watermark: max(p.Watermark, q.Watermark),
			FunnelBefore: max(p.FunnelBefore, q.FunnelBefore)}
	}
	s.published[key] = p
	return nil
}

// ahead reports whether p is beyond q in some field.
func ahead(p, q sinks.Progress) bool {
	return p.Partitions > q.Partitions || p.Watermark > q.Watermark || p.FunnelBefore > q.FunnelBefore
}

// writeResults upserts b's windows, sessions and funnel records.
func (s *Sink) writeResults(ctx context.Context, b *sinks.Batch, indexed bool, where string, now bson.DateTime) error {
	if !indexed {
		if err := s.ensureIndexes(ctx); err != nil {
			return err
		}
	}
	if ups := kpiUpserts(b, now); len(ups) > 0 {
		skipped, err := s.writeKPIs(ctx, ups)
		if err != nil {
			return fmt.Errorf("mongo sink: write %s of %s: %w", s.kpis.Name(), where, err)
		}
		if skipped > 0 {
			s.log.Debug("running updates of final windows skipped", "topic", b.Topic, "partition", b.Partition, "n", skipped)
		}
	}
	if models := sessionModels(b, now); len(models) > 0 {
		if _, err := bulk(ctx, s.sessions, models, nil); err != nil {
			return fmt.Errorf("mongo sink: write %s of %s: %w", s.sessions.Name(), where, err)
		}
	}
	if models := funnelModels(b, now); len(models) > 0 {
		if _, err := bulk(ctx, s.funnel, models, nil); err != nil {
			return fmt.Errorf("mongo sink: write %s of %s: %w", s.funnel.Name(), where, err)
		}
	}
	s.log.Debug("batch written", "topic", b.Topic, "partition", b.Partition,
		"kpis", len(b.KPIs), "sessions", len(b.Sessions), "funnel", len(b.Funnel))
	return nil
}

// writeKPIs upserts the windows, leaving out the running updates of windows
// already final: they would change nothing (their filter matches no final
// document), and some servers (FerretDB) stop an unordered bulk write at the
// duplicate key error such an upsert meets. It returns how many it left out.
func (s *Sink) writeKPIs(ctx context.Context, ups []kpiUpsert) (skipped int, err error) {
	var running []string
	for _, u := range ups {
		if !u.final {
			running = append(running, u.id)
		}
	}
	final := map[string]bool{}
	if len(running) > 0 {
		cur, err := s.kpis.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: running}}}, {Key: "final", Value: true}},
			options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}))
		if err != nil {
			return 0, fmt.Errorf("find final windows: %w", err)
		}
		var ids []struct {
			ID string `bson:"_id"`
		}
		if err := cur.All(ctx, &ids); err != nil {
			return 0, fmt.Errorf("find final windows: %w", err)
		}
		for _, d := range ids {
			final[d.ID] = true
		}
	}
	models := make([]mongo.WriteModel, 0, len(ups))
	var guarded []bool
	for _, u := range ups {
		if final[u.id] {
			skipped++
			continue
		}
		models = append(models, u.model)
		guarded = append(guarded, !u.final)
	}
	if len(models) == 0 {
		return skipped, nil
	}
	n, err := bulk(ctx, s.kpis, models, guarded)
	return skipped + n, err
}

// maxBulk is the most models sent in one bulk write command. FerretDB v1
// with its SQLite backend keeps, within one update command, one pooled SQLite
// connection per statement that matched a document until the command ends;
// past 100 (its pool) the command waits for a connection forever while
// holding locks every other write needs, and the server stops accepting
// writes for good. The replay of a batch after a crash, an outage or a
// rebalance matches every document it rewrites, so it must be sent in small
// commands; concurrent writers (a consumer group's members, a crashed
// process's last command still running) share the pool, hence well below 100.
const maxBulk = 32

// bulk runs models as unordered bulk writes of at most maxBulk models. A
// duplicate key error of a model marked in guarded means its filter found the
// document final (a final written since writeKPIs looked): the upsert then
// tried to insert an existing _id. Such errors count as done, in kept,
// provided the server reports every other model of the command as applied;
// otherwise the error is returned and the batch is retried whole.
func bulk(ctx context.Context, coll *mongo.Collection, models []mongo.WriteModel, guarded []bool) (kept int, err error) {
	for start := 0; start < len(models); start += maxBulk {
		end := min(start+maxBulk, len(models))
		var g []bool
		if start < len(guarded) {
			g = guarded[start:min(end, len(guarded))]
		}
		n, err := bulkOnce(ctx, coll, models[start:end], g)
		if err != nil {
			return 0, err
		}
		kept += n
	}
	return kept, nil
}

// bulkOnce is one command of bulk.
func bulkOnce(ctx context.Context, coll *mongo.Collection, models []mongo.WriteModel, guarded []bool) (kept int, err error) {
	res, err := coll.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(false))
	var bwe mongo.BulkWriteException
	if err == nil || !errors.As(err, &bwe) || bwe.WriteConcernError != nil || len(bwe.WriteErrors) == 0 || res == nil {
		return 0, err
	}
	for _, we := range bwe.WriteErrors {
		dup := we.Code == 11000 || we.Code == 11001
		if !dup || we.Index < 0 || we.Index >= len(guarded) || !guarded[we.Index] {
			return 0, err
		}
		kept++
	}
	if int(res.MatchedCount+res.UpsertedCount)+kept != len(models) {
		return 0, err
	}
	return kept, nil
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
