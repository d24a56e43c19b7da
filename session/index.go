package session

import (
	"math/rand/v2"

	"github.com/clickstreamkit/clickstream/internal/fphash"
	"github.com/clickstreamkit/clickstream/internal/fptable"
)

// userIndex maps user ids to their place in the user slab by 128-bit keyed
// fingerprints (two independent 64-bit hashes under a random seed) held
// inline: a lookup reads one slot, where a map of strings also reads the
// key's bytes. Two different ids are taken for one only on a 128-bit
// collision (below 1e-19 for a billion users held at once), as
// dedup.Deduper takes event ids.
type userIndex struct {
	seed uint64
	t    fptable.Table[int32]
}

func newUserIndex() userIndex { return userIndex{seed: rand.Uint64(), t: fptable.New[int32](64)} }

// get returns the user of id, and false when id has none.
func (x *userIndex) get(id string) (int32, bool) {
	s, ok := x.t.Find(fphash.Fingerprint(id, x.seed))
	return s.V, ok
}

// put adds id, which has no user, as user ui.
func (x *userIndex) put(id string, ui int32) {
	if float64(x.t.Len()+1) > 0.75*float64(x.t.Slots()) {
		x.t.Resize(2 * x.t.Slots())
	}
	h1, h2 := fphash.Fingerprint(id, x.seed)
	x.t.Put(h1, h2, ui)
}

// del removes id.
func (x *userIndex) del(id string) { x.t.Delete(fphash.Fingerprint(id, x.seed)) }

// len returns the number of users held.
func (x *userIndex) len() int { return x.t.Len() }
