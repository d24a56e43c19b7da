package checkpoint

import (
	"context"
	"errors"
	"sync"
)

// Checkpoint is one partition's state after every message below Next.
type Checkpoint struct {
	Topic     string
	Partition int32
	Next      int64
	State     []byte
}

// ErrNotFound is returned by Load when the partition has no checkpoint.
var ErrNotFound = errors.New("checkpoint: not found")

// Store keeps the latest checkpoint of each partition.
//
// Save replaces the partition's checkpoint atomically and returns nil only
// once it is durable: a crash leaves either the old or the new one whole.
// Load returns the latest saved, or ErrNotFound. Both are safe for concurrent
// use.
type Store interface {
	Load(ctx context.Context, topic string, partition int32) (Checkpoint, error)
	Save(ctx context.Context, cp Checkpoint) error
}

var _ Store = (*Memory)(nil)

// Memory is a Store in memory.
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
	cp.State = append([]byte(nil), cp.State...)
	return cp, nil
}

// Save keeps a copy of cp.
func (m *Memory) Save(_ context.Context, cp Checkpoint) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cps == nil {
		m.cps = map[key]Checkpoint{}
	}
	cp.State = append([]byte(nil), cp.State...)
	m.cps[key{cp.Topic, cp.Partition}] = cp
	return nil
}
