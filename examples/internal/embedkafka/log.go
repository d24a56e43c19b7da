package embedkafka

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/IBM/sarama"
)

// Record is one record of a topic partition, as a [Log] keeps it.
type Record struct {
	Partition int32
	Key       []byte // nil for none
	Value     []byte
	Timestamp time.Time // kept to the millisecond, as Kafka does
}

// ErrOffsetMismatch is returned when the broker gives a record another
// offset than its place in the [Log]: the log and the broker no longer
// agree, and producing more would give consumers' checkpoints the wrong
// records.
var ErrOffsetMismatch = errors.New("embedkafka: broker offset differs from the log's")

// Log keeps the records of one topic in an append-only file per partition,
// so that a restarted in-process broker can be refilled with them at the
// same offsets ([Log.Restore]): the record at index i of a partition's file
// is the one at offset i.
//
// Each record is a frame: its length and CRC-32C (little endian, 4 bytes
// each), then the timestamp in Unix milliseconds (varint), the key's length
// plus one (uvarint; 0 for no key), the key and the value. [OpenLog] drops a
// torn or corrupt end of a file (a crash during an append); nothing after it
// was produced, since records are appended and fsynced before they are
// produced.
//
// A Log is not safe for concurrent use; a [Producer] serializes its use.
type Log struct {
	dir   string
	topic string
	files []*os.File
	n     []int64    // per partition: records, synced or queued
	read  [][]Record // per partition: the records found by OpenLog, until Restore
	buf   [][]byte   // per partition: frames not yet written
}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

const frameHeader = 8 // length and CRC

// OpenLog opens (creating them if needed) the logs of topic's partitions
// under dir and reads them. A torn or corrupt end of a file is cut off.
func OpenLog(dir, topic string, partitions int32) (*Log, error) {
	if topic == "" || partitions < 1 {
		return nil, fmt.Errorf("embedkafka: log of topic %q with %d partitions", topic, partitions)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("embedkafka: log: %w", err)
	}
	l := &Log{dir: dir, topic: topic, files: make([]*os.File, partitions), n: make([]int64, partitions),
		read: make([][]Record, partitions), buf: make([][]byte, partitions)}
	created := false
	for p := range partitions {
		path := l.path(p)
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			created = true
		}
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			l.Close()
			return nil, fmt.Errorf("embedkafka: log: %w", err)
		}
		l.files[p] = f
		if l.read[p], err = readLog(f, p); err != nil {
			l.Close()
			return nil, fmt.Errorf("embedkafka: log %s: %w", path, err)
		}
		l.n[p] = int64(len(l.read[p]))
	}
	if created {
		if err := syncDir(dir); err != nil {
			l.Close()
			return nil, err
		}
	}
	return l, nil
}

func (l *Log) path(p int32) string {
	return filepath.Join(l.dir, fmt.Sprintf("%s.%d.log", url.PathEscape(l.topic), p))
}

// readLog reads f's records and truncates f after the last whole one,
// leaving f's offset at its end.
func readLog(f *os.File, p int32) ([]Record, error) {
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, err
	}
	var recs []Record
	good := 0
	for rest := data; ; {
		r, n, ok := decodeFrame(rest)
		if !ok {
			break
		}
		r.Partition = p
		recs = append(recs, r)
		good += n
		rest = rest[n:]
	}
	if good < len(data) {
		if err := f.Truncate(int64(good)); err != nil {
			return nil, err
		}
		if err := f.Sync(); err != nil {
			return nil, err
		}
	}
	if _, err := f.Seek(int64(good), io.SeekStart); err != nil {
		return nil, err
	}
	return recs, nil
}

// decodeFrame decodes the frame at the start of b; ok is false when b holds
// no whole, intact frame.
func decodeFrame(b []byte) (r Record, n int, ok bool) {
	if len(b) < frameHeader {
		return r, 0, false
	}
	size := int(binary.LittleEndian.Uint32(b))
	if size > len(b)-frameHeader {
		return r, 0, false
	}
	body := b[frameHeader : frameHeader+size]
	if crc32.Checksum(body, crcTable) != binary.LittleEndian.Uint32(b[4:]) {
		return r, 0, false
	}
	ts, i := binary.Varint(body)
	if i <= 0 {
		return r, 0, false
	}
	klen, j := binary.Uvarint(body[i:])
	if j <= 0 || klen > uint64(len(body)-i-j) {
		return r, 0, false
	}
	body = body[i+j:]
	if klen > 0 {
		r.Key = bytes.Clone(body[:klen-1])
		body = body[klen-1:]
	}
	r.Value = bytes.Clone(body)
	r.Timestamp = time.UnixMilli(ts)
	return r, frameHeader + size, true
}

func appendFrame(dst []byte, r Record) []byte {
	at := len(dst)
	dst = append(dst, make([]byte, frameHeader)...)
	dst = binary.AppendVarint(dst, r.Timestamp.UnixMilli())
	if r.Key == nil {
		dst = binary.AppendUvarint(dst, 0)
	} else {
		dst = binary.AppendUvarint(dst, uint64(len(r.Key))+1)
		dst = append(dst, r.Key...)
	}
	dst = append(dst, r.Value...)
	body := dst[at+frameHeader:]
	binary.LittleEndian.PutUint32(dst[at:], uint32(len(body)))
	binary.LittleEndian.PutUint32(dst[at+4:], crc32.Checksum(body, crcTable))
	return dst
}

