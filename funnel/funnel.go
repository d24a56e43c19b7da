package funnel

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/clickstreamkit/clickstream"
	"github.com/clickstreamkit/clickstream/internal/snap"
	"github.com/clickstreamkit/clickstream/session"
)

// Scope says what an entity of the funnel is.
type Scope uint8

// The scopes.
const (
	// ScopeSession: each session is an entity; feed AddSession.
	ScopeSession Scope = iota
	// ScopeUser: a user's events within the conversion window of a first
	// step are an entity; feed AddEvent.
	ScopeUser
)

// Dimension is an event field the funnel's records break down by
// (WithBreakdown): each session counts under its earliest event's value.
type Dimension string

// The dimensions.
const (
	UTMSource    Dimension = "utm.source"
	DeviceOS     Dimension = "device.os"
	DeviceMobile Dimension = "device.mobile"
	GeoCountry   Dimension = "geo.country"
)

// Values of a breakdown besides the events' own: None for an event without
// the field, Other for the values of a start minute beyond the first
// MaxValues of a partition.
const (
	None      = "(none)"
	Other     = "(other)"
	MaxValues = 64
)

// Valid reports whether d is one of the dimensions.
func (d Dimension) Valid() bool {
	switch d {
	case UTMSource, DeviceOS, DeviceMobile, GeoCountry:
		return true
	}
	return false
}

// Value returns e's value of d: "true" or "false" for DeviceMobile, None
// when the field is absent.
func (d Dimension) Value(e *clickstream.Event) string {
	var v string
	switch d {
	case UTMSource:
		v = e.UTM.Source
	case DeviceOS:
		v = e.Device.OS
	case DeviceMobile:
		return strconv.FormatBool(e.Device.Mobile)
	case GeoCountry:
		v = e.Geo.Country
	}
	if v == "" {
		return None
	}
	return v
}

// DefaultSteps are SEMANTICS §7's steps.
var DefaultSteps = []string{clickstream.TypePageView, clickstream.TypeAddToCart, clickstream.TypePurchase}

// Record is one start minute's funnel (SEMANTICS §7).
type Record struct {
	Minute      int64
	Entered     int64
	Steps       []int64
	StepRates   []float64 // k-1 entries, Steps[j] / Steps[j-1] for j = 1..k-1 (0 when the divisor is)
	OverallRate float64
	// MedianTimeToConvertMs is the lower median, over entities reaching the
	// last step, of its greedy event's ts minus the first step's; valid when
	// HasMedian.
	MedianTimeToConvertMs int64
	HasMedian             bool
	// TimesMs are the conversion times the median is taken over, sorted, so
	// that records of several partitions merge exactly.
	TimesMs []int64
	// Final is false for a running update (SEMANTICS §7): the values over
	// the sessions seen so far, open ones included, which the final record
	// replaces.
	Final bool
	// By breaks the record down by the funnel's dimension (WithBreakdown),
	// one part per value, by value; nil without one.
	By []Part
}

// Clone returns a copy of r that shares no memory with it.
func (r *Record) Clone() Record {
	c := *r
	c.Steps, c.StepRates, c.TimesMs = slices.Clone(r.Steps), slices.Clone(r.StepRates), slices.Clone(r.TimesMs)
	if r.By != nil {
		c.By = make([]Part, len(r.By))
		for i, p := range r.By {
			c.By[i] = Part{Value: p.Value, Steps: slices.Clone(p.Steps), TimesMs: slices.Clone(p.TimesMs)}
		}
	}
	return c
}

// Part is the share of a record of the entities with one value of the
// funnel's dimension: counts c1..ck (Steps[0] entered) and sorted
// conversion times.
type Part struct {
	Value   string
	Steps   []int64
	TimesMs []int64
}

