package session

import (
	"cmp"
	"errors"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/clickstreamkit/clickstream"
	"github.com/clickstreamkit/clickstream/internal/snap"
	"github.com/clickstreamkit/clickstream/window"
)

// DefaultGap is SEMANTICS §5's session_gap.
const DefaultGap = 30 * time.Minute

// Record is a final session (SEMANTICS §5).
type Record struct {
	UserID     string
	Start, End int64 // first and last event_ts, Unix millis
	DurationMs int64
	Events     int64
	PageViews  int64
	AddToCarts int64
	Purchases  int64
	Revenue    float64
	Bounced    bool
	Converted  bool
	// Label is the Labeler's value of the session's earliest event (ties:
	// the first to arrive), "" without a Labeler.
	Label string
	// Marks are the session's events that the Marker tagged, by event time
	// (ties in arrival order). The slice is reused after the emit callback.
	Marks []Mark
}

// Open is an open session as Changes reports it.
type Open struct {
	Start int64  // first event_ts so far
	Label string // as in Record
	Marks []Mark // as in Record, valid during the call
	// New is how many of Marks, at the end, came since the slot's last
	// report, each later than every mark before it; -1 when the last
	// report no longer holds (a new session in the slot, a merge, a mark
	// out of order or at the same time as another).
	New int
}

// SessionID returns user_id + "/" + start as RFC 3339 UTC millis. It is
// built on demand so that closing a session allocates nothing.
func (r *Record) SessionID() string {
	return string(clickstream.AppendTime(append([]byte(r.UserID), '/'), r.Start))
}

// Mark is a tagged event kept for later analysis (the funnel's steps).
type Mark struct {
	TS  int64
	Tag uint8
}

// Marker picks the events a session keeps as marks, and their tag.
type Marker func(e *clickstream.Event) (tag uint8, keep bool)

// Labeler gives an event's label; a session is labelled by its earliest
// event.
type Labeler func(e *clickstream.Event) string

// Sessionizer groups accepted events into sessions. Create it with New.
type Sessionizer struct {
	config
	labels   map[string]string // interned labels
	users    userIndex
	uslab    []user
	ufree    []int32
	sslab    []sess
	sfree    []int32
	heap     []heapItem      // open sessions, min (end, start, user id) first
	byMinute map[int64]int32 // open sessions by start minute
	idle     []idleUser      // users without open sessions, by idleSince, from idleAt on
	idleAt   int
	rec      Record
	advanced int64 // the watermark of the last Advance
	inc      *increments
	changes  *[]int32 // sessions changed since the last Changes, when tracked
}

type user struct {
	id string
	// the open sessions, by start: the first (+1, 0 none) inline, as most
	// users have one, then the rest
	first     int32
	dirty     bool // changed since the last AppendSegments
	rest      []int32
	idleSince int64  // when the last session closed, while none is open
	seg       uint64 // the segment holding the user's open sessions, 0 none
}

// openLen returns the number of the user's open sessions.
func (u *user) openLen() int {
	if u.first == 0 {
		return 0
	}
	return 1 + len(u.rest)
}

// openAt returns the user's k-th open session by start.
func (u *user) openAt(k int) int32 {
	if k == 0 {
		return u.first - 1
	}
	return u.rest[k-1]
}

// insertOpen puts session si at place k of the open sessions.
func (u *user) insertOpen(k int, si int32) {
	switch {
	case u.first == 0:
		u.first = si + 1
	case k == 0:
		u.rest = slices.Insert(u.rest, 0, u.first-1)
		u.first = si + 1
	default:
		u.rest = slices.Insert(u.rest, k-1, si)
	}
}

// deleteOpen removes the k-th open session.
func (u *user) deleteOpen(k int) {
	switch {
	case k > 0:
		u.rest = slices.Delete(u.rest, k-1, k)
	case len(u.rest) == 0:
		u.first = 0
	default:
		u.first = u.rest[0] + 1
		u.rest = slices.Delete(u.rest, 0, 1)
	}
}

