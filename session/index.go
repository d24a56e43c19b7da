package session

import (
	"math/rand/v2"

	"github.com/clickstreamkit/clickstream/internal/fphash"
)

// userIndex maps user ids to their place in the user slab by 128-bit keyed
// fingerprints (two independent 64-bit hashes under a random seed), held
// inline in an open-addressing table: a lookup reads one slot, where a map
// of strings also reads the key's bytes. Two different ids are taken for
// one only on a 128-bit collision (below 1e-19 for a billion users held at
// once), as dedup.Deduper takes event ids.
type userIndex struct {
	seed  uint64
	slots []userSlot // linear probing; h1 == 0 marks an empty slot
	used  int
}

type userSlot struct {
	h1, h2 uint64
	ui     int32
}

const minIndexSlots = 64

func newUserIndex() userIndex {
	return userIndex{seed: rand.Uint64(), slots: make([]userSlot, minIndexSlots)}
}

func (x *userIndex) hash(id string) (uint64, uint64) {
	return fphash.Fingerprint(id, x.seed)
}

// find returns the slot of the fingerprint, or the empty slot that ends its
// probe, and whether it holds it.
func (x *userIndex) find(h1, h2 uint64) (int, bool) {
	n := len(x.slots)
	for i := fphash.Slot(h1, n); ; {
		s := &x.slots[i]
		if s.h1 == 0 {
			return i, false
		}
		if s.h1 == h1 && s.h2 == h2 {
			return i, true
		}
		if i++; i == n {
			i = 0
		}
	}
}

// get returns the user of id, and false when id has none.
func (x *userIndex) get(id string) (int32, bool) {
	i, ok := x.find(x.hash(id))
	return x.slots[i].ui, ok
}

// put adds id, which has no user, as user ui.
func (x *userIndex) put(id string, ui int32) {
	if float64(x.used+1) > 0.75*float64(len(x.slots)) {
		old := x.slots
		x.slots = make([]userSlot, 2*len(old))
		for _, s := range old {
			if s.h1 != 0 {
				i, _ := x.find(s.h1, s.h2)
				x.slots[i] = s
			}
		}
	}
	h1, h2 := x.hash(id)
	i, _ := x.find(h1, h2)
	x.slots[i] = userSlot{h1, h2, ui}
	x.used++
}

// del removes id, shifting back the slots that probed past it.
func (x *userIndex) del(id string) {
	i, ok := x.find(x.hash(id))
	if !ok {
		return
	}
	n := len(x.slots)
	for j := i; ; {
		if j++; j == n {
			j = 0
		}
		s := x.slots[j]
		if s.h1 == 0 {
			break
		}
		// s may fill the hole at i unless its home lies cyclically in (i, j]
		if k := fphash.Slot(s.h1, n); (i < j && (k <= i || k > j)) || (i > j && k <= i && k > j) {
			x.slots[i] = s
			i = j
		}
	}
	x.slots[i] = userSlot{}
	x.used--
}

// len returns the number of users held.
func (x *userIndex) len() int { return x.used }
