package kafka

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/IBM/sarama"

	"github.com/clickstreamkit/clickstream/sources"
)

var _ sources.Source = (*Source)(nil)

// StartAt says where a partition without a committed offset is read from.
type StartAt int

const (
	// Oldest reads from the oldest offset the broker still holds.
	Oldest StartAt = iota
	// Newest reads only messages produced after the partition was claimed.
	Newest
)

func (s StartAt) String() string {
	switch s {
	case Oldest:
		return "oldest"
	case Newest:
		return "newest"
	}
	return fmt.Sprintf("StartAt(%d)", int(s))
}

// Option configures a Source.
type Option func(*options)

type options struct {
	cfg     *sarama.Config
	start   StartAt
	bounded bool
	log     *slog.Logger
	batch   int
	maxWait time.Duration
}

// WithConfig makes the source use a copy of cfg (TLS, SASL, client id,
// version, timeouts...). The source then sets, on its copy, what it relies
// on: Consumer.Offsets.AutoCommit.Enable = false, Consumer.Offsets.Initial
// from [WithStartAt] and Consumer.Return.Errors = true (errors go to the
// logger). Default: sarama.NewConfig().
func WithConfig(cfg *sarama.Config) Option { return func(o *options) { o.cfg = cfg } }

// WithStartAt says where partitions without a committed offset start.
// Default: Oldest.
func WithStartAt(s StartAt) Option { return func(o *options) { o.start = s } }

// WithBounded makes the source finite: when it connects it notes the end
// offset (high watermark) of every partition of the topic, delivers messages
// below those ends only, and once every partition has been delivered up to
// its end (partitions whose committed offset is already there count as
// delivered) Read returns an End notice for every partition of the topic,
// then sources.ErrEndOfInput. It still joins the consumer
// group, and Commit still commits there: commit before Close, as the
// pipeline does after ErrEndOfInput. Meant for backfills and tests with one
// member per group: a member waits for every partition, including those
// another member holds. A partition counts as delivered once the message at
// end-1 is; a partition whose last offsets hold no message (transaction
// markers, deleted tombstones) is never done. Default: unbounded.
func WithBounded() Option { return func(o *options) { o.bounded = true } }

// WithLogger sets the logger for rebalances, skipped commits and consumer
// errors. Default: discard.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithBatch sets the largest number of messages in a batch. Default: 2048.
func WithBatch(n int) Option { return func(o *options) { o.batch = n } }

// WithMaxWait sets how long a partition waits for more messages to fill a
// batch once it holds one; 0 sends what has already arrived, which adds no
// latency and, when the reader falls behind, still fills batches from what
// sarama has buffered. Default: 0.
func WithMaxWait(d time.Duration) Option { return func(o *options) { o.maxWait = d } }

// Source reads a topic through a consumer group. See the package
// documentation.
type Source struct {
	brokers      []string
	topic, group string
	o            options
	cfg          *sarama.Config // the source's own copy
	log          *slog.Logger

	closing   chan struct{} // closed by Close
	closeOnce sync.Once
	batches   chan sources.Batch
	wake      chan struct{} // a partition is done, or the consumer failed

	lifeMu sync.Mutex // serializes connecting and closing
	conn   *conn      // nil until the first Read

	mu        sync.Mutex
	owned     map[int32]*claimState // partitions this member holds
	ends      map[int32]int64       // bounded: where each partition ends
	done      map[int32]bool        // bounded: partitions delivered up to their end
	remaining int                   // bounded: partitions not done
	endNotes  []sources.Batch       // bounded: the End notices, once everything is delivered
	lastGen   int64                 // the newest generation of a batch received, 0 before any
	fatal     error                 // the consumer cannot go on
}

// conn is what connecting creates.
type conn struct {
	client   sarama.Client // metadata and offset queries; owned by admin
	admin    sarama.ClusterAdmin
	group    sarama.ConsumerGroup
	cancel   context.CancelFunc
	loopDone chan struct{}
	errsDone chan struct{}
}

// claimState is a partition this member holds, in the session that holds it.
type claimState struct {
	sess  sarama.ConsumerGroupSession
	claim sarama.ConsumerGroupClaim
	next  int64 // next offset to hand to the reader; -1 unknown
}

