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

	"github.com/clickstreamkit/clickstream/checkpoint"
)

var _ checkpoint.Store = (*Store)(nil)

// DefaultCollection is the collection a Store uses unless told otherwise.
const DefaultCollection = "checkpoints"

// DefaultTimeout bounds each Load and Save.
const DefaultTimeout = 30 * time.Second

// MaxState is the largest state a Store saves: MongoDB's 16 MiB document
// limit less room for the other fields.
const MaxState = 16<<20 - 16<<10

// ErrStateTooLarge is returned by Save for a state above MaxState.
var ErrStateTooLarge = errors.New("checkpoint store: state larger than a MongoDB document allows")

// Store keeps checkpoints in a MongoDB collection. Create it with New.
type Store struct {
	coll    *mongo.Collection
	timeout time.Duration
	now     func() time.Time
}

// Option configures a Store.
type Option func(*config)

type config struct {
	coll    string
	timeout time.Duration
	now     func() time.Time
}

// WithCollection names the collection. Default "checkpoints".
func WithCollection(name string) Option { return func(c *config) { c.coll = name } }

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
	switch {
	case client == nil:
		return nil, errors.New("checkpoint store: nil client")
	case database == "" || c.coll == "":
		return nil, errors.New("checkpoint store: empty database or collection name")
	case c.timeout < 0:
		return nil, errors.New("checkpoint store: negative timeout")
	case c.now == nil:
		return nil, errors.New("checkpoint store: nil clock")
	}
	coll := client.Database(database).Collection(c.coll,
		options.Collection().SetWriteConcern(writeconcern.Majority()))
	return &Store{coll: coll, timeout: c.timeout, now: c.now}, nil
}

type doc struct {
	ID        string        `bson:"_id"`
	Topic     string        `bson:"topic"`
	Partition int32         `bson:"partition"`
	Next      int64         `bson:"next"`
	State     []byte        `bson:"state"`
	UpdatedAt bson.DateTime `bson:"updated_at"`
}

// id is unambiguous: the escaped topic holds no "/".
func id(topic string, partition int32) string {
	return url.PathEscape(topic) + "/" + strconv.FormatInt(int64(partition), 10)
}

func (s *Store) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if s.timeout > 0 {
		return context.WithTimeout(ctx, s.timeout)
	}
	return context.WithCancel(ctx)
}
// Durable reports true: Save returns once the write is acknowledged with
// write concern majority.
func (*Store) Durable() bool { return true }


// Load returns the partition's checkpoint, or checkpoint.ErrNotFound.
func (s *Store) Load(ctx context.Context, topic string, partition int32) (checkpoint.Checkpoint, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	var d doc
	err := s.coll.FindOne(ctx, bson.D{{Key: "_id", Value: id(topic, partition)}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return checkpoint.Checkpoint{}, checkpoint.ErrNotFound
	}
	if err != nil {
		return checkpoint.Checkpoint{}, fmt.Errorf("checkpoint store: load %s/%d: %w", topic, partition, err)
	}
	return checkpoint.Checkpoint{Topic: d.Topic, Partition: d.Partition, Next: d.Next, State: d.State}, nil
}

// Save replaces the partition's checkpoint and returns nil once it is
// durable (write concern majority).
func (s *Store) Save(ctx context.Context, cp checkpoint.Checkpoint) error {
	if len(cp.State) > MaxState {
		return fmt.Errorf("checkpoint store: save %s/%d: %w (%d > %d bytes)", cp.Topic, cp.Partition, ErrStateTooLarge, len(cp.State), MaxState)
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	d := doc{ID: id(cp.Topic, cp.Partition), Topic: cp.Topic, Partition: cp.Partition, Next: cp.Next,
		State: cp.State, UpdatedAt: bson.NewDateTimeFromTime(s.now())}
	if d.State == nil {
		d.State = []byte{}
	}
	filter := bson.D{{Key: "_id", Value: d.ID}}
	upsert := options.Replace().SetUpsert(true)
	_, err := s.coll.ReplaceOne(ctx, filter, d, upsert)
	if mongo.IsDuplicateKeyError(err) {
		// Two first saves of a partition raced to insert; the document
		// exists now, so replacing it succeeds.
		_, err = s.coll.ReplaceOne(ctx, filter, d, upsert)
	}
	if err != nil {
		return fmt.Errorf("checkpoint store: save %s/%d: %w", cp.Topic, cp.Partition, err)
	}
	return nil
}
