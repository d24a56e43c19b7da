package parquet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"

	"github.com/clickstreamkit/clickstream/internal/snap"
)

// stagingName is the staging file of a partition directory. Readers of the
// layout skip it: Hive-style tools ignore names starting with "_", and it is
// not a .parquet file.
const stagingName = "_staging"

const stagingVersion = 1

// staging is the durable state of a partition's open period (an events chunk
// or a KPI day): the records its Parquet file will hold, appended and fsynced
// by every Write, until the period completes and its file is written.
//
// The file is a sequence of frames, each
//
//	uint32 LE len(payload) | payload | uint32 LE CRC-32 (IEEE) of payload
//
// The first frame is the header (snap header "parquet-staging" v1, kind,
// topic, partition, period start); each further frame is a record: a varint
// key (the event's offset or the window's minute) then the record's body.
// Records are in ascending key order. A crash can leave a torn frame at the
// end: opening drops it and everything after it, which only loses records of
// a Write that never returned nil, so the pipeline replays them.
type staging struct {
	path  string
	f     *os.File
	start int64 // the period's first key
	size  int64 // bytes of valid frames
	hdr   int64 // bytes of the header frame
	last  int64 // key of the last record; meaningful when n > 0
	n     int   // records
}

type stagingID struct {
	kind      string
	topic     string
	partition int32
}

const frameOverhead = 8

// beginFrame reserves a frame's length field; endFrame fills it and appends
// the checksum. Payload bytes go in between.
func beginFrame(dst []byte) ([]byte, int) { return append(dst, 0, 0, 0, 0), len(dst) }

func endFrame(dst []byte, at int) []byte {
	payload := dst[at+4:]
	binary.LittleEndian.PutUint32(dst[at:], uint32(len(payload)))
	return binary.LittleEndian.AppendUint32(dst, crc32.ChecksumIEEE(payload))
}

// nextFrame splits the first frame off b; ok is false when b starts with a
// torn or corrupt frame.
func nextFrame(b []byte) (payload, rest []byte, ok bool) {
	if len(b) < frameOverhead {
		return nil, b, false
	}
	n := binary.LittleEndian.Uint32(b)
	if uint64(n) > uint64(len(b)-frameOverhead) {
		return nil, b, false
	}
	payload = b[4 : 4+n]
	if crc32.ChecksumIEEE(payload) != binary.LittleEndian.Uint32(b[4+n:]) {
		return nil, b, false
	}
	return payload, b[frameOverhead+n:], true
}

// recordKey reads a record payload's key.
func recordKey(payload []byte) (key int64, body []byte, ok bool) {
	k, n := binary.Varint(payload)
	if n <= 0 {
		return 0, nil, false
	}
	return k, payload[n:], true
}

func appendHeader(dst []byte, id stagingID, start int64) []byte {
	dst, at := beginFrame(dst)
	dst = snap.AppendHeader(dst, "parquet-staging", stagingVersion)
	dst = snap.AppendString(dst, id.kind)
	dst = snap.AppendString(dst, id.topic)
	dst = snap.AppendInt(dst, int64(id.partition))
	dst = snap.AppendInt(dst, start)
	return endFrame(dst, at)
}

