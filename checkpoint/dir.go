package checkpoint

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/clickstreamkit/clickstream"
	"github.com/clickstreamkit/clickstream/internal/snap"
)

var _ Store = (*Dir)(nil)

// Dir keeps each partition's checkpoint in files of a directory: a head file
// "<topic>.<partition>.ckpt" (offset, generation, state and the list of
// segment IDs) and one file "<topic>.<partition>.<id>.seg" per segment. A
// CRC guards each file. Every file is written to a temporary name, fsynced
// and renamed; the directory is fsynced once for a Save's new segments and
// once for its head, so a crash leaves the old or the new checkpoint whole.
//
// A Save and a Load of one partition hold a lock: a mutex in the process
// and, on Unix, an flock on "<topic>.<partition>.lock", so processes (or Dir
// values) sharing the directory fence each other too.
type Dir struct {
	path  string
	mu    sync.Mutex
	locks map[key]*sync.Mutex
}

// NewDir returns a store in path, creating the directory if needed.
func NewDir(path string) (*Dir, error) {
	if err := os.MkdirAll(path, 0o755); err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	return &Dir{path: path, locks: map[key]*sync.Mutex{}}, nil
}

// Durable reports true: Save returns once the files and the directory are
// fsynced.
func (*Dir) Durable() bool { return true }

// prefix starts the name of every file of the partition. It is
// unambiguous: the escaped topic holds no "/", and what follows it in a
// file name is a partition number, a dot and a name holding no other
// number followed by a dot.
func prefix(topic string, partition int32) string {
	return url.PathEscape(topic) + "." + strconv.FormatInt(int64(partition), 10) + "."
}

func (d *Dir) head(topic string, partition int32) string {
	return filepath.Join(d.path, prefix(topic, partition)+"ckpt")
}

func (d *Dir) segment(topic string, partition int32, id uint64) string {
	return filepath.Join(d.path, prefix(topic, partition)+strconv.FormatUint(id, 10)+".seg")
}

// lock takes the partition's lock and returns its release.
func (d *Dir) lock(topic string, partition int32) (func(), error) {
	d.mu.Lock()
	m, ok := d.locks[key{topic, partition}]
	if !ok {
		m = &sync.Mutex{}
		d.locks[key{topic, partition}] = m
	}
	d.mu.Unlock()
	m.Lock()
	unlock, err := lockFile(filepath.Join(d.path, prefix(topic, partition)+"lock"))
	if err != nil {
		m.Unlock()
		return nil, fmt.Errorf("checkpoint: lock %s/%d: %w", topic, partition, err)
	}
	return func() { unlock(); m.Unlock() }, nil
}

const (
	headVersion    = 2 // 1 had no generation and no segments
	segmentVersion = 1
)

// Save writes cp's new segments, then its head, then removes the segments
// the head no longer lists.
func (d *Dir) Save(_ context.Context, cp Checkpoint) error {
	unlock, err := d.lock(cp.Topic, cp.Partition)
	if err != nil {
		return err
	}
	defer unlock()
	old, err := d.readHead(cp.Topic, cp.Partition)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("checkpoint: save %s/%d: %w", cp.Topic, cp.Partition, err)
	}
	if err == nil && Fenced(old, cp) {
		return fmt.Errorf("checkpoint: save %s/%d at %d (generation %d) over %d (generation %d): %w",
			cp.Topic, cp.Partition, cp.Next, cp.Generation, old.Next, old.Generation, ErrFenced)
	}
	held := map[uint64]bool{}
	for _, s := range old.Segments {
		held[s.ID] = true
	}
	var written []uint64
	for _, s := range cp.Segments {
		if s.Data == nil && !held[s.ID] {
			return fmt.Errorf("checkpoint: save %s/%d: segment %d is neither new nor held: %w",
				cp.Topic, cp.Partition, s.ID, clickstream.ErrPermanent)
		}
	}
	for _, s := range cp.Segments {
		if s.Data == nil {
			continue
		}
		if err := d.writeSegment(cp.Topic, cp.Partition, s); err != nil {
			d.remove(cp.Topic, cp.Partition, written, held)
			return fmt.Errorf("checkpoint: save %s/%d: %w", cp.Topic, cp.Partition, err)
		}
		written = append(written, s.ID)
	}
	if len(written) > 0 {
		if err := syncDir(d.path); err != nil {
			d.remove(cp.Topic, cp.Partition, written, held)
			return fmt.Errorf("checkpoint: save %s/%d: %w", cp.Topic, cp.Partition, err)
		}
	}
	if err := writeFile(d.path, d.head(cp.Topic, cp.Partition), encodeHead(cp)); err != nil {
		d.remove(cp.Topic, cp.Partition, written, held)
		return fmt.Errorf("checkpoint: save %s/%d: %w", cp.Topic, cp.Partition, err)
	}
	if err := syncDir(d.path); err != nil {
		return fmt.Errorf("checkpoint: save %s/%d: %w", cp.Topic, cp.Partition, err)
	}
	listed := map[uint64]bool{}
	for _, s := range cp.Segments {
		listed[s.ID] = true
	}
	var dropped []uint64
	for _, s := range old.Segments {
		if !listed[s.ID] {
			dropped = append(dropped, s.ID)
		}
	}
	// A removal lost in a crash leaves a file the next Load removes.
	d.remove(cp.Topic, cp.Partition, dropped, listed)
	return nil
}

