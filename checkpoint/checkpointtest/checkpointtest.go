package checkpointtest

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/clickstreamkit/clickstream"
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
//   - segments round-trip in order, new ones and kept ones, a kept one with
//     the Data it was first saved with;
//   - a Save keeping a segment the stored checkpoint does not hold (never
//     written, or dropped by an earlier Save) fails with a permanent error
//     and changes nothing;
//   - a Save refused because the stored checkpoint has a greater Generation
//     or a greater Next fails with ErrFenced and changes nothing (neither
//     the head nor the segments it would drop); an equal or newer one is
//     accepted;
//   - concurrent Saves of different partitions all land; concurrent Saves of
//     one partition sharing segments leave one of them whole, and those that
//     fail are fenced (which one lands is for each store's own tests: a
//     server without atomic conditional writes cannot promise the newest);
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
		{"Segments", testSegments},
		{"KeptNotHeld", testKeptNotHeld},
		{"Dropped", testDropped},
		{"Fencing", testFencing},
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
	case got.Generation != want.Generation:
		return fmt.Sprintf("generation = %d, want %d", got.Generation, want.Generation)
	case !bytes.Equal(got.State, want.State):
		return fmt.Sprintf("state of %d bytes (%.16x...) differs from the %d saved (%.16x...)",
			len(got.State), got.State, len(want.State), want.State)
	case !slices.Equal(ids(got.Segments), ids(want.Segments)):
		return fmt.Sprintf("segments %v, want %v", ids(got.Segments), ids(want.Segments))
	}
	for i, g := range got.Segments {
		if g.Data == nil {
			return fmt.Sprintf("segment %d without Data", g.ID)
		}
		if w := want.Segments[i]; !bytes.Equal(g.Data, w.Data) {
			return fmt.Sprintf("segment %d of %d bytes (%.16x...) differs from the %d saved (%.16x...)",
				g.ID, len(g.Data), g.Data, len(w.Data), w.Data)
		}
	}
	return ""
}

func ids(segs []checkpoint.Segment) []uint64 {
	out := make([]uint64, len(segs))
	for i, s := range segs {
		out[i] = s.ID
	}
	return out
}

// seg returns a new segment of n bytes derived from id.
func seg(id uint64, n int) checkpoint.Segment {
	return checkpoint.Segment{ID: id, Data: state(1000+id, n)}
}

