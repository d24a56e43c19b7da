package sources

import (
	"context"
	"errors"
	"time"
)

// ErrEndOfInput is returned by Read once a finite source has delivered every
// message. Like io.EOF it is not a failure: the pipeline closes every window
// and session (SEMANTICS §3) and stops.
var ErrEndOfInput = errors.New("end of input")

// ErrClosed is returned by a source used after Close.
var ErrClosed = errors.New("source closed")

// Message is one input record.
type Message struct {
	Topic     string
	Partition int32
	Offset    int64 // position in the partition; a file's 0-based line number
	Value     []byte
	Timestamp time.Time // the record's own timestamp (Kafka); zero when none
}

// Batch is a run of consecutive messages of one partition, or a notice
// without messages: that the partition is being taken away (Revoked), that
// it is assigned and caught up with nothing to read (CaughtUp), or that a
// finite input has nothing more of it (End).
type Batch struct {
	Topic     string
	Partition int32
	Messages  []Message
	// Partitions is the topic's partition count, 0 when unknown: the
	// global view is final only when every one of them has passed a window
	// (SEMANTICS §11).
	Partitions int32
	// Generation is the consumer-group generation the batch was read in
	// (0 for a source without one). Checkpoints carry it, so that a store
	// refuses the saves of a writer the group has replaced.
	Generation int64
	// CaughtUp reports that the source delivered, with this batch, every
	// message the partition held when it was read: a partition that stays
	// caught up without a message for idle_timeout is idle (SEMANTICS §11).
	CaughtUp bool
	// Revoked marks a notice without messages: the source is about to give
	// the partition up (a consumer-group rebalance, a shutdown). The reader
	// makes durable everything it processed from the partition (results,
	// checkpoint, commit), drops the partition's state, then calls Release;
	// the source lets the partition go only after Release.
	Revoked bool
	Release func()
	// End reports that a finite input has delivered, with this batch (with
	// messages or without), every message of the partition: the reader
	// closes its windows and sessions (SEMANTICS §3). A finite source sends
	// it once for every partition it covers, including those it had nothing
	// left to deliver from (so that a reader restarted after a crash closes
	// their restored state too), and then returns ErrEndOfInput.
	End bool
}

// Source delivers messages, partition by partition, in offset order.
//
// Read blocks until it has a batch or a notice, the context ends (it returns
// ctx.Err()), or a finite input is exhausted (ErrEndOfInput). The returned
// batch and the bytes it holds belong to the caller. Read is not safe for
// concurrent use.
//
// Commit records that every message of the partition with an offset below
// next has been processed and its effects are durable; a restarted source
// resumes there. A source never commits on its own. Committing an offset below
// an earlier commit is a no-op. A source whose partitions move between readers
// (a consumer group) returns nil from Commit for a partition it no longer
// holds: the new holder resumes at the last committed offset.
//
// Close releases the source; later calls return ErrClosed. Close may be
// called more than once.
type Source interface {
	Read(ctx context.Context) (Batch, error)
	Commit(ctx context.Context, topic string, partition int32, next int64) error
	Close(ctx context.Context) error
}
