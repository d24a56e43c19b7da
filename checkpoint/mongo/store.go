package mongo

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"

	"github.com/clickstreamkit/clickstream"
	"github.com/clickstreamkit/clickstream/checkpoint"
)

var _ checkpoint.Store = (*Store)(nil)

// DefaultCollection is the collection of the heads unless told otherwise;
// the segments are in DefaultCollection + "_segments".
const DefaultCollection = "checkpoints"

// DefaultTimeout bounds each Load and Save.
const DefaultTimeout = 30 * time.Second

// MaxState is the largest state, and the largest segment, a Store saves:
// MongoDB's 16 MiB document limit less room for the other fields. A head
// counts its State plus segmentIDBytes per listed segment.
const MaxState = 16<<20 - 16<<10

// segmentIDBytes bounds the size of one segment ID in a head's array: type,
// index key up to 7 digits, its terminator and an int64.
const segmentIDBytes = 17

// ErrStateTooLarge is returned by Save for a head or a segment above
// MaxState. It is permanent: the same checkpoint never fits.
var ErrStateTooLarge = fmt.Errorf("checkpoint store: state larger than a MongoDB document allows: %w", clickstream.ErrPermanent)

// batch bounds the documents of one insert: FerretDB keeps the results of a
// command's statements open until it ends, and many at once deadlock it.
const batch = 32

// loadBatch bounds the segments of one reply to Load: FerretDB does not
// bound a reply by bytes, and more than two segments of up to MaxState would
// overflow a 48 MB wire message.
const loadBatch = 2

// Store keeps checkpoints in two MongoDB collections. Create it with New.
type Store struct {
	heads, segs *mongo.Collection
	timeout     time.Duration
	now         func() time.Time
}

// Option configures a Store.
type Option func(*config)

type config struct {
	coll, segs string
	timeout    time.Duration
	now        func() time.Time
}

// WithCollection names the collection of the heads. Default "checkpoints".
func WithCollection(name string) Option { return func(c *config) { c.coll = name } }

// WithSegmentCollection names the collection of the segments. Default the
// heads' collection name followed by "_segments".
func WithSegmentCollection(name string) Option { return func(c *config) { c.segs = name } }

// WithTimeout bounds each Load and Save on top of the caller's context; 0
// leaves only the caller's context. Default 30s.
func WithTimeout(d time.Duration) Option { return func(c *config) { c.timeout = d } }

// WithClock sets the clock of the updated_at field. Default time.Now.
func WithClock(now func() time.Time) Option { return func(c *config) { c.now = now } }

// New returns a store in database through client, which the caller owns.
// It checks its arguments and starts nothing.
func New(client *mongo.Client, database string, opts ...Option) (*Store, error) {
	c := config{coll: DefaultCollection, timeout: DefaultTimeout, now: time.Now}
	for _, o := range opts {
		o(&c)
	}
	if c.segs == "" {
		c.segs = c.coll + "_segments"
	}
	switch {
	case client == nil:
		return nil, errors.New("checkpoint store: nil client")
	case database == "" || c.coll == "":
		return nil, errors.New("checkpoint store: empty database or collection name")
	case c.segs == c.coll:
		return nil, errors.New("checkpoint store: heads and segments in the same collection")
	case c.timeout < 0:
		return nil, errors.New("checkpoint store: negative timeout")
	case c.now == nil:
		return nil, errors.New("checkpoint store: nil clock")
	}
	db := client.Database(database)
	majority := options.Collection().SetWriteConcern(writeconcern.Majority())
	return &Store{heads: db.Collection(c.coll, majority), segs: db.Collection(c.segs, majority),
		timeout: c.timeout, now: c.now}, nil
}

// Durable reports true: Save returns once the writes are acknowledged with
// write concern majority.
func (*Store) Durable() bool { return true }

type head struct {
	ID         string        `bson:"_id"`
	Topic      string        `bson:"topic"`
	Partition  int32         `bson:"partition"`
	Next       int64         `bson:"next"`
	Generation int64         `bson:"generation"`
	Rev        bson.ObjectID `bson:"rev"`
	Segments   []int64       `bson:"segments"` // the uint64 IDs, bit for bit
	State      []byte        `bson:"state"`
	UpdatedAt  bson.DateTime `bson:"updated_at"`
}

