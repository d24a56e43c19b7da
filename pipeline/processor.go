package pipeline

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/clickstreamkit/clickstream"
	"github.com/clickstreamkit/clickstream/checkpoint"
	"github.com/clickstreamkit/clickstream/dedup"
	"github.com/clickstreamkit/clickstream/funnel"
	"github.com/clickstreamkit/clickstream/internal/snap"
	"github.com/clickstreamkit/clickstream/kpi"
	"github.com/clickstreamkit/clickstream/session"
	"github.com/clickstreamkit/clickstream/sinks"
	"github.com/clickstreamkit/clickstream/sources"
	"github.com/clickstreamkit/clickstream/window"
)

// Processor runs the order of work of SEMANTICS §2 for one partition and
// gathers the results in a batch. Create it with NewProcessor.
type Processor struct {
	cfg *Config
	dec *clickstream.Decoder
	operators
	ev       clickstream.Event
	out      sinks.Batch
	counters sinks.Counters
	next     int64 // offset after the last message processed
	funMin   int64 // watermark minute the funnel last advanced at
	segs     []segment
	segID    uint64         // ID of the last segment made
	horizon  int64          // how far past the newest event a finished input's results reach
	floor    int64          // after Finish, the watermark a later run goes on from
	parts    int32          // the topic's partition count, 0 unknown
	shown    sinks.Progress // the progress of the last batch written
	// the memory of the batch's funnel records, reused after Reset
	ints     []int64
	rates    []float64
	funParts []funnel.Part

	// callbacks made once, so that the hot path builds no closures
	emitFinal   func(start, end int64, p *kpi.Partial)
	emitUpdate  func(start, end int64, p *kpi.Partial)
	emitSession func(r *session.Record)
	emitFunnel  func(r *funnel.Record)
	openIn      func(m int64) bool
	countOpen   func(slot int32, o *session.Open)
}

// operators are a processor's stateful operators, made together.
type operators struct {
	wm    *window.Watermark
	dd    *dedup.Deduper
	ss    *session.Sessionizer
	win   *window.TumblingWindow[kpi.Obs, *kpi.Partial]
	users *kpi.Users // each window's sessions
	fun   *funnel.Funnel
}

// newOperators returns empty operators of the settings c.
func newOperators(c *Config) (operators, error) {
	o := operators{wm: window.NewWatermark(c.WatermarkDelay), dd: dedup.New(), users: kpi.NewUsers()}
	o.dd.Incremental()
	o.users.Incremental()
	var err error
	if o.fun, err = c.newFunnel(); err != nil {
		return o, err
	}
	sopts := []session.Option{session.WithGap(c.SessionGap), session.WithRevenue(c.Currencies.Revenue)}
	if o.fun.Scope() == funnel.ScopeSession {
		sopts = append(sopts, session.WithMarker(o.fun.Mark))
	}
	if d := o.fun.Breakdown(); d != "" {
		sopts = append(sopts, session.WithLabeler(d.Value))
	}
	if o.ss, err = session.New(sopts...); err != nil {
		return o, err
	}
	o.ss.Incremental()
	if o.fun.Scope() == funnel.ScopeSession {
		o.ss.TrackChanges() // for the funnel's running values
	}
	o.win, err = window.NewTumbling[kpi.Obs](c.WindowSize, func() *kpi.Partial { return kpi.NewPartial(c.Currencies) })
	return o, err
}