// New checks its arguments and returns a source; it connects to nothing. The
// first Read connects and joins the group.
func New(brokers []string, topic, group string, opts ...Option) (*Source, error) {
	o := options{batch: 2048}
	for _, opt := range opts {
		opt(&o)
	}
	switch {
	case len(brokers) == 0:
		return nil, errors.New("kafka: no brokers")
	case topic == "":
		return nil, errors.New("kafka: no topic")
	case group == "":
		return nil, errors.New("kafka: no consumer group")
	case o.batch < 1:
		return nil, fmt.Errorf("kafka: batch %d: want at least 1", o.batch)
	case o.maxWait < 0:
		return nil, fmt.Errorf("kafka: max wait %v: want at least 0", o.maxWait)
	case o.start != Oldest && o.start != Newest:
		return nil, fmt.Errorf("kafka: unknown start %v", o.start)
	}
	for _, b := range brokers {
		if b == "" {
			return nil, errors.New("kafka: empty broker address")
		}
	}
	cfg := sarama.NewConfig()
	// sarama holds a broker connection for a whole fetch long-poll, and a
	// synchronous commit to the coordinator on that connection waits for it:
	// a short poll keeps commits (one per partition per flush) quick.
	cfg.Consumer.MaxWaitTime = 100 * time.Millisecond
	if o.cfg != nil {
		c := *o.cfg
		cfg = &c
	}
	cfg.Consumer.Offsets.AutoCommit.Enable = false // commits happen in Commit only
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	if o.start == Newest {
		cfg.Consumer.Offsets.Initial = sarama.OffsetNewest
	}
	cfg.Consumer.Return.Errors = true
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("kafka: config: %w", err)
	}
	log := o.log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Source{
		brokers: append([]string(nil), brokers...),
		topic:   topic,
		group:   group,
		o:       o,
		cfg:     cfg,
		log:     log.With("topic", topic, "group", group),
		closing: make(chan struct{}),
		batches: make(chan sources.Batch, 4),
		wake:    make(chan struct{}, 1),
		owned:   map[int32]*claimState{},
	}, nil
}

// Topic returns the topic the source reads.
func (s *Source) Topic() string { return s.topic }

// Group returns the consumer group the source joins.
func (s *Source) Group() string { return s.group }

func (s *Source) closed() bool {
	select {
	case <-s.closing:
		return true
	default:
		return false
	}
}

// Read returns the next batch of one partition, a CaughtUp notice for a
// partition claimed at its end, or a Revoked notice for a partition the
// group is taking away: the source keeps the partition, and Commit still
// works for it, until the notice's Release is called. A partition that the
// reader got anything from, a CaughtUp notice included, gets a Revoked
// notice when it goes.
//
// Every batch and CaughtUp notice carries the topic's partition count, as
// the metadata said when the partition was claimed, and the generation of
// the consumer-group session it was read in. A batch is CaughtUp when its
// last message reaches the high watermark of the partition's latest fetch. A
// partition whose last offsets hold no message (transaction markers) is
// never caught up.
//
// The first Read connects; if that fails Read returns the error and the next
// Read tries again. A bounded source returns sources.ErrEndOfInput once it
// has delivered everything (see WithBounded); CaughtUp notices still pending
// then are dropped.
func (s *Source) Read(ctx context.Context) (sources.Batch, error) {
	if err := ctx.Err(); err != nil {
		return sources.Batch{}, err
	}
	if s.closed() {
		return sources.Batch{}, sources.ErrClosed
	}
	if err := s.connect(ctx); err != nil {
		return sources.Batch{}, err
	}
	for {
		s.mu.Lock()
		fatal := s.fatal
		s.mu.Unlock()
		switch {
		case fatal != nil:
			return sources.Batch{}, fatal
		case s.ended():
			if b, ok := s.endNotice(); ok {
				return b, nil
			}
			return sources.Batch{}, sources.ErrEndOfInput
		}
		select {
		case b := <-s.batches:
			s.mu.Lock()
			s.lastGen = max(s.lastGen, b.Generation)
			s.mu.Unlock()
			switch {
			case len(b.Messages) > 0:
				s.took(b)
			case b.CaughtUp && s.ended():
				continue // nothing the reader needs: the input has ended
			}
			return b, nil
		case <-s.wake:
		case <-ctx.Done():
			return sources.Batch{}, ctx.Err()
		case <-s.closing:
			return sources.Batch{}, sources.ErrClosed
		}
	}
}

