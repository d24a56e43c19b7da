package kafkadl_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/clickstreamkit/clickstream"
	"github.com/clickstreamkit/clickstream/sinks"
	"github.com/clickstreamkit/clickstream/sinks/kafkadl"
)

func headers(m *sarama.ProducerMessage) map[string]string {
	h := map[string]string{}
	for _, r := range m.Headers {
		h[string(r.Key)] = string(r.Value)
	}
	return h
}

func TestMessage(t *testing.T) {
	d := sinks.DeadLetter{Reason: clickstream.ReasonMissingField, Field: "user_id", Detail: "absent",
		Topic: "events", Partition: 3, Offset: 1234567890123, Raw: []byte(`{"event_id":"a"}`)}
	m := kafkadl.Message("dl", d)
	if m.Topic != "dl" {
		t.Errorf("topic %q", m.Topic)
	}
	key, _ := m.Key.Encode()
	if string(key) != "events/3/1234567890123" {
		t.Errorf("key %q", key)
	}
	if v, _ := m.Value.Encode(); !bytes.Equal(v, d.Raw) {
		t.Errorf("value %q", v)
	}
	want := map[string]string{"reason": "missing_field", "field": "user_id", "detail": "absent",
		"source_topic": "events", "source_partition": "3", "source_offset": "1234567890123"}
	if got := headers(m); len(got) != len(want) {
		t.Errorf("headers %v, want %v", got, want)
	} else {
		for k, v := range want {
			if got[k] != v {
				t.Errorf("header %s = %q, want %q", k, got[k], v)
			}
		}
	}
	// an empty message stays a value, not a tombstone
	d.Raw = nil
	if v, _ := kafkadl.Message("dl", d).Value.Encode(); v == nil {
		t.Error("nil raw gives a null value")
	}
}

func TestNewValidates(t *testing.T) {
	if _, err := kafkadl.New(nil); err == nil {
		t.Error("New without brokers succeeded")
	}
	if _, err := kafkadl.New([]string{""}); err == nil {
		t.Error("New with an empty broker succeeded")
	}
	if _, err := kafkadl.New([]string{"h:1"}, kafkadl.WithTopic("")); err == nil {
		t.Error("New with an empty topic succeeded")
	}
	s, err := kafkadl.New([]string{"h:1"})
	if err != nil || s.Topic() != kafkadl.DefaultTopic {
		t.Errorf("New = %v, topic %q", err, s.Topic())
	}
}

