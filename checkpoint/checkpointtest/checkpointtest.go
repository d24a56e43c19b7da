package checkpointtest

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/clickstreamkit/clickstream/checkpoint"
)

// Run checks that stores from newStore keep the contract of
// checkpoint.Store, each case on a fresh store:
//
//   - Load of a partition never saved returns an error wrapping ErrNotFound;
//   - Save then Load returns the same topic, partition, offset and state
//     (a nil and an empty state are the same);
//   - a later Save replaces the whole checkpoint, also with a shorter state;
//   - topics and partitions are independent, for topics with odd characters
//     ("a/b c", "%2F", non-ASCII) and names that could collide when joined
//     ("a" 12 and "a/1" 2, "a.1" 2);
//   - a state of several MB round-trips;
//   - concurrent Saves of different partitions all land; concurrent Saves of
//     one partition leave one of them whole;
//   - the store copies: changing a slice passed to Save or returned by Load
//     changes nothing stored.
func Run(t *testing.T, newStore func(t *testing.T) checkpoint.Store) {
	cases := []struct {
		name string
		f    func(t *testing.T, s checkpoint.Store)
	}{
		{"NotFound", testNotFound},
		{"RoundTrip", testRoundTrip},
		{"Overwrite", testOverwrite},
		{"Independent", testIndependent},
		{"LargeState", testLarge},
		{"ConcurrentPartitions", testConcurrent},
		{"ConcurrentSamePartition", testConcurrentSame},
		{"Copies", testCopies},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.f(t, newStore(t)) })
	}
}

func save(t *testing.T, s checkpoint.Store, cp checkpoint.Checkpoint) {
	t.Helper()
	if err := s.Save(t.Context(), cp); err != nil {
		t.Fatalf("Save(%q, %d, next %d): %v", cp.Topic, cp.Partition, cp.Next, err)
	}
}

// expect loads topic/partition and compares it with want.
func expect(t *testing.T, s checkpoint.Store, want checkpoint.Checkpoint) {
	t.Helper()
	got, err := s.Load(t.Context(), want.Topic, want.Partition)
	if err != nil {
		t.Fatalf("Load(%q, %d): %v", want.Topic, want.Partition, err)
	}
	if d := compare(got, want); d != "" {
		t.Fatalf("Load(%q, %d): %s", want.Topic, want.Partition, d)
	}
}

func compare(got, want checkpoint.Checkpoint) string {
	switch {
	case got.Topic != want.Topic || got.Partition != want.Partition:
		return fmt.Sprintf("got the checkpoint of %q/%d, want %q/%d", got.Topic, got.Partition, want.Topic, want.Partition)
	case got.Next != want.Next:
		return fmt.Sprintf("next = %d, want %d", got.Next, want.Next)
	case !bytes.Equal(got.State, want.State):
		return fmt.Sprintf("state of %d bytes (%.16x...) differs from the %d saved (%.16x...)",
			len(got.State), got.State, len(want.State), want.State)
	}
	return ""
}

func expectNotFound(t *testing.T, s checkpoint.Store, topic string, partition int32) {
	t.Helper()
	cp, err := s.Load(t.Context(), topic, partition)
	if !errors.Is(err, checkpoint.ErrNotFound) {
		t.Fatalf("Load(%q, %d) = next %d, %v; want ErrNotFound", topic, partition, cp.Next, err)
	}
}

func state(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, uint64(n)))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func testNotFound(t *testing.T, s checkpoint.Store) {
	expectNotFound(t, s, "clicks", 0)
	save(t, s, checkpoint.Checkpoint{Topic: "clicks", Partition: 0, Next: 1, State: []byte("x")})
	expectNotFound(t, s, "clicks", 1)
	expectNotFound(t, s, "clicks2", 0)
}

func testRoundTrip(t *testing.T, s checkpoint.Store) {
	for i, st := range [][]byte{state(1, 1000), {0}, nil, {}} {
		cp := checkpoint.Checkpoint{Topic: "clicks", Partition: int32(i), Next: int64(1000*i + 17), State: st}
		save(t, s, cp)
		expect(t, s, cp)
	}
}

