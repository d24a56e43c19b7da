package pipeline

import (
	"errors"
	"fmt"
	"time"

	"github.com/clickstreamkit/clickstream"
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
	cfg      *Config
	dec      *clickstream.Decoder
	wm       *window.Watermark
	dd       *dedup.Deduper
	ss       *session.Sessionizer
	win      *window.TumblingWindow[kpi.Obs, *kpi.Partial]
	fun      *funnel.Funnel
	ev       clickstream.Event
	out      sinks.Batch
	counters sinks.Counters
	next     int64 // offset after the last message processed
	funMin   int64 // watermark minute the funnel last advanced at

	// callbacks made once, so that the hot path builds no closures
	emitFinal   func(start, end int64, p *kpi.Partial)
	emitUpdate  func(start, end int64, p *kpi.Partial)
	emitSession func(r *session.Record)
	emitFunnel  func(r *funnel.Record)
	openIn      func(m int64) bool
}

// NewProcessor returns an empty processor for one partition of topic.
func NewProcessor(cfg Config, topic string, partition int32) (*Processor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &Processor{cfg: &cfg, next: -1, funMin: window.NegInf}
	p.out.Topic, p.out.Partition, p.out.FirstOffset = topic, partition, -1
	p.dec = p.cfg.NewDecoder()
	p.wm = window.NewWatermark(cfg.WatermarkDelay)
	p.dd = dedup.New()
	var err error
	if p.fun, err = cfg.newFunnel(); err != nil {
		return nil, err
	}
	sopts := []session.Option{session.WithGap(cfg.SessionGap), session.WithCurrencies(cfg.Currencies),
		session.WithWindowSize(cfg.WindowSize)}
	if p.fun.Scope() == funnel.ScopeSession {
		sopts = append(sopts, session.WithMarker(p.fun.Mark))
	}
	if p.ss, err = session.New(sopts...); err != nil {
		return nil, err
	}
	money := &p.cfg.Currencies
	if p.win, err = window.NewTumbling[kpi.Obs](cfg.WindowSize, func() *kpi.Partial { return kpi.NewPartial(money) }); err != nil {
		return nil, err
	}
	p.emitFinal = func(_, _ int64, a *kpi.Partial) { p.out.KPIs = append(p.out.KPIs, a.Minute(true)) }
	p.emitUpdate = func(_, _ int64, a *kpi.Partial) { p.out.KPIs = append(p.out.KPIs, a.Minute(false)) }
	p.emitSession = func(r *session.Record) {
		if p.fun.Scope() == funnel.ScopeSession {
			p.fun.AddSession(r.Start, r.Marks)
		}
		rec := *r
		rec.Marks = nil
		p.out.Sessions = append(p.out.Sessions, rec)
	}
	p.emitFunnel = func(r *funnel.Record) { p.out.Funnel = append(p.out.Funnel, *r) }
	p.openIn = p.ss.OpenInMinute
	return p, nil
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
	p.ev.Kind = clickstream.KindOf(e.EventType)
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
	h := p.ss.Add(e)
	if p.fun.Scope() == funnel.ScopeUser {
		if tag, ok := p.fun.Mark(e); ok {
			p.fun.AddEvent(e.UserID, e.TS, tag)
		}
	}
	applied := m.Timestamp.UnixMilli()
	if m.Timestamp.IsZero() {
		applied = e.TS
	}
	p.win.Add(e.TS, kpi.Obs{Event: e, FirstOfSession: p.ss.FirstInWindow(h, p.win.Start(e.TS), wm), LatencyMs: float64(now - applied)})
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
	p.win.Advance(wm, p.emitFinal)
	n := len(p.out.Sessions)
	p.ss.Advance(wm, p.emitSession)
	if m := wm - wm%60_000; len(p.out.Sessions) > n || m != p.funMin {
		p.funMin = m
		p.fun.Advance(wm, p.openIn, p.emitFunnel)
	}
}

// Updates adds the running values of the windows that changed since the
// last update, marked not final.
func (p *Processor) Updates() { p.win.Updates(p.emitUpdate) }

