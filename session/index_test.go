package session

import (
	"fmt"
	"math/rand/v2"
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
