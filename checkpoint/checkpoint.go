package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/clickstreamkit/clickstream"
)

// Checkpoint is one partition's state after every message below Next.
//
// The state is a small head, State, rewritten whole by each Save, plus
// Segments: immutable pieces written once and shared by consecutive
// checkpoints (the dedup ids of each checkpoint interval), so that a Save
// writes what changed since the last one, not the whole horizon.
type Checkpoint struct {
	Topic     string
	Partition int32
	Next      int64
	// Generation is the consumer-group generation of the writer (0 when
	// the source has none). A Save never replaces a checkpoint of a newer
	// generation or a greater Next: see ErrFenced.
	Generation int64
	State      []byte
	// Segments lists, in order, every segment the state consists of. In a
	// Save, a segment with Data is new and is written; one without Data was
	// written by an earlier Save of the partition and is kept. Load returns
	// every segment with its Data.
	Segments []Segment
}

// Segment is an immutable piece of a partition's state, identified by an
// ID unique within the partition.
type Segment struct {
	ID   uint64
	Data []byte
}

// ErrNotFound is returned by Load when the partition has no checkpoint.
var ErrNotFound = errors.New("checkpoint: not found")

// ErrFenced is returned by Save when the stored checkpoint is newer than the
// one being saved: of a later Generation, or covering more offsets. Its
// writer was replaced (a consumer-group member dropped from the group, two
// instances that do not share a store), and must stop: it is permanent.
var ErrFenced = fmt.Errorf("checkpoint: a newer checkpoint exists (fenced): %w", clickstream.ErrPermanent)

// Store keeps the latest checkpoint of each partition.
//
// Save writes the new segments, then replaces the partition's checkpoint
// atomically, then deletes the segments it no longer lists; it returns nil
// only once the checkpoint is durable: a crash leaves either the old or the
// new one whole. Save fails with ErrFenced, changing nothing, when the
// stored checkpoint has a greater Generation or a greater Next. Load returns
// the latest saved, or ErrNotFound; a corrupt checkpoint is a permanent
// error (clickstream.ErrPermanent). Both are safe for concurrent use.
//
// Durable reports whether a saved checkpoint survives the process: the
// pipeline commits input offsets only with a durable store.
type Store interface {
	Load(ctx context.Context, topic string, partition int32) (Checkpoint, error)
	Save(ctx context.Context, cp Checkpoint) error
	Durable() bool
}

// Fenced reports whether a Save of cp must be refused because stored is
// newer; stores call it, each under its own atomicity.
func Fenced(stored, cp Checkpoint) bool {
	return stored.Generation > cp.Generation || stored.Next > cp.Next
}

var _ Store = (*Memory)(nil)

// Memory is a Store in memory, for tests: it is not durable, so a pipeline
// using it never commits input offsets.
type Memory struct {
	mu  sync.Mutex
	cps map[key]Checkpoint
}

type key struct {
	topic     string
	partition int32
}

// Load returns the saved checkpoint.
func (m *Memory) Load(_ context.Context, topic string, partition int32) (Checkpoint, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	cp, ok := m.cps[key{topic, partition}]
	if !ok {
		return Checkpoint{}, ErrNotFound
	}
	return clone(cp), nil
}

// Save keeps a copy of cp.
func (m *Memory) Save(_ context.Context, cp Checkpoint) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cps == nil {
		m.cps = map[key]Checkpoint{}
	}
	k := key{cp.Topic, cp.Partition}
	old, ok := m.cps[k]
	if ok && Fenced(old, cp) {
		return fmt.Errorf("checkpoint: save %s/%d at %d (generation %d) over %d (generation %d): %w",
			cp.Topic, cp.Partition, cp.Next, cp.Generation, old.Next, old.Generation, ErrFenced)
	}
	segs, err := Resolve(cp.Segments, func(id uint64) ([]byte, bool) {
		i := slices.IndexFunc(old.Segments, func(s Segment) bool { return s.ID == id })
		if i < 0 {
			return nil, false
		}
		return old.Segments[i].Data, true
	})
	if err != nil {
		return fmt.Errorf("checkpoint: save %s/%d: %w", cp.Topic, cp.Partition, err)
	}
	cp.Segments = segs
	m.cps[k] = clone(cp)
	return nil
}

// Durable reports false: a Memory store ends with the process.
func (*Memory) Durable() bool { return false }

// Resolve returns segs with the Data of each segment that has none looked up
// by held; it fails when held lacks one.
func Resolve(segs []Segment, held func(id uint64) ([]byte, bool)) ([]Segment, error) {
	out := make([]Segment, len(segs))
	for i, s := range segs {
		if s.Data == nil {
			d, ok := held(s.ID)
			if !ok {
				return nil, fmt.Errorf("segment %d is neither new nor held: %w", s.ID, clickstream.ErrPermanent)
			}
			s.Data = d
		}
		out[i] = s
	}
	return out, nil
}

func clone(cp Checkpoint) Checkpoint {
	cp.State = append([]byte(nil), cp.State...)
	segs := make([]Segment, len(cp.Segments))
	for i, s := range cp.Segments {
		segs[i] = Segment{ID: s.ID, Data: append([]byte{}, s.Data...)}
	}
	cp.Segments = segs
	return cp
}
