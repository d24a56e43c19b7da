// Package fptable is an open-addressing hash table keyed by 128-bit
// fingerprints (see fphash.Fingerprint) held inline, with linear probing
// and backward-shift deletion: no tombstones, so deleting in place keeps
// lookups as short as in a table rebuilt without the deleted keys.
package fptable

import "github.com/clickstreamkit/clickstream/internal/fphash"

// Slot is a key and its value; H1 == 0 marks an empty slot.
type Slot[V any] struct {
	H1, H2 uint64
	V      V
}

// Table holds fingerprints and their values. The zero Table is not usable:
// make one with New.
type Table[V any] struct {
	slots []Slot[V]
	used  int
	run   []Slot[V] // DeleteFunc's kept keys of a run, reused
}

// New returns an empty table of n slots (at least one).
func New[V any](n int) Table[V] { return Table[V]{slots: make([]Slot[V], max(n, 1))} }

// Len returns the number of keys held.
func (t *Table[V]) Len() int { return t.used }

// Slots returns the number of slots.
func (t *Table[V]) Slots() int { return len(t.slots) }

// Find returns the slot holding the key, or the empty slot that ends its
// probe, and whether the key is held.
func (t *Table[V]) Find(h1, h2 uint64) (*Slot[V], bool) {
	n := len(t.slots)
	for i := fphash.Slot(h1, n); ; {
		s := &t.slots[i]
		if s.H1 == 0 {
			return s, false
		}
		if s.H1 == h1 && s.H2 == h2 {
			return s, true
		}
		if i++; i == n {
			i = 0
		}
	}
}

// Insert stores the key and v in s, the empty slot Find returned for the
// key with the table unchanged since.
func (t *Table[V]) Insert(s *Slot[V], h1, h2 uint64, v V) {
	*s = Slot[V]{h1, h2, v}
	t.used++
}

// Put stores v under the key, replacing its value if the key is held. The
// table must have an empty slot left.
func (t *Table[V]) Put(h1, h2 uint64, v V) {
	s, ok := t.Find(h1, h2)
	if !ok {
		t.used++
	}
	*s = Slot[V]{h1, h2, v}
}

// Delete removes the key, if held.
func (t *Table[V]) Delete(h1, h2 uint64) {
	n := len(t.slots)
	for i := fphash.Slot(h1, n); t.slots[i].H1 != 0; {
		if s := &t.slots[i]; s.H1 == h1 && s.H2 == h2 {
			t.deleteAt(i)
			return
		}
		if i++; i == n {
			i = 0
		}
	}
}

// deleteAt empties slot i, shifting back the slots that probed past it.
func (t *Table[V]) deleteAt(i int) {
	n, hole := len(t.slots), i
	for j := i; ; {
		if j++; j == n {
			j = 0
		}
		s := t.slots[j]
		if s.H1 == 0 {
			break
		}
		// s may fill the hole unless its home lies cyclically in (hole, j]
		if k := fphash.Slot(s.H1, n); (hole < j && (k <= hole || k > j)) || (hole > j && k <= hole && k > j) {
			t.slots[hole] = s
			hole = j
		}
	}
	t.slots[hole] = Slot[V]{}
	t.used--
}

// DeleteFunc removes every key whose slot drop reports true, in place: one
// pass over the runs of full slots, each emptied and its kept keys put
// back in their order, which places each at or before where it was. The
// pass starts at an empty slot, which no run reaches, so that every slot is
// seen once. The table must have an empty slot.
func (t *Table[V]) DeleteFunc(drop func(*Slot[V]) bool) {
	n := len(t.slots)
	start := 0
	for t.slots[start].H1 != 0 {
		start++
	}
	for k := 1; k < n; k++ {
		i := (start + k) % n
		if t.slots[i].H1 == 0 {
			continue
		}
		kept, r := t.run[:0], 0
		for ; t.slots[i].H1 != 0; i = (i + 1) % n {
			if s := &t.slots[i]; !drop(s) {
				kept = append(kept, *s)
			}
			t.slots[i] = Slot[V]{}
			r++
		}
		k += r // the run and the empty slot after it
		t.used -= r - len(kept)
		for _, s := range kept {
			e, _ := t.Find(s.H1, s.H2)
			*e = s
		}
		t.run = kept[:0]
	}
}

// All calls fn for each slot held, in table order, until fn returns false.
func (t *Table[V]) All(fn func(*Slot[V]) bool) {
	for i := range t.slots {
		if t.slots[i].H1 != 0 && !fn(&t.slots[i]) {
			return
		}
	}
}

// Resize rehashes the keys into n slots (more than Len).
func (t *Table[V]) Resize(n int) {
	old := t.slots
	t.slots, t.used = make([]Slot[V], n), 0
	for i := range old {
		if s := &old[i]; s.H1 != 0 {
			t.Put(s.H1, s.H2, s.V)
		}
	}
}