// Funnel counts entities through ordered steps. Create it with New.
type Funnel struct {
	config
	tags  []uint8  // tag of each step
	types []string // distinct step types; a tag indexes it
	acc   map[int64]*minuteAcc
	users map[string][]session.Mark
	used  []bool
	swept int64 // user scope: the watermark of the last sweep

	// running values: what each open session adds to its start minute, by
	// slot (session scope), or what each user's buffered marks add
	// (user scope), and their sums by minute; not checkpointed, since the
	// open sessions and buffered marks are
	open    []openSession
	userRun map[string][]openSession
	dirty   map[string]bool // users whose marks changed since the last Updates
	scratch []session.Mark
	run     map[int64]*minuteAcc
	sc      scratch        // of the running records
	changed map[int64]bool // minutes whose running values changed since the last Updates
	shown   map[int64]bool // minutes with a running record and no final one yet
}

type minuteAcc struct {
	steps []int64
	times []int64
	n     int                   // entities counted
	by    map[string]*minuteAcc // with a breakdown, by value
}

// openSession is what an open session adds to its start minute's running
// values: the steps it reached and, if it reached all, its conversion time.
type openSession struct {
	minute   int64
	label    string // its value of the dimension, as counted
	reached  int
	time     int64
	t1, prev int64 // ts of the greedy first and last step reached
	counted  bool
}

// config is what the options set.
type config struct {
	steps  []string
	scope  Scope
	window int64 // conversion window, user scope
	dim    Dimension
}

// Option configures a Funnel.
type Option func(*config)

// WithSteps sets the ordered steps (event types). Default DefaultSteps.
func WithSteps(types ...string) Option {
	return func(c *config) { c.steps = slices.Clone(types) }
}

// WithUserScope counts users' events within window of their first step
// instead of sessions. Default: session scope.
func WithUserScope(window time.Duration) Option {
	return func(c *config) { c.scope, c.window = ScopeUser, window.Milliseconds() }
}

// WithBreakdown breaks each record down by the value of dimension d of its
// sessions' earliest event (session scope). Default: none.
func WithBreakdown(d Dimension) Option { return func(c *config) { c.dim = d } }

// ErrBadConfig is returned for an empty or too long list of steps, a
// non-positive conversion window, or a breakdown by an unknown dimension or
// in user scope.
var ErrBadConfig = errors.New("funnel: need 1..255 steps, in user scope a positive conversion window and no breakdown, and a known breakdown dimension")

// New returns an empty funnel.
func New(opts ...Option) (*Funnel, error) {
	c := config{steps: DefaultSteps}
	for _, o := range opts {
		o(&c)
	}
	if len(c.steps) == 0 || len(c.steps) > 255 || (c.scope == ScopeUser && (c.window <= 0 || c.dim != "")) ||
		(c.dim != "" && !c.dim.Valid()) {
		return nil, ErrBadConfig
	}
	f := &Funnel{config: c, acc: map[int64]*minuteAcc{}, users: map[string][]session.Mark{}, swept: math.MinInt64,
		run: map[int64]*minuteAcc{}, changed: map[int64]bool{}, shown: map[int64]bool{},
		userRun: map[string][]openSession{}, dirty: map[string]bool{}}
	for _, s := range f.steps {
		i := slices.Index(f.types, s)
		if i < 0 {
			i = len(f.types)
			f.types = append(f.types, s)
		}
		f.tags = append(f.tags, uint8(i))
	}
	return f, nil
}

// Scope returns the funnel's scope.
func (f *Funnel) Scope() Scope { return f.scope }

// Breakdown returns the dimension the records break down by, "" for none.
func (f *Funnel) Breakdown() Dimension { return f.dim }

// Mark is a session.Marker keeping the events of step types.
func (f *Funnel) Mark(e *clickstream.Event) (uint8, bool) {
	for i, t := range f.types {
		if t == e.EventType {
			return uint8(i), true
		}
	}
	return 0, false
}

func minuteOf(ts int64) int64 {
	q := ts / 60_000
	if ts%60_000 != 0 && ts < 0 {
		q--
	}
	return q * 60_000
}