func testOverwrite(t *testing.T, s checkpoint.Store) {
	cps := []checkpoint.Checkpoint{
		{Topic: "clicks", Partition: 3, Next: 10, State: state(1, 4096)},
		{Topic: "clicks", Partition: 3, Next: 25, State: state(2, 100)}, // shorter: nothing of the old may stay
		{Topic: "clicks", Partition: 3, Next: 26, State: nil},
		{Topic: "clicks", Partition: 3, Next: 40, State: state(3, 5000)},
	}
	for _, cp := range cps {
		save(t, s, cp)
		expect(t, s, cp)
	}
}

func testIndependent(t *testing.T, s checkpoint.Store) {
	topics := []string{"clicks", "a/b c", "%2F", "ünïcode-topic", "a", "a/1", "a.1", "clicks.v2"}
	var all []checkpoint.Checkpoint
	for ti, topic := range topics {
		for _, p := range []int32{0, 1, 2, 12} {
			cp := checkpoint.Checkpoint{Topic: topic, Partition: p, Next: int64(100*ti) + int64(p), State: state(uint64(100*ti)+uint64(p), 64)}
			save(t, s, cp)
			all = append(all, cp)
		}
	}
	for _, cp := range all {
		expect(t, s, cp)
	}
	expectNotFound(t, s, "a/b", 0)
	expectNotFound(t, s, "a", 3)
	// Overwriting one leaves the others.
	cp := checkpoint.Checkpoint{Topic: "a/b c", Partition: 1, Next: 9999, State: []byte("new")}
	save(t, s, cp)
	for _, c := range all {
		if c.Topic == cp.Topic && c.Partition == cp.Partition {
			c = cp
		}
		expect(t, s, c)
	}
}

func testLarge(t *testing.T, s checkpoint.Store) {
	cp := checkpoint.Checkpoint{Topic: "clicks", Partition: 0, Next: 1 << 40, State: state(7, 6<<20)}
	save(t, s, cp)
	expect(t, s, cp)
}

func testConcurrent(t *testing.T, s checkpoint.Store) {
	const parts, saves = 12, 4
	errs := make(chan error, parts*saves)
	var wg sync.WaitGroup
	for p := range int32(parts) {
		wg.Go(func() {
			for i := range int64(saves) {
				cp := checkpoint.Checkpoint{Topic: "clicks", Partition: p, Next: i, State: state(uint64(p), 1000+int(i))}
				if err := s.Save(t.Context(), cp); err != nil {
					errs <- fmt.Errorf("Save(%d, next %d): %w", p, i, err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for p := range int32(parts) {
		expect(t, s, checkpoint.Checkpoint{Topic: "clicks", Partition: p, Next: saves - 1, State: state(uint64(p), 1000+saves-1)})
	}
}

func testConcurrentSame(t *testing.T, s checkpoint.Store) {
	const writers = 8
	errs := make(chan error, writers)
	var wg sync.WaitGroup
	for i := range int64(writers) {
		wg.Go(func() {
			cp := checkpoint.Checkpoint{Topic: "clicks", Partition: 5, Next: i, State: state(uint64(i), 2000+int(i))}
			if err := s.Save(t.Context(), cp); err != nil {
				errs <- fmt.Errorf("Save(next %d): %w", i, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got, err := s.Load(t.Context(), "clicks", 5)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if got.Next < 0 || got.Next >= writers {
		t.Fatalf("next = %d, not one of the saved", got.Next)
	}
	if d := compare(got, checkpoint.Checkpoint{Topic: "clicks", Partition: 5, Next: got.Next,
		State: state(uint64(got.Next), 2000+int(got.Next))}); d != "" {
		t.Fatalf("not one of the saved checkpoints whole: %s", d)
	}
}

func testCopies(t *testing.T, s checkpoint.Store) {
	st := []byte("state after offset 41")
	want := checkpoint.Checkpoint{Topic: "clicks", Partition: 0, Next: 42, State: bytes.Clone(st)}
	save(t, s, checkpoint.Checkpoint{Topic: "clicks", Partition: 0, Next: 42, State: st})
	st[0] = 'X' // the caller reuses its buffer
	expect(t, s, want)
	got, err := s.Load(t.Context(), "clicks", 0)
	if err != nil {
		t.Fatal(err)
	}
	got.State[0] = 'Y' // the caller changes what it loaded
	expect(t, s, want)
}
