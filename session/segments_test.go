package session_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clickstreamkit/clickstream"
	"github.com/clickstreamkit/clickstream/session"
	"github.com/clickstreamkit/clickstream/window"
)

// segStore keeps an incremental Sessionizer's checkpoints as a store would:
// the head rewritten, the segments written once and deleted once unlisted.
type segStore struct {
	head  []byte
	segs  map[uint64][]byte
	keep  []uint64
	id    uint64
	bytes int // written in all
}

func (st *segStore) save(t *testing.T, s *session.Sessionizer, maxBytes int) {
	t.Helper()
	fresh, keep := s.AppendSegments(func() uint64 { st.id++; return st.id }, maxBytes)
	head, err := s.AppendBinary(nil)
	require.NoError(t, err)
	if st.segs == nil {
		st.segs = map[uint64][]byte{}
	}
	for _, f := range fresh {
		require.NotContains(t, st.segs, f.ID)
		st.segs[f.ID] = f.Data
		st.bytes += len(f.Data)
	}
	require.True(t, slices.IsSorted(keep))
	for id := range st.segs {
		if !slices.Contains(keep, id) {
			delete(st.segs, id)
		}
	}
	require.Len(t, st.segs, len(keep), "every segment listed was written")
	st.head, st.keep = head, keep
}

func (st *segStore) held() int {
	n := 0
	for _, d := range st.segs {
		n += len(d)
	}
	return n
}

func (st *segStore) load(t *testing.T, opts ...session.Option) *session.Sessionizer {
	t.Helper()
	s, err := session.New(opts...)
	require.NoError(t, err)
	s.Incremental()
	require.NoError(t, s.UnmarshalBinary(st.head))
	var segs []session.Segment
	for _, id := range st.keep {
		segs = append(segs, session.Segment{ID: id, Data: st.segs[id]})
	}
	require.NoError(t, s.RestoreSegments(segs...))
	return s
}

// TestSegmentsRestore runs random streams (out of order within a delay,
// merges, returning users) through a Sessionizer checkpointed in segments
// and restarted from them at random points, and through one never
// restarted: both must emit the same sessions, with the same marks and
// window marks, and the segments must stay within a few times a full
// snapshot.
func TestSegmentsRestore(t *testing.T) {
	marker := func(e *clickstream.Event) (uint8, bool) { return uint8(e.Kind()), e.Kind() != clickstream.KindOther }
	for seed := range uint64(40) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			gap := time.Duration(1+rng.IntN(10)) * time.Minute
			opts := []session.Option{session.WithGap(gap), session.WithMarker(marker)}
			ref, err := session.New(opts...)
			require.NoError(t, err)
			inc, err := session.New(opts...)
			require.NoError(t, err)
			inc.Incremental()
			st := &segStore{}
			maxBytes := []int{1, 200, 1 << 20}[rng.IntN(3)]
			delay := int64(rng.IntN(5)) * min
			users := 1 + rng.IntN(60)
			var got, want []session.Record
			collect := func(out *[]session.Record) func(*session.Record) {
				return func(r *session.Record) {
					c := *r
					c.Marks = nil
					if len(r.Marks) > 0 {
						c.Marks = slices.Clone(r.Marks)
					}
					*out = append(*out, c)
				}
			}
			now, restarts, maxHeld, maxFull := int64(0), 0, 0, 0
			for step := range 3000 {
				now += int64(rng.IntN(3000))
				wm := now - delay
				ts := wm + rng.Int64N(delay+1)
				kinds := []string{"page_view", "page_view", "add_to_cart", "purchase", "search"}
				k := kinds[rng.IntN(len(kinds))]
				e := &clickstream.Event{EventID: fmt.Sprint(step), EventType: k,
					TS: ts, UserID: fmt.Sprintf("u%d", rng.IntN(users)), Price: 2, HasPrice: true, Currency: "EUR"}
				for _, s := range []*session.Sessionizer{ref, inc} {
					s.Add(e)
				}
				if rng.IntN(20) == 0 {
					ref.Advance(wm, collect(&want))
					inc.Advance(wm, collect(&got))
					st.save(t, inc, maxBytes)
					full, err := ref.AppendBinary(nil)
					require.NoError(t, err)
					maxHeld, maxFull = max(maxHeld, st.held()), max(maxFull, len(full))
					if rng.IntN(4) == 0 {
						inc = st.load(t, opts...)
						restarts++
					}
				}
			}
			ref.Advance(window.PosInf, collect(&want))
			inc.Advance(window.PosInf, collect(&got))
			assert.Equal(t, want, got, "restarts: %d", restarts)
			assert.LessOrEqual(t, maxHeld, 4*maxFull+1024, "segments held against a full snapshot")
		})
	}
}