// AddSession counts a final session (session scope): its start, marks
// (its tagged events by time) and label (its value of the dimension).
func (f *Funnel) AddSession(r *session.Record) {
	m := minuteOf(r.Start)
	f.count(m, r.Label, r.Marks)
	f.changed[m] = true
}

// count matches marks greedily and adds the entity to minute m.
func (f *Funnel) count(m int64, label string, marks []session.Mark) {
	reached, t := f.match(marks)
	f.add(f.accOf(f.acc, m), label, reached, t, 1)
}

// add counts (d = 1) or uncounts (d = -1) an entity in a, and with a
// breakdown in its label's part of a, and returns the label it counted
// under: Other for a new label beyond MaxValues.
func (f *Funnel) add(a *minuteAcc, label string, reached int, t int64, d int) string {
	k := len(f.steps)
	a.add(reached, t, k, d)
	if f.dim == "" {
		return ""
	}
	if a.by == nil {
		a.by = map[string]*minuteAcc{}
	}
	b := a.by[label]
	if b == nil && len(a.by) >= MaxValues {
		label = Other
		b = a.by[label]
	}
	if b == nil {
		b = &minuteAcc{steps: make([]int64, k)}
		a.by[label] = b
	}
	b.add(reached, t, k, d)
	return label
}

// accOf returns minute m's accumulator in acc, made if need be.
func (f *Funnel) accOf(acc map[int64]*minuteAcc, m int64) *minuteAcc {
	a := acc[m]
	if a == nil {
		a = &minuteAcc{steps: make([]int64, len(f.steps))}
		acc[m] = a
	}
	return a
}

// add counts (d = 1) or uncounts (d = -1) an entity that reached the first
// reached of k steps, with conversion time t if it reached all.
func (a *minuteAcc) add(reached int, t int64, k, d int) {
	a.n += d
	for j := range reached {
		a.steps[j] += int64(d)
	}
	if reached < k {
		return
	}
	i, _ := slices.BinarySearch(a.times, t)
	if d > 0 {
		a.times = slices.Insert(a.times, i, t)
	} else {
		a.times = slices.Delete(a.times, i, i+1)
	}
}

// match matches marks (by time) greedily: it returns how many steps the
// entity reached and, if all, the last one's ts minus the first one's.
func (f *Funnel) match(marks []session.Mark) (reached int, t int64) {
	reached, t1, prev := f.greedy(marks)
	if reached < len(f.tags) {
		return reached, 0
	}
	return reached, prev - t1
}

// greedy matches marks (by time) greedily and returns how many steps they
// reach and the ts of the first and last step reached.
func (f *Funnel) greedy(marks []session.Mark) (reached int, t1, prev int64) {
	f.used = slices.Grow(f.used[:0], len(marks))[:len(marks)]
	clear(f.used)
	prev = math.MinInt64
	for j, tag := range f.tags {
		k, _ := slices.BinarySearchFunc(marks, prev, func(mk session.Mark, ts int64) int { return cmp.Compare(mk.TS, ts) })
		found := false
		for ; k < len(marks); k++ {
			if marks[k].Tag == tag && !f.used[k] {
				found = true
				break
			}
		}
		if !found {
			return j, t1, prev
		}
		f.used[k] = true
		prev = marks[k].TS
		if j == 0 {
			t1 = prev
		}
	}
	return len(f.tags), t1, prev
}

// resume goes on with o's greedy match over marks that all came after
// the ones it matched, each later than the one before: then each mark can
// only serve the next step, in turn. It reports whether o reached more.
func (f *Funnel) resume(o *openSession, marks []session.Mark) bool {
	before := o.reached
	for _, mk := range marks {
		if o.reached == len(f.tags) {
			break
		}
		if mk.Tag == f.tags[o.reached] {
			if o.reached == 0 {
				o.t1 = mk.TS
			}
			o.prev = mk.TS
			o.reached++
		}
	}
	if o.reached == len(f.tags) {
		o.time = o.prev - o.t1
	}
	return o.reached != before
}