// Topic returns the log's topic.
func (l *Log) Topic() string { return l.topic }

// Partitions returns the number of partitions.
func (l *Log) Partitions() int32 { return int32(len(l.files)) }

// Len returns the number of records of partition p, which is the offset the
// next one gets.
func (l *Log) Len(p int32) int64 { return l.n[p] }

// Total returns the number of records of all partitions.
func (l *Log) Total() int64 {
	var n int64
	for _, c := range l.n {
		n += c
	}
	return n
}

// Tail returns the last n records OpenLog found in partition p (fewer if
// it has fewer), until Restore: what a producer resuming after them may
// need to know. The slice is the log's: do not modify it.
func (l *Log) Tail(p int32, n int) []Record {
	if l.read == nil {
		return nil
	}
	recs := l.read[p]
	return recs[max(0, len(recs)-n):]
}

// add queues r for the next Sync and returns the offset it will have.
func (l *Log) add(r Record) (int64, error) {
	if r.Partition < 0 || int(r.Partition) >= len(l.files) {
		return 0, fmt.Errorf("embedkafka: log %s: partition %d of %d", l.topic, r.Partition, len(l.files))
	}
	r.Timestamp = time.UnixMilli(r.Timestamp.UnixMilli())
	l.buf[r.Partition] = appendFrame(l.buf[r.Partition], r)
	l.n[r.Partition]++
	return l.n[r.Partition] - 1, nil
}

// Append adds recs at the end of their partitions' files and fsyncs them.
// Once it returns nil, a restarted broker gets them back.
func (l *Log) Append(recs ...Record) error {
	for _, r := range recs {
		if _, err := l.add(r); err != nil {
			return err
		}
	}
	return l.sync()
}

// sync writes and fsyncs the queued frames. On an error the log must not
// be used further: its files may hold part of them.
func (l *Log) sync() error {
	for p, b := range l.buf {
		if len(b) == 0 {
			continue
		}
		if _, err := l.files[p].Write(b); err != nil {
			return fmt.Errorf("embedkafka: log %s: %w", l.path(int32(p)), err)
		}
		if err := l.files[p].Sync(); err != nil {
			return fmt.Errorf("embedkafka: log %s: %w", l.path(int32(p)), err)
		}
		l.buf[p] = b[:0]
	}
	return nil
}

// Restore produces the records OpenLog found to b's topic, partition by
// partition in offset order, and checks that each gets its offset in the
// log: b's topic must exist with the log's partitions, all empty. It is
// called once, before records are appended; the log then forgets them (the
// broker holds them). ctx bounds the whole.
func (l *Log) Restore(ctx context.Context, b *Broker) error {
	if l.read == nil {
		return fmt.Errorf("embedkafka: restore %s: already restored", l.topic)
	}
	p, err := newSyncProducer(b.Addrs())
	if err != nil {
		return err
	}
	defer p.Close()
	const group = 1000
	for part := range l.Partitions() {
		recs := l.read[part]
		for i := 0; i < len(recs); i += group {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("embedkafka: restore %s: %w", l.topic, err)
			}
			end := min(i+group, len(recs))
			want := make([]int64, end-i)
			for j := range want {
				want[j] = int64(i + j)
			}
			if err := send(p, l.topic, recs[i:end], want); err != nil {
				return fmt.Errorf("embedkafka: restore %s/%d: %w", l.topic, part, err)
			}
		}
	}
	l.read = nil
	return nil
}

// Close closes the files; queued records not yet synced are lost. Further
// calls do nothing.
func (l *Log) Close() error {
	var errs []error
	for i, f := range l.files {
		if f != nil {
			errs = append(errs, f.Close())
			l.files[i] = nil
		}
	}
	return errors.Join(errs...)
}

func newSyncProducer(addrs []string) (sarama.SyncProducer, error) {
	cfg := SaramaConfig()
	cfg.ClientID = "clickstream-embedded-log"
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	p, err := sarama.NewSyncProducer(addrs, cfg)
	if err != nil {
		return nil, fmt.Errorf("embedkafka: producer: %w", err)
	}
	return p, nil
}

// send produces recs and checks that recs[i] gets the offset want[i].
func send(p sarama.SyncProducer, topic string, recs []Record, want []int64) error {
	msgs := make([]*sarama.ProducerMessage, len(recs))
	for i, r := range recs {
		m := &sarama.ProducerMessage{Topic: topic, Partition: r.Partition, Value: sarama.ByteEncoder(r.Value), Timestamp: r.Timestamp}
		if r.Key != nil {
			m.Key = sarama.ByteEncoder(r.Key)
		}
		msgs[i] = m
	}
	if err := p.SendMessages(msgs); err != nil {
		return err
	}
	for i, m := range msgs {
		if m.Offset != want[i] {
			return fmt.Errorf("%w: partition %d: record %d of the log got offset %d", ErrOffsetMismatch, m.Partition, want[i], m.Offset)
		}
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("embedkafka: log: %w", err)
	}
	if err := errors.Join(d.Sync(), d.Close()); err != nil {
		return fmt.Errorf("embedkafka: log: %w", err)
	}
	return nil
}