// NewProcessor returns an empty processor for one partition of topic.
func NewProcessor(cfg Config, topic string, partition int32) (*Processor, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &Processor{cfg: &cfg, next: -1, funMin: window.NegInf, horizon: cfg.horizon()}
	p.out.Topic, p.out.Partition, p.out.FirstOffset = topic, partition, -1
	p.shown = sinks.Progress{Watermark: window.NegInf, FunnelBefore: window.NegInf}
	var err error
	if p.dec, err = p.cfg.NewDecoder(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if p.operators, err = newOperators(p.cfg); err != nil {
		return nil, err
	}
	p.emitFinal = func(_, _ int64, a *kpi.Partial) { p.out.KPIs = append(p.out.KPIs, a.Minute(true)) }
	p.emitUpdate = func(_, _ int64, a *kpi.Partial) { p.out.KPIs = append(p.out.KPIs, a.Minute(false)) }
	p.emitSession = func(r *session.Record) {
		if p.fun.Scope() == funnel.ScopeSession {
			p.fun.AddSession(r)
		}
		rec := *r
		rec.Marks = nil
		p.out.Sessions = append(p.out.Sessions, rec)
	}
	p.emitFunnel = func(r *funnel.Record) { p.out.Funnel = append(p.out.Funnel, p.keep(r)) }
	p.openIn = p.ss.OpenInMinute
	p.countOpen = func(slot int32, o *session.Open) {
		if o != nil {
			p.fun.SetOpen(slot, o)
		} else {
			p.fun.ClearOpen(slot)
		}
	}
	return p, nil
}

// keep copies r into the batch's memory: running records are valid only
// during the emit callback.
func (p *Processor) keep(r *funnel.Record) funnel.Record {
	c := *r
	c.Steps, c.TimesMs = p.keepInts(r.Steps), p.keepInts(r.TimesMs)
	start := len(p.rates)
	p.rates = append(p.rates, r.StepRates...)
	c.StepRates = p.rates[start:len(p.rates):len(p.rates)]
	if r.By != nil {
		start := len(p.funParts)
		for _, b := range r.By {
			p.funParts = append(p.funParts, funnel.Part{Value: b.Value, Steps: p.keepInts(b.Steps), TimesMs: p.keepInts(b.TimesMs)})
		}
		c.By = p.funParts[start:len(p.funParts):len(p.funParts)]
	}
	return c
}

func (p *Processor) keepInts(s []int64) []int64 {
	if len(s) == 0 {
		return nil
	}
	start := len(p.ints)
	p.ints = append(p.ints, s...)
	return p.ints[start:len(p.ints):len(p.ints)]
}

// Process runs one batch of this partition's messages, in offset order, at
// processing time now.
func (p *Processor) Process(msgs []sources.Message, now time.Time) {
	nowMs := now.UnixMilli()
	for i := range msgs {
		err := p.dec.DecodeAt(msgs[i].Value, &p.ev, nowMs)
		p.take(&msgs[i], &p.ev, err, nowMs)
	}
}

// Decoded is a message decoded ahead of processing: a valid Event, or Err
// (a *clickstream.ValidationError) saying why the message is invalid.
type Decoded struct {
	Event clickstream.Event
	Err   error
}

// ProcessDecoded is Process for messages already decoded, at the same
// processing time, by a decoder of the same settings (see Config.NewDecoder),
// so that decoding can run on another goroutine.
func (p *Processor) ProcessDecoded(msgs []sources.Message, decoded []Decoded, now time.Time) {
	nowMs := now.UnixMilli()
	for i := range msgs {
		p.take(&msgs[i], &decoded[i].Event, decoded[i].Err, nowMs)
	}
}

// ProcessEvent runs an event the caller decoded and validated itself through
// the late check, dedup, sessions, windows and funnel, as if it came in
// message m (whose Value may be nil).
func (p *Processor) ProcessEvent(e *clickstream.Event, m *sources.Message, now time.Time) {
	p.ev = *e
	p.take(m, &p.ev, nil, now.UnixMilli())
}

// take counts message m and runs its event e, or dead-letters it for err.
func (p *Processor) take(m *sources.Message, e *clickstream.Event, err error, now int64) {
	if p.out.FirstOffset < 0 {
		p.out.FirstOffset = m.Offset
	}
	p.next = m.Offset + 1
	p.counters.Read++
	if err != nil {
		p.counters.Invalid++
		var ve *clickstream.ValidationError
		if !errors.As(err, &ve) {
			ve = &clickstream.ValidationError{Reason: clickstream.ReasonMalformedJSON, Detail: err.Error()}
		}
		p.dead(m, ve.Reason, ve.Field, ve.Detail)
		return
	}
	wm := p.wm.Current()
	if e.TS < wm {
		p.counters.Late++
		p.dead(m, clickstream.ReasonLate, "event_ts", "before the watermark")
		return
	}
	if p.dd.Seen(e.EventID, e.TS, wm) {
		p.counters.Duplicates++
		return
	}
	p.counters.Accepted++
	p.ss.Add(e)
	if p.fun.Scope() == funnel.ScopeUser {
		if tag, ok := p.fun.Mark(e); ok {
			p.fun.AddEvent(e.UserID, e.TS, tag)
		}
	}
	applied := m.Timestamp.UnixMilli()
	if m.Timestamp.IsZero() {
		applied = e.TS
	}
	p.win.Add(e.TS, kpi.Obs{Event: e, Users: p.users, LatencyMs: float64(now - applied)})
	if p.cfg.KeepEvents {
		p.out.Events = append(p.out.Events, sinks.Accepted{Offset: m.Offset, Event: *e})
	}
	if p.wm.Observe(e.TS) {
		p.advance()
	}
}

func (p *Processor) dead(m *sources.Message, reason clickstream.Reason, field, detail string) {
	p.out.DeadLetters = append(p.out.DeadLetters, sinks.DeadLetter{Reason: reason, Field: field, Detail: detail,
		Topic: m.Topic, Partition: m.Partition, Offset: m.Offset, Raw: m.Value})
}

// advance emits what the watermark made final: windows, then sessions, then
// the funnel minutes those sessions complete.
func (p *Processor) advance() {
	wm := p.wm.Current()
	p.users.Advance(wm)
	p.win.Advance(wm, p.emitFinal)
	n := len(p.out.Sessions)
	p.ss.Advance(wm, p.emitSession)
	if m := wm - wm%60_000; len(p.out.Sessions) > n || m != p.funMin {
		p.funMin = m
		p.fun.Advance(wm, p.openIn, p.emitFunnel)
	}
}

// Updates adds the running values of the windows and of the funnel start
// minutes that changed since the last update, marked not final.
func (p *Processor) Updates() {
	p.win.Updates(p.emitUpdate)
	// the minutes an out-of-order event left without open sessions are
	// final now (advance looks at them once the watermark moves)
	wm := p.wm.Current()
	p.fun.Advance(wm, p.openIn, p.emitFunnel)
	if p.fun.Scope() == funnel.ScopeSession {
		p.ss.Changes(p.countOpen)
	}
	p.fun.Updates(wm, p.openIn, p.emitFunnel)
}

// Finish ends a finite input: wm becomes +inf and every window, session and
// funnel minute is emitted. The state it leaves for a checkpoint has wm at
// the newest event_ts plus the horizon of every result (the longest of
// window_size, session_gap, one minute and, in user scope, one minute plus
// conversion_window): a later run over the same checkpoint takes an event
// that could have changed an emitted result for late, and goes on as usual
// with newer ones. A partition that accepted nothing is idle: its
// watermark moves to processing time less watermark_delay, as Idle's does.
func (p *Processor) Finish() {
	if m, ok := p.wm.Max(); ok {
		p.wm.AdvanceTo(m + p.horizon)
	} else { // idle by definition (SEMANTICS §11)
		p.Idle(p.cfg.Clock())
	}
	p.floor = p.wm.Current()
	p.wm.Finish()
	p.advance()
	p.out.End = true
}

// Idle advances an idle partition's watermark to processing time now less
// watermark_delay (SEMANTICS §11) without emitting anything, and reports
// whether it moved. The state must then be checkpointed before Advance
// emits what the new watermark makes final, and before the next message:
// a replay from that checkpoint reaches the same results.
func (p *Processor) Idle(now time.Time) bool {
	return p.wm.AdvanceTo(now.UnixMilli() - p.cfg.WatermarkDelay.Milliseconds())
}

// Advance emits what the watermark makes final (after Idle or Restore).
func (p *Processor) Advance() { p.advance() }

// Progress returns how far the partition has got (SEMANTICS §11), with the
// topic's partition count as the source last reported it. After the end of
// a finite input it is the floor a later run over the checkpoint goes on
// from (the newest event_ts plus the horizon, see Finish), not +inf: a live
// run may still add to windows past it; for a partition that never had an
// event, processing time less watermark_delay (see Finish).
func (p *Processor) Progress() sinks.Progress {
	wm := p.wm.Current()
	if wm == window.PosInf {
		return sinks.Progress{Partitions: p.parts, Watermark: p.floor, FunnelBefore: p.floor - p.floor%60_000}
	}
	oldest := window.PosInf
	if m, ok := p.ss.OldestOpenMinute(); ok {
		oldest = m
	}
	return sinks.Progress{Partitions: p.parts, Watermark: wm, FunnelBefore: p.fun.FinalBefore(wm, oldest)}
}

// SetPartitions records the topic's partition count (0: unknown).
func (p *Processor) SetPartitions(n int32) {
	if n > 0 {
		p.parts = n
	}
}

// Counters returns the partition's counts so far.
func (p *Processor) Counters() sinks.Counters { return p.counters }

// Next returns the offset after the last message processed, -1 before any.
func (p *Processor) Next() int64 { return p.next }

// Pending returns how many results wait in the batch.
func (p *Processor) Pending() int {
	o := &p.out
	return len(o.KPIs) + len(o.Sessions) + len(o.Funnel) + len(o.DeadLetters) + len(o.Events)
}

// Batch returns the results gathered since the last Reset, with the counters,
// the progress and the offsets they cover. It stays valid until Reset.
func (p *Processor) Batch() *sinks.Batch {
	p.out.Counters = p.counters
	p.out.Progress = p.Progress()
	p.out.NextOffset = p.next
	if p.out.FirstOffset < 0 {
		p.out.FirstOffset = p.next
	}
	return &p.out
}

// Moved reports whether the batch holds results or progress the sinks have
// not been given yet.
func (p *Processor) Moved() bool {
	b := p.Batch()
	return !b.Empty() || b.End || b.Progress != p.shown
}

// Reset empties the batch once a sink has made it durable.
func (p *Processor) Reset() {
	p.shown = p.out.Progress
	o := &p.out
	clear(o.KPIs)
	clear(o.Sessions)
	clear(o.Funnel)
	clear(o.DeadLetters)
	clear(o.Events)
	clear(p.funParts)
	p.ints, p.rates, p.funParts = p.ints[:0], p.rates[:0], p.funParts[:0]
	*o = sinks.Batch{Topic: o.Topic, Partition: o.Partition, FirstOffset: -1,
		KPIs: o.KPIs[:0], Sessions: o.Sessions[:0], Funnel: o.Funnel[:0],
		DeadLetters: o.DeadLetters[:0], Events: o.Events[:0]}
}

const processorVersion = 5

// maxSegmentIDs bounds the dedup ids, or the (user, window) pairs, of one
// checkpoint segment (about 19 bytes each), and maxSegmentBytes the open
// sessions of one: well within a MongoDB document.
const (
	maxSegmentIDs   = 200_000
	maxSegmentBytes = 4 << 20
)

// segment is a segment of the partition's checkpoint; data is nil once a
// store holds it.
type segment struct {
	id     uint64
	kind   segmentKind
	newest int64 // of ids and users, the newest entry: dropped once wm passes it
	data   []byte
}

// segmentKind says what a segment holds.
type segmentKind uint8

const (
	segmentIDs      segmentKind = iota // dedup ids
	segmentSessions                    // open sessions
	segmentUsers                       // the users counted in open windows
)

// Checkpoint returns the partition's state after the last message processed
// and the offset it covers: a head of the watermark, windows, funnel and
// counters, rewritten whole each time, and segments written once: the dedup
// ids accepted since the last checkpoint and the users first counted in a
// window since (those the watermark expired left out), and the users whose
// sessions changed (see session.Sessionizer.AppendSegments). Take it once the batch is durable and
// Reset: the results waiting in the batch are not part of it. Call Saved
// once a store holds it.
func (p *Processor) Checkpoint() (checkpoint.Checkpoint, error) {
	wm := p.wm.Current()
	p.segs = slices.DeleteFunc(p.segs, func(s segment) bool { return s.kind != segmentSessions && s.newest < wm })
	for _, src := range [...]struct {
		kind  segmentKind
		fresh func() ([]byte, int64, bool)
	}{
		{segmentIDs, func() ([]byte, int64, bool) { return p.dd.AppendFresh(nil, wm, maxSegmentIDs) }},
		{segmentUsers, func() ([]byte, int64, bool) { return p.users.AppendFresh(nil, maxSegmentIDs) }},
	} {
		for more := true; more; {
			var data []byte
			var newest int64
			data, newest, more = src.fresh()
			if len(data) > 0 {
				p.segID++
				p.segs = append(p.segs, segment{id: p.segID, kind: src.kind, newest: newest, data: data})
			}
		}
	}
	fresh, keep := p.ss.AppendSegments(func() uint64 { p.segID++; return p.segID }, maxSegmentBytes)
	p.segs = slices.DeleteFunc(p.segs, func(s segment) bool {
		_, kept := slices.BinarySearch(keep, s.id)
		return s.kind == segmentSessions && !kept
	})
	for _, f := range fresh {
		p.segs = append(p.segs, segment{id: f.ID, kind: segmentSessions, data: f.Data})
	}
	slices.SortFunc(p.segs, func(a, b segment) int { return cmp.Compare(a.id, b.id) })
	b := snap.AppendHeader(nil, "pipeline", processorVersion)
	b = snap.AppendString(b, p.out.Topic)
	b = snap.AppendInt(b, int64(p.out.Partition))
	b = snap.AppendInt(b, p.next)
	b = snap.AppendInt(b, p.funMin)
	c := p.counters
	for _, v := range [...]int64{c.Read, c.Accepted, c.Invalid, c.Late, c.Duplicates} {
		b = snap.AppendInt(b, v)
	}
	b = snap.AppendInt(b, int64(p.parts))
	b = snap.AppendUint(b, p.segID)
	b = snap.AppendUint(b, uint64(len(p.segs)))
	segs := make([]checkpoint.Segment, len(p.segs))
	for i, s := range p.segs {
		b = snap.AppendUint(b, s.id)
		b = snap.AppendUint(b, uint64(s.kind))
		b = snap.AppendInt(b, s.newest)
		segs[i] = checkpoint.Segment{ID: s.id, Data: s.data}
	}
	for _, part := range p.operators.stateful() {
		var err error
		if b, err = snap.AppendSection(b, part.AppendBinary); err != nil {
			return checkpoint.Checkpoint{}, err
		}
	}
	return checkpoint.Checkpoint{Topic: p.out.Topic, Partition: p.out.Partition, Next: p.next, State: b, Segments: segs}, nil
}

// Saved records that a store holds every segment of the last Checkpoint.
func (p *Processor) Saved() {
	for i := range p.segs {
		p.segs[i].data = nil
	}
}

type stateful interface {
	AppendBinary([]byte) ([]byte, error)
	UnmarshalBinary([]byte) error
}

func (o *operators) stateful() []stateful { return []stateful{o.wm, o.ss, o.win, o.fun} }

// Restore replaces the state with a checkpoint of the same topic and
// partition, taken with the same settings; a checkpoint of other settings
// (window_size, session_gap, watermark_delay, the funnel's) is refused with a
// permanent error, changing nothing. What the restored watermark makes final is emitted into
// the batch (a checkpoint taken right after an idle advance).
func (p *Processor) Restore(cp checkpoint.Checkpoint) error {
	if err := p.restore(cp); err != nil {
		return clickstream.Permanent(fmt.Errorf("pipeline: restore %s/%d: %w", cp.Topic, cp.Partition, err))
	}
	return nil
}

func (p *Processor) restore(cp checkpoint.Checkpoint) error {
	r := snap.NewReader(cp.State)
	if v := r.Header("pipeline", processorVersion); v != processorVersion && r.Err() == nil {
		return fmt.Errorf("%w: checkpoint version %d", snap.ErrCorrupt, v)
	}
	topic, part := r.String(), int32(r.Int())
	if r.Err() == nil && (topic != p.out.Topic || part != p.out.Partition) {
		return fmt.Errorf("a checkpoint of %s/%d", topic, part)
	}
	next, funMin := r.Int(), r.Int()
	c := sinks.Counters{Read: r.Int(), Accepted: r.Int(), Invalid: r.Int(), Late: r.Int(), Duplicates: r.Int()}
	partitions := int32(r.Int())
	segID := r.Uint()
	segs := make([]segment, r.Len())
	for i := range segs {
		segs[i] = segment{id: r.Uint(), kind: segmentKind(r.Uint()), newest: r.Int()}
		if segs[i].kind > segmentUsers && r.Err() == nil {
			return fmt.Errorf("%w: segment %d of kind %d", snap.ErrCorrupt, segs[i].id, segs[i].kind)
		}
	}
	ops, err := newOperators(p.cfg)
	if err != nil {
		return err
	}
	for _, part := range ops.stateful() {
		sub := r.Section()
		if r.Err() != nil {
			break
		}
		if err := part.UnmarshalBinary(sub); err != nil {
			return err
		}
	}
	if err := r.Done(); err != nil {
		return err
	}
	if next != cp.Next {
		return fmt.Errorf("%w: state covers offset %d, checkpoint says %d", snap.ErrCorrupt, next, cp.Next)
	}
	if len(cp.Segments) != len(segs) {
		return fmt.Errorf("%w: %d segments listed, %d loaded", snap.ErrCorrupt, len(segs), len(cp.Segments))
	}
	var ids, users [][]byte
	var open []session.Segment
	for i, s := range cp.Segments {
		if s.ID != segs[i].id {
			return fmt.Errorf("%w: segment %d loaded where %d is listed", snap.ErrCorrupt, s.ID, segs[i].id)
		}
		switch segs[i].kind {
		case segmentSessions:
			open = append(open, session.Segment{ID: s.ID, Data: s.Data})
		case segmentUsers:
			users = append(users, s.Data)
		default:
			ids = append(ids, s.Data)
		}
	}
	if err := ops.dd.Restore(ops.wm.Current(), ids...); err != nil {
		return err
	}
	if err := ops.users.Restore(ops.wm.Current(), users...); err != nil {
		return err
	}
	if err := ops.ss.RestoreSegments(open...); err != nil {
		return err
	}
	p.operators = ops
	p.next, p.funMin, p.counters, p.segs, p.segID, p.parts = next, funMin, c, segs, segID, partitions
	p.openIn = p.ss.OpenInMinute
	p.Reset()
	p.shown = sinks.Progress{Watermark: window.NegInf, FunnelBefore: window.NegInf}
	p.advance()
	return nil
}