// SetOpen counts an open session (session scope) in the running values of
// its start minute, replacing what slot counted before: slot and s as
// session.Sessionizer.Changes reports them.
func (f *Funnel) SetOpen(slot int32, s *session.Open) {
	if int(slot) < len(f.open) && s.New >= 0 && f.open[slot].counted {
		// the same session, with later marks only
		if o := f.open[slot]; o.minute == minuteOf(s.Start) && o.label == s.Label {
			if !f.resume(&o, s.Marks[len(s.Marks)-s.New:]) {
				return
			}
			f.add(f.accOf(f.run, o.minute), o.label, o.reached, o.time, 1) // first: nothing is remade
			f.ClearOpen(slot)
			f.open[slot] = o
			return
		}
	}
	if int(slot) >= len(f.open) {
		f.open = append(f.open, make([]openSession, int(slot)+1-len(f.open))...)
	}
	o := openSession{minute: minuteOf(s.Start), counted: true}
	o.reached, o.t1, o.prev = f.greedy(s.Marks)
	if o.reached == len(f.tags) {
		o.time = o.prev - o.t1
	}
	o.label = f.add(f.accOf(f.run, o.minute), s.Label, o.reached, o.time, 1) // first: nothing is remade
	f.changed[o.minute] = true
	f.ClearOpen(slot)
	f.open[slot] = o
}

// ClearOpen takes what slot counted out of the running values: its session
// is final (and added with AddSession) or merged into another.
func (f *Funnel) ClearOpen(slot int32) {
	if int(slot) >= len(f.open) || !f.open[slot].counted {
		return
	}
	f.uncount(f.open[slot])
	f.open[slot] = openSession{}
}

// uncount takes o out of the running values. The accumulator of a minute's
// running values stays, emptied, until the minute is final, so that
// sessions coming and going do not remake it.
func (f *Funnel) uncount(o openSession) {
	if a := f.run[o.minute]; a != nil { // else the minute is final: its running values are gone
		f.add(a, o.label, o.reached, o.time, -1)
		f.changed[o.minute] = true
	}
}

// Updates emits, by minute, a running record (Final false) of each start
// minute whose running values changed since the last call and that is not
// final at wm (see Advance): the final sessions added so far plus the open
// ones set with SetOpen; in user scope, the final entities plus those the
// buffered events would make if no event came any more. A minute shown
// whose entities all moved to an earlier one since (an out-of-order event)
// gets a running record of zeros, and no final record. A running record
// and its slices are valid only during emit: copy what you keep
// (Record.Clone).
func (f *Funnel) Updates(wm int64, openIn func(minute int64) bool, emit func(*Record)) {
	if f.scope == ScopeUser {
		f.runUsers()
	}
	ms := slices.Sorted(maps.Keys(f.changed))
	clear(f.changed)
	for _, m := range ms {
		a, o := f.acc[m], f.run[m]
		if a == nil && (o == nil || o.n == 0) {
			delete(f.run, m)
			if f.shown[m] {
				delete(f.shown, m)
				r := Record{Minute: m, Steps: make([]int64, len(f.steps))}
				r.setRates()
				emit(&r)
			}
			continue
		}
		if f.ready(m, wm, openIn) {
			continue // final: Advance emitted it
		}
		r := f.recordOf(&f.sc, m, a, o)
		f.shown[m] = true
		emit(&r)
	}
}

// AddEvent buffers a user's tagged event (user scope); tag comes from Mark.
// Late events must not be added.
func (f *Funnel) AddEvent(userID string, ts int64, tag uint8) {
	ms, ok := f.users[userID]
	if !ok {
		userID = strings.Clone(userID)
	}
	f.users[userID] = append(ms, session.Mark{TS: ts, Tag: tag})
	f.dirty[userID] = true
}

