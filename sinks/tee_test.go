package sinks_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/clickstreamkit/clickstream"
	"github.com/clickstreamkit/clickstream/kpi"
	"github.com/clickstreamkit/clickstream/sinks"
	"github.com/clickstreamkit/clickstream/sinks/sinktest"
)

var errDown = errors.New("down")

// scripted is a durable sink whose nth Write returns errs[n-1], nil past
// them, after hold (when set) returns.
type scripted struct {
	errs []error
	hold func(ctx context.Context) error

	mu    sync.Mutex
	calls int
	got   [][]*sinks.Batch
}

func (s *scripted) Write(ctx context.Context, bs ...*sinks.Batch) error {
	s.mu.Lock()
	s.calls++
	n := s.calls
	s.got = append(s.got, bs)
	s.mu.Unlock()
	if s.hold != nil {
		if err := s.hold(ctx); err != nil {
			return err
		}
	}
	if n <= len(s.errs) {
		return s.errs[n-1]
	}
	return nil
}

func (s *scripted) Close(context.Context) error { return nil }
func (s *scripted) Durable() bool               { return true }

func (s *scripted) writes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

func down(n int) []error { return slices.Repeat([]error{errDown}, n) }

func TestTeeRetriesEachSink(t *testing.T) {
	permanent := clickstream.Permanent(errors.New("bad batch"))
	cases := []struct {
		name     string
		a, b     []error       // the scripts of the two sinks
		cancelAt time.Duration // cancels the Write's ctx then, when set
		writes   [2]int        // calls each sink gets
		took     time.Duration // in the bubble's time: the back-off waited
		logs     int           // retries logged
		want     []error       // errors.Is targets; nil for success
		not      []error       // what the error must not wrap
	}{
		{name: "both succeed", writes: [2]int{1, 1}},
		{name: "a failing sink is retried alone", a: down(2), writes: [2]int{3, 1},
			took: 300 * time.Millisecond, logs: 2},
		{name: "each sink retried on its own", a: down(1), b: down(3), writes: [2]int{2, 4},
			took: 700 * time.Millisecond, logs: 4},
		{name: "permanent error", a: []error{permanent}, writes: [2]int{1, 1},
			want: []error{clickstream.ErrPermanent}},
		{name: "permanent error stops the other's retries", a: down(20), b: []error{permanent},
			writes: [2]int{1, 1}, logs: -1, want: []error{clickstream.ErrPermanent}, not: []error{errDown, context.Canceled}},
		{name: "cancelled during back-off", a: down(20), cancelAt: 50 * time.Millisecond, writes: [2]int{1, 1},
			took: 50 * time.Millisecond, logs: 1, want: []error{errDown, context.Canceled}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				if c.cancelAt > 0 {
					time.AfterFunc(c.cancelAt, cancel)
				}
				var logged bytes.Buffer
				a, b := &scripted{errs: c.a}, &scripted{errs: c.b}
				tee := sinks.NewTee([]sinks.Sink{a, b}, sinks.WithTeeLogger(slog.New(slog.NewTextHandler(&logged, nil))))
				batches := []*sinks.Batch{{Topic: "t", Partition: 0}, {Topic: "t", Partition: 1}}
				start := time.Now()
				err := tee.Write(ctx, batches...)
				if took := time.Since(start); took != c.took {
					t.Errorf("Write took %v, want %v", took, c.took)
				}
				if c.want == nil && err != nil {
					t.Fatalf("Write = %v, want nil", err)
				}
				for _, w := range c.want {
					if !errors.Is(err, w) {
						t.Errorf("Write = %v, want it to wrap %v", err, w)
					}
				}
				for _, w := range c.not {
					if errors.Is(err, w) {
						t.Errorf("Write = %v, wraps %v", err, w)
					}
				}
				if got := [2]int{a.writes(), b.writes()}; got != c.writes {
					t.Errorf("writes %v, want %v", got, c.writes)
				}
				for i, s := range []*scripted{a, b} {
					for _, got := range s.got {
						if !slices.Equal(got, batches) {
							t.Errorf("sink %d got batches %v, want %v", i, got, batches)
						}
					}
				}
				if n := strings.Count(logged.String(), "msg=retrying op=write"); c.logs >= 0 && n != c.logs {
					t.Errorf("%d retries logged, want %d:\n%s", n, c.logs, logged.String())
				}
				if c.logs > 0 && !strings.Contains(logged.String(), "type=*sinks_test.scripted") {
					t.Errorf("the retries do not name the sink:\n%s", logged.String())
				}
			})
		})
	}
}

