package sourcetest

import (
	"context"
	"sync"

	"github.com/clickstreamkit/clickstream/sources"
)

// ErrAfter returns a source that delivers src's first n batches (notices
// included), then returns err from every Read, like a connection lost for
// good. Commit and Close go to src.
func ErrAfter(src sources.Source, n int, err error) sources.Source {
	return &errAfter{Source: src, left: n, err: err}
}

type errAfter struct {
	sources.Source
	left int
	err  error
}

func (s *errAfter) Read(ctx context.Context) (sources.Batch, error) {
	if s.left <= 0 {
		return sources.Batch{}, s.err
	}
	b, err := s.Source.Read(ctx)
	if err == nil {
		s.left--
	}
	return b, err
}

// FailCommit returns a source whose first n Commit calls return err without
// reaching src; later calls go to src. Read and Close go to src.
func FailCommit(src sources.Source, n int, err error) sources.Source {
	return &failCommit{Source: src, left: n, err: err}
}

type failCommit struct {
	sources.Source
	mu   sync.Mutex
	left int
	err  error
}

func (s *failCommit) Commit(ctx context.Context, topic string, partition int32, next int64) error {
	s.mu.Lock()
	fail := s.left > 0
	if fail {
		s.left--
	}
	s.mu.Unlock()
	if fail {
		return s.err
	}
	return s.Source.Commit(ctx, topic, partition, next)
}

// OneMessage returns a source that delivers src's batches one message at a
// time, like iotest.OneByteReader. Each piece keeps its batch's fields, except
// CaughtUp, which only the last piece keeps. Notices pass through as they
// are.
func OneMessage(src sources.Source) sources.Source { return &oneMessage{Source: src} }

type oneMessage struct {
	sources.Source
	pending sources.Batch
}

func (s *oneMessage) Read(ctx context.Context) (sources.Batch, error) {
	if err := ctx.Err(); err != nil {
		return sources.Batch{}, err
	}
	if len(s.pending.Messages) == 0 {
		b, err := s.Source.Read(ctx)
		if err != nil || len(b.Messages) == 0 {
			return b, err
		}
		s.pending = b
	}
	one := s.pending
	one.Messages = s.pending.Messages[:1:1]
	s.pending.Messages = s.pending.Messages[1:]
	one.CaughtUp = s.pending.CaughtUp && len(s.pending.Messages) == 0
	one.End = s.pending.End && len(s.pending.Messages) == 0
	return one, nil
}

func (s *oneMessage) Close(ctx context.Context) error {
	s.pending = sources.Batch{}
	return s.Source.Close(ctx)
}

// RevokeAfter returns a source that, once src has delivered n batches,
// delivers a Revoked notice for the partition of the nth, then, as a
// consumer group does between a revocation and the next assignment, blocks
// Read until the notice is released (or Read's context ends), and then
// delivers the rest of src as if the partition had come back.
func RevokeAfter(src sources.Source, n int) *Revoker {
	return &Revoker{Source: src, left: n, released: make(chan struct{})}
}

// Revoker is the source RevokeAfter returns.
type Revoker struct {
	sources.Source
	left     int
	notice   *sources.Batch // to deliver next
	sent     bool
	once     sync.Once
	released chan struct{}
}

var _ sources.Source = (*Revoker)(nil)

func (s *Revoker) Read(ctx context.Context) (sources.Batch, error) {
	if err := ctx.Err(); err != nil {
		return sources.Batch{}, err
	}
	if s.notice != nil {
		b := *s.notice
		s.notice, s.sent = nil, true
		return b, nil
	}
	if s.sent {
		select {
		case <-s.released:
		case <-ctx.Done():
			return sources.Batch{}, ctx.Err()
		}
	}
	b, err := s.Source.Read(ctx)
	if err != nil || b.Revoked || s.sent {
		return b, err
	}
	if s.left--; s.left == 0 {
		s.notice = &sources.Batch{Topic: b.Topic, Partition: b.Partition, Revoked: true,
			Release: func() { s.once.Do(func() { close(s.released) }) }}
	}
	return b, nil
}

// Released reports whether the reader released the revoked partition.
func (s *Revoker) Released() bool {
	select {
	case <-s.released:
		return true
	default:
		return false
	}
}

// Commit is one call to a Recorder's Commit.
type Commit struct {
	Topic     string
	Partition int32
	Next      int64
	Err       error // what the source returned
}

// Record returns a source that keeps every Commit call made through it.
func Record(src sources.Source) *Recorder { return &Recorder{Source: src} }

// Recorder is the source Record returns.
type Recorder struct {
	sources.Source
	mu      sync.Mutex
	commits []Commit
}

var _ sources.Source = (*Recorder)(nil)

func (s *Recorder) Commit(ctx context.Context, topic string, partition int32, next int64) error {
	err := s.Source.Commit(ctx, topic, partition, next)
	s.mu.Lock()
	s.commits = append(s.commits, Commit{topic, partition, next, err})
	s.mu.Unlock()
	return err
}

// Commits returns the Commit calls so far, oldest first.
func (s *Recorder) Commits() []Commit {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Commit(nil), s.commits...)
}