// Without dead letters Write does nothing, not even connect.
func TestWriteWithoutDeadLetters(t *testing.T) {
	ctx := t.Context()
	s, err := kafkadl.New([]string{"127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	b := &sinks.Batch{Topic: "events", FirstOffset: 0, NextOffset: 10, Counters: sinks.Counters{Read: 10, Accepted: 10}}
	if err := s.Write(ctx, b); err != nil {
		t.Fatalf("Write: %v", err)
	}
	for i := range 2 {
		if err := s.Close(ctx); err != nil {
			t.Fatalf("Close #%d: %v", i+1, err)
		}
	}
	b.DeadLetters = []sinks.DeadLetter{{Reason: clickstream.ReasonMalformedJSON, Raw: []byte("{")}}
	if err := s.Write(ctx, b); !errors.Is(err, kafkadl.ErrClosed) {
		t.Fatalf("Write after Close = %v, want ErrClosed", err)
	}
}

func TestWriteProducesDeadLetters(t *testing.T) {
	v := os.Getenv("KAFKA_BROKERS")
	if v == "" {
		t.Skip("KAFKA_BROKERS not set: skipping a Kafka integration test (bash scripts/services.sh up prints it)")
	}
	brokers := strings.Split(v, ",")
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	topic := createTopic(t, brokers)
	sink, err := kafkadl.New(brokers, kafkadl.WithTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close(ctx)
	dls := []sinks.DeadLetter{
		{Reason: clickstream.ReasonMalformedJSON, Detail: "unexpected end of JSON input", Topic: "events", Partition: 0, Offset: 7, Raw: []byte(`{"event_id":`)},
		{Reason: clickstream.ReasonLate, Topic: "events", Partition: 2, Offset: 9, Raw: []byte(`{"event_id":"x"}`)},
		{Reason: clickstream.ReasonMalformedJSON, Topic: "events", Partition: 2, Offset: 10, Raw: nil},
		{Reason: clickstream.ReasonBadType, Field: "price", Topic: "events", Partition: 1, Offset: 0, Raw: []byte{0, 0xff, '\n'}},
		// over the producer's 1 MB limit: cut, with its length in a header
		{Reason: clickstream.ReasonTooLarge, Topic: "events", Partition: 1, Offset: 1, Raw: bytes.Repeat([]byte("x"), 2<<20)},
	}
	orig := slices.Clone(dls)
	for i := range orig {
		orig[i].Raw = bytes.Clone(orig[i].Raw)
	}
	if err := sink.Write(ctx, &sinks.Batch{Topic: "events", Partition: 2, DeadLetters: dls[:3]}); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if err := sink.Write(ctx, &sinks.Batch{Topic: "events", Partition: 1}); err != nil { // nothing to produce
		t.Fatalf("Write: %v", err)
	}
	if err := sink.Write(ctx, &sinks.Batch{Topic: "events", Partition: 1, DeadLetters: dls[3:]}); err != nil {
		t.Fatalf("Write: %v", err)
	}

	if !reflect.DeepEqual(dls, orig) { // a Tee hands the same batches to other sinks at once
		t.Error("Write changed the dead letters")
	}
	got := consume(t, ctx, brokers, topic, len(dls))
	for _, d := range dls {
		key := d.Topic + "/" + itoa(int64(d.Partition)) + "/" + itoa(d.Offset)
		r, ok := got[key]
		if !ok {
			t.Errorf("no record with key %q", key)
			continue
		}
		h := map[string]string{}
		for _, rh := range r.Headers {
			h[string(rh.Key)] = string(rh.Value)
		}
		if n, ok := h["raw_truncated"]; ok {
			if n != itoa(int64(len(d.Raw))) || len(r.Value) == 0 || len(r.Value) >= len(d.Raw) || !bytes.HasPrefix(d.Raw, r.Value) {
				t.Errorf("%s: value of %d bytes, raw_truncated=%s; want a prefix of the %d bytes", key, len(r.Value), n, len(d.Raw))
			}
		} else if !bytes.Equal(r.Value, d.Raw) {
			t.Errorf("%s: value %q, want %q", key, r.Value, d.Raw)
		}
		if len(d.Raw) > 1<<20 && h["raw_truncated"] == "" {
			t.Errorf("%s: %d bytes produced whole?", key, len(d.Raw))
		}
		if d.Raw == nil && r.Value == nil {
			t.Errorf("%s: null value (a tombstone) for an empty message", key)
		}
		want := map[string]string{"reason": string(d.Reason), "field": d.Field, "detail": d.Detail,
			"source_topic": d.Topic, "source_partition": itoa(int64(d.Partition)), "source_offset": itoa(d.Offset)}
		for k, v := range want {
			if hv, ok := h[k]; !ok || hv != v {
				t.Errorf("%s: header %s = %q (present %v), want %q", key, k, hv, ok, v)
			}
		}
	}
	if len(got) != len(dls) {
		t.Errorf("%d records, want %d", len(got), len(dls))
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func createTopic(t *testing.T, brokers []string) string {
	t.Helper()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	topic := "cs-deadletter-" + hex.EncodeToString(b)
	admin, err := sarama.NewClusterAdmin(brokers, sarama.NewConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.DeleteTopic(topic); _ = admin.Close() })
	if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 2, ReplicationFactor: 1}, false); err != nil {
		t.Fatal(err)
	}
	return topic
}

// consume reads n records of every partition of topic, by key.
func consume(t *testing.T, ctx context.Context, brokers []string, topic string, n int) map[string]*sarama.ConsumerMessage {
	t.Helper()
	c, err := sarama.NewConsumer(brokers, sarama.NewConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	parts, err := c.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	msgs := make(chan *sarama.ConsumerMessage)
	for _, p := range parts {
		pc, err := c.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		go func() {
			for m := range pc.Messages() {
				select {
				case msgs <- m:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	got := map[string]*sarama.ConsumerMessage{}
	for len(got) < n {
		select {
		case m := <-msgs:
			if _, dup := got[string(m.Key)]; dup {
				t.Errorf("key %q twice", m.Key)
			}
			got[string(m.Key)] = m
		case <-ctx.Done():
			t.Fatalf("got %d of %d records: %v", len(got), n, ctx.Err())
		}
	}
	return got
}