// TestSegmentsDropClosed checks that a segment goes once its sessions are
// final, and that a restore leaves out the sessions final at the last
// Advance although a kept segment still holds them.
func TestSegmentsDropClosed(t *testing.T) {
	s, err := session.New(session.WithGap(time.Minute))
	require.NoError(t, err)
	s.Incremental()
	st := &segStore{}
	s.Add(pv("a", 0))
	s.Add(pv("b", 0))
	st.save(t, s, 1<<20)
	require.Len(t, st.keep, 1)
	s.Add(pv("b", 10*min)) // b's second session: b is written again
	assert.Len(t, final(s, 2*min), 2, "a's session closes, and b's first")
	st.save(t, s, 1<<20)
	assert.Len(t, st.keep, 1, "the first segment has no live user left")
	r := st.load(t, session.WithGap(time.Minute))
	assert.Equal(t, 1, r.Open())
	got := final(r, window.PosInf)
	require.Len(t, got, 1)
	assert.Equal(t, int64(10*min), got[0].Start)

	// a user whose only session closed stays in a segment kept for another
	// one: the restore leaves it out
	s.Add(pv("c", 11*min))
	s.Add(pv("d", 13*min))
	st.save(t, s, 1<<20)
	assert.Len(t, final(s, 12*min+1), 2, "b's and c's sessions close, d's stays open")
	st.save(t, s, 1<<20)
	r = st.load(t, session.WithGap(time.Minute))
	assert.Equal(t, 1, r.Open(), "c is left out")
	got = final(r, window.PosInf)
	require.Len(t, got, 1)
	assert.Equal(t, "d", got[0].UserID)
}

// TestSegmentsOfFullSnapshot checks that a state restored from a full
// snapshot into an incremental Sessionizer writes every user in its first
// segments.
func TestSegmentsOfFullSnapshot(t *testing.T) {
	full, err := session.New()
	require.NoError(t, err)
	full.Add(pv("a", 0))
	b, err := full.AppendBinary(nil)
	require.NoError(t, err)
	s, err := session.New()
	require.NoError(t, err)
	s.Incremental()
	require.NoError(t, s.UnmarshalBinary(b))
	st := &segStore{}
	st.save(t, s, 1<<20)
	assert.Len(t, final(st.load(t), window.PosInf), 1)

	assert.ErrorContains(t, full.RestoreSegments(session.Segment{ID: 1}), "not incremental")
	assert.Error(t, s.RestoreSegments(session.Segment{ID: 2, Data: []byte("junk")}))
}

// TestSegmentsCompact checks that segments stay within about twice a full
// snapshot when users are written several times and then stay open a long
// while, also after a restart: the live users of mostly superseded segments
// are moved.
func TestSegmentsCompact(t *testing.T) {
	s, err := session.New(session.WithGap(10 * time.Minute))
	require.NoError(t, err)
	s.Incremental()
	ref, err := session.New(session.WithGap(10 * time.Minute))
	require.NoError(t, err)
	st := &segStore{}
	const perUser, spacing, every = 4, 20_000, 500 // a user starts every 500 ms
	ratio := 0.0
	for ts := int64(0); ts < 40*min; ts += every {
		for k := range int64(perUser) { // the k-th event of the user that started k*spacing ago
			if start := ts - k*spacing; start >= 0 {
				e := pv(fmt.Sprint("u", start), ts)
				s.Add(e)
				ref.Add(e)
			}
		}
		if ts%5000 == 0 {
			final(s, ts)
			final(ref, ts)
			st.save(t, s, 1<<20)
			if ts == 22*min { // a restart: restored segments keep counting their stale copies
				s = st.load(t, session.WithGap(10*time.Minute))
			}
			full, err := ref.AppendBinary(nil)
			require.NoError(t, err)
			if ts > 20*min {
				ratio = max(ratio, float64(st.held())/float64(len(full)))
			}
		}
	}
	t.Logf("segments held at most %.2f times a full snapshot, %d bytes written", ratio, st.bytes)
	assert.Less(t, ratio, 2.5)
}
