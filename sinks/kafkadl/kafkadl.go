package kafkadl

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"

	"github.com/IBM/sarama"

	"github.com/clickstreamkit/clickstream/sinks"
)

var _ sinks.Sink = (*Sink)(nil)

// DefaultTopic is the dead-letter topic of SEMANTICS §1 (deadletter_topic).
const DefaultTopic = "events_deadletter"

// Header names of a dead-letter record.
const (
	HeaderReason          = "reason"
	HeaderField           = "field"
	HeaderDetail          = "detail"
	HeaderSourceTopic     = "source_topic"
	HeaderSourcePartition = "source_partition"
	HeaderSourceOffset    = "source_offset"
	// HeaderRawTruncated is set, to the original length, on the rare record
	// whose value had to be cut to fit Producer.MaxMessageBytes.
	HeaderRawTruncated = "raw_truncated"
)

// ErrClosed is returned by Write after Close.
var ErrClosed = errors.New("kafkadl: sink closed")

// Option configures a Sink.
type Option func(*options)

type options struct {
	topic string
	cfg   *sarama.Config
	log   *slog.Logger
}

// WithTopic sets the dead-letter topic. Default: DefaultTopic.
func WithTopic(topic string) Option { return func(o *options) { o.topic = topic } }

// WithConfig makes the sink use a copy of cfg (TLS, SASL, client id...), on
// which it sets what it relies on: Producer.Idempotent, RequiredAcks =
// WaitForAll, Net.MaxOpenRequests = 1, Return.Successes and Return.Errors,
// and Producer.Retry.Max at least 1. Default: sarama.NewConfig().
func WithConfig(cfg *sarama.Config) Option { return func(o *options) { o.cfg = cfg } }

// WithLogger sets the logger. Default: discard.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// Sink produces dead letters to Kafka. See the package documentation.
type Sink struct {
	brokers []string
	topic   string
	cfg     *sarama.Config
	log     *slog.Logger

	mu       sync.Mutex
	producer sarama.SyncProducer // nil until the first dead letter
	closed   bool
}

// New checks its arguments and returns a sink; it connects to nothing. The
// first Write with a dead letter connects.
func New(brokers []string, opts ...Option) (*Sink, error) {
	o := options{topic: DefaultTopic}
	for _, opt := range opts {
		opt(&o)
	}
	if len(brokers) == 0 {
		return nil, errors.New("kafkadl: no brokers")
	}
	for _, b := range brokers {
		if b == "" {
			return nil, errors.New("kafkadl: empty broker address")
		}
	}
	if o.topic == "" {
		return nil, errors.New("kafkadl: no topic")
	}
	cfg := sarama.NewConfig()
	if o.cfg != nil {
		c := *o.cfg
		cfg = &c
	}
	cfg.Producer.Idempotent = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Net.MaxOpenRequests = 1
	cfg.Producer.Return.Successes = true
	cfg.Producer.Return.Errors = true
	cfg.Producer.Retry.Max = max(cfg.Producer.Retry.Max, 1)
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("kafkadl: config: %w", err)
	}
	log := o.log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Sink{brokers: append([]string(nil), brokers...), topic: o.topic, cfg: cfg, log: log.With("topic", o.topic)}, nil
}

// Topic returns the dead-letter topic.
func (s *Sink) Topic() string { return s.topic }

// Write produces each batch's dead letters in turn and returns once Kafka
// acknowledged every one; a batch without any costs nothing. A failed Write may have
// produced some of them: the pipeline's retry produces them again (see the
// package documentation). Once the records are handed to the producer, ctx
// no longer interrupts: the producer's timeouts and retries bound the wait.
func (s *Sink) Write(ctx context.Context, bs ...*sinks.Batch) error {
	return sinks.WriteEach(ctx, bs, s.write)
}

func (s *Sink) write(ctx context.Context, b *sinks.Batch) error {
	if len(b.DeadLetters) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.producer == nil {
		p, err := sarama.NewSyncProducer(s.brokers, s.cfg)
		if err != nil {
			return fmt.Errorf("kafkadl: connect: %w", err)
		}
		s.producer = p
	}
	limit := s.cfg.Producer.MaxMessageBytes
	msgs := make([]*sarama.ProducerMessage, len(b.DeadLetters))
	for i, d := range b.DeadLetters {
		msgs[i] = message(s.topic, d, limit)
	}
	if err := s.producer.SendMessages(msgs); err != nil {
		return fmt.Errorf("kafkadl: produce %d dead letters of %s/%d to %s: %w",
			len(msgs), b.Topic, b.Partition, s.topic, err)
	}
	return nil
}

// Durable reports true: Write returns once every record is acknowledged by
// all in-sync replicas.
func (*Sink) Durable() bool { return true }

// Close closes the producer. It may be called more than once.
func (s *Sink) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.producer == nil {
		return nil
	}
	if err := s.producer.Close(); err != nil {
		return fmt.Errorf("kafkadl: close: %w", err)
	}
	return nil
}

// Message returns the record of dead letter d in topic: value d.Raw (never
// null, so that an empty message is not a tombstone on a compacted topic),
// key "source_topic/source_partition/source_offset", and the headers of the
// package documentation. The record refers to d.Raw without copying it.
func Message(topic string, d sinks.DeadLetter) *sarama.ProducerMessage {
	return message(topic, d, 0)
}

// headroom is what a record's key, headers and framing may need beyond its
// value, so that cutting the value to limit-headroom makes it fit.
const headroom = 4096

// message is Message, cutting the value when it would not fit in limit bytes
// (0: no limit).
func message(topic string, d sinks.DeadLetter, limit int) *sarama.ProducerMessage {
	part := strconv.FormatInt(int64(d.Partition), 10)
	off := strconv.FormatInt(d.Offset, 10)
	raw := d.Raw
	if raw == nil {
		raw = []byte{}
	}
	headers := []sarama.RecordHeader{
		{Key: []byte(HeaderReason), Value: []byte(d.Reason)},
		{Key: []byte(HeaderField), Value: []byte(d.Field)},
		{Key: []byte(HeaderDetail), Value: []byte(d.Detail)},
		{Key: []byte(HeaderSourceTopic), Value: []byte(d.Topic)},
		{Key: []byte(HeaderSourcePartition), Value: []byte(part)},
		{Key: []byte(HeaderSourceOffset), Value: []byte(off)},
	}
	// the topic is in the key and a header
	overhead := len(d.Reason) + len(d.Field) + len(d.Detail) + 2*len(d.Topic) + headroom
	if limit > 0 && len(raw)+overhead > limit {
		headers = append(headers, sarama.RecordHeader{Key: []byte(HeaderRawTruncated), Value: []byte(strconv.Itoa(len(raw)))})
		raw = raw[:max(0, limit-overhead)]
	}
	return &sarama.ProducerMessage{
		Topic:   topic,
		Key:     sarama.StringEncoder(d.Topic + "/" + part + "/" + off),
		Value:   sarama.ByteEncoder(raw),
		Headers: headers,
	}
}
