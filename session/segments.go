package session

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/clickstreamkit/clickstream/internal/snap"
)

// Segment is a piece of an incremental state: open sessions of some users,
// written once by AppendSegments and identified by an ID that grows with
// each segment made.
type Segment struct {
	ID   uint64
	Data []byte
}

// increments tracks the segments of an incremental state. Each user with
// open sessions is live in exactly one segment, the last one written for it;
// older copies in other segments are stale: superseded by a later segment,
// or holding only sessions final at the watermark of the last Advance, which
// a restore leaves out. A segment is dropped once no user is live in it, and
// its live users are moved to a new segment once fewer than half of the
// users written to it are live, so that the segments hold at most about
// twice the open sessions.
type increments struct {
	dirty []int32   // users changed since the last AppendSegments
	segs  []segInfo // by ID
}

type segInfo struct {
	id      uint64
	live    int
	written int     // users written to it
	users   []int32 // the users that may be live in it (slots may have been reused since)
}

const segmentVersion = 2

// Incremental makes AppendBinary leave the open sessions out, for
// AppendSegments to write as segments of what changed: call it before the
// first Add, or before UnmarshalBinary and RestoreSegments.
func (s *Sessionizer) Incremental() {
	if s.inc == nil {
		s.inc = &increments{}
	}
}

// AppendSegments writes the users changed since the last call, and the live
// users of segments mostly superseded, as new segments of at most about
// maxBytes each with IDs from next, in that order; it returns them with the
// IDs of every segment the state now consists of, in ID order, new ones
// included. Take it right after an Advance, with AppendBinary: together they
// are the state as of that Advance plus the events added since.
func (s *Sessionizer) AppendSegments(next func() uint64, maxBytes int) (fresh []Segment, keep []uint64) {
	inc := s.inc
	var moved []int32
	for i := range inc.segs {
		g := &inc.segs[i]
		if g.live*2 >= g.written {
			continue
		}
		for _, ui := range g.users {
			if u := &s.uslab[ui]; u.seg == g.id && !u.dirty {
				moved = append(moved, ui)
			}
		}
	}
	fresh = s.writeUsers(fresh, inc.dirty, true, next, maxBytes)
	fresh = s.writeUsers(fresh, moved, false, next, maxBytes)
	clear(inc.dirty)
	inc.dirty = inc.dirty[:0]
	inc.segs = slices.DeleteFunc(inc.segs, func(g segInfo) bool { return g.live == 0 })
	keep = make([]uint64, len(inc.segs))
	for i, g := range inc.segs {
		keep[i] = g.id
	}
	return fresh, keep
}

// writeUsers appends segments of the users uis that have open sessions
// (when dirty, only those still marked: a slot is listed again once reused).
func (s *Sessionizer) writeUsers(fresh []Segment, uis []int32, dirty bool, next func() uint64, maxBytes int) []Segment {
	var cur *segInfo
	var data []byte
	flush := func() {
		if cur == nil {
			return
		}
		fresh = append(fresh, Segment{ID: cur.id, Data: data})
		cur, data = nil, nil
	}
	for _, ui := range uis {
		u := &s.uslab[ui]
		if dirty && !u.dirty {
			continue
		}
		u.dirty = false
		if u.openLen() == 0 {
			continue
		}
		if cur == nil {
			s.inc.segs = append(s.inc.segs, segInfo{id: next()})
			cur = &s.inc.segs[len(s.inc.segs)-1]
			data = snap.AppendHeader(nil, "session-segment", segmentVersion)
		}
		s.leave(u)
		var err error
		if data, err = snap.AppendSection(data, func(b []byte) ([]byte, error) { return s.appendUser(b, ui), nil }); err != nil {
			panic(err) // a user's sessions of 4 GiB
		}
		u.seg = cur.id
		cur.live++
		cur.written++
		cur.users = append(cur.users, ui)
		if len(data) >= maxBytes {
			flush()
		}
	}
	flush()
	return fresh
}

// leave takes the user out of the segment it is live in.
func (s *Sessionizer) leave(u *user) {
	if u.seg == 0 {
		return
	}
	if i, ok := slices.BinarySearchFunc(s.inc.segs, u.seg, func(g segInfo, id uint64) int { return cmp.Compare(g.id, id) }); ok {
		s.inc.segs[i].live--
	}
	u.seg = 0
}

// RestoreSegments adds to a state just restored by UnmarshalBinary the
// segments AppendSegments listed last, in ID order: the last copy of each
// user wins, and sessions final at the watermark of the last Advance are left
// out.
func (s *Sessionizer) RestoreSegments(segs ...Segment) error {
	if s.inc == nil {
		return fmt.Errorf("session: %w: segments given to a state that is not incremental", snap.ErrCorrupt)
	}
	type at struct {
		seg   int
		entry []byte
	}
	last := map[string]at{}
	written := make([]int, len(segs)) // entries in each segment, stale ones included
	var order []string                // first appearance, for a deterministic restore
	for i, g := range segs {
		if i > 0 && g.ID <= segs[i-1].ID {
			return fmt.Errorf("session: %w: segment %d after %d", snap.ErrCorrupt, g.ID, segs[i-1].ID)
		}
		r := snap.NewReader(g.Data)
		if v := r.Header("session-segment", segmentVersion); v != segmentVersion && r.Err() == nil {
			return fmt.Errorf("session: %w: segment version %d", snap.ErrCorrupt, v)
		}
		for r.More() {
			e := r.Section()
			written[i]++
			id := snap.NewReader(e).String()
			if _, ok := last[id]; !ok {
				order = append(order, id)
			}
			last[id] = at{i, e}
		}
		if err := r.Done(); err != nil {
			return fmt.Errorf("session: segment %d: %w", g.ID, err)
		}
	}
	infos := make([]segInfo, len(segs))
	for i, g := range segs {
		infos[i].id, infos[i].written = g.ID, written[i]
	}
	for _, id := range order {
		a := last[id]
		r := snap.NewReader(a.entry)
		ui := s.readUser(r)
		if err := r.Done(); err != nil {
			return fmt.Errorf("session: segment %d: %w", segs[a.seg].ID, err)
		}
		if ui >= 0 {
			s.uslab[ui].seg = infos[a.seg].id
			infos[a.seg].live++
			infos[a.seg].users = append(infos[a.seg].users, ui)
		}
	}
	s.inc.segs = infos
	return nil
}