// Advance emits, by minute, the records of every start minute whose entities
// are all final at wm. In session scope, openIn reports whether an open
// session starts in a minute (session.Sessionizer.OpenInMinute); sessions
// made final by wm must have been added first.
func (f *Funnel) Advance(wm int64, openIn func(minute int64) bool, emit func(*Record)) {
	if f.scope == ScopeUser {
		f.sweepUsers(wm)
	}
	var ready []int64
	for m := range f.acc {
		if f.ready(m, wm, openIn) {
			ready = append(ready, m)
		}
	}
	slices.Sort(ready)
	for _, m := range ready {
		r := f.record(m, f.acc[m])
		delete(f.acc, m)
		delete(f.run, m)
		delete(f.shown, m)
		delete(f.changed, m)
		emit(&r)
	}
}

// ready reports whether every entity of start minute m is final. In user
// scope that is decided at the watermark of the last sweep, not at wm: the
// sweep closes entities once per watermark minute, and a minute called
// ready between two sweeps would be emitted again by the next one.
func (f *Funnel) ready(m, wm int64, openIn func(int64) bool) bool {
	if f.scope == ScopeUser {
		return f.swept != math.MinInt64 && m+60_000+f.window <= f.swept
	}
	return m+60_000 <= wm && !openIn(m)
}

// FinalBefore returns the start minute below which every record is final
// once Advance has run at wm: in session scope, oldestOpen is the start of
// the oldest open session (math.MaxInt64 when none).
func (f *Funnel) FinalBefore(wm, oldestOpen int64) int64 {
	if f.scope == ScopeUser {
		wm, oldestOpen = f.swept, math.MaxInt64
		if wm != math.MinInt64 && wm != math.MaxInt64 {
			wm -= f.window
		}
	}
	switch wm {
	case math.MinInt64, math.MaxInt64:
		return wm
	}
	return min(minuteOf(wm), minuteOf(oldestOpen))
}

// sweepUsers closes the user-scope entities made final by wm, once per
// watermark minute.
func (f *Funnel) sweepUsers(wm int64) {
	if f.swept != math.MinInt64 && minuteOf(wm) == minuteOf(f.swept) && wm != math.MaxInt64 {
		return
	}
	f.swept = wm
	for u, ms := range f.users {
		slices.SortStableFunc(ms, func(a, b session.Mark) int { return cmp.Compare(a.TS, b.TS) })
		n := len(ms)
		ms = f.cut(ms, wm, func(t1 int64, ent []session.Mark) {
			m := minuteOf(t1)
			f.count(m, "", ent)
			f.changed[m] = true
		})
		if len(ms) != n {
			f.dirty[u] = true
		}
		if len(ms) == 0 {
			delete(f.users, u)
		} else {
			f.users[u] = ms
		}
	}
}

// cut calls fn for each entity of a user's marks ms (by time) final at wm,
// with its first step's ts, and returns the marks left for later entities
// (ms's own array reused).
func (f *Funnel) cut(ms []session.Mark, wm int64, fn func(t1 int64, ent []session.Mark)) []session.Mark {
	first := f.tags[0]
	for {
		i := slices.IndexFunc(ms, func(mk session.Mark) bool { return mk.Tag == first })
		if i < 0 { // nothing before a future first step can count
			return slices.DeleteFunc(ms, func(mk session.Mark) bool { return mk.TS < wm })
		}
		t1 := ms[i].TS
		if wm != math.MaxInt64 && t1+f.window > wm { // an earlier first step may still come
			cut := slices.IndexFunc(ms[:i], func(mk session.Mark) bool { return mk.TS >= wm })
			if cut < 0 {
				cut = i
			}
			return ms[cut:]
		}
		end, _ := slices.BinarySearchFunc(ms, t1+f.window, func(mk session.Mark, t int64) int { return cmp.Compare(mk.TS, t) })
		// events at t1 itself belong to the entity, whichever arrived first
		lo, _ := slices.BinarySearchFunc(ms[:i], t1, func(mk session.Mark, t int64) int { return cmp.Compare(mk.TS, t) })
		fn(t1, ms[lo:end])
		ms = ms[end:]
	}
}