// Finish ends a finite input: wm becomes +inf and every window, session and
// funnel minute is emitted.
func (p *Processor) Finish() {
	p.wm.Finish()
	p.advance()
	p.out.End = true
}

// Watermark returns the partition's watermark.
func (p *Processor) Watermark() int64 { return p.wm.Current() }

// Counters returns the partition's counts so far.
func (p *Processor) Counters() sinks.Counters { return p.counters }

// Next returns the offset after the last message processed, -1 before any.
func (p *Processor) Next() int64 { return p.next }

// Pending returns how many results wait in the batch.
func (p *Processor) Pending() int {
	o := &p.out
	return len(o.KPIs) + len(o.Sessions) + len(o.Funnel) + len(o.DeadLetters) + len(o.Events)
}

// Batch returns the results gathered since the last Reset, with the counters
// and the offsets they cover. It stays valid until Reset.
func (p *Processor) Batch() *sinks.Batch {
	p.out.Counters = p.counters
	p.out.NextOffset = p.next
	if p.out.FirstOffset < 0 {
		p.out.FirstOffset = p.next
	}
	return &p.out
}

// Reset empties the batch once a sink has made it durable.
func (p *Processor) Reset() {
	o := &p.out
	clear(o.KPIs)
	clear(o.Sessions)
	clear(o.Funnel)
	clear(o.DeadLetters)
	clear(o.Events)
	*o = sinks.Batch{Topic: o.Topic, Partition: o.Partition, FirstOffset: -1,
		KPIs: o.KPIs[:0], Sessions: o.Sessions[:0], Funnel: o.Funnel[:0],
		DeadLetters: o.DeadLetters[:0], Events: o.Events[:0]}
}

const processorVersion = 1

// Snapshot returns the partition's state after the last message processed,
// with the offset it covers. Take it once the batch is durable and Reset: the
// results waiting in the batch are not part of it.
func (p *Processor) Snapshot() ([]byte, error) {
	b := snap.AppendHeader(nil, "pipeline", processorVersion)
	b = snap.AppendString(b, p.out.Topic)
	b = snap.AppendInt(b, int64(p.out.Partition))
	b = snap.AppendInt(b, p.next)
	b = snap.AppendInt(b, p.funMin)
	c := p.counters
	for _, v := range [...]int64{c.Read, c.Accepted, c.Invalid, c.Late, c.Duplicates} {
		b = snap.AppendInt(b, v)
	}
	for _, part := range p.parts() {
		sub, err := part.AppendBinary(nil)
		if err != nil {
			return nil, err
		}
		b = snap.AppendString(b, string(sub))
	}
	return b, nil
}

type stateful interface {
	AppendBinary([]byte) ([]byte, error)
	UnmarshalBinary([]byte) error
}

func (p *Processor) parts() []stateful { return []stateful{p.wm, p.dd, p.ss, p.win, p.fun} }

// Restore replaces the state with a snapshot of the same topic and
// partition, taken with the same configuration.
func (p *Processor) Restore(b []byte) error {
	r := snap.NewReader(b)
	r.Header("pipeline", processorVersion)
	topic, part := r.String(), int32(r.Int())
	if r.Err() == nil && (topic != p.out.Topic || part != p.out.Partition) {
		return fmt.Errorf("pipeline: snapshot of %s/%d restored into %s/%d", topic, part, p.out.Topic, p.out.Partition)
	}
	next, funMin := r.Int(), r.Int()
	c := sinks.Counters{Read: r.Int(), Accepted: r.Int(), Invalid: r.Int(), Late: r.Int(), Duplicates: r.Int()}
	for _, part := range p.parts() {
		sub := r.String()
		if r.Err() != nil {
			break
		}
		if err := part.UnmarshalBinary([]byte(sub)); err != nil {
			return fmt.Errorf("pipeline: restore: %w", err)
		}
	}
	if err := r.Done(); err != nil {
		return fmt.Errorf("pipeline: restore: %w", err)
	}
	p.next, p.funMin, p.counters = next, funMin, c
	p.openIn = p.ss.OpenInMinute
	p.Reset()
	return nil
}