// endNotice returns the next End notice of a bounded source that has
// delivered everything: one per partition it covers, in partition order.
func (s *Source) endNotice() (sources.Batch, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.endNotes == nil {
		s.endNotes = []sources.Batch{}
		for p := range s.ends {
			s.endNotes = append(s.endNotes, sources.Batch{Topic: s.topic, Partition: p,
				Partitions: int32(len(s.ends)), Generation: s.lastGen, End: true})
		}
		slices.SortFunc(s.endNotes, func(a, b sources.Batch) int { return cmp.Compare(a.Partition, b.Partition) })
	}
	if len(s.endNotes) == 0 {
		return sources.Batch{}, false
	}
	b := s.endNotes[0]
	s.endNotes = s.endNotes[1:]
	return b, true
}

// ended reports whether a bounded source has delivered everything.
func (s *Source) ended() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.o.bounded && s.remaining == 0
}

// took records that the reader now has b, a batch with messages.
func (s *Source) took(b sources.Batch) {
	next := b.Messages[len(b.Messages)-1].Offset + 1
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.owned[b.Partition]; c != nil {
		c.next = max(c.next, next)
	}
	if end, ok := s.ends[b.Partition]; ok && next >= end {
		s.markDoneLocked(b.Partition)
	}
}

// markDoneLocked notes that a partition of a bounded source is delivered.
func (s *Source) markDoneLocked(p int32) {
	if _, ok := s.ends[p]; !ok || s.done[p] {
		return
	}
	s.done[p] = true
	s.remaining--
	s.signal()
}

func (s *Source) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Commit marks next as the partition's offset in its current consumer-group
// session and commits it, synchronously: when Commit returns nil the broker
// holds an offset of at least next for the group (Commit reads it back,
// because sarama's session.Commit reports no error). Committing below the
// committed offset is a no-op.
//
// Commit for a partition this member does not hold (not claimed yet, released
// already, or lost because the group dropped the member) does nothing and
// returns nil after logging a warning: the partition's owner resumes from the
// last committed offset and checkpoints skip what they cover, so nothing is
// counted twice, while an error would only make the caller retry forever.
// Other failures return an error; retrying is safe. After Close it returns
// sources.ErrClosed.
func (s *Source) Commit(ctx context.Context, topic string, partition int32, next int64) error {
	if s.closed() {
		return sources.ErrClosed
	}
	if topic != s.topic {
		return fmt.Errorf("kafka: commit for topic %q: the source reads %q", topic, s.topic)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.lifeMu.Lock()
	c := s.conn
	s.lifeMu.Unlock()
	s.mu.Lock()
	claim := s.owned[partition]
	s.mu.Unlock()
	if c == nil || claim == nil {
		s.log.Warn("kafka: commit skipped: partition not held by this member", "partition", partition, "next", next)
		return nil
	}
	claim.sess.MarkOffset(topic, partition, next, "")
	claim.sess.Commit()
	got, err := committed(c.admin, s.group, topic, partition)
	if err != nil {
		return fmt.Errorf("kafka: commit %s/%d at %d: %w", topic, partition, next, err)
	}
	if got >= next {
		return nil
	}
	// A member that held a revoked partition longer than the rebalance
	// timeout is dropped from the group, and its commits fail for good:
	// erroring would have the reader retry forever instead of releasing.
	if gone, err := memberGone(c.admin, s.group, claim.sess.MemberID()); err == nil && gone {
		s.log.Warn("kafka: commit skipped: this member was dropped from the group (rebalance timeout?)",
			"partition", partition, "next", next, "committed", got)
		return nil
	}
	return fmt.Errorf("kafka: commit %s/%d at %d not accepted (committed: %d)", topic, partition, next, got)
}

// memberGone reports whether the group no longer lists member.
func memberGone(admin sarama.ClusterAdmin, group, member string) (bool, error) {
	ds, err := admin.DescribeConsumerGroups([]string{group})
	if err != nil {
		return false, err
	}
	for _, d := range ds {
		if d.GroupId != group {
			continue
		}
		if !errors.Is(d.Err, sarama.ErrNoError) {
			return false, d.Err
		}
		_, ok := d.Members[member]
		return !ok, nil
	}
	return false, errors.New("group not described")
}

// committed returns the group's committed offset of a partition, -1 if none.
func committed(admin sarama.ClusterAdmin, group, topic string, partition int32) (int64, error) {
	resp, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{topic: {partition}})
	if err != nil {
		return 0, err
	}
	b := resp.GetBlock(topic, partition)
	if b == nil {
		return 0, errors.New("no offset in the broker's answer")
	}
	if !errors.Is(b.Err, sarama.ErrNoError) {
		return 0, b.Err
	}
	return b.Offset, nil
}