// runUsers brings the running values of user scope up to date: each user
// whose marks changed since the last call counts, in place of what it
// counted before, the entities its marks would make if no event came any
// more.
func (f *Funnel) runUsers() {
	for u := range f.dirty {
		for _, o := range f.userRun[u] {
			f.uncount(o)
		}
		delete(f.userRun, u)
		ms, ok := f.users[u]
		if !ok {
			continue
		}
		f.scratch = append(f.scratch[:0], ms...)
		slices.SortStableFunc(f.scratch, func(a, b session.Mark) int { return cmp.Compare(a.TS, b.TS) })
		var os []openSession
		f.cut(f.scratch, math.MaxInt64, func(t1 int64, ent []session.Mark) {
			o := openSession{minute: minuteOf(t1), counted: true}
			o.reached, o.time = f.match(ent)
			f.add(f.accOf(f.run, o.minute), "", o.reached, o.time, 1)
			f.changed[o.minute] = true
			os = append(os, o)
		})
		if len(os) > 0 {
			f.userRun[u] = os
		}
	}
	clear(f.dirty)
}

// recordOf returns the record of minute m summing accs (nil ones left out),
// in sc's memory when sc is not nil: valid until the next call with sc.
func (f *Funnel) recordOf(sc *scratch, m int64, accs ...*minuteAcc) Record {
	if sc == nil {
		sc = &scratch{}
	}
	k := len(f.steps)
	r := Record{Minute: m, Steps: zeroed(sc.steps, k), TimesMs: sc.times[:0], StepRates: sc.rates[:0]}
	if sc.idx == nil {
		sc.idx = map[string]int{}
	}
	clear(sc.idx)
	parts := sc.parts[:0]
	for _, a := range accs {
		if a == nil {
			continue
		}
		sumInto(r.Steps, &r.TimesMs, a.steps, a.times)
		for v, b := range a.by {
			if b.n == 0 {
				continue // running values all its sessions left
			}
			i, ok := sc.idx[v]
			if !ok {
				i = len(parts)
				sc.idx[v] = i
				if i < cap(parts) {
					parts = parts[:i+1]
				} else {
					parts = append(parts, Part{})
				}
				parts[i] = Part{Value: v, Steps: zeroed(parts[i].Steps, k), TimesMs: parts[i].TimesMs[:0]}
			}
			sumInto(parts[i].Steps, &parts[i].TimesMs, b.steps, b.times)
		}
	}
	slices.SortFunc(parts, func(a, b Part) int { return strings.Compare(a.Value, b.Value) })
	for i := range parts {
		slices.Sort(parts[i].TimesMs)
	}
	if f.dim != "" {
		r.By = parts
	}
	slices.Sort(r.TimesMs)
	r.setRates()
	sc.steps, sc.times, sc.rates, sc.parts = r.Steps, r.TimesMs, r.StepRates, parts
	return r
}

// scratch is the memory of the running records Updates emits, reused from
// one to the next.
type scratch struct {
	steps, times []int64
	rates        []float64
	parts        []Part
	idx          map[string]int // a part's index by value
}

// zeroed returns s resized to n zeros, reusing its memory.
func zeroed(s []int64, n int) []int64 {
	s = slices.Grow(s[:0], n)[:n]
	clear(s)
	return s
}

// sumInto adds steps and times to the sums.
func sumInto(sumSteps []int64, sumTimes *[]int64, steps, times []int64) {
	for j := range min(len(steps), len(sumSteps)) {
		sumSteps[j] += steps[j]
	}
	*sumTimes = append(*sumTimes, times...)
}