// heapItem is an open session in the heap, under the end and start it had
// when last placed: the end may have grown since (the heap is fixed lazily,
// when the session could be final by its old end), the start is kept up to
// date.
type heapItem struct {
	end, start int64
	si         int32
}

type idleUser struct {
	user  int32
	since int64
}

type sess struct {
	start, end           int64
	events, pv, atc, pur int64
	revenue              float64
	lastMark             int64 // the latest event_ts among marks, while there are any
	marks                []Mark
	label                string
	user                 int32
	reported             int32 // marks at the last Changes report, -1 when that report no longer holds
	heapAt               int32
	open                 bool    // not final, not merged into another
	changed              bool    // listed in changes
	_                    [8]byte // 128 bytes: in a slab of whole pages, one aligned pair of cache lines
}

// config is what the options set.
type config struct {
	gap     int64
	revenue Revenue
	marker  Marker
	labeler Labeler
}

// Option configures a Sessionizer.
type Option func(*config)

// WithGap sets session_gap. Default 30m.
func WithGap(d time.Duration) Option { return func(c *config) { c.gap = d.Milliseconds() } }

// Revenue values a purchase in a session's revenue, and reports whether it
// counts there at all.
type Revenue func(e *clickstream.Event) (float64, bool)

// WithRevenue sets how a purchase counts in revenue (SEMANTICS §6's rule is
// clickstream.Currencies.Revenue). Default: its price in EUR, nothing in
// another currency.
func WithRevenue(r Revenue) Option { return func(c *config) { c.revenue = r } }

// WithMarker keeps tagged events in each session. Default: none.
func WithMarker(m Marker) Option { return func(c *config) { c.marker = m } }

// WithLabeler labels each session by its earliest event (Record.Label).
// Default: none.
func WithLabeler(l Labeler) Option { return func(c *config) { c.labeler = l } }

// ErrBadGap is returned for a gap that is not positive.
var ErrBadGap = errors.New("session: gap must be positive")

// New returns an empty Sessionizer.
func New(opts ...Option) (*Sessionizer, error) {
	c := config{gap: DefaultGap.Milliseconds(), revenue: clickstream.Currencies{Base: clickstream.DefaultBaseCurrency}.Revenue}
	for _, o := range opts {
		o(&c)
	}
	if c.gap <= 0 {
		return nil, ErrBadGap
	}
	if c.revenue == nil {
		return nil, errors.New("session: no revenue function")
	}
	return &Sessionizer{config: c, users: newUserIndex(), byMinute: map[int64]int32{}, advanced: window.NegInf,
		labels: map[string]string{}}, nil
}

// Add puts an accepted event into its user's sessions. Late events must not
// be added.
func (s *Sessionizer) Add(e *clickstream.Event) {
	ui, ok := s.users.get(e.UserID)
	if !ok {
		ui = s.newUser(e.UserID)
	}
	u := &s.uslab[ui]
	if s.inc != nil && !u.dirty {
		u.dirty = true
		s.inc.dirty = append(s.inc.dirty, ui)
	}
	target := int32(-1)
	for k := 0; k < u.openLen(); {
		si := u.openAt(k)
		ss := &s.sslab[si]
		if e.TS <= ss.start-s.gap || e.TS >= ss.end+s.gap {
			k++
			continue
		}
		if target < 0 {
			target = si
			k++
			continue
		}
		s.merge(target, si) // the event bridges two sessions
		u.deleteOpen(k)
	}
	fresh := target < 0
	if fresh {
		target = s.newSession(ui, e.TS)
		u.insertOpen(sort.Search(u.openLen(), func(k int) bool { return s.sslab[u.openAt(k)].start >= e.TS }), target)
	}
	ss := &s.sslab[target]
	earliest := fresh || e.TS < ss.start
	if e.TS < ss.start {
		s.moveStart(ss, e.TS)
	}
	if earliest && s.labeler != nil {
		ss.label = s.label(e)
	}
	ss.end = max(ss.end, e.TS) // the heap catches up in Advance
	if earliest {
		s.touch(target) // a new start (and label) to report
	}
	ss.events++
	switch e.Kind() {
	case clickstream.KindPageView:
		ss.pv++
	case clickstream.KindAddToCart:
		ss.atc++
	case clickstream.KindPurchase:
		ss.pur++
		if r, ok := s.revenue(e); ok {
			ss.revenue += r
		}
	}
	if s.marker != nil {
		if tag, keep := s.marker(e); keep {
			ss.addMark(Mark{TS: e.TS, Tag: tag})
			s.touch(target)
		}
	}
}

