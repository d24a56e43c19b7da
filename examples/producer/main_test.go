package main

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/clickstreamkit/clickstream"
	"github.com/clickstreamkit/clickstream/examples/internal/embedkafka"
)

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// readAll reads every message of topic.
func readAll(t *testing.T, brokers []string, topic string) []*sarama.ConsumerMessage {
	t.Helper()
	client, err := sarama.NewClient(brokers, embedkafka.SaramaConfig())
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
	var out []*sarama.ConsumerMessage
	for _, p := range parts {
		end, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			t.Fatal(err)
		}
		if end == 0 {
			continue
		}
		pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		timeout := time.After(20 * time.Second)
	read:
		for {
			select {
			case m := <-pc.Messages():
				out = append(out, m)
				if m.Offset == end-1 {
					break read
				}
			case <-timeout:
				t.Fatalf("partition %d: timed out", p)
			}
		}
		pc.Close()
	}
	return out
}

func TestReplayLoopLive(t *testing.T) {
	b, err := embedkafka.Start(t.Context(), "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	dir := t.TempDir()
	file := filepath.Join(dir, "events.jsonl")
	if err := run([]string{"generate", "-n", "300", "-seed", "5", "-rate", "200", "-o", file}, quiet()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2500*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = replayCmd(ctx, []string{"-file", file, "-brokers", strings.Join(b.Addrs(), ","), "-rate", "200", "-loop"}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	msgs := readAll(t, b.Addrs(), embedkafka.TopicEvents)
	// 2.5s at 200/s: about 500 messages over two passes.
	if len(msgs) < 400 || len(msgs) > 510 {
		t.Fatalf("%d messages, want about 500", len(msgs))
	}
	dec, err := clickstream.NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	valid, renamed := 0, 0
	for _, m := range msgs {
		var e clickstream.Event
		err := dec.DecodeAt(m.Value, &e, m.Timestamp.UnixMilli())
		if err != nil {
			continue
		}
		valid++
		if string(m.Key) != e.UserID {
			t.Errorf("key %q, user_id %q", m.Key, e.UserID)
		}
		if strings.HasSuffix(e.EventID, "#1") {
			renamed++
		}
		// Live: event time near the send time; gen's late events are 30-31
		// min behind their neighbours.
		if d := time.Duration(m.Timestamp.UnixMilli()-e.TS) * time.Millisecond; d < -time.Minute || d > 3*time.Minute && d < 27*time.Minute || d > 35*time.Minute {
			t.Errorf("event_ts %v from the send time %v", d, m.Timestamp)
		}
		if m.Timestamp.Before(start.Add(-time.Second)) {
			t.Errorf("record timestamp %v before the replay", m.Timestamp)
		}
	}
	if valid < len(msgs)*9/10 || renamed == 0 {
		t.Errorf("%d of %d valid, %d renamed in pass 2", valid, len(msgs), renamed)
	}
}

func TestReplayOnce(t *testing.T) {
	b, err := embedkafka.Start(t.Context(), "127.0.0.1:0", map[string]int32{"t": 2})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	file := filepath.Join(t.TempDir(), "events.jsonl")
	if err := run([]string{"generate", "-n", "500", "-seed", "6", "-o", file}, quiet()); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(file)
	want := strings.Count(string(data), "\n")
	if err := replayCmd(t.Context(), []string{"-file", file, "-brokers", b.Addrs()[0], "-topic", "t", "-rate", "0"}, quiet()); err != nil {
		t.Fatal(err)
	}
	msgs := readAll(t, b.Addrs(), "t")
	if len(msgs) != want {
		t.Fatalf("%d messages, want %d", len(msgs), want)
	}
	for _, m := range msgs {
		if !strings.Contains(string(data), string(m.Value)+"\n") {
			t.Fatalf("message not from the file: %s", m.Value)
		}
	}
}

func TestWikimediaToFile(t *testing.T) {
	fixture, err := os.ReadFile("../internal/wikimedia/testdata/recentchange.sse")
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Write(fixture)
	}))
	defer ts.Close()
	out := filepath.Join(t.TempDir(), "wiki.jsonl")
	if err := wikimediaCmd(t.Context(), []string{"-url", ts.URL, "-o", out, "-max", "28"}, quiet()); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) != 28 {
		t.Fatalf("%d lines, want 28", len(lines))
	}
	dec, err := clickstream.NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lines {
		if err := dec.Decode([]byte(l), new(clickstream.Event)); err != nil {
			t.Errorf("%s: %v", l, err)
		}
	}
}

func TestWikimediaToKafka(t *testing.T) {
	fixture, err := os.ReadFile("../internal/wikimedia/testdata/recentchange.sse")
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Write(fixture)
	}))
	defer ts.Close()
	b, err := embedkafka.Start(t.Context(), "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := wikimediaCmd(t.Context(), []string{"-url", ts.URL, "-brokers", b.Addrs()[0], "-max", "28"}, quiet()); err != nil {
		t.Fatal(err)
	}
	msgs := readAll(t, b.Addrs(), embedkafka.TopicEvents)
	if len(msgs) != 28 {
		t.Fatalf("%d messages, want 28", len(msgs))
	}
	dec, err := clickstream.NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		var e clickstream.Event
		if err := dec.Decode(m.Value, &e); err != nil || string(m.Key) != e.UserID {
			t.Errorf("%s keyed %q: %v", m.Value, m.Key, err)
		}
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"nope"}, {"replay", "-brokers", ""}, {"replay", "extra"}} {
		if err := run(args, quiet()); err == nil {
			t.Errorf("run(%q) = nil", args)
		}
	}
}