// openStaging opens the staging file at path, repairing a torn end. It
// returns nil and no error when there is none.
func openStaging(path string, id stagingID, repaired func(dropped int64)) (*staging, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("parquet: %w", err)
	}
	payload, rest, ok := nextFrame(data)
	if !ok {
		return nil, fmt.Errorf("parquet: %s: %w: bad header", path, ErrCorrupt)
	}
	r := snap.NewReader(payload)
	r.Header("parquet-staging", stagingVersion)
	kind, topic, partition, start := r.String(), r.String(), int32(r.Int()), r.Int()
	if err := r.Done(); err != nil {
		return nil, fmt.Errorf("parquet: %s: %w: %v", path, ErrCorrupt, err)
	}
	if kind != id.kind || topic != id.topic || partition != id.partition {
		return nil, fmt.Errorf("parquet: %s: %w: holds %s of %q/%d", path, ErrCorrupt, kind, topic, partition)
	}
	s := &staging{path: path, start: start, hdr: int64(len(data) - len(rest))}
	s.size = s.hdr
	for len(rest) > 0 {
		payload, tail, ok := nextFrame(rest)
		var key int64
		if ok {
			key, _, ok = recordKey(payload)
		}
		if !ok || (s.n > 0 && key <= s.last) {
			break
		}
		s.last, s.n = key, s.n+1
		s.size += int64(len(rest) - len(tail))
		rest = tail
	}
	if s.f, err = os.OpenFile(path, os.O_RDWR, 0); err != nil {
		return nil, fmt.Errorf("parquet: %w", err)
	}
	if dropped := int64(len(data)) - s.size; dropped > 0 {
		if err := errors.Join(s.f.Truncate(s.size), s.f.Sync()); err != nil {
			s.f.Close()
			return nil, fmt.Errorf("parquet: repair %s: %w", path, err)
		}
		repaired(dropped)
	}
	return s, nil
}

// createStaging replaces the staging file at path with one for the period
// starting at start that holds recs (framed records in key order; n of them,
// the last with key last).
func createStaging(path string, id stagingID, start int64, recs []byte, n int, last int64) (*staging, error) {
	dir := filepath.Dir(path)
	body := appendHeader(nil, id, start)
	hdr := int64(len(body))
	body = append(body, recs...)
	f, err := os.CreateTemp(dir, "."+stagingName+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("parquet: %w", err)
	}
	_, err = f.Write(body)
	err = errors.Join(err, f.Sync(), f.Close())
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		os.Remove(f.Name())
		return nil, fmt.Errorf("parquet: stage %s: %w", path, err)
	}
	s := &staging{path: path, start: start, hdr: hdr, size: int64(len(body)), n: n, last: last}
	if s.f, err = os.OpenFile(path, os.O_RDWR, 0); err != nil {
		return nil, fmt.Errorf("parquet: %w", err)
	}
	return s, nil
}