// addMark appends m to the marks; one not after every mark so far voids
// the last report, so that the marks are matched afresh.
func (ss *sess) addMark(m Mark) {
	if len(ss.marks) > 0 && m.TS <= ss.lastMark {
		ss.reported = -1
	} else {
		ss.lastMark = m.TS
	}
	ss.marks = append(ss.marks, m)
}

// maxLabels bounds the interned labels.
const maxLabels = 4096

// label returns e's label, interned: the event's strings pin its whole
// message.
func (s *Sessionizer) label(e *clickstream.Event) string { return s.intern(s.labeler(e)) }

func (s *Sessionizer) intern(l string) string {
	if v, ok := s.labels[l]; ok {
		return v
	}
	l = strings.Clone(l)
	if len(s.labels) < maxLabels {
		s.labels[l] = l
	}
	return l
}

func minuteOf(ts int64) int64 {
	const m = 60_000
	q := ts / m
	if ts%m != 0 && ts < 0 {
		q--
	}
	return q * m
}

// moveStart moves an open session's start earlier.
func (s *Sessionizer) moveStart(ss *sess, start int64) {
	s.countMinute(ss.start, -1)
	ss.start = start
	s.countMinute(start, 1)
	s.heap[ss.heapAt].start = start
	s.up(int(ss.heapAt))
}

func (s *Sessionizer) countMinute(start int64, d int32) {
	m := minuteOf(start)
	if n := s.byMinute[m] + d; n == 0 {
		delete(s.byMinute, m)
	} else {
		s.byMinute[m] = n
	}
}

// OpenInMinute reports whether an open session starts in the minute
// [m, m+1min); m is minute-aligned.
func (s *Sessionizer) OpenInMinute(m int64) bool { return s.byMinute[m] > 0 }

// OldestOpenMinute returns the start minute of the oldest open session, and
// false when none is open.
func (s *Sessionizer) OldestOpenMinute() (int64, bool) {
	oldest, ok := int64(0), false
	for m := range s.byMinute {
		if !ok || m < oldest {
			oldest, ok = m, true
		}
	}
	return oldest, ok
}

// TrackChanges makes the Sessionizer note every session that changes what
// Changes reports (a new start, a mark added, a merge, its end): call it before the first Add,
// or before UnmarshalBinary and RestoreSegments, which then report every
// restored session.
func (s *Sessionizer) TrackChanges() {
	if s.changes == nil {
		s.changes = new([]int32)
	}
}

// Changes calls fn for each session changed since the last call (after
// TrackChanges), in no particular order. slot names the session until it
// is reported not open (o nil): final or merged into another; then the
// slot may name a new session. o is valid during the call.
func (s *Sessionizer) Changes(fn func(slot int32, o *Open)) {
	if s.changes == nil {
		return
	}
	var o Open
	for _, si := range *s.changes {
		ss := &s.sslab[si]
		ss.changed = false
		if !ss.open {
			fn(si, nil)
			continue
		}
		o = Open{Start: ss.start, Label: ss.label, Marks: ss.marks, New: -1}
		if ss.reported >= 0 {
			o.New = len(ss.marks) - int(ss.reported)
		} else {
			sortMarks(ss.marks)
		}
		ss.reported = int32(len(ss.marks))
		fn(si, &o)
	}
	*s.changes = (*s.changes)[:0]
}

