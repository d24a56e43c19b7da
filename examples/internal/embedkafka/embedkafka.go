package embedkafka

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kfake"
)

// Default topics of the demo: [Start] creates them unless the caller's map
// names them with other partition counts.
const (
	TopicEvents     = "events_raw"
	TopicDeadLetter = "events_deadletter"
)

// DefaultTopics returns the topics [Start] always creates (name ->
// partitions): events_raw with 4 partitions, events_deadletter with 1.
func DefaultTopics() map[string]int32 {
	return map[string]int32{TopicEvents: 4, TopicDeadLetter: 1}
}

// Broker is a running in-process broker.
type Broker struct {
	c     *kfake.Cluster
	addrs []string
	once  sync.Once
}

// Start listens on addr ("127.0.0.1:0" picks a free port; a host of "" or
// "localhost" means 127.0.0.1) and creates [DefaultTopics] plus topics
// (name -> partitions; a name in both takes the caller's count, a count < 1
// is an error). Like Apache Kafka by default, it also creates a topic with
// one partition when a client asks for an unknown one. The broker advertises the address it listens on, so clients
// must reach it under that address. ctx bounds only the start; the broker
// runs until Close.
func Start(ctx context.Context, addr string, topics map[string]int32) (*Broker, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("embedkafka: address %q: %w", addr, err)
	}
	switch host {
	case "", "localhost":
		host = "127.0.0.1"
	case "0.0.0.0", "::":
		// kfake advertises the listener's address: an unspecified one is
		// not reachable by clients.
		return nil, fmt.Errorf("embedkafka: address %q: want a concrete host to advertise", addr)
	}
	all := DefaultTopics()
	maps.Copy(all, topics)
	byParts := map[int32][]string{}
	for name, n := range all {
		if name == "" || n < 1 {
			return nil, fmt.Errorf("embedkafka: topic %q with %d partitions", name, n)
		}
		byParts[n] = append(byParts[n], name)
	}
	var lc net.ListenConfig
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.ClusterID("clickstream-embedded"),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(1),
		// Memory goes back to the runtime a segment at a time once Trim
		// has passed it; kfake's default is 100 MiB a partition.
		kfake.BrokerConfigs(map[string]string{"log.segment.bytes": strconv.Itoa(segmentBytes)}),
		// kfake builds "127.0.0.1:<port>"; listen where the caller asked.
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			return lc.Listen(ctx, network, net.JoinHostPort(host, port))
		}),
	}
	for _, n := range slices.Sorted(maps.Keys(byParts)) {
		opts = append(opts, kfake.SeedTopics(n, slices.Sorted(slices.Values(byParts[n]))...))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("embedkafka: %w", err)
	}
	return &Broker{c: c, addrs: c.ListenAddrs()}, nil
}

// segmentBytes is the size of the broker's segments: what Trim frees at a
// time, per partition.
const segmentBytes = 8 << 20

// Trim drops from the broker the records of topic that group has committed
// past: consumers of the group never read them again (they resume from
// its offsets, or from checkpoints at least as far), and the broker holds a
// topic in memory. A [Log] keeps them on disk. Memory is freed by whole
// segments of 8 MiB per partition. Partitions without a committed offset
// keep everything, and so does a group that does not exist yet.
func (b *Broker) Trim(ctx context.Context, topic, group string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	admin, err := sarama.NewClusterAdmin(b.addrs, SaramaConfig())
	if err != nil {
		return fmt.Errorf("embedkafka: trim %s: %w", topic, err)
	}
	defer admin.Close()
	offsets, err := admin.ListConsumerGroupOffsets(group, nil)
	if errors.Is(err, sarama.ErrGroupIDNotFound) {
		return nil // no member has joined yet
	}
	if err != nil {
		return fmt.Errorf("embedkafka: trim %s: offsets of group %s: %w", topic, group, err)
	}
	before := map[int32]int64{}
	for p, block := range offsets.Blocks[topic] {
		if block.Err == sarama.ErrNoError && block.Offset > 0 {
			before[p] = block.Offset
		}
	}
	if len(before) == 0 {
		return nil
	}
	if err := admin.DeleteRecords(topic, before); err != nil {
		return fmt.Errorf("embedkafka: trim %s: %w", topic, err)
	}
	return nil
}

// Addrs returns the broker's address, for sarama.NewClient and friends.
func (b *Broker) Addrs() []string { return slices.Clone(b.addrs) }

// Close stops the broker and drops its data. Further calls do nothing.
func (b *Broker) Close() {
	b.once.Do(b.c.Close)
}

// SaramaConfig returns a sarama configuration suited to the broker: Version
// V2_8_0_0 (sarama's default; every version from V0_11_0_0 to V4_3_1_0 passes
// the package's round-trip test), an idempotent producer with acks=all (which
// sarama allows only with Net.MaxOpenRequests = 1) returning successes and
// errors, consumer errors returned, and Consumer.MaxWaitTime = 100ms. Callers
// may change it further.
//
// MaxWaitTime matters because sarama holds a broker connection's lock for the
// whole fetch long-poll, and on a one-node cluster the group coordinator is
// that same connection: every synchronous ConsumerGroupSession.Commit waits
// for the pending fetch to return (up to MaxWaitTime, 500ms by default, when
// the consumer is caught up). Real Kafka behaves the same. Commit per batch,
// not per message.
func SaramaConfig() *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_8_0_0
	cfg.ClientID = "clickstream-example"
	cfg.Producer.Idempotent = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Retry.Max = 10
	cfg.Producer.Return.Successes = true
	cfg.Producer.Return.Errors = true
	cfg.Net.MaxOpenRequests = 1
	cfg.Consumer.Return.Errors = true
	cfg.Consumer.MaxWaitTime = 100 * time.Millisecond
	return cfg
}