type segment struct {
	ID        string `bson:"_id"`
	Topic     string `bson:"topic"`
	Partition int32  `bson:"partition"`
	Seg       int64  `bson:"seg"`
	// Generation and Next are those of the Save that wrote the segment:
	// once the head is newer, that Save can no longer land, and the
	// segment, if unlisted, is garbage.
	Generation int64  `bson:"generation"`
	Next       int64  `bson:"next"`
	Data       []byte `bson:"data"`
}

// id is unambiguous: the escaped topic holds no "/".
func id(topic string, partition int32) string {
	return url.PathEscape(topic) + "/" + strconv.FormatInt(int64(partition), 10)
}

func segID(headID string, seg uint64) string { return headID + "/" + strconv.FormatUint(seg, 10) }

func (s *Store) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if s.timeout > 0 {
		return context.WithTimeout(ctx, s.timeout)
	}
	return context.WithCancel(ctx)
}

// Load returns the partition's checkpoint, or checkpoint.ErrNotFound. It
// reads the partition's segments in one query on a range of _id, and
// removes those the head does not list whose Save can no longer land.
func (s *Store) Load(ctx context.Context, topic string, partition int32) (checkpoint.Checkpoint, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	hid := id(topic, partition)
	var h head
	err := s.heads.FindOne(ctx, bson.D{{Key: "_id", Value: hid}}).Decode(&h)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return checkpoint.Checkpoint{}, checkpoint.ErrNotFound
	}
	if err != nil {
		return checkpoint.Checkpoint{}, fmt.Errorf("checkpoint store: load %s/%d: %w", topic, partition, err)
	}
	cp := checkpoint.Checkpoint{Topic: h.Topic, Partition: h.Partition, Next: h.Next, Generation: h.Generation,
		State: h.State, Segments: make([]checkpoint.Segment, len(h.Segments))}
	if cp.Topic != topic || cp.Partition != partition {
		return checkpoint.Checkpoint{}, clickstream.Permanent(fmt.Errorf("checkpoint store: load %s/%d: document %s holds %s/%d",
			topic, partition, hid, cp.Topic, cp.Partition))
	}
	if len(h.Segments) == 0 {
		return cp, nil
	}
	at := map[uint64]int{}
	for i, seg := range h.Segments {
		cp.Segments[i].ID = uint64(seg)
		at[uint64(seg)] = i
	}
	cur, err := s.segs.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$gte", Value: hid + "/"}, {Key: "$lt", Value: hid + "0"}}}},
		options.Find().SetBatchSize(loadBatch))
	if err != nil {
		return checkpoint.Checkpoint{}, fmt.Errorf("checkpoint store: load %s/%d: segments: %w", topic, partition, err)
	}
	var garbage []segment
	for cur.Next(ctx) {
		var d segment
		if err := cur.Decode(&d); err != nil {
			cur.Close(ctx)
			return checkpoint.Checkpoint{}, fmt.Errorf("checkpoint store: load %s/%d: segments: %w", topic, partition, err)
		}
		if d.Topic != topic || d.Partition != partition || d.ID != segID(hid, uint64(d.Seg)) {
			continue // a document of another partition in the range: not ours
		}
		i, listed := at[uint64(d.Seg)]
		if !listed {
			garbage = append(garbage, segment{ID: d.ID, Generation: d.Generation, Next: d.Next})
			continue
		}
		if d.Data == nil {
			d.Data = []byte{}
		}
		cp.Segments[i].Data = d.Data
	}
	if err := errors.Join(cur.Err(), cur.Close(ctx)); err != nil {
		return checkpoint.Checkpoint{}, fmt.Errorf("checkpoint store: load %s/%d: segments: %w", topic, partition, err)
	}
	for _, seg := range cp.Segments {
		if seg.Data == nil {
			return checkpoint.Checkpoint{}, clickstream.Permanent(fmt.Errorf("checkpoint store: load %s/%d: segment %d is listed but missing",
				topic, partition, seg.ID))
		}
	}
	if err := s.collect(ctx, cp, garbage); err != nil {
		return checkpoint.Checkpoint{}, fmt.Errorf("checkpoint store: load %s/%d: %w", topic, partition, err)
	}
	return cp, nil
}