func (f *Funnel) record(m int64, a *minuteAcc) Record {
	r := f.recordOf(nil, m, a)
	r.Final = true
	return r
}

// setRates derives the rates and the median from the counts and times.
func (r *Record) setRates() {
	r.Entered = r.Steps[0]
	r.StepRates = slices.Grow(r.StepRates[:0], len(r.Steps)-1)[:len(r.Steps)-1]
	clear(r.StepRates)
	for j := range r.StepRates {
		if div := r.Steps[j]; div > 0 {
			r.StepRates[j] = float64(r.Steps[j+1]) / float64(div)
		}
	}
	r.OverallRate = 0
	if c1 := r.Steps[0]; c1 > 0 {
		r.OverallRate = float64(r.Steps[len(r.Steps)-1]) / float64(c1)
	}
	r.MedianTimeToConvertMs, r.HasMedian = 0, false
	if n := len(r.TimesMs); n > 0 {
		r.MedianTimeToConvertMs, r.HasMedian = r.TimesMs[(n-1)/2], true
	}
}

// Merge sums records of the same minute from several partitions, their
// breakdowns value by value; the sum is final when every part is.
func Merge(parts ...Record) Record {
	if len(parts) == 0 {
		return Record{}
	}
	out := Record{Minute: parts[0].Minute, Steps: make([]int64, len(parts[0].Steps)), Final: true}
	var by map[string]*Part
	for _, p := range parts {
		out.Final = out.Final && p.Final
		sumInto(out.Steps, &out.TimesMs, p.Steps, p.TimesMs)
		if p.By != nil && out.By == nil {
			out.By = []Part{}
		}
		for _, b := range p.By {
			if by == nil {
				by = map[string]*Part{}
			}
			q := by[b.Value]
			if q == nil {
				q = &Part{Value: b.Value, Steps: make([]int64, len(out.Steps))}
				by[b.Value] = q
			}
			sumInto(q.Steps, &q.TimesMs, b.Steps, b.TimesMs)
		}
	}
	for _, v := range slices.Sorted(maps.Keys(by)) {
		slices.Sort(by[v].TimesMs)
		out.By = append(out.By, *by[v])
	}
	slices.Sort(out.TimesMs)
	out.setRates()
	return out
}

const version = 3

// AppendBinary appends the funnel's pending state (encoding.BinaryAppender).
func (f *Funnel) AppendBinary(dst []byte) ([]byte, error) {
	dst = snap.AppendHeader(dst, "funnel", version)
	dst = snap.AppendString(dst, strings.Join(f.steps, ","))
	dst = snap.AppendString(dst, string(f.dim))
	dst = snap.AppendUint(dst, uint64(f.scope))
	dst = snap.AppendInt(dst, f.window)
	dst = snap.AppendInt(dst, f.swept)
	ms := slices.Sorted(maps.Keys(f.acc))
	dst = snap.AppendUint(dst, uint64(len(ms)))
	for _, m := range ms {
		a := f.acc[m]
		dst = snap.AppendInt(dst, m)
		dst = a.appendCounts(dst)
		dst = snap.AppendUint(dst, uint64(len(a.by)))
		for _, v := range slices.Sorted(maps.Keys(a.by)) {
			dst = snap.AppendString(dst, v)
			dst = a.by[v].appendCounts(dst)
		}
	}
	us := slices.Sorted(maps.Keys(f.users))
	dst = snap.AppendUint(dst, uint64(len(us)))
	for _, u := range us {
		dst = snap.AppendString(dst, u)
		dst = snap.AppendUint(dst, uint64(len(f.users[u])))
		for _, mk := range f.users[u] {
			dst = snap.AppendInt(dst, mk.TS)
			dst = snap.AppendUint(dst, uint64(mk.Tag))
		}
	}
	return dst, nil
}