// touch lists session si in changes, when tracked.
func (s *Sessionizer) touch(si int32) {
	if ss := &s.sslab[si]; s.changes != nil && !ss.changed {
		ss.changed = true
		*s.changes = append(*s.changes, si)
	}
}

func (s *Sessionizer) newUser(id string) int32 {
	var ui int32
	if n := len(s.ufree); n > 0 {
		ui, s.ufree = s.ufree[n-1], s.ufree[:n-1]
	} else {
		ui = int32(len(s.uslab))
		s.uslab = append(s.uslab, user{})
	}
	id = strings.Clone(id) // the event's strings pin its whole message
	s.uslab[ui].id = id
	s.users.put(id, ui)
	return ui
}

func (s *Sessionizer) newSession(ui int32, ts int64) int32 {
	var si int32
	if n := len(s.sfree); n > 0 {
		si, s.sfree = s.sfree[n-1], s.sfree[:n-1]
	} else {
		si = int32(len(s.sslab))
		s.sslab = append(s.sslab, sess{})
	}
	ss := &s.sslab[si]
	*ss = sess{user: ui, start: ts, end: ts, marks: ss.marks[:0], heapAt: int32(len(s.heap)), open: true, changed: ss.changed, reported: -1}
	s.touch(si)
	s.heap = append(s.heap, heapItem{end: ts, start: ts, si: si})
	s.up(len(s.heap) - 1)
	s.countMinute(ts, 1)
	return si
}

// merge folds session b into a and frees b.
func (s *Sessionizer) merge(a, b int32) {
	sa, sb := &s.sslab[a], &s.sslab[b]
	if sb.start < sa.start {
		s.moveStart(sa, sb.start)
		sa.label = sb.label
	}
	sa.end = max(sa.end, sb.end)
	sa.events += sb.events
	sa.pv += sb.pv
	sa.atc += sb.atc
	sa.pur += sb.pur
	sa.revenue += sb.revenue
	for _, m := range sb.marks {
		sa.addMark(m)
	}
	sa.reported = -1
	s.touch(a)
	s.removeHeap(int(sb.heapAt))
	s.countMinute(sb.start, -1)
	sb.open = false
	s.touch(b)
	s.sfree = append(s.sfree, b)
}

// Advance emits every session made final by wm (wm >= end + gap), earliest
// end first. The record is reused after emit returns.
func (s *Sessionizer) Advance(wm int64, emit func(*Record)) {
	s.advanced = wm
	for len(s.heap) > 0 {
		top := &s.heap[0]
		if top.end+s.gap > wm { // no session is final: each end is at least its place's
			break
		}
		si := top.si
		ss := &s.sslab[si]
		if top.end != ss.end { // grown since placed: place it anew
			top.end = ss.end
			s.down(0)
			continue
		}
		s.removeHeap(0)
		s.countMinute(ss.start, -1)
		ss.open = false
		s.touch(si)
		u := &s.uslab[ss.user]
		s.fill(&s.rec, u.id, ss)
		emit(&s.rec)
		for k := range u.openLen() {
			if u.openAt(k) == si {
				u.deleteOpen(k)
				break
			}
		}
		if u.openLen() == 0 { // kept a while: a returning user costs nothing
			s.leave(u)
			u.idleSince = ss.end + s.gap
			s.idle = append(s.idle, idleUser{ss.user, u.idleSince})
		}
		s.sfree = append(s.sfree, si)
	}
	s.forget(wm)
}

