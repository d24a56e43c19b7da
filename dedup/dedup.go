package dedup

import (
	"fmt"
	"math/bits"
	"math/rand/v2"

	"github.com/clickstreamkit/clickstream/internal/fphash"
	"github.com/clickstreamkit/clickstream/internal/snap"
)

// Deduper remembers the event ids of accepted events while their event_ts is
// at or above the watermark (SEMANTICS §4).
//
// Ids are held as 128-bit keyed fingerprints (two independent 64-bit hashes
// with a random seed kept in snapshots), 24 bytes a slot, in an
// open-addressing table that is rebuilt without the expired ids whenever it
// fills: memory follows the ids within the watermark horizon. Two different
// ids are taken for one only on a 128-bit collision (below 1e-19 for a
// billion ids held at once).
type Deduper struct {
	seed  uint64
	slots []entry // linear probing; h1 == 0 marks an empty slot
	used  int     // occupied slots, expired ones included
}

type entry struct {
	h1, h2 uint64
	ts     int64
}

const (
	minSlots = 64
	maxLoad  = 0.80 // rebuild when this full
	rebuilt  = 0.55 // load right after a rebuild
)

// New returns an empty Deduper with a random seed.
func New() *Deduper { return NewSeeded(rand.Uint64()) }

// NewSeeded returns an empty Deduper whose fingerprints use seed.
func NewSeeded(seed uint64) *Deduper {
	return &Deduper{seed: seed, slots: make([]entry, minSlots)}
}

func (d *Deduper) hash(id string) (uint64, uint64) {
	return fphash.String(id, d.seed) | 1, fphash.String(id, ^d.seed*0x9e3779b97f4a7c15)
}

// home maps a hash onto [0, len(slots)) without a power-of-two size.
func home(h uint64, n int) int {
	hi, _ := bits.Mul64(h, uint64(n))
	return int(hi)
}

// Seen reports whether an event with this id is a duplicate, given the
// watermark wm as it stood before the event: an earlier accepted event had the
// same id and an event_ts >= wm. If it is not a duplicate, the event is taken
// as accepted and its id is remembered with ts.
func (d *Deduper) Seen(id string, ts, wm int64) bool {
	h1, h2 := d.hash(id)
	n := len(d.slots)
	for i := home(h1, n); ; {
		s := &d.slots[i]
		if s.h1 == 0 {
			if float64(d.used+1) > maxLoad*float64(n) {
				d.rebuild(wm)
				return d.Seen(id, ts, wm)
			}
			*s = entry{h1, h2, ts}
			d.used++
			return false
		}
		if s.h1 == h1 && s.h2 == h2 {
			if s.ts >= wm {
				return true
			}
			s.ts = ts // forgotten id seen again: reuse its slot
			return false
		}
		if i++; i == n {
			i = 0
		}
	}
}

// rebuild drops the ids whose ts < wm and resizes to the live count.
func (d *Deduper) rebuild(wm int64) {
	live := 0
	for _, s := range d.slots {
		if s.h1 != 0 && s.ts >= wm {
			live++
		}
	}
	n := max(minSlots, int(float64(live+1)/rebuilt))
	old := d.slots
	d.slots, d.used = make([]entry, n), 0
	for _, s := range old {
		if s.h1 != 0 && s.ts >= wm {
			d.insert(s)
		}
	}
}

func (d *Deduper) insert(e entry) {
	n := len(d.slots)
	i := home(e.h1, n)
	for d.slots[i].h1 != 0 {
		if i++; i == n {
			i = 0
		}
	}
	d.slots[i] = e
	d.used++
}

// Len returns the number of ids held, expired ones not yet dropped included.
func (d *Deduper) Len() int { return d.used }

// Bytes returns the memory the table holds, in bytes.
func (d *Deduper) Bytes() int { return cap(d.slots) * 24 }

const version = 1

// AppendBinary appends the state (encoding.BinaryAppender).
func (d *Deduper) AppendBinary(dst []byte) ([]byte, error) {
	dst = snap.AppendHeader(dst, "dedup", version)
	dst = snap.AppendUint(dst, d.seed)
	dst = snap.AppendUint(dst, uint64(d.used))
	for _, s := range d.slots {
		if s.h1 != 0 {
			dst = snap.AppendUint(dst, s.h1)
			dst = snap.AppendUint(dst, s.h2)
			dst = snap.AppendInt(dst, s.ts)
		}
	}
	return dst, nil
}

// UnmarshalBinary restores what AppendBinary wrote.
func (d *Deduper) UnmarshalBinary(b []byte) error {
	r := snap.NewReader(b)
	r.Header("dedup", version)
	seed := r.Uint()
	n := r.Len()
	if r.Err() != nil {
		return r.Err()
	}
	nd := &Deduper{seed: seed, slots: make([]entry, max(minSlots, int(float64(n+1)/rebuilt)))}
	for range n {
		e := entry{h1: r.Uint(), h2: r.Uint(), ts: r.Int()}
		if e.h1 == 0 && r.Err() == nil {
			return fmt.Errorf("dedup: %w: empty fingerprint", snap.ErrCorrupt)
		}
		if r.Err() != nil {
			return r.Err()
		}
		nd.insert(e)
	}
	if err := r.Done(); err != nil {
		return err
	}
	*d = *nd
	return nil
}
