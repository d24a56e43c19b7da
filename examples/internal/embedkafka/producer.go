package embedkafka

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/IBM/sarama"
)

// ErrProducerClosed is returned by Send after Close.
var ErrProducerClosed = errors.New("embedkafka: producer closed")

// Producer produces to a broker's topic through its [Log]: each record is
// appended to its partition's file and fsynced before it is produced, and
// the broker must give it the offset it has in the log. Records are
// written in small groups (up to 100 records, or what arrived within 10ms
// of the group's first), one fsync per file and group, then produced
// synchronously, partition by partition in log order.
//
// So after a crash at any point, every record the broker had is in the log
// at its offset, and a record in the log the broker never got is produced by
// [Log.Restore] at the next start. Once a group fails (to be written or
// produced), the Producer fails every later Send: producing past a gap would
// give later records other offsets than the log's.
//
// A keyed record goes to the partition sarama's default (hash) partitioner
// picks, so one key stays on one partition; keyless records go round-robin.
// A Producer is safe for concurrent use.
type Producer struct {
	log  *Log
	hash sarama.Partitioner
	sp   sarama.SyncProducer

	mu        sync.Mutex
	pending   []Record
	timer     *time.Timer
	next      int32 // partition of the next keyless record
	delivered int64
	failed    int64
	err       error
	closed    bool
}

const (
	groupRecords = 100
	groupWait    = 10 * time.Millisecond
)

// NewProducer returns a producer of log's records to b. Restore the log to b
// first, so that the broker's partitions and the log's files have the same
// records.
func NewProducer(b *Broker, log *Log) (*Producer, error) {
	if log.read != nil {
		return nil, fmt.Errorf("embedkafka: producer of %s: restore the log first", log.topic)
	}
	sp, err := newSyncProducer(b.Addrs())
	if err != nil {
		return nil, err
	}
	return &Producer{log: log, hash: sarama.NewHashPartitioner(log.topic), sp: sp}, nil
}

// Send queues a record (key nil for none) with timestamp ts; it is
// delivered within about 10ms. It returns the error of an earlier group,
// if one failed, or ctx.Err().
func (p *Producer) Send(ctx context.Context, key, value []byte, ts time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrProducerClosed
	}
	if p.err != nil {
		return p.err
	}
	r := Record{Key: key, Value: value, Timestamp: ts}
	if key == nil {
		r.Partition = p.next
		p.next = (p.next + 1) % p.log.Partitions()
	} else {
		part, err := p.hash.Partition(&sarama.ProducerMessage{Key: sarama.ByteEncoder(key)}, p.log.Partitions())
		if err != nil {
			return fmt.Errorf("embedkafka: partition: %w", err)
		}
		r.Partition = part
	}
	p.pending = append(p.pending, r)
	if len(p.pending) >= groupRecords {
		return p.commit()
	}
	if p.timer == nil {
		p.timer = time.AfterFunc(groupWait, func() {
			p.mu.Lock()
			defer p.mu.Unlock()
			p.timer = nil
			p.commit()
		})
	}
	return nil
}

// commit writes and produces the pending group, holding p.mu.
func (p *Producer) commit() error {
	if p.timer != nil {
		p.timer.Stop()
		p.timer = nil
	}
	recs := p.pending
	p.pending = nil
	if len(recs) == 0 || p.err != nil {
		return p.err
	}
	want := make([]int64, len(recs))
	var err error
	for i, r := range recs {
		if want[i], err = p.log.add(r); err != nil {
			break
		}
	}
	if err == nil {
		err = p.log.sync()
	}
	if err == nil {
		err = send(p.sp, p.log.topic, recs, want)
	}
	if err != nil {
		p.failed += int64(len(recs))
		p.err = fmt.Errorf("embedkafka: produce %s: %w", p.log.topic, err)
		return p.err
	}
	p.delivered += int64(len(recs))
	return nil
}

// Flush writes and produces the records sent so far, and returns the error
// of the first group that failed, if any.
func (p *Producer) Flush(context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.commit()
}

// Counts returns how many records were delivered and how many failed.
func (p *Producer) Counts() (delivered, failed int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.delivered, p.failed
}

// Close flushes, then closes the producer (not the log). Further calls
// return nil.
func (p *Producer) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	err := p.commit()
	p.closed = true
	return errors.Join(err, p.sp.Close())
}