// forget drops the users idle since before wm - gap, oldest first, so that
// state follows the watermark horizon.
func (s *Sessionizer) forget(wm int64) {
	for ; s.idleAt < len(s.idle); s.idleAt++ {
		it := s.idle[s.idleAt]
		if wm != window.PosInf && it.since+s.gap > wm {
			break
		}
		u := &s.uslab[it.user]
		if u.openLen() > 0 || u.idleSince != it.since {
			continue // back in the meantime
		}
		s.users.del(u.id)
		*u = user{rest: u.rest[:0]}
		s.ufree = append(s.ufree, it.user)
	}
	if s.idleAt > len(s.idle)/2 { // the queue moves up once half of it is done
		s.idle = s.idle[:copy(s.idle, s.idle[s.idleAt:])]
		s.idleAt = 0
	}
}

// sortMarks sorts marks by time, ties in arrival order; they mostly come
// sorted.
func sortMarks(marks []Mark) {
	byTS := func(a, b Mark) int { return cmp.Compare(a.TS, b.TS) }
	if !slices.IsSortedFunc(marks, byTS) {
		slices.SortStableFunc(marks, byTS)
	}
}

func (s *Sessionizer) fill(r *Record, uid string, ss *sess) {
	marks := ss.marks
	sortMarks(marks)
	*r = Record{
		UserID:     uid,
		Start:      ss.start,
		End:        ss.end,
		DurationMs: ss.end - ss.start,
		Events:     ss.events,
		PageViews:  ss.pv,
		AddToCarts: ss.atc,
		Purchases:  ss.pur,
		Revenue:    ss.revenue,
		Bounced:    ss.events == 1,
		Converted:  ss.pur > 0,
		Label:      ss.label,
		Marks:      marks,
	}
}

// Open returns the number of open sessions.
func (s *Sessionizer) Open() int { return len(s.heap) }

// The heap orders sessions by (end, start, user id) so that the order of
// emission follows from the state alone, also after a restore: Advance
// emits a session once its place holds its end, and every other place is
// at most its session's (end, start).
func (s *Sessionizer) less(i, j int) bool {
	a, b := &s.heap[i], &s.heap[j]
	if a.end != b.end {
		return a.end < b.end
	}
	if a.start != b.start {
		return a.start < b.start
	}
	return s.uslab[s.sslab[a.si].user].id < s.uslab[s.sslab[b.si].user].id
}

func (s *Sessionizer) swap(i, j int) {
	s.heap[i], s.heap[j] = s.heap[j], s.heap[i]
	s.sslab[s.heap[i].si].heapAt = int32(i)
	s.sslab[s.heap[j].si].heapAt = int32(j)
}

func (s *Sessionizer) up(j int) {
	for j > 0 {
		i := (j - 1) / 2
		if !s.less(j, i) {
			return
		}
		s.swap(i, j)
		j = i
	}
}

func (s *Sessionizer) down(i int) {
	n := len(s.heap)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		j := l
		if r := l + 1; r < n && s.less(r, l) {
			j = r
		}
		if !s.less(j, i) {
			return
		}
		s.swap(i, j)
		i = j
	}
}

func (s *Sessionizer) removeHeap(i int) {
	last := len(s.heap) - 1
	if i != last {
		s.swap(i, last)
	}
	s.heap = s.heap[:last]
	if i != last {
		s.down(i)
		s.up(i)
	}
}

const version = 4

// AppendBinary appends the state (encoding.BinaryAppender): the open
// sessions, or after Incremental only what AppendSegments leaves out.
func (s *Sessionizer) AppendBinary(dst []byte) ([]byte, error) {
	dst = snap.AppendHeader(dst, "session", version)
	dst = snap.AppendInt(dst, s.gap)
	dst = snap.AppendInt(dst, s.advanced)
	var users []int32
	if s.inc == nil {
		users = s.sortedUsers()
	}
	dst = snap.AppendUint(dst, uint64(len(users)))
	for _, ui := range users {
		dst = s.appendUser(dst, ui)
	}
	return dst, nil
}

