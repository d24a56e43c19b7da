package sourcetest_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/clickstreamkit/clickstream/sources"
	"github.com/clickstreamkit/clickstream/sources/sourcetest"
)

// The suite must fail on sources that break the contract. Each broken
// source runs the suite in a child test process, which must fail saying why.
func TestRunCatchesBrokenSources(t *testing.T) {
	if testing.Short() {
		t.Skip("runs child processes")
	}
	tests := []struct{ kind, want string }{
		{"drop", "offset 8 not delivered"},
		{"duplicate", "offsets must increase"},
		{"uncapped", "is offset"},
		{"reuse", "the source changed a value it had returned"},
		{"commitback", "committed offset after a commit of a lower offset"},
		{"closed", "Read after Close"},
		{"ctx", "Read(cancelled context)"},
		{"emptybatch", "empty batch"},
		{"caughtupearly", "after saying it was caught up"},
		{"nocaughtup", "is not CaughtUp"},
		{"partitions", "says the topic has 2 partitions, want 1"},
		{"generation", "the generation went back"},
		{"noend", "no End before ErrEndOfInput"},
	}
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestBrokenSource$", "-test.count=1")
			cmd.Env = append(os.Environ(), "SOURCETEST_BROKEN="+tt.kind)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("the suite passed a source that breaks the contract (%s):\n%s", tt.kind, out)
			}
			if !strings.Contains(string(out), tt.want) {
				t.Errorf("the suite failed without saying %q:\n%s", tt.want, out)
			}
		})
	}
}

func TestBrokenSource(t *testing.T) {
	kind := os.Getenv("SOURCETEST_BROKEN")
	if kind == "" {
		t.Skip("run by TestRunCatchesBrokenSources")
	}
	sourcetest.Run(t, openBroken(kind))
}

// The broken source without a flaw passes: its generation grows, its last
// batch is CaughtUp and a CaughtUp notice follows it, as a consumer group's
// may.
func TestRunPassesNotices(t *testing.T) {
	sourcetest.Run(t, openBroken(""))
}

func openBroken(kind string) sourcetest.Opener {
	return func(tb testing.TB, values [][]byte) sourcetest.Fixture {
		b := &broken{kind: kind, committed: -1}
		if kind == "uncapped" { // every value a slice of one buffer, capacity to its end
			var buf []byte
			var ends []int
			for _, v := range values {
				buf = append(buf, v...)
				ends = append(ends, len(buf))
			}
			start := 0
			for i, end := range ends {
				values[i] = buf[start:end]
				start = end
			}
		}
		b.values = values
		return sourcetest.Fixture{Source: b, Partitions: 1, CaughtUp: true,
			Committed: func(context.Context, string, int32) (int64, error) {
				b.mu.Lock()
				defer b.mu.Unlock()
				return b.committed, nil
			}}
	}
}

// broken is a one-partition source with one flaw, named by kind, or none.
type broken struct {
	kind      string
	values    [][]byte
	next      int
	buf       []byte // reuse: the one buffer of every batch
	noticed   bool   // the CaughtUp and End notice after the last batch is sent
	mu        sync.Mutex
	committed int64
	closed    bool
}

func (s *broken) Read(ctx context.Context) (sources.Batch, error) {
	if err := ctx.Err(); err != nil && s.kind != "ctx" {
		return sources.Batch{}, err
	}
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed && s.kind != "closed" {
		return sources.Batch{}, sources.ErrClosed
	}
	if s.next >= len(s.values) {
		if s.noticed {
			return sources.Batch{}, sources.ErrEndOfInput
		}
		s.noticed = true
		return sources.Batch{Topic: "broken", Partitions: 1, Generation: 2, CaughtUp: len(s.values) > 0, End: s.kind != "noend"}, nil
	}
	if s.kind == "emptybatch" && s.next == 4 {
		s.next++ // and deliver nothing
		return sources.Batch{Topic: "broken", Partitions: 1, Generation: 1}, nil
	}
	end := min(s.next+4, len(s.values))
	b := sources.Batch{Topic: "broken", Partitions: 1, Generation: 1, CaughtUp: end == len(s.values)}
	if s.next >= 8 { // the group rebalanced
		b.Generation = 2
	}
	s.buf = s.buf[:0]
	for i := s.next; i < end; i++ {
		v := s.values[i]
		if s.kind == "reuse" {
			start := len(s.buf)
			s.buf = append(s.buf, v...)
			v = s.buf[start:len(s.buf):len(s.buf)]
		}
		b.Messages = append(b.Messages, sources.Message{Topic: "broken", Offset: int64(i), Value: v})
	}
	switch {
	case s.kind == "drop" && s.next == 8:
		b.Messages = b.Messages[1:]
	case s.kind == "duplicate" && s.next == 8:
		s.kind = "" // once
		return b, nil
	case s.kind == "caughtupearly" && s.next == 4:
		b.CaughtUp = true
	case s.kind == "nocaughtup":
		b.CaughtUp = false
	case s.kind == "partitions" && s.next == 8:
		b.Partitions = 2
	case s.kind == "generation" && s.next == 12:
		b.Generation = 1
	}
	s.next = end
	return b, nil
}

func (s *broken) Commit(_ context.Context, _ string, _ int32, next int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return sources.ErrClosed
	}
	if s.kind == "commitback" {
		s.committed = next
	} else {
		s.committed = max(s.committed, next)
	}
	return nil
}

func (s *broken) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

// The Memory source passes the suite; it is the reference the broken ones
// are told from.
func TestRunMemory(t *testing.T) {
	sourcetest.Run(t, func(tb testing.TB, values [][]byte) sourcetest.Fixture {
		m := sources.NewMemory(5, values...)
		return sourcetest.Fixture{Source: m, Committed: func(context.Context, string, int32) (int64, error) {
			return m.Committed(), nil
		}}
	})
}

func TestValues(t *testing.T) {
	vs := sourcetest.Values(300)
	var empty, big, dups int
	seen := map[string]bool{}
	for _, v := range vs {
		switch {
		case len(v) == 0:
			empty++
		case len(v) == sourcetest.BigValueLen:
			big++
		}
		if seen[string(v)] {
			dups++
		}
		seen[string(v)] = true
		if bytes.IndexByte(v, '\n') >= 0 || bytes.HasSuffix(v, []byte("\r")) {
			t.Errorf("value %q would not survive a JSON-lines file", v)
		}
	}
	if empty != 1 || big != 1 || dups == 0 {
		t.Errorf("Values(300): %d empty, %d big, %d duplicates; want 1, 1, some", empty, big, dups)
	}
}