// kept returns segs as a Save keeps them: without Data.
func kept(segs ...checkpoint.Segment) []checkpoint.Segment {
	out := make([]checkpoint.Segment, len(segs))
	for i, s := range segs {
		out[i] = checkpoint.Segment{ID: s.ID}
	}
	return out
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
	base := []checkpoint.Segment{seg(1, 3000), seg(2, 3000), seg(3, 3000)}
	save(t, s, checkpoint.Checkpoint{Topic: "clicks", Partition: 5, Next: 0, Segments: base})
	// Each writer keeps 2 and 3, drops 1 and adds one of its own.
	want := func(i int64) checkpoint.Checkpoint {
		return checkpoint.Checkpoint{Topic: "clicks", Partition: 5, Next: i, State: state(uint64(i), 2000+int(i)),
			Segments: append(kept(base[1], base[2]), seg(uint64(10+i), 1000+int(i)))}
	}
	errs := make(chan error, writers)
	var wg sync.WaitGroup
	for i := range int64(writers) {
		wg.Go(func() {
			if err := s.Save(t.Context(), want(i)); err != nil && (i == writers-1 || !errors.Is(err, checkpoint.ErrFenced)) {
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
	w := want(got.Next)
	w.Segments = []checkpoint.Segment{base[1], base[2], seg(uint64(10+got.Next), 1000+int(got.Next))}
	if d := compare(got, w); d != "" {
		t.Fatalf("not one of the saved checkpoints whole: %s", d)
	}
}

func testSegments(t *testing.T, s checkpoint.Store) {
	a, b, c, d, e := seg(1, 5000), seg(2, 1), seg(7, 70000), seg(3, 0), seg(1<<63+5, 100)
	steps := []struct {
		save, want checkpoint.Checkpoint
	}{
		{ // all new, an empty one among them
			checkpoint.Checkpoint{Next: 10, State: []byte("s1"), Segments: []checkpoint.Segment{a, b, c, d}},
			checkpoint.Checkpoint{Next: 10, State: []byte("s1"), Segments: []checkpoint.Segment{a, b, c, d}},
		},
		{ // kept in another order, one new in between
			checkpoint.Checkpoint{Next: 20, State: []byte("s2"), Segments: []checkpoint.Segment{{ID: c.ID}, e, {ID: a.ID}}},
			checkpoint.Checkpoint{Next: 20, State: []byte("s2"), Segments: []checkpoint.Segment{c, e, a}},
		},
		{ // a retry of the last Save, which did land: its new segment is held
			checkpoint.Checkpoint{Next: 20, State: []byte("s2"), Segments: []checkpoint.Segment{{ID: c.ID}, e, {ID: a.ID}}},
			checkpoint.Checkpoint{Next: 20, State: []byte("s2"), Segments: []checkpoint.Segment{c, e, a}},
		},
		{ // the same offset again, all kept
			checkpoint.Checkpoint{Next: 20, State: []byte("s3"), Segments: kept(e, c, a)},
			checkpoint.Checkpoint{Next: 20, State: []byte("s3"), Segments: []checkpoint.Segment{e, c, a}},
		},
		{ // none at all
			checkpoint.Checkpoint{Next: 30, State: []byte("s4")},
			checkpoint.Checkpoint{Next: 30, State: []byte("s4")},
		},
	}
	for _, st := range steps {
		st.save.Topic, st.save.Partition = "clicks", 4
		st.want.Topic, st.want.Partition = "clicks", 4
		save(t, s, st.save)
		expect(t, s, st.want)
	}
}

func testKeptNotHeld(t *testing.T, s checkpoint.Store) {
	cp := checkpoint.Checkpoint{Topic: "clicks", Partition: 0, Next: 5, Segments: kept(seg(1, 10))}
	if err := s.Save(t.Context(), cp); !errors.Is(err, clickstream.ErrPermanent) {
		t.Fatalf("first Save keeping a segment never written = %v, want a permanent error", err)
	}
	expectNotFound(t, s, "clicks", 0)
	stored := checkpoint.Checkpoint{Topic: "clicks", Partition: 0, Next: 10, State: []byte("x"), Segments: []checkpoint.Segment{seg(1, 10)}}
	save(t, s, stored)
	cp = checkpoint.Checkpoint{Topic: "clicks", Partition: 0, Next: 20, State: []byte("y"),
		Segments: append(kept(seg(1, 10), seg(2, 10)), seg(3, 10))}
	if err := s.Save(t.Context(), cp); !errors.Is(err, clickstream.ErrPermanent) {
		t.Fatalf("Save keeping a segment never written = %v, want a permanent error", err)
	}
	expect(t, s, stored)
}

func testDropped(t *testing.T, s checkpoint.Store) {
	a, b, c := seg(1, 2000), seg(2, 2000), seg(3, 2000)
	save(t, s, checkpoint.Checkpoint{Topic: "clicks", Partition: 1, Next: 1, Segments: []checkpoint.Segment{a, b}})
	save(t, s, checkpoint.Checkpoint{Topic: "clicks", Partition: 1, Next: 2, Segments: append(kept(b), c)})
	want := checkpoint.Checkpoint{Topic: "clicks", Partition: 1, Next: 2, Segments: []checkpoint.Segment{b, c}}
	expect(t, s, want)
	// a is no longer held: keeping it fails.
	cp := checkpoint.Checkpoint{Topic: "clicks", Partition: 1, Next: 3, Segments: kept(a, b, c)}
	if err := s.Save(t.Context(), cp); !errors.Is(err, clickstream.ErrPermanent) {
		t.Fatalf("Save keeping a dropped segment = %v, want a permanent error", err)
	}
	expect(t, s, want)
	// Dropping all leaves none; segment IDs are unique within a partition
	// only, so another partition may use a's.
	save(t, s, checkpoint.Checkpoint{Topic: "clicks", Partition: 1, Next: 4})
	expect(t, s, checkpoint.Checkpoint{Topic: "clicks", Partition: 1, Next: 4})
	save(t, s, checkpoint.Checkpoint{Topic: "clicks", Partition: 2, Next: 1, Segments: []checkpoint.Segment{a}})
	expect(t, s, checkpoint.Checkpoint{Topic: "clicks", Partition: 2, Next: 1, Segments: []checkpoint.Segment{a}})
}

func testFencing(t *testing.T, s checkpoint.Store) {
	a, b := seg(1, 3000), seg(2, 3000)
	stored := checkpoint.Checkpoint{Topic: "clicks", Partition: 0, Next: 100, Generation: 2, State: []byte("g2"), Segments: []checkpoint.Segment{a, b}}
	save(t, s, stored)
	for i, tc := range []struct {
		name        string
		next, gen   int64
		fenced      bool
		description string
	}{
		{"older generation", 200, 1, true, "a writer of an earlier consumer-group generation"},
		{"smaller next", 99, 2, true, "a writer behind the stored offset"},
		{"newer generation, smaller next", 50, 3, true, "a writer behind the stored offset"},
		{"equal", 100, 2, false, "the same offset re-saved with new state"},
		{"newer generation, same next", 100, 3, false, "a new owner"},
		{"greater next", 150, 3, false, "progress"},
	} {
		// Each drops a, keeps b and adds c: a refused one must not delete a.
		c := seg(uint64(10+i), 500)
		cp := checkpoint.Checkpoint{Topic: "clicks", Partition: 0, Next: tc.next, Generation: tc.gen,
			State: []byte(tc.name), Segments: append(kept(b), c)}
		err := s.Save(t.Context(), cp)
		if !tc.fenced {
			if err != nil {
				t.Fatalf("%s (%s): Save(next %d, generation %d) over (next %d, generation %d) = %v, want nil",
					tc.name, tc.description, tc.next, tc.gen, stored.Next, stored.Generation, err)
			}
			stored = cp
			stored.Segments = []checkpoint.Segment{b, c}
			a, b = b, c
			expect(t, s, stored)
			continue
		}
		if !errors.Is(err, checkpoint.ErrFenced) || !errors.Is(err, clickstream.ErrPermanent) {
			t.Fatalf("%s (%s): Save(next %d, generation %d) over (next %d, generation %d) = %v, want ErrFenced",
				tc.name, tc.description, tc.next, tc.gen, stored.Next, stored.Generation, err)
		}
		expect(t, s, stored)
	}
	// After all refusals, the segments of the stored checkpoint are still
	// held: keeping them works.
	save(t, s, checkpoint.Checkpoint{Topic: "clicks", Partition: 0, Next: 151, Generation: 3, Segments: kept(a, b)})
	expect(t, s, checkpoint.Checkpoint{Topic: "clicks", Partition: 0, Next: 151, Generation: 3, Segments: []checkpoint.Segment{a, b}})
}

func testCopies(t *testing.T, s checkpoint.Store) {
	st, data := []byte("state after offset 41"), []byte("ids of the interval")
	want := checkpoint.Checkpoint{Topic: "clicks", Partition: 0, Next: 42, State: bytes.Clone(st),
		Segments: []checkpoint.Segment{{ID: 1, Data: bytes.Clone(data)}}}
	save(t, s, checkpoint.Checkpoint{Topic: "clicks", Partition: 0, Next: 42, State: st,
		Segments: []checkpoint.Segment{{ID: 1, Data: data}}})
	st[0], data[0] = 'X', 'X' // the caller reuses its buffers
	expect(t, s, want)
	got, err := s.Load(t.Context(), "clicks", 0)
	if err != nil {
		t.Fatal(err)
	}
	got.State[0], got.Segments[0].Data[0] = 'Y', 'Y' // the caller changes what it loaded
	expect(t, s, want)
}