// collect removes the unlisted segments whose Save the head cp fences: it
// can no longer land, and no later Save lists them. Those of a Save that may
// still land stay; a later Load removes them if it does not. The filter
// holds the writer's Generation and Next, so a segment of the same ID
// written since by a live Save stays.
func (s *Store) collect(ctx context.Context, cp checkpoint.Checkpoint, garbage []segment) error {
	for _, g := range garbage {
		if !checkpoint.Fenced(cp, checkpoint.Checkpoint{Generation: g.Generation, Next: g.Next}) {
			continue
		}
		_, err := s.segs.DeleteOne(ctx, bson.D{{Key: "_id", Value: g.ID},
			{Key: "generation", Value: g.Generation}, {Key: "next", Value: g.Next}})
		if err != nil {
			return fmt.Errorf("remove unlisted segment %s: %w", g.ID, err)
		}
	}
	return nil
}

// Save writes cp's new segments, then replaces the head if the stored one
// is still the one it read and does not fence cp, then removes the
// segments the old head listed and the new one does not. It returns nil
// once the head is durable (write concern majority).
func (s *Store) Save(ctx context.Context, cp checkpoint.Checkpoint) error {
	if n := len(cp.State) + segmentIDBytes*len(cp.Segments); n > MaxState {
		return fmt.Errorf("checkpoint store: save %s/%d: head: %w (%d > %d bytes)", cp.Topic, cp.Partition, ErrStateTooLarge, n, MaxState)
	}
	for _, seg := range cp.Segments {
		if len(seg.Data) > MaxState {
			return fmt.Errorf("checkpoint store: save %s/%d: segment %d: %w (%d > %d bytes)",
				cp.Topic, cp.Partition, seg.ID, ErrStateTooLarge, len(seg.Data), MaxState)
		}
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	if err := s.save(ctx, cp); err != nil {
		return fmt.Errorf("checkpoint store: save %s/%d at %d: %w", cp.Topic, cp.Partition, cp.Next, err)
	}
	return nil
}

func (s *Store) save(ctx context.Context, cp checkpoint.Checkpoint) error {
	hid := id(cp.Topic, cp.Partition)
	h := head{ID: hid, Topic: cp.Topic, Partition: cp.Partition, Next: cp.Next, Generation: cp.Generation,
		Segments: make([]int64, len(cp.Segments)), State: cp.State}
	if h.State == nil {
		h.State = []byte{}
	}
	var fresh []segment
	for i, seg := range cp.Segments {
		h.Segments[i] = int64(seg.ID)
		if seg.Data != nil {
			fresh = append(fresh, segment{ID: segID(hid, seg.ID), Topic: cp.Topic, Partition: cp.Partition,
				Seg: int64(seg.ID), Generation: cp.Generation, Next: cp.Next, Data: seg.Data})
		}
	}
	written := false
	// Each turn reads the head and replaces it only if it is still the one
	// read: another Save landing in between starts a new turn, which checks
	// the fence and the kept segments again.
	for {
		old, found, err := s.head(ctx, hid)
		if err != nil {
			return err
		}
		held := map[int64]bool{}
		for _, seg := range old.Segments {
			held[seg] = true
		}
		if found && checkpoint.Fenced(checkpoint.Checkpoint{Generation: old.Generation, Next: old.Next}, cp) {
			err := fmt.Errorf("stored checkpoint at %d (generation %d) is newer than generation %d: %w",
				old.Next, old.Generation, cp.Generation, checkpoint.ErrFenced)
			if written {
				err = errors.Join(err, s.unwrite(ctx, fresh, held))
			}
			return err
		}
		for _, seg := range cp.Segments {
			if seg.Data == nil && !held[int64(seg.ID)] {
				err := fmt.Errorf("segment %d is neither new nor held: %w", seg.ID, clickstream.ErrPermanent)
				if written {
					err = errors.Join(err, s.unwrite(ctx, fresh, held))
				}
				return err
			}
		}
		// Written again each turn: the Save that landed in between may
		// have dropped, and removed, a segment of the same ID.
		if err := s.write(ctx, fresh); err != nil {
			return err
		}
		written = true
		h.Rev, h.UpdatedAt = bson.NewObjectID(), bson.NewDateTimeFromTime(s.now())
		if !found {
			_, err := s.heads.InsertOne(ctx, h)
			if mongo.IsDuplicateKeyError(err) {
				continue // a first Save of the partition landed in between
			}
			if err != nil {
				return fmt.Errorf("insert head: %w", err)
			}
			return nil
		}
		res, err := s.heads.ReplaceOne(ctx, bson.D{{Key: "_id", Value: hid}, {Key: "rev", Value: old.Rev}}, h)
		if err != nil {
			return fmt.Errorf("replace head: %w", err)
		}
		if res.MatchedCount == 0 {
			continue
		}
		s.drop(ctx, hid, old.Segments, h.Segments)
		return nil
	}
}

// head reads the stored head without its state.
func (s *Store) head(ctx context.Context, hid string) (head, bool, error) {
	var h head
	err := s.heads.FindOne(ctx, bson.D{{Key: "_id", Value: hid}},
		options.FindOne().SetProjection(bson.D{{Key: "state", Value: 0}})).Decode(&h)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return head{}, false, nil
	}
	if err != nil {
		return head{}, false, fmt.Errorf("read head: %w", err)
	}
	return h, true, nil
}