// append adds framed records, all with keys above s.last, and makes them
// durable.
func (s *staging) append(recs []byte, n int, last int64) error {
	if n == 0 {
		return nil
	}
	if _, err := s.f.WriteAt(recs, s.size); err != nil {
		return fmt.Errorf("parquet: stage %s: %w", s.path, err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("parquet: stage %s: %w", s.path, err)
	}
	s.size += int64(len(recs))
	s.n += n
	s.last = last
	return nil
}

// cutFrom drops the records with keys >= key, durably.
func (s *staging) cutFrom(key int64) error {
	if s.n == 0 || s.last < key {
		return nil
	}
	data, err := s.records()
	if err != nil {
		return err
	}
	size, n, last := s.hdr, 0, int64(0)
	for rest := data; len(rest) > 0; {
		payload, tail, _ := nextFrame(rest)
		k, _, _ := recordKey(payload)
		if k >= key {
			break
		}
		size += int64(len(rest) - len(tail))
		n, last, rest = n+1, k, tail
	}
	if err := errors.Join(s.f.Truncate(size), s.f.Sync()); err != nil {
		return fmt.Errorf("parquet: stage %s: %w", s.path, err)
	}
	s.size, s.n, s.last = size, n, last
	return nil
}

// records returns the framed records, checked when the file was opened or
// written.
func (s *staging) records() ([]byte, error) {
	buf := make([]byte, s.size-s.hdr)
	if _, err := s.f.ReadAt(buf, s.hdr); err != nil && !(errors.Is(err, io.EOF) && len(buf) == 0) {
		return nil, fmt.Errorf("parquet: read %s: %w", s.path, err)
	}
	return buf, nil
}

// each calls fn with each record's key and body, in order. The bodies are
// substrings of one copy of the file, so that decoded strings need no
// allocation of their own.
func (s *staging) each(fn func(key int64, body string) error) error {
	if s.n == 0 {
		return nil
	}
	data, err := s.records()
	if err != nil {
		return err
	}
	str := string(data)
	for pos := 0; pos < len(data); {
		payload, tail, ok := nextFrame(data[pos:])
		if !ok {
			return fmt.Errorf("parquet: %s: %w: changed under the sink", s.path, ErrCorrupt)
		}
		k, n := binary.Varint(payload)
		if n <= 0 {
			return fmt.Errorf("parquet: %s: %w: bad key", s.path, ErrCorrupt)
		}
		if err := fn(k, str[pos+4+n:pos+4+len(payload)]); err != nil {
			return err
		}
		pos = len(data) - len(tail)
	}
	return nil
}

// strReader decodes what the snap.Append functions wrote, from a string, so
// that strings come out as substrings. After the first error every method
// returns zero values and bad is set.
type strReader struct {
	s   string
	bad bool
}

func (r *strReader) fail() { r.bad, r.s = true, "" }

func (r *strReader) uint() uint64 {
	var x uint64
	for i, shift := 0, uint(0); i < len(r.s) && i < binary.MaxVarintLen64; i, shift = i+1, shift+7 {
		b := r.s[i]
		if b < 0x80 {
			if i == binary.MaxVarintLen64-1 && b > 1 {
				break
			}
			r.s = r.s[i+1:]
			return x | uint64(b)<<shift
		}
		x |= uint64(b&0x7f) << shift
	}
	r.fail()
	return 0
}

func (r *strReader) int() int64 {
	u := r.uint()
	x := int64(u >> 1)
	if u&1 != 0 {
		x = ^x
	}
	return x
}

func (r *strReader) float() float64 {
	if len(r.s) < 8 {
		r.fail()
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64([]byte(r.s[:8])))
	r.s = r.s[8:]
	return v
}

func (r *strReader) bool() bool {
	if len(r.s) < 1 || r.s[0] > 1 {
		r.fail()
		return false
	}
	v := r.s[0] == 1
	r.s = r.s[1:]
	return v
}

func (r *strReader) byte() byte {
	if len(r.s) < 1 {
		r.fail()
		return 0
	}
	v := r.s[0]
	r.s = r.s[1:]
	return v
}

func (r *strReader) string() string {
	n := r.uint()
	if n > uint64(len(r.s)) {
		r.fail()
		return ""
	}
	v := r.s[:n]
	r.s = r.s[n:]
	return v
}

// count reads a length, each element taking at least one byte.
func (r *strReader) count() int {
	n := r.uint()
	if n > uint64(len(r.s)) {
		r.fail()
		return 0
	}
	return int(n)
}

// done reports whether everything was read without error.
func (r *strReader) done() bool { return !r.bad && len(r.s) == 0 }

// changed reports whether the staging file at path is no longer s as this
// process left it (s nil: whether one appeared).
func (s *staging) changed(path string) bool {
	fi, err := os.Stat(path)
	if s == nil {
		return err == nil
	}
	if err != nil {
		return true
	}
	mine, err := s.f.Stat()
	return err != nil || !os.SameFile(fi, mine) || fi.Size() != s.size
}

func (s *staging) close() error {
	if s == nil || s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}

func syncDir(path string) error {
	d, err := os.Open(path)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

// stagedLog is what the events and KPI logs of a partition share: the
// partition's directory and its staging file.
type stagedLog struct {
	s   *Sink
	id  stagingID
	dir string
	st  *staging // nil until the partition's first record
	buf []byte
}

// restage replaces the staging file with one for the period starting at
// start holding recs.
func (l *stagedLog) restage(start int64, recs []byte, n int, last int64) error {
	if l.st == nil {
		if err := l.s.makeDir(l.dir); err != nil {
			return err
		}
	}
	st, err := createStaging(filepath.Join(l.dir, stagingName), l.id, start, recs, n, last)
	if err != nil {
		return err
	}
	l.st.close()
	l.st = st
	return nil
}
