package embedkafka

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

func start(t *testing.T, topics map[string]int32) *Broker {
	t.Helper()
	b, err := Start(t.Context(), "127.0.0.1:0", topics)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

func TestStartCreatesTopics(t *testing.T) {
	b := start(t, map[string]int32{"extra": 2})
	client, err := sarama.NewClient(b.Addrs(), SaramaConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	for topic, want := range map[string]int{TopicEvents: 4, TopicDeadLetter: 1, "extra": 2} {
		parts, err := client.Partitions(topic)
		if err != nil {
			t.Fatalf("%s: %v", topic, err)
		}
		if len(parts) != want {
			t.Errorf("%s: %d partitions, want %d", topic, len(parts), want)
		}
	}
}

// Like Apache Kafka by default, producing to an unknown topic creates it.
func TestAutoCreate(t *testing.T) {
	b := start(t, nil)
	p, err := sarama.NewSyncProducer(b.Addrs(), SaramaConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	part, off, err := p.SendMessage(&sarama.ProducerMessage{Topic: "fresh", Value: sarama.StringEncoder("x")})
	if err != nil || part != 0 || off != 0 {
		t.Fatalf("SendMessage = %d, %d, %v", part, off, err)
	}
}

func TestStartRejects(t *testing.T) {
	for _, tc := range []struct {
		addr   string
		topics map[string]int32
	}{
		{"nohostport", nil},
		{"0.0.0.0:0", nil},
		{"127.0.0.1:0", map[string]int32{"t": 0}},
	} {
		if b, err := Start(t.Context(), tc.addr, tc.topics); err == nil {
			b.Close()
			t.Errorf("Start(%q, %v) = nil error", tc.addr, tc.topics)
		}
	}
}

func TestCloseTwice(t *testing.T) {
	b := start(t, nil)
	b.Close()
	b.Close()
}

// produce sends n messages keyed "user-<i%7>" through an idempotent async
// producer with acks=all and waits for every acknowledgement.
func produce(t *testing.T, addrs []string, topic string, from, n int) {
	t.Helper()
	cfg := SaramaConfig()
	cfg.Producer.Flush.Messages = 50
	cfg.Producer.Flush.Frequency = 5 * time.Millisecond
	p, err := sarama.NewAsyncProducer(addrs, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var ok, failed int
	wg.Add(2)
	go func() {
		defer wg.Done()
		for range p.Successes() {
			ok++
		}
	}()
	go func() {
		defer wg.Done()
		for err := range p.Errors() {
			t.Errorf("produce: %v", err)
			failed++
		}
	}()
	for i := from; i < from+n; i++ {
		p.Input() <- &sarama.ProducerMessage{Topic: topic,
			Key: sarama.StringEncoder(fmt.Sprintf("user-%d", i%7)), Value: sarama.StringEncoder(strconv.Itoa(i))}
	}
	p.AsyncClose()
	wg.Wait()
	if ok != n || failed != 0 {
		t.Fatalf("produced %d ok, %d failed; want %d ok", ok, failed, n)
	}
}

// groupHandler reads until it has seen want messages in total, marking each
// one and committing by hand.
type groupHandler struct {
	mu   sync.Mutex
	seen map[string]int // value -> times seen
	want int
	done chan struct{}
	once sync.Once
}

func (h *groupHandler) Setup(sarama.ConsumerGroupSession) error     { return nil }
func (h *groupHandler) Cleanup(s sarama.ConsumerGroupSession) error { s.Commit(); return nil }
func (h *groupHandler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for {
		select {
		case m, ok := <-c.Messages():
			if !ok {
				return nil
			}
			h.mu.Lock()
			h.seen[string(m.Value)]++
			n := len(h.seen)
			h.mu.Unlock()
			s.MarkMessage(m, "")
			// Commit per drained buffer, not per message: see SaramaConfig.
			if len(c.Messages()) == 0 {
				s.Commit()
			}
			if n >= h.want {
				h.once.Do(func() { close(h.done) })
			}
		case <-s.Context().Done():
			return nil
		}
	}
}

// consume joins group, reads until want distinct values arrived, commits, and
// leaves the group.
func consume(t *testing.T, addrs []string, topic, group string, want int) map[string]int {
	t.Helper()
	cfg := SaramaConfig()
	cfg.Consumer.Offsets.AutoCommit.Enable = false
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cg, err := sarama.NewConsumerGroup(addrs, group, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cg.Close()
	go func() {
		for err := range cg.Errors() {
			t.Errorf("consumer group: %v", err)
		}
	}()
	h := &groupHandler{seen: map[string]int{}, want: want, done: make(chan struct{})}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		for ctx.Err() == nil {
			if err := cg.Consume(ctx, []string{topic}, h); err != nil && !errors.Is(err, sarama.ErrClosedConsumerGroup) {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	select {
	case <-h.done:
	case <-ctx.Done():
		h.mu.Lock()
		n := len(h.seen)
		h.mu.Unlock()
		t.Fatalf("consumed %d distinct messages before the deadline, want %d", n, want)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.seen
}

// TestSaramaRoundTrip is what the demo relies on: an idempotent acks=all
// producer, a consumer group with manual commits, and a member that re-joins
// resuming from the committed offsets.
func TestSaramaRoundTrip(t *testing.T) {
	b := start(t, nil)
	const n = 500
	produce(t, b.Addrs(), TopicEvents, 0, n)

	seen := consume(t, b.Addrs(), TopicEvents, "g1", n)
	if len(seen) != n {
		t.Fatalf("first run saw %d distinct messages, want %d", len(seen), n)
	}

	// Re-join: only messages produced after the commit arrive.
	produce(t, b.Addrs(), TopicEvents, n, 100)
	seen2 := consume(t, b.Addrs(), TopicEvents, "g1", 100)
	for v := range seen2 {
		if i, _ := strconv.Atoi(v); i < n {
			t.Errorf("re-joined member saw %s again: committed offsets not honoured", v)
		}
	}
	if len(seen2) != 100 {
		t.Errorf("second run saw %d distinct messages, want 100", len(seen2))
	}

	// The committed offsets add up to everything produced.
	client, err := sarama.NewClient(b.Addrs(), SaramaConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	offs, err := admin.ListConsumerGroupOffsets("g1", map[string][]int32{TopicEvents: {0, 1, 2, 3}})
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	for p, blk := range offs.Blocks[TopicEvents] {
		if blk.Err != sarama.ErrNoError {
			t.Fatalf("partition %d: %v", p, blk.Err)
		}
		hw, err := client.GetOffset(TopicEvents, p, sarama.OffsetNewest)
		if err != nil {
			t.Fatal(err)
		}
		if blk.Offset != hw {
			t.Errorf("partition %d: committed %d, high watermark %d", p, blk.Offset, hw)
		}
		sum += blk.Offset
	}
	if sum != n+100 {
		t.Errorf("committed offsets sum to %d, want %d", sum, n+100)
	}
}

// TestSaramaKeysPartition checks that sarama's hash partitioner keeps one key
// on one partition, which SEMANTICS §2 relies on.
func TestSaramaKeysPartition(t *testing.T) {
	b := start(t, nil)
	cfg := SaramaConfig()
	p, err := sarama.NewSyncProducer(b.Addrs(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	where := map[string]int32{}
	for i := range 40 {
		key := fmt.Sprintf("u%d", i%5)
		part, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: TopicEvents, Key: sarama.StringEncoder(key), Value: sarama.StringEncoder("x")})
		if err != nil {
			t.Fatal(err)
		}
		if w, ok := where[key]; ok && w != part {
			t.Fatalf("key %s on partitions %d and %d", key, w, part)
		}
		where[key] = part
	}
}

// Trim drops what a group has committed past, and nothing else: the group
// goes on reading what comes after, and a group without offsets trims
// nothing.
func TestTrim(t *testing.T) {
	b := start(t, nil)
	const n = 500
	produce(t, b.Addrs(), TopicEvents, 0, n)
	if err := b.Trim(t.Context(), TopicEvents, "g1"); err != nil {
		t.Fatalf("Trim before any commit: %v", err)
	}
	client, err := sarama.NewClient(b.Addrs(), SaramaConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	oldest := func() (sum int64) {
		for p := range int32(4) {
			off, err := client.GetOffset(TopicEvents, p, sarama.OffsetOldest)
			if err != nil {
				t.Fatal(err)
			}
			sum += off
		}
		return sum
	}
	if got := oldest(); got != 0 {
		t.Fatalf("oldest offsets sum to %d before the group read anything, want 0", got)
	}

	if seen := consume(t, b.Addrs(), TopicEvents, "g1", n); len(seen) != n {
		t.Fatalf("saw %d messages, want %d", len(seen), n)
	}
	if err := b.Trim(t.Context(), TopicEvents, "g1"); err != nil {
		t.Fatal(err)
	}
	if got := oldest(); got != n {
		t.Errorf("oldest offsets sum to %d after the trim, want the %d committed", got, n)
	}
	produce(t, b.Addrs(), TopicEvents, n, 100)
	seen := consume(t, b.Addrs(), TopicEvents, "g1", 100)
	if len(seen) != 100 {
		t.Errorf("after the trim the group saw %d messages, want the 100 new ones", len(seen))
	}
}