// write inserts segs in unordered batches. A segment already there was
// written by this Save tried before, or left by one that never landed: it
// is replaced.
func (s *Store) write(ctx context.Context, segs []segment) error {
	for lo := 0; lo < len(segs); lo += batch {
		group := segs[lo:min(lo+batch, len(segs))]
		_, err := s.segs.InsertMany(ctx, group, options.InsertMany().SetOrdered(false))
		var bwe mongo.BulkWriteException
		if err == nil || !errors.As(err, &bwe) || bwe.WriteConcernError != nil {
			if err != nil {
				return fmt.Errorf("insert segments: %w", err)
			}
			continue
		}
		for _, we := range bwe.WriteErrors {
			if !mongo.IsDuplicateKeyError(we.WriteError) || we.Index < 0 || we.Index >= len(group) {
				return fmt.Errorf("insert segments: %w", err)
			}
			d := group[we.Index]
			if _, err := s.segs.ReplaceOne(ctx, bson.D{{Key: "_id", Value: d.ID}}, d, options.Replace().SetUpsert(true)); err != nil {
				return fmt.Errorf("replace segment %s: %w", d.ID, err)
			}
		}
	}
	return nil
}

// unwrite removes what a refused Save wrote, except the segments the
// stored head holds; the filter holds the Save's Generation and Next, so a
// segment of the same ID written by another Save stays.
func (s *Store) unwrite(ctx context.Context, segs []segment, held map[int64]bool) error {
	for _, d := range segs {
		if held[d.Seg] {
			continue
		}
		_, err := s.segs.DeleteOne(ctx, bson.D{{Key: "_id", Value: d.ID},
			{Key: "generation", Value: d.Generation}, {Key: "next", Value: d.Next}})
		if err != nil {
			return fmt.Errorf("remove segment %s of the refused save: %w", d.ID, err)
		}
	}
	return nil
}

// drop removes the segments old lists and now does not, one _id at a time:
// FerretDB pushes only a lone _id equality down to its storage. A removal
// that fails leaves an unlisted segment, which a Load removes once the head
// has moved past the Save that wrote it: the checkpoint is durable already,
// so it is not an error of the Save.
func (s *Store) drop(ctx context.Context, hid string, old, now []int64) {
	listed := map[int64]bool{}
	for _, seg := range now {
		listed[seg] = true
	}
	for _, seg := range old {
		if !listed[seg] {
			if _, err := s.segs.DeleteOne(ctx, bson.D{{Key: "_id", Value: segID(hid, uint64(seg))}}); err != nil {
				return
			}
		}
	}
}
