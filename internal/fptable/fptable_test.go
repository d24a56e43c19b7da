package fptable

import (
	"math/rand/v2"
	"testing"
)

// TestTableAgainstMap puts, deletes and deletes in bulk random keys against
// a map, in tables kept full enough (up to 0.85) that runs wrap around the
// end and deletions shift long runs back; the hashes are few so that homes
// collide.
func TestTableAgainstMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	type key struct{ h1, h2 uint64 }
	for round := range 200 {
		n := 8 + rng.IntN(120)
		tab := New[int](n)
		ref := map[key]int{}
		keys := make([]key, 3*n)
		for i := range keys {
			keys[i] = key{rng.Uint64() | 1, uint64(i)}
			if i > 0 && rng.IntN(3) == 0 {
				keys[i].h1 = keys[i-1].h1 // same home, other key
			}
		}
		check := func(step int) {
			t.Helper()
			if tab.Len() != len(ref) {
				t.Fatalf("round %d step %d: Len %d, want %d", round, step, tab.Len(), len(ref))
			}
			for _, k := range keys {
				s, ok := tab.Find(k.h1, k.h2)
				want, held := ref[k]
				if ok != held || (held && s.V != want) {
					t.Fatalf("round %d step %d: Find %v = %d, %v; want %d, %v", round, step, k, s.V, ok, want, held)
				}
			}
		}
		for step := range 400 {
			k := keys[rng.IntN(len(keys))]
			switch r := rng.IntN(20); {
			case r == 0:
				cut := rng.IntN(400)
				tab.DeleteFunc(func(s *Slot[int]) bool { return s.V < cut })
				for k, v := range ref {
					if v < cut {
						delete(ref, k)
					}
				}
			case r < 8:
				tab.Delete(k.h1, k.h2)
				delete(ref, k)
			case float64(len(ref)+1) <= 0.85*float64(n):
				if s, ok := tab.Find(k.h1, k.h2); !ok && r%2 == 0 {
					tab.Insert(s, k.h1, k.h2, step)
				} else {
					tab.Put(k.h1, k.h2, step)
				}
				ref[k] = step
			}
			check(step)
		}
		tab.Resize(2 * n)
		check(-1)
		seen := 0
		tab.All(func(s *Slot[int]) bool { seen++; return true })
		if seen != len(ref) {
			t.Fatalf("round %d: All saw %d slots, want %d", round, seen, len(ref))
		}
	}
}
