package session

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestUserIndexAgainstMap puts, deletes and looks up random ids against a
// map, in tables small enough that probes wrap around the end and deletions
// shift long runs back.
func TestUserIndexAgainstMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for round := range 30 {
		x := newUserIndex()
		ref := map[string]int32{}
		ids := 20 + rng.IntN(400)
		for step := range 5000 {
			id := fmt.Sprint("u", rng.IntN(ids))
			want, held := ref[id]
			switch got, ok := x.get(id); {
			case ok != held || (held && got != want):
				t.Fatalf("round %d step %d: get(%s) = %d, %v; want %d, %v", round, step, id, got, ok, want, held)
			case held && rng.IntN(2) == 0:
				x.del(id)
				delete(ref, id)
			case !held:
				x.put(id, int32(step))
				ref[id] = int32(step)
			}
			if x.len() != len(ref) {
				t.Fatalf("round %d step %d: len %d, want %d", round, step, x.len(), len(ref))
			}
		}
		for id, want := range ref {
			if got, ok := x.get(id); !ok || got != want {
				t.Fatalf("round %d: get(%s) = %d, %v at the end; want %d", round, id, got, ok, want)
			}
		}
	}
}

// TestUserOpenList inserts and deletes open sessions at random places
// against a slice.
func TestUserOpenList(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	var u user
	var ref []int32
	for step := range 20_000 {
		if k := rng.IntN(len(ref) + 1); len(ref) == 0 || rng.IntN(2) == 0 {
			si := int32(rng.IntN(1000))
			u.insertOpen(k, si)
			ref = slices.Insert(ref, k, si)
		} else {
			k = rng.IntN(len(ref))
			u.deleteOpen(k)
			ref = slices.Delete(ref, k, k+1)
		}
		got := make([]int32, u.openLen())
		for k := range got {
			got[k] = u.openAt(k)
		}
		if !slices.Equal(got, ref) {
			t.Fatalf("step %d: open %v, want %v", step, got, ref)
		}
	}
}