// Lag returns, for each partition this member holds, how many messages the
// reader has not received yet: the high watermark of the latest fetch minus
// the next offset to hand over. Partitions whose position is not known yet
// are left out. It is safe for concurrent use, for a metrics endpoint.
func (s *Source) Lag() map[int32]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	lag := make(map[int32]int64, len(s.owned))
	for p, c := range s.owned {
		if c.next < 0 {
			continue
		}
		lag[p] = max(0, c.claim.HighWaterMarkOffset()-c.next)
	}
	return lag
}

// Close leaves the group and releases the connections; a Read or a pending
// notice's wait ends. Later calls return sources.ErrClosed, except Close,
// which returns nil. If ctx ends first Close returns ctx.Err() and the
// shutdown finishes in the background.
func (s *Source) Close(ctx context.Context) error {
	s.closeOnce.Do(func() { close(s.closing) })
	s.lifeMu.Lock()
	c := s.conn
	s.conn = nil
	s.lifeMu.Unlock()
	if c == nil {
		return nil
	}
	done := make(chan error, 1)
	go func() {
		c.cancel()
		err := c.group.Close()
		<-c.loopDone
		<-c.errsDone
		done <- errors.Join(err, c.admin.Close())
	}()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("kafka: close: %w", err)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// connect creates the clients and starts the consume loop, once.
func (s *Source) connect(ctx context.Context) error {
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()
	if s.closed() {
		return sources.ErrClosed
	}
	if s.conn != nil {
		return nil
	}
	client, err := sarama.NewClient(s.brokers, s.cfg)
	if err != nil {
		return fmt.Errorf("kafka: connect: %w", err)
	}
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		_ = client.Close()
		return fmt.Errorf("kafka: connect: %w", err)
	}
	if s.o.bounded {
		if err := s.findEnds(ctx, client, admin); err != nil {
			_ = admin.Close()
			return err
		}
	}
	group, err := sarama.NewConsumerGroup(s.brokers, s.group, s.cfg)
	if err != nil {
		_ = admin.Close()
		return fmt.Errorf("kafka: connect: %w", err)
	}
	loopCtx, cancel := context.WithCancel(context.Background())
	c := &conn{client: client, admin: admin, group: group, cancel: cancel,
		loopDone: make(chan struct{}), errsDone: make(chan struct{})}
	go func() {
		defer close(c.errsDone)
		for err := range group.Errors() {
			s.log.Warn("kafka: consumer error", "err", err)
		}
	}()
	go s.consumeLoop(loopCtx, c)
	s.conn = c
	return nil
}

// findEnds notes where each partition ends, and which are already delivered:
// empty ones and those whose committed offset has reached the end.
func (s *Source) findEnds(ctx context.Context, client sarama.Client, admin sarama.ClusterAdmin) error {
	var parts []int32
	err := retry(ctx, func() (err error) {
		parts, err = client.Partitions(s.topic)
		return err
	})
	if err != nil {
		return fmt.Errorf("kafka: partitions of %s: %w", s.topic, err)
	}
	ends := make(map[int32]int64, len(parts))
	done := map[int32]bool{}
	for _, p := range parts {
		var oldest, end int64
		err := retry(ctx, func() (err error) {
			if end, err = client.GetOffset(s.topic, p, sarama.OffsetNewest); err != nil {
				return err
			}
			oldest, err = client.GetOffset(s.topic, p, sarama.OffsetOldest)
			return err
		})
		if err != nil {
			return fmt.Errorf("kafka: end offset of %s/%d: %w", s.topic, p, err)
		}
		ends[p] = end
		if oldest >= end {
			done[p] = true
		}
	}
	resp, err := admin.ListConsumerGroupOffsets(s.group, map[string][]int32{s.topic: parts})
	if err != nil {
		return fmt.Errorf("kafka: committed offsets of %s: %w", s.group, err)
	}
	for _, p := range parts {
		if b := resp.GetBlock(s.topic, p); b != nil && errors.Is(b.Err, sarama.ErrNoError) && b.Offset >= ends[p] {
			done[p] = true
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ends, s.done, s.remaining = ends, done, len(ends)-len(done)
	return nil
}

// retry calls f up to 10 times, for the moments after a topic is created when
// its partitions have no leader yet.
func retry(ctx context.Context, f func() error) error {
	wait := 50 * time.Millisecond
	var err error
	for range 10 {
		if err = f(); err == nil {
			return nil
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		}
		wait = min(2*wait, time.Second)
	}
	return err
}