// remove deletes the files of the segments ids not in keep, ignoring errors:
// what stays is unlisted, and the next Load removes it.
func (d *Dir) remove(topic string, partition int32, ids []uint64, keep map[uint64]bool) {
	for _, id := range ids {
		if !keep[id] {
			os.Remove(d.segment(topic, partition, id))
		}
	}
}

// A version 2 head and a segment file are the length of their fields, the
// fields, the payload (state or segment data) and a CRC: the payload is
// read in place, not copied.
func encode(fields, payload []byte) []byte {
	b := make([]byte, 0, binary.MaxVarintLen64+len(fields)+len(payload)+4)
	b = snap.AppendUint(b, uint64(len(fields)))
	b = append(append(b, fields...), payload...)
	return binary.LittleEndian.AppendUint32(b, crc32.ChecksumIEEE(b))
}

// decode splits what encode wrote, its CRC checked by readFile.
func decode(b []byte) (fields *snap.Reader, payload []byte) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return snap.NewReader(nil), nil // reading a field fails
	}
	return snap.NewReader(b[k : k+int(n)]), b[k+int(n):]
}

func encodeHead(cp Checkpoint) []byte {
	b := snap.AppendHeader(nil, "checkpoint", headVersion)
	b = snap.AppendString(b, cp.Topic)
	b = snap.AppendInt(b, int64(cp.Partition))
	b = snap.AppendInt(b, cp.Next)
	b = snap.AppendInt(b, cp.Generation)
	b = snap.AppendUint(b, uint64(len(cp.Segments)))
	for _, s := range cp.Segments {
		b = snap.AppendUint(b, s.ID)
	}
	return encode(b, cp.State)
}

func (d *Dir) writeSegment(topic string, partition int32, s Segment) error {
	b := snap.AppendHeader(nil, "segment", segmentVersion)
	b = snap.AppendString(b, topic)
	b = snap.AppendInt(b, int64(partition))
	b = snap.AppendUint(b, s.ID)
	return writeFile(d.path, d.segment(topic, partition, s.ID), encode(b, s.Data))
}

