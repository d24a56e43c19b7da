package embedkafka

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

// stored is a record as a consumer reads it back.
type stored struct {
	Offset    int64
	Key       string
	HasKey    bool
	Value     string
	Timestamp int64 // Unix ms
}

// readAll returns every record of topic's partitions, by partition.
func readAll(t *testing.T, b *Broker, topic string) map[int32][]stored {
	t.Helper()
	client, err := sarama.NewClient(b.Addrs(), SaramaConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	cons, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	parts, err := client.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32][]stored{}
	for _, p := range parts {
		hw, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			t.Fatal(err)
		}
		if hw == 0 {
			continue
		}
		pc, err := cons.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.After(30 * time.Second)
		for int64(len(out[p])) < hw {
			select {
			case m := <-pc.Messages():
				out[p] = append(out[p], stored{m.Offset, string(m.Key), m.Key != nil, string(m.Value), m.Timestamp.UnixMilli()})
			case err := <-pc.Errors():
				t.Fatal(err)
			case <-deadline:
				t.Fatalf("partition %d: read %d of %d records", p, len(out[p]), hw)
			}
		}
		pc.Close()
	}
	return out
}

// openRestored opens the log under dir on a new broker and restores it.
func openRestored(t *testing.T, dir string) (*Broker, *Log) {
	t.Helper()
	b := start(t, nil)
	l, err := OpenLog(dir, TopicEvents, 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	if err := l.Restore(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	return b, l
}

// produceLogged sends n records (every fifth keyless) through a Producer
// and closes it.
func produceLogged(t *testing.T, b *Broker, l *Log, from, n int) {
	t.Helper()
	p, err := NewProducer(b, l)
	if err != nil {
		t.Fatal(err)
	}
	ts := time.UnixMilli(1_700_000_000_000)
	for i := from; i < from+n; i++ {
		var key []byte
		if i%5 != 0 {
			key = fmt.Appendf(nil, "user-%d", i%11)
		}
		if err := p.Send(t.Context(), key, fmt.Appendf(nil, `{"n":%d}`, i), ts.Add(time.Duration(i)*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
}

// A log written through a Producer, the broker restarted from it: the same
// records (key, value, timestamp) at the same offsets, and producing goes on
// at the next offsets.
func TestLogRestartKeepsOffsets(t *testing.T) {
	dir := t.TempDir()
	b1, l1 := openRestored(t, dir)
	produceLogged(t, b1, l1, 0, 500)
	want := readAll(t, b1, TopicEvents)
	b1.Close()
	l1.Close()

	var total int
	for p, recs := range want {
		total += len(recs)
		for i, r := range recs {
			if r.Offset != int64(i) {
				t.Fatalf("partition %d: record %d at offset %d", p, i, r.Offset)
			}
		}
	}
	if total != 500 || len(want) < 2 {
		t.Fatalf("first broker holds %d records on %d partitions, want 500 on several", total, len(want))
	}

	b2, l2 := openRestored(t, dir)
	if l2.Total() != 500 {
		t.Fatalf("reopened log has %d records, want 500", l2.Total())
	}
	if got := readAll(t, b2, TopicEvents); !reflect.DeepEqual(got, want) {
		t.Fatalf("restored broker differs from the first:\n%v\nwant\n%v", got, want)
	}
	produceLogged(t, b2, l2, 500, 100)
	b2.Close()
	l2.Close()

	b3, _ := openRestored(t, dir)
	got := readAll(t, b3, TopicEvents)
	total = 0
	for p, recs := range got {
		total += len(recs)
		if !reflect.DeepEqual(recs[:len(want[p])], want[p]) {
			t.Errorf("partition %d: the first records changed", p)
		}
	}
	if total != 600 {
		t.Errorf("third broker holds %d records, want 600", total)
	}
}

// A crash in the middle of an append leaves a torn last frame: it is cut
// off, the records before it are restored, and the next record takes its
// offset.
func TestLogTornEndDropped(t *testing.T) {
	for _, tear := range []struct {
		name string
		cut  func(b []byte) []byte
	}{
		{"half a frame", func(b []byte) []byte { return b[:len(b)-5] }},
		{"half a header", func(b []byte) []byte { return append(b, 3, 0) }},
		{"bad checksum", func(b []byte) []byte { b[len(b)-1] ^= 0xff; return b }},
	} {
		t.Run(tear.name, func(t *testing.T) {
			dir := t.TempDir()
			l, err := OpenLog(dir, TopicEvents, 1)
			if err != nil {
				t.Fatal(err)
			}
			ts := time.UnixMilli(1_700_000_000_000)
			for i := range 3 {
				if err := l.Append(Record{Key: []byte("k"), Value: fmt.Appendf(nil, "v%d", i), Timestamp: ts}); err != nil {
					t.Fatal(err)
				}
			}
			l.Close()
			path := filepath.Join(dir, TopicEvents+".0.log")
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			good := len(data)
			if tear.name != "half a header" {
				_, n, _ := decodeFrame(data)
				good = len(data) - n // frames are of equal length: the last one goes
			}
			if err := os.WriteFile(path, tear.cut(bytes.Clone(data)), 0o644); err != nil {
				t.Fatal(err)
			}

			l, err = OpenLog(dir, TopicEvents, 1)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			kept := int64(2)
			if tear.name == "half a header" {
				kept = 3
			}
			if l.Len(0) != kept {
				t.Fatalf("%d records after the tear, want %d", l.Len(0), kept)
			}
			if fi, err := os.Stat(path); err != nil || fi.Size() != int64(good) {
				t.Fatalf("file of %v bytes after repair (%v), want %d", fi.Size(), err, good)
			}
			b := start(t, map[string]int32{TopicEvents: 1})
			if err := l.Restore(t.Context(), b); err != nil {
				t.Fatal(err)
			}
			produceLogged(t, b, l, 10, 1)
			got := readAll(t, b, TopicEvents)[0]
			if len(got) != int(kept)+1 || got[kept].Value != `{"n":10}` || got[kept].Offset != kept {
				t.Fatalf("records after the repair: %+v", got)
			}
			for i := range kept {
				if got[i].Value != fmt.Sprintf("v%d", i) || got[i].Key != "k" || got[i].Timestamp != ts.UnixMilli() {
					t.Errorf("record %d: %+v", i, got[i])
				}
			}
		})
	}
}

// A broker whose partition already holds other records cannot take the
// log's: Restore fails loudly instead of shifting offsets.
func TestLogRestoreDetectsOffsetMismatch(t *testing.T) {
	dir := t.TempDir()
	l, err := OpenLog(dir, "t", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Append(Record{Value: []byte("a"), Timestamp: time.Now()}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	if l, err = OpenLog(dir, "t", 1); err != nil {
		t.Fatal(err)
	}
	b := start(t, map[string]int32{"t": 1})
	produce(t, b.Addrs(), "t", 0, 1)
	if err := l.Restore(t.Context(), b); !errors.Is(err, ErrOffsetMismatch) {
		t.Fatalf("Restore onto a used partition: %v, want ErrOffsetMismatch", err)
	}
}

// A record waits at most a moment for its group: it reaches the broker with
// no further Send and no Flush.
func TestProducerDeliversLoneRecord(t *testing.T) {
	b, l := openRestored(t, t.TempDir())
	p, err := NewProducer(b, l)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Send(t.Context(), []byte("u"), []byte("x"), time.Now()); err != nil {
		t.Fatal(err)
	}
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for d, _ := p.Counts(); d != 1; d, _ = p.Counts() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatal("a lone record was not delivered")
		}
	}
	if l.Total() != 1 {
		t.Fatalf("log holds %d records, want 1", l.Total())
	}
}

// Restore must come first, and a closed producer refuses records.
func TestProducerMisuse(t *testing.T) {
	b := start(t, nil)
	l, err := OpenLog(t.TempDir(), TopicEvents, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := NewProducer(b, l); err == nil {
		t.Fatal("NewProducer before Restore: nil error")
	}
	if err := l.Restore(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	p, err := NewProducer(b, l)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Send(t.Context(), nil, []byte("x"), time.Now()); !errors.Is(err, ErrProducerClosed) {
		t.Fatalf("Send after Close: %v", err)
	}
	if err := l.Restore(context.Background(), b); err == nil {
		t.Fatal("second Restore: nil error")
	}
	if err := errors.Join(l.Close(), l.Close()); err != nil {
		t.Fatalf("Close twice: %v", err)
	}
}
