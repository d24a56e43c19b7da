package kafka_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/clickstreamkit/clickstream/sources"
)

// brokers returns $KAFKA_BROKERS or skips the test.
func brokers(tb testing.TB) []string {
	tb.Helper()
	v := os.Getenv("KAFKA_BROKERS")
	if v == "" {
		tb.Skip("KAFKA_BROKERS not set: skipping a Kafka integration test (bash scripts/services.sh up prints it)")
	}
	return strings.Split(v, ",")
}

// testConfig is a sarama config that notices rebalances quickly.
func testConfig() *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.ClientID = "clickstream-test"
	cfg.Consumer.Group.Heartbeat.Interval = 300 * time.Millisecond
	cfg.Consumer.Group.Session.Timeout = 10 * time.Second
	cfg.Consumer.Group.Rebalance.Timeout = 30 * time.Second
	cfg.Metadata.Retry.Backoff = 100 * time.Millisecond
	return cfg
}

// testLogger logs to tb until the test ends.
func testLogger(tb testing.TB) *slog.Logger {
	w := &tbWriter{tb: tb}
	tb.Cleanup(w.stop) // registered first, so it runs after the sources closed
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tbWriter struct {
	mu   sync.Mutex
	tb   testing.TB
	done bool
}

func (w *tbWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.tb.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

func (w *tbWriter) stop() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}

var unsafeChars = regexp.MustCompile(`[^a-zA-Z0-9._-]+`)

// uniqueName returns a topic or group name for this test run only.
func uniqueName(tb testing.TB, prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := unsafeChars.ReplaceAllString(tb.Name(), "_")
	if len(name) > 80 {
		name = name[len(name)-80:]
	}
	return prefix + "-" + name + "-" + hex.EncodeToString(b)
}

// newGroup returns a consumer group name for this test run only; the group
// is deleted when the test ends, after the sources created later closed.
func newGroup(tb testing.TB, brokers []string) string {
	group := uniqueName(tb, "g")
	admin := newAdmin(tb, brokers)
	tb.Cleanup(func() { _ = admin.DeleteConsumerGroup(group) })
	return group
}

func newAdmin(tb testing.TB, brokers []string) sarama.ClusterAdmin {
	tb.Helper()
	admin, err := sarama.NewClusterAdmin(brokers, testConfig())
	if err != nil {
		tb.Fatalf("admin: %v", err)
	}
	tb.Cleanup(func() { _ = admin.Close() })
	return admin
}

// createTopic creates a fresh topic and waits until every partition has a
// leader; the topic is deleted when the test ends.
func createTopic(tb testing.TB, brokers []string, partitions int32) string {
	tb.Helper()
	admin := newAdmin(tb, brokers)
	topic := uniqueName(tb, "cs")
	err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: 1}, false)
	if err != nil {
		tb.Fatalf("create topic %s: %v", topic, err)
	}
	tb.Cleanup(func() { _ = admin.DeleteTopic(topic) })
	client, err := sarama.NewClient(brokers, testConfig())
	if err != nil {
		tb.Fatal(err)
	}
	defer client.Close()
	deadline := time.Now().Add(time.Minute)
	for {
		err := client.RefreshMetadata(topic)
		if err == nil {
			var ps []int32
			if ps, err = client.Partitions(topic); err == nil && int32(len(ps)) != partitions {
				err = fmt.Errorf("%d partitions", len(ps))
			}
			for _, p := range ps {
				if err == nil {
					_, err = client.Leader(topic, p)
				}
			}
		}
		if err == nil {
			return topic
		}
		if time.Now().After(deadline) {
			tb.Fatalf("topic %s has no leaders: %v", topic, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// produce writes values, keyed by their index so that they spread over the
// partitions, and returns where each went, sorted by partition and offset.
func produce(tb testing.TB, brokers []string, topic string, values [][]byte) []sources.Message {
	tb.Helper()
	return produceFrom(tb, brokers, topic, 0, values)
}

func produceFrom(tb testing.TB, brokers []string, topic string, first int, values [][]byte) []sources.Message {
	tb.Helper()
	out := make([]sources.Message, 0, len(values))
	if len(values) == 0 {
		return out
	}
	cfg := testConfig()
	cfg.Producer.Return.Successes = true
	cfg.Producer.Idempotent = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Net.MaxOpenRequests = 1
	cfg.Producer.Retry.Max = 20
	cfg.Producer.Retry.Backoff = 100 * time.Millisecond
	cfg.Producer.MaxMessageBytes = 1 << 20
	p, err := sarama.NewSyncProducer(brokers, cfg)
	if err != nil {
		tb.Fatalf("producer: %v", err)
	}
	defer p.Close()
	msgs := make([]*sarama.ProducerMessage, len(values))
	for i, v := range values {
		msgs[i] = &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(strconv.Itoa(first + i)),
			Value: sarama.ByteEncoder(append([]byte{}, v...))}
	}
	if err := p.SendMessages(msgs); err != nil {
		tb.Fatalf("produce to %s: %v", topic, err)
	}
	for i, m := range msgs {
		out = append(out, sources.Message{Topic: topic, Partition: m.Partition, Offset: m.Offset, Value: values[i]})
	}
	slices.SortFunc(out, func(a, b sources.Message) int {
		if a.Partition != b.Partition {
			return int(a.Partition - b.Partition)
		}
		return int(a.Offset - b.Offset)
	})
	return out
}

// committedOffset returns the group's committed offset, -1 if none.
func committedOffset(ctx context.Context, admin sarama.ClusterAdmin, group, topic string, partition int32) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	resp, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{topic: {partition}})
	if err != nil {
		return 0, err
	}
	b := resp.GetBlock(topic, partition)
	if b == nil {
		return 0, errors.New("no block")
	}
	if !errors.Is(b.Err, sarama.ErrNoError) {
		return 0, b.Err
	}
	return b.Offset, nil
}

// closeAtEnd closes src when the test ends.
func closeAtEnd(tb testing.TB, src interface{ Close(context.Context) error }) {
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := src.Close(ctx); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
}
