package kpi

import (
	"math"

	"github.com/clickstreamkit/clickstream/dedup"
)

// Users tells whether an event is its user's first in a window, for a
// window's sessions (SEMANTICS §6): with session_gap >= window_size, a user's
// events in one window belong to one session, so the window's sessions are
// its distinct users. One Users serves every window of a partition, hopping
// ones too (an event counts once in each window it falls in), and forgets a
// window once the watermark passes its end. Create it with NewUsers.
//
// It holds (user, window) pairs as a dedup.Deduper holds ids, as 128-bit
// fingerprints, and checkpoints them the same way: whole, or incrementally
// (Incremental, AppendFresh, Restore).
type Users struct {
	d  *dedup.Deduper
	wm int64
}

// NewUsers returns an empty Users.
func NewUsers() *Users { return &Users{d: dedup.New(), wm: math.MinInt64} }

// First reports whether user has no earlier event in the window [start,
// end), and counts it there.
func (u *Users) First(user string, start, end int64) bool {
	return !u.d.SeenWith(user, start, end-1, u.wm)
}

// Advance tells u the watermark: the windows that end at or before wm are
// final, and their users are forgotten.
func (u *Users) Advance(wm int64) { u.wm = max(u.wm, wm) }

// Incremental makes u keep the pairs it counts from now on for AppendFresh:
// call it before the first First.
func (u *Users) Incremental() { u.d.Incremental() }

// AppendFresh appends a segment of the pairs counted since its last call,
// at most limit of them, as dedup.Deduper.AppendFresh does: the segment is
// needed while the watermark is below newest.
func (u *Users) AppendFresh(dst []byte, limit int) (seg []byte, newest int64, more bool) {
	return u.d.AppendFresh(dst, u.wm, limit)
}

// Restore replaces the state with the pairs of segments whose window is still
// open at wm.
func (u *Users) Restore(wm int64, segments ...[]byte) error {
	u.wm = wm
	return u.d.Restore(wm, segments...)
}
