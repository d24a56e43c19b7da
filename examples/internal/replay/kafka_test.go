package replay_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/clickstreamkit/clickstream"
	"github.com/clickstreamkit/clickstream/examples/internal/embedkafka"
	"github.com/clickstreamkit/clickstream/examples/internal/replay"
	"github.com/clickstreamkit/clickstream/internal/gen"
)

// The producer against the embedded broker, and against a real Kafka when
// KAFKA_BROKERS is set (scripts/services.sh up).
func TestSaramaEmbedded(t *testing.T) {
	b, err := embedkafka.Start(t.Context(), "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	testSarama(t, b.Addrs(), embedkafka.TopicEvents)
}

func TestSaramaKafka(t *testing.T) {
	env := os.Getenv("KAFKA_BROKERS")
	if env == "" {
		t.Skip("KAFKA_BROKERS not set")
	}
	brokers := strings.Split(env, ",")
	admin, err := sarama.NewClusterAdmin(brokers, replay.ProducerConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	topic := fmt.Sprintf("replay_test_%d", time.Now().UnixNano())
	if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 4, ReplicationFactor: 1}, false); err != nil {
		t.Fatal(err)
	}
	defer admin.DeleteTopic(topic)
	testSarama(t, brokers, topic)
}

func testSarama(t *testing.T, brokers []string, topic string) {
	c := gen.Default(1000, 9)
	msgs := gen.Generate(c)
	lines := make([][]byte, len(msgs))
	for i, m := range msgs {
		lines[i] = m.Value
	}
	p, err := replay.NewSarama(brokers, topic, nil)
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now().Add(-time.Second)
	st, err := replay.Run(t.Context(), p, lines, replay.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if d, f := p.Counts(); d != int64(len(lines)) || f != 0 || st.Sent != int64(len(lines)) {
		t.Fatalf("sent %d, delivered %d, failed %d; want %d", st.Sent, d, f, len(lines))
	}
	after := time.Now().Add(time.Second)

	// Read everything back.
	client, err := sarama.NewClient(brokers, replay.ProducerConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	parts, err := client.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	partOf := map[string]int32{}
	dec, err := clickstream.NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	for _, part := range parts {
		end, err := client.GetOffset(topic, part, sarama.OffsetNewest)
		if err != nil {
			t.Fatal(err)
		}
		if end == 0 {
			continue
		}
		pc, err := consumer.ConsumePartition(topic, part, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		for m := range pc.Messages() {
			got = append(got, string(m.Value))
			var e clickstream.Event
			if dec.DecodeAt(m.Value, &e, 1<<62) == nil && string(m.Key) != e.UserID {
				t.Errorf("key %q, user_id %q", m.Key, e.UserID)
			}
			if k := string(m.Key); k != "" {
				if p, ok := partOf[k]; ok && p != part {
					t.Errorf("user %s on partitions %d and %d", k, p, part)
				}
				partOf[k] = part
			}
			if m.Timestamp.Before(before) || m.Timestamp.After(after) {
				t.Errorf("record timestamp %v outside the replay's [%v, %v]", m.Timestamp, before, after)
			}
			if m.Offset == end-1 || ctx.Err() != nil {
				break
			}
		}
		cancel()
		pc.Close()
	}
	want := make([]string, len(lines))
	for i, l := range lines {
		want[i] = string(l)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("read back %d messages, want the %d sent", len(got), len(want))
	}
}
