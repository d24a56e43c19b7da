package replay

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
)

var (
	_ Producer = (*Sarama)(nil)
	_ Flusher  = (*Sarama)(nil)
	_ Counter  = (*Sarama)(nil)
)

// ErrClosed is returned by Send after Close.
var ErrClosed = errors.New("replay: producer closed")

// ProducerConfig returns the sarama configuration [NewSarama] uses by
// default: an idempotent producer (acks=all, Net.MaxOpenRequests = 1, which
// sarama requires for idempotence, retries), batching of up to 1000 messages
// or 10ms, LZ4 compression, and Kafka version 2.8 (sarama's default, which
// both Apache Kafka and the embedded broker answer).
func ProducerConfig() *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_8_0_0
	cfg.ClientID = "clickstream-replay"
	cfg.Producer.Idempotent = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Retry.Max = 10
	cfg.Producer.Retry.Backoff = 200 * time.Millisecond
	cfg.Net.MaxOpenRequests = 1
	cfg.Producer.Flush.Messages = 1000
	cfg.Producer.Flush.Frequency = 10 * time.Millisecond
	cfg.Producer.Compression = sarama.CompressionLZ4
	return cfg
}

// Sarama is a [Producer] writing to one Kafka topic through a sarama
// AsyncProducer. It is safe for concurrent use.
type Sarama struct {
	p     sarama.AsyncProducer
	topic string

	sent, delivered, failed atomic.Int64

	errMu    sync.Mutex
	firstErr error

	sendMu    sync.RWMutex // Send holds it shared; Close exclusively, so no Send races AsyncClose
	closeOnce sync.Once
	closed    chan struct{} // closed by Close first: pending Sends give up
	drained   chan struct{} // closed when Successes and Errors are drained
	closeErr  error
}

// NewSarama connects an async producer to brokers for topic. cfg nil means
// [ProducerConfig](); otherwise a copy of cfg is used, with
// Producer.Return.Successes and Errors set (Sarama counts both).
func NewSarama(brokers []string, topic string, cfg *sarama.Config) (*Sarama, error) {
	if topic == "" {
		return nil, errors.New("replay: no topic")
	}
	if cfg == nil {
		cfg = ProducerConfig()
	} else {
		c := *cfg
		cfg = &c
	}
	cfg.Producer.Return.Successes = true
	cfg.Producer.Return.Errors = true
	p, err := sarama.NewAsyncProducer(brokers, cfg)
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	s := &Sarama{p: p, topic: topic, closed: make(chan struct{}), drained: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Go(func() {
		for range p.Successes() {
			s.delivered.Add(1)
		}
	})
	wg.Go(func() {
		for pe := range p.Errors() {
			s.failed.Add(1)
			s.errMu.Lock()
			if s.firstErr == nil {
				s.firstErr = pe.Err
			}
			s.errMu.Unlock()
		}
	})
	go func() { wg.Wait(); close(s.drained) }()
	return s, nil
}

// Send queues m for the topic; the record timestamp is m.Timestamp.
func (s *Sarama) Send(ctx context.Context, m Message) error {
	msg := &sarama.ProducerMessage{Topic: s.topic, Value: sarama.ByteEncoder(m.Value), Timestamp: m.Timestamp}
	if m.Key != nil {
		msg.Key = sarama.ByteEncoder(m.Key)
	}
	s.sendMu.RLock()
	defer s.sendMu.RUnlock()
	select {
	case <-s.closed:
		return ErrClosed
	default:
	}
	s.sent.Add(1)
	select {
	case s.p.Input() <- msg:
		return nil
	case <-ctx.Done():
		s.sent.Add(-1)
		return ctx.Err()
	case <-s.closed:
		s.sent.Add(-1)
		return ErrClosed
	}
}

// Counts returns how many messages were delivered and how many failed.
func (s *Sarama) Counts() (delivered, failed int64) { return s.delivered.Load(), s.failed.Load() }

// Flush waits until every message sent so far is delivered or failed, and
// returns an error if any has failed.
func (s *Sarama) Flush(ctx context.Context) error {
	target := s.sent.Load()
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for s.delivered.Load()+s.failed.Load() < target {
		select {
		case <-t.C:
		case <-ctx.Done():
			d, f := s.Counts()
			return fmt.Errorf("%d of %d messages unacknowledged: %w", target-d-f, target, ctx.Err())
		case <-s.drained:
			return s.err()
		}
	}
	return s.err()
}

func (s *Sarama) err() error {
	if f := s.failed.Load(); f > 0 {
		s.errMu.Lock()
		defer s.errMu.Unlock()
		return fmt.Errorf("%d messages failed, the first with: %w", f, s.firstErr)
	}
	return nil
}

// Close flushes what was sent, closes the producer and returns its failures
// (as Flush). Further calls return the same.
func (s *Sarama) Close() error {
	s.closeOnce.Do(func() {
		close(s.closed)
		s.sendMu.Lock()
		s.p.AsyncClose()
		s.sendMu.Unlock()
		<-s.drained
		s.closeErr = s.err()
		if s.closeErr != nil {
			s.closeErr = fmt.Errorf("replay: %w", s.closeErr)
		}
	})
	return s.closeErr
}