func (a *minuteAcc) appendCounts(dst []byte) []byte {
	dst = snap.AppendInt(dst, int64(a.n))
	for _, c := range a.steps {
		dst = snap.AppendInt(dst, c)
	}
	dst = snap.AppendUint(dst, uint64(len(a.times)))
	for _, t := range a.times {
		dst = snap.AppendInt(dst, t)
	}
	return dst
}

// readCounts reads what appendCounts wrote into a new accumulator of k steps.
func readCounts(r *snap.Reader, k int) *minuteAcc {
	a := &minuteAcc{n: int(r.Int()), steps: make([]int64, k)}
	for j := range a.steps {
		a.steps[j] = r.Int()
	}
	for range r.Len() {
		a.times = append(a.times, r.Int())
	}
	slices.Sort(a.times)
	return a
}

// UnmarshalBinary restores what AppendBinary wrote into a funnel configured
// with the same steps.
func (f *Funnel) UnmarshalBinary(b []byte) error {
	r := snap.NewReader(b)
	if v := r.Header("funnel", version); v != version && r.Err() == nil {
		return fmt.Errorf("%w: funnel snapshot version %d", snap.ErrCorrupt, v)
	}
	if steps := r.String(); r.Err() == nil && steps != strings.Join(f.steps, ",") {
		return fmt.Errorf("funnel: snapshot of steps %q", steps)
	}
	if dim := Dimension(r.String()); r.Err() == nil && dim != f.dim {
		return fmt.Errorf("funnel: snapshot broken down by %q, configured %q", dim, f.dim)
	}
	if scope, window := Scope(r.Uint()), r.Int(); r.Err() == nil && (scope != f.scope || window != f.window) {
		return fmt.Errorf("funnel: snapshot of scope %d with conversion_window %dms, configured scope %d with %dms",
			scope, window, f.scope, f.window)
	}
	swept := r.Int()
	acc := map[int64]*minuteAcc{}
	for range r.Len() {
		m := r.Int()
		a := readCounts(r, len(f.steps))
		for range r.Len() {
			if a.by == nil {
				a.by = map[string]*minuteAcc{}
			}
			v := r.String()
			a.by[v] = readCounts(r, len(f.steps))
		}
		acc[m] = a
	}
	users := map[string][]session.Mark{}
	for range r.Len() {
		u := r.String()
		var ms []session.Mark
		for range r.Len() {
			ms = append(ms, session.Mark{TS: r.Int(), Tag: uint8(r.Uint())})
		}
		users[u] = ms
	}
	if err := r.Done(); err != nil {
		return err
	}
	f.swept, f.acc, f.users = swept, acc, users
	f.open, f.run, f.changed, f.shown = nil, map[int64]*minuteAcc{}, map[int64]bool{}, map[int64]bool{}
	f.userRun, f.dirty = map[string][]openSession{}, map[string]bool{}
	for u := range users { // their running values come with the next Updates
		f.dirty[u] = true
	}
	return nil
}

// Top returns the n parts of by with the most entities at the first step
// (ties by value), then, if any are left, one part under Other that sums
// the rest (Other itself included).
func Top(by []Part, n int) []Part {
	parts := slices.Clone(by)
	slices.SortStableFunc(parts, func(a, b Part) int {
		return cmp.Or(cmp.Compare(first(b), first(a)), strings.Compare(a.Value, b.Value))
	})
	var top []Part
	var rest []Record
	for _, p := range parts {
		if len(top) < n && p.Value != Other {
			top = append(top, p)
		} else {
			rest = append(rest, Record{Steps: p.Steps, TimesMs: p.TimesMs})
		}
	}
	if len(rest) > 0 {
		m := Merge(rest...)
		top = append(top, Part{Value: Other, Steps: m.Steps, TimesMs: m.TimesMs})
	}
	return top
}

func first(p Part) int64 {
	if len(p.Steps) == 0 {
		return 0
	}
	return p.Steps[0]
}
