package dedup

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"

	"github.com/clickstreamkit/clickstream/internal/fphash"
	"github.com/clickstreamkit/clickstream/internal/fptable"
	"github.com/clickstreamkit/clickstream/internal/snap"
)

// Deduper remembers the event ids of accepted events while their event_ts is
// at or above the watermark (SEMANTICS §4).
//
// Ids are held as 128-bit keyed fingerprints (two independent 64-bit hashes
// with a random seed kept in snapshots), 24 bytes a slot, in an
// open-addressing table that drops the expired ids in place whenever it
// fills, and is resized when what is left makes it too full or too empty:
// memory follows the ids within the watermark horizon. Two different
// ids are taken for one only on a 128-bit collision (below 1e-19 for a
// billion ids held at once).
//
// Snapshots come two ways: whole (AppendBinary), or incremental for
// checkpoints (AppendFresh writes the ids accepted since its last call as a
// segment; Restore rebuilds from the segments still within the horizon).
// Either leaves out expired ids.
type Deduper struct {
	seed  uint64
	t     fptable.Table[int64] // fingerprint -> event_ts
	wm    int64                // the newest watermark Seen was given
	track bool                 // keep fresh, for AppendFresh
	// fresh holds the ids accepted since the last checkpoint, in order;
	// the first written of them are in its segments already. Its array
	// serves the next interval too.
	fresh   []entry
	written int
}

// entry is an id's fingerprint and its event_ts (V).
type entry = fptable.Slot[int64]

const (
	minSlots = 64
	maxLoad  = 0.80 // drop the expired ids when this full
	resized  = 0.55 // the load a resize leaves
	// after dropping the expired ids, the table is resized unless its load
	// is within [minKept, maxKept]
	minKept, maxKept = 0.45, 0.65
)

// New returns an empty Deduper with a random seed.
func New() *Deduper { return NewSeeded(rand.Uint64()) }

// NewSeeded returns an empty Deduper whose fingerprints use seed.
func NewSeeded(seed uint64) *Deduper {
	return &Deduper{seed: seed, t: fptable.New[int64](minSlots), wm: math.MinInt64}
}

func (d *Deduper) hash(id string) (uint64, uint64) {
	return fphash.Fingerprint(id, d.seed)
}

// Seen reports whether an event with this id is a duplicate, given the
// watermark wm as it stood before the event: an earlier accepted event had the
// same id and an event_ts >= wm. If it is not a duplicate, the event is taken
// as accepted and its id is remembered with ts.
func (d *Deduper) Seen(id string, ts, wm int64) bool {
	h1, h2 := d.hash(id)
	return d.seen(h1, h2, ts, wm)
}

// SeenWith is Seen for the key (id, n), such as a user in the window
// starting at n: its fingerprints are those of id under a seed mixed with n.
func (d *Deduper) SeenWith(id string, n, ts, wm int64) bool {
	k := uint64(n) * 0x9e3779b97f4a7c15
	h1 := fphash.String(id, d.seed^k) | 1
	h2 := fphash.String(id, (^d.seed*0x9e3779b97f4a7c15)^bits.RotateLeft64(k, 32))
	return d.seen(h1, h2, ts, wm)
}

func (d *Deduper) seen(h1, h2 uint64, ts, wm int64) bool {
	d.wm = max(d.wm, wm)
	s, ok := d.t.Find(h1, h2)
	switch {
	case ok && s.V >= wm:
		return true
	case ok:
		s.V = ts // forgotten id seen again: reuse its slot
	default:
		if float64(d.t.Len()+1) > maxLoad*float64(d.t.Slots()) {
			d.expire(wm)
			s, _ = d.t.Find(h1, h2)
		}
		d.t.Insert(s, h1, h2, ts)
	}
	if d.track {
		d.fresh = append(d.fresh, *s)
	}
	return false
}

// expire drops the ids whose ts < wm, and resizes the table if that leaves
// it too full or too empty.
func (d *Deduper) expire(wm int64) {
	d.t.DeleteFunc(func(s *entry) bool { return s.V < wm })
	if load := float64(d.t.Len()+1) / float64(d.t.Slots()); load > maxKept || (load < minKept && d.t.Slots() > minSlots) {
		d.t.Resize(max(minSlots, int(float64(d.t.Len()+1)/resized)))
	}
}

// Len returns the number of ids held, expired ones not yet dropped included.
func (d *Deduper) Len() int { return d.t.Len() }

// Bytes returns the memory the table holds, in bytes.
func (d *Deduper) Bytes() int { return d.t.Slots() * 24 }

const version = 2

// AppendBinary appends the state (encoding.BinaryAppender): the seed and the
// ids not yet expired.
func (d *Deduper) AppendBinary(dst []byte) ([]byte, error) {
	dst = snap.AppendHeader(dst, "dedup", version)
	dst = snap.AppendUint(dst, d.seed)
	dst = snap.AppendInt(dst, d.wm)
	live := 0
	d.t.All(func(s *entry) bool {
		if s.V >= d.wm {
			live++
		}
		return true
	})
	dst = snap.AppendUint(dst, uint64(live))
	d.t.All(func(s *entry) bool {
		if s.V >= d.wm {
			dst = appendEntry(dst, *s, 0)
		}
		return true
	})
	return dst, nil
}

