package sources

import (
	"bytes"
	"context"
	"sync"
)

var _ Source = (*Memory)(nil)

// Memory is a finite in-memory source of one partition (topic "memory",
// partition 0; every batch says Partitions 1) whose offsets are the values'
// indexes. It records commits.
type Memory struct {
	mu        sync.Mutex
	values    [][]byte
	next      int
	batch     int
	committed int64
	ended     bool // the End notice went out
	closed    bool
}

// NewMemory returns a source of the given values, read batch messages at a
// time (at least 1).
func NewMemory(batch int, values ...[]byte) *Memory {
	return &Memory{values: values, batch: max(batch, 1)}
}

// Read returns the next batch (the last one marked End, or an End notice
// when there are no values), then ErrEndOfInput.
func (m *Memory) Read(ctx context.Context) (Batch, error) {
	if err := ctx.Err(); err != nil {
		return Batch{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return Batch{}, ErrClosed
	}
	if m.ended {
		return Batch{}, ErrEndOfInput
	}
	end := min(m.next+m.batch, len(m.values))
	m.ended = end == len(m.values)
	b := Batch{Topic: "memory", Partitions: 1, End: m.ended, Messages: make([]Message, 0, end-m.next)}
	for i := m.next; i < end; i++ { // copies: the batch belongs to the caller
		b.Messages = append(b.Messages, Message{Topic: "memory", Offset: int64(i), Value: bytes.Clone(m.values[i])})
	}
	m.next = end
	return b, nil
}

// Commit records next.
func (m *Memory) Commit(_ context.Context, _ string, _ int32, next int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	m.committed = max(m.committed, next)
	return nil
}

// Committed returns the highest offset committed.
func (m *Memory) Committed() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.committed
}

// Close marks the source closed.
func (m *Memory) Close(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}