// appendUser appends a user's open sessions.
func (s *Sessionizer) appendUser(dst []byte, ui int32) []byte {
	u := &s.uslab[ui]
	dst = snap.AppendString(dst, u.id)
	dst = snap.AppendUint(dst, uint64(u.openLen()))
	for k := range u.openLen() {
		ss := &s.sslab[u.openAt(k)]
		for _, v := range [...]int64{ss.start, ss.end, ss.events, ss.pv, ss.atc, ss.pur} {
			dst = snap.AppendInt(dst, v)
		}
		dst = snap.AppendFloat(dst, ss.revenue)
		dst = snap.AppendString(dst, ss.label)
		dst = snap.AppendUint(dst, uint64(len(ss.marks)))
		for _, m := range ss.marks {
			dst = snap.AppendInt(dst, m.TS)
			dst = snap.AppendUint(dst, uint64(m.Tag))
		}
	}
	return dst
}

// readUser adds the user appendUser wrote, leaving out the sessions final at
// the watermark of the last Advance (an incremental state keeps them until
// a segment is dropped); it returns -1 for a user left without one.
func (s *Sessionizer) readUser(r *snap.Reader) int32 {
	id := r.String()
	ui := int32(-1)
	for range r.Len() {
		start, end, events, pv, atc, pur := r.Int(), r.Int(), r.Int(), r.Int(), r.Int(), r.Int()
		revenue := r.Float()
		label := r.String()
		n := r.Len()
		if r.Err() != nil || end+s.gap <= s.advanced {
			for range n {
				r.Int()
				r.Uint()
			}
			continue
		}
		if ui < 0 {
			ui = s.newUser(id)
		}
		si := s.newSession(ui, start)
		ss := &s.sslab[si]
		ss.end, ss.events, ss.pv, ss.atc, ss.pur, ss.revenue = end, events, pv, atc, pur, revenue
		if label != "" {
			ss.label = s.intern(label)
		}
		for range n {
			ss.addMark(Mark{TS: r.Int(), Tag: uint8(r.Uint())})
		}
		s.heap[ss.heapAt].end = end
		s.down(int(ss.heapAt))
		u := &s.uslab[ui]
		u.insertOpen(u.openLen(), si)
	}
	return ui
}

func (s *Sessionizer) sortedUsers() []int32 {
	ids := make([]int32, 0, s.users.len())
	for ui := range s.uslab {
		if s.uslab[ui].openLen() > 0 {
			ids = append(ids, int32(ui))
		}
	}
	slices.SortFunc(ids, func(a, b int32) int { return strings.Compare(s.uslab[a].id, s.uslab[b].id) })
	return ids
}

// UnmarshalBinary replaces the state with what AppendBinary wrote; the
// options (gap, revenue, marker) stay as configured. After Incremental,
// RestoreSegments then adds the segments.
func (s *Sessionizer) UnmarshalBinary(b []byte) error {
	r := snap.NewReader(b)
	r.Header("session", version)
	if gap := r.Int(); r.Err() == nil && gap != s.gap {
		return errors.New("session: snapshot taken with another gap")
	}
	ns := &Sessionizer{config: s.config, users: newUserIndex(), byMinute: map[int64]int32{}, advanced: r.Int(),
		labels: map[string]string{}}
	if s.inc != nil {
		ns.inc = &increments{}
	}
	if s.changes != nil { // the old sessions' slots are gone
		ns.changes = new([]int32)
	}
	for range r.Len() {
		ui := ns.readUser(r)
		if r.Err() != nil {
			break
		}
		if ns.inc != nil && ui >= 0 { // for the next AppendSegments to write
			ns.uslab[ui].dirty = true
			ns.inc.dirty = append(ns.inc.dirty, ui)
		}
	}
	if err := r.Done(); err != nil {
		return err
	}
	*s = *ns
	return nil
}