// UnmarshalBinary restores what AppendBinary wrote.
func (d *Deduper) UnmarshalBinary(b []byte) error {
	r := snap.NewReader(b)
	if v := r.Header("dedup", version); v != version && r.Err() == nil {
		return fmt.Errorf("dedup: %w: snapshot version %d", snap.ErrCorrupt, v)
	}
	seed, wm := r.Uint(), r.Int()
	es, err := readEntries(r, 0)
	if err != nil {
		return err
	}
	*d = *build(seed, wm, es)
	return nil
}

// Segments: the ids accepted during one checkpoint interval, each entry two
// fixed 64-bit fingerprints and event_ts as a varint from the segment's
// base, about 19 bytes an id.
const segmentVersion = 1

// Incremental makes the Deduper keep the ids it accepts from now on until
// AppendFresh writes them out: call it before the first Seen to checkpoint
// incrementally.
func (d *Deduper) Incremental() { d.track = true }

// AppendFresh appends to dst a segment of the ids accepted since the last
// call (at most limit of them, oldest first) that are not expired at wm, and
// returns it with the newest event_ts among them and whether ids remain for
// another segment. It appends nothing when none are left. Restore rebuilds
// a Deduper from the segments whose newest event_ts is still >= wm.
func (d *Deduper) AppendFresh(dst []byte, wm int64, limit int) (seg []byte, newest int64, more bool) {
	kept := d.fresh[:d.written]
	for _, e := range d.fresh[d.written:] {
		if e.V >= wm {
			kept = append(kept, e)
		}
	}
	if len(kept) == d.written { // nothing left (an idle interval): let the array go
		d.fresh, d.written = nil, 0
		return dst, math.MinInt64, false
	}
	take := kept[d.written:min(d.written+max(limit, 1), len(kept))]
	newest, base := take[0].V, take[0].V
	for _, e := range take[1:] {
		newest, base = max(newest, e.V), min(base, e.V)
	}
	dst = snap.AppendHeader(dst, "dedup-segment", segmentVersion)
	dst = snap.AppendUint(dst, d.seed)
	dst = snap.AppendInt(dst, base)
	dst = snap.AppendUint(dst, uint64(len(take)))
	for _, e := range take {
		dst = appendEntry(dst, e, base)
	}
	d.fresh, d.written = kept, d.written+len(take)
	if d.written == len(d.fresh) { // all written: the next interval starts over
		d.fresh, d.written = d.fresh[:0], 0
		return dst, newest, false
	}
	return dst, newest, true
}

// Restore replaces the state with the ids of segments (made by AppendFresh
// of Dedupers of one seed) whose event_ts is >= wm.
func (d *Deduper) Restore(wm int64, segments ...[]byte) error {
	seed := d.seed
	var es []entry
	for i, seg := range segments {
		r := snap.NewReader(seg)
		if v := r.Header("dedup-segment", segmentVersion); v != segmentVersion && r.Err() == nil {
			return fmt.Errorf("dedup: %w: segment version %d", snap.ErrCorrupt, v)
		}
		s, base := r.Uint(), r.Int()
		if i == 0 {
			seed = s
		} else if s != seed && r.Err() == nil {
			return fmt.Errorf("dedup: %w: segments of two seeds", snap.ErrCorrupt)
		}
		part, err := readEntries(r, base)
		if err != nil {
			return err
		}
		for _, e := range part {
			if e.V >= wm {
				es = append(es, e)
			}
		}
	}
	track := d.track
	*d = *build(seed, wm, es)
	d.track = track
	return nil
}

func appendEntry(dst []byte, e entry, base int64) []byte {
	dst = binary.LittleEndian.AppendUint64(dst, e.H1)
	dst = binary.LittleEndian.AppendUint64(dst, e.H2)
	return snap.AppendInt(dst, e.V-base)
}

func readEntries(r *snap.Reader, base int64) ([]entry, error) {
	n := r.Len()
	es := make([]entry, 0, n)
	for range n {
		e := entry{H1: r.Fixed64(), H2: r.Fixed64(), V: base + r.Int()}
		if r.Err() != nil {
			return nil, r.Err()
		}
		if e.H1 == 0 {
			return nil, fmt.Errorf("dedup: %w: empty fingerprint", snap.ErrCorrupt)
		}
		es = append(es, e)
	}
	return es, r.Done()
}

// build returns a Deduper holding es, the later entry of a fingerprint
// winning (a forgotten id accepted again).
func build(seed uint64, wm int64, es []entry) *Deduper {
	d := &Deduper{seed: seed, t: fptable.New[int64](max(minSlots, int(float64(len(es)+1)/resized))), wm: wm}
	for _, e := range es {
		d.t.Put(e.H1, e.H2, e.V)
	}
	return d
}