// Each sink waits until the other has started: written one after another,
// the first would give up.
func TestTeeWritesConcurrently(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		started := [2]chan struct{}{make(chan struct{}), make(chan struct{})}
		meet := func(me int) func(ctx context.Context) error {
			return func(ctx context.Context) error {
				close(started[me])
				select {
				case <-started[1-me]:
					return nil
				case <-time.After(time.Hour):
					return clickstream.Permanent(errors.New("the other sink was not written meanwhile"))
				}
			}
		}
		a, b := &scripted{hold: meet(0)}, &scripted{hold: meet(1)}
		if err := sinks.Tee(a, b).Write(t.Context(), &sinks.Batch{}); err != nil {
			t.Fatal(err)
		}
	})
}

// A write in progress when ctx ends returns at once with ctx's error.
func TestTeeCancelledDuringWrite(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		stuck := &scripted{hold: func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }}
		ok := &scripted{}
		start := time.Now()
		err := sinks.Tee(stuck, ok).Write(ctx, &sinks.Batch{})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Write = %v, want the deadline", err)
		}
		if took := time.Since(start); took != time.Second {
			t.Errorf("Write took %v, want 1s", took)
		}
		if stuck.writes() != 1 || ok.writes() != 1 {
			t.Errorf("writes %d, %d; want 1, 1", stuck.writes(), ok.writes())
		}
	})
}

type closing struct {
	sinks.SinkFunc
	err     error
	durable bool
	closed  bool
}

func (c *closing) Close(context.Context) error { c.closed = true; return c.err }
func (c *closing) Durable() bool               { return c.durable }

func TestTeeCloseAndDurable(t *testing.T) {
	e1, e2 := errors.New("one"), errors.New("two")
	a, b, c := &closing{err: e1, durable: true}, &closing{durable: true}, &closing{err: e2, durable: true}
	tee := sinks.Tee(a, b, c)
	if !tee.Durable() {
		t.Error("a tee of durable sinks is not durable")
	}
	if err := tee.Close(t.Context()); !errors.Is(err, e1) || !errors.Is(err, e2) {
		t.Errorf("Close = %v, want both errors", err)
	}
	if !a.closed || !b.closed || !c.closed {
		t.Error("a sink was not closed")
	}
	b.durable = false
	if tee.Durable() {
		t.Error("a tee with a sink that is not durable is durable")
	}
}

// The sinks of this package only read the batches a Tee hands them at once
// (the race detector watches this test under -race).
func TestTeeSharesBatches(t *testing.T) {
	detector := func() (*kpi.Detector, error) { return kpi.NewDetector(30, 10, 3) }
	j1, err := sinks.NewJSONL(t.TempDir(), time.Minute, detector)
	if err != nil {
		t.Fatal(err)
	}
	j2, err := sinks.NewJSONL(t.TempDir(), time.Minute, detector)
	if err != nil {
		t.Fatal(err)
	}
	m1, m2 := &sinks.Memory{}, &sinks.Memory{}
	tee := sinks.Tee(m1, j1, m2, j2)
	bs := []*sinks.Batch{sinktest.FullBatch("t", 0, 0), sinktest.FullBatch("t", 1, 0)}
	want := []*sinks.Batch{sinktest.FullBatch("t", 0, 0), sinktest.FullBatch("t", 1, 0)}
	if err := tee.Write(t.Context(), bs...); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(bs, want) {
		t.Error("the sinks changed the batches")
	}
	if m1.Batches() != 2 || m2.Batches() != 2 {
		t.Errorf("Memory sinks got %d and %d batches, want 2", m1.Batches(), m2.Batches())
	}
	if err := tee.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
}