// writeFile writes body to a temporary file in dir, fsyncs it and renames it
// to name. The temporary name starts with "." and name's base, so a Load of
// the partition recognises it as left by a crash.
func writeFile(dir, name string, body []byte) error {
	f, err := os.CreateTemp(dir, "."+filepath.Base(name)+"-*")
	if err != nil {
		return err
	}
	_, err = f.Write(body)
	err = errors.Join(err, f.Sync(), f.Close())
	if err == nil {
		err = os.Rename(f.Name(), name)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

func syncDir(path string) error {
	dir, err := os.Open(path)
	if err != nil {
		return err
	}
	return errors.Join(dir.Sync(), dir.Close())
}

// readFile reads name and checks its CRC; a damaged file is a permanent
// error wrapping snap.ErrCorrupt.
func readFile(name string) ([]byte, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	if len(b) < 4 || crc32.ChecksumIEEE(b[:len(b)-4]) != binary.LittleEndian.Uint32(b[len(b)-4:]) {
		return nil, clickstream.Permanent(fmt.Errorf("%s: %w: bad checksum", filepath.Base(name), snap.ErrCorrupt))
	}
	return b[:len(b)-4], nil
}

// readHead returns the partition's head, its segments without Data.
func (d *Dir) readHead(topic string, partition int32) (Checkpoint, error) {
	b, err := readFile(d.head(topic, partition))
	if errors.Is(err, fs.ErrNotExist) {
		return Checkpoint{}, ErrNotFound
	}
	if err != nil {
		return Checkpoint{}, err
	}
	if v1 := snap.NewReader(b); v1.Header("checkpoint", 1) == 1 && v1.Err() == nil {
		cp := Checkpoint{Topic: v1.String(), Partition: int32(v1.Int()), Next: v1.Int(), State: []byte(v1.String())}
		return cp, checkHead(cp, topic, partition, v1.Done())
	}
	r, state := decode(b)
	r.Header("checkpoint", headVersion)
	cp := Checkpoint{Topic: r.String(), Partition: int32(r.Int()), Next: r.Int(), Generation: r.Int(), State: state}
	if n := r.Len(); r.Err() == nil && n > 0 {
		cp.Segments = make([]Segment, n)
		for i := range cp.Segments {
			cp.Segments[i].ID = r.Uint()
		}
	}
	return cp, checkHead(cp, topic, partition, r.Done())
}

// checkHead returns err, or an error if cp is not of topic/partition, as a
// permanent error.
func checkHead(cp Checkpoint, topic string, partition int32, err error) error {
	if err != nil {
		return clickstream.Permanent(fmt.Errorf("head: %w", err))
	}
	if cp.Topic != topic || cp.Partition != partition {
		return clickstream.Permanent(fmt.Errorf("%w: head of %s/%d", snap.ErrCorrupt, cp.Topic, cp.Partition))
	}
	return nil
}

func (d *Dir) readSegment(topic string, partition int32, id uint64) ([]byte, error) {
	b, err := readFile(d.segment(topic, partition, id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, clickstream.Permanent(fmt.Errorf("segment %d is listed but missing: %w", id, err))
	}
	if err != nil {
		return nil, err
	}
	r, data := decode(b)
	r.Header("segment", segmentVersion)
	t, p, i := r.String(), r.Int(), r.Uint()
	if err := r.Done(); err != nil {
		return nil, clickstream.Permanent(fmt.Errorf("segment %d: %w", id, err))
	}
	if t != topic || p != int64(partition) || i != id {
		return nil, clickstream.Permanent(fmt.Errorf("%w: file of segment %d holds %s/%d segment %d", snap.ErrCorrupt, id, t, p, i))
	}
	return data, nil
}

// Load reads the partition's checkpoint and removes the files of the
// partition it does not list: segments and temporary files a crash left.
func (d *Dir) Load(_ context.Context, topic string, partition int32) (Checkpoint, error) {
	unlock, err := d.lock(topic, partition)
	if err != nil {
		return Checkpoint{}, err
	}
	defer unlock()
	cp, err := d.readHead(topic, partition)
	if err == nil {
		for i, s := range cp.Segments {
			if cp.Segments[i].Data, err = d.readSegment(topic, partition, s.ID); err != nil {
				break
			}
		}
	}
	if err != nil && !errors.Is(err, ErrNotFound) {
		return Checkpoint{}, fmt.Errorf("checkpoint: %s/%d: %w", topic, partition, err)
	}
	if err := d.collect(topic, partition, cp.Segments); err != nil {
		return Checkpoint{}, err
	}
	if err != nil {
		return Checkpoint{}, ErrNotFound
	}
	return cp, nil
}

// collect removes the partition's segment files not in listed and its
// temporary files. The caller holds the partition's lock, so no Save is
// writing them.
func (d *Dir) collect(topic string, partition int32, listed []Segment) error {
	entries, err := os.ReadDir(d.path)
	if err != nil {
		return fmt.Errorf("checkpoint: %s/%d: %w", topic, partition, err)
	}
	pre := prefix(topic, partition)
	var errs []error
	for _, e := range entries {
		name := e.Name()
		if !garbage(name, pre, listed) {
			continue
		}
		if err := os.Remove(filepath.Join(d.path, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("checkpoint: %s/%d: remove unlisted files: %w", topic, partition, err)
	}
	return nil
}

// garbage reports whether name is a file of the partition whose names start
// with pre that a checkpoint listing listed does not need: a segment file
// not listed, or a temporary file ("." + the name of a head or segment file
// + "-" + the random digits of os.CreateTemp).
func garbage(name, pre string, listed []Segment) bool {
	if rest, ok := strings.CutPrefix(name, "."+pre); ok {
		i := strings.LastIndexByte(rest, '-')
		if i < 0 || !digits(rest[i+1:]) {
			return false
		}
		_, seg := segmentID(rest[:i])
		return rest[:i] == "ckpt" || seg
	}
	rest, ok := strings.CutPrefix(name, pre)
	if !ok {
		return false
	}
	id, ok := segmentID(rest)
	return ok && !slices.ContainsFunc(listed, func(s Segment) bool { return s.ID == id })
}

func digits(s string) bool {
	return s != "" && !strings.ContainsFunc(s, func(r rune) bool { return r < '0' || r > '9' })
}

// segmentID parses "<id>.seg".
func segmentID(s string) (uint64, bool) {
	d, ok := strings.CutSuffix(s, ".seg")
	if !ok || !digits(d) {
		return 0, false
	}
	id, err := strconv.ParseUint(d, 10, 64)
	return id, err == nil
}
