package pipeline_test

import (
	"cmp"
	"math"
	"slices"
	"time"

	"github.com/clickstreamkit/clickstream"
	"github.com/clickstreamkit/clickstream/funnel"
	"github.com/clickstreamkit/clickstream/kpi"
	"github.com/clickstreamkit/clickstream/pipeline"
)

// This file is a deliberately simple batch reference of SEMANTICS: it reads
// the whole input, then computes each output from the accepted events with
// plain sorting and maps. The pipeline, which works incrementally, must agree.

type refDead struct {
	offset int64
	reason clickstream.Reason
}

type refKPI struct {
	counts     kpi.Counts
	byCurrency map[string]float64
	products   map[string]*kpi.Product
}

type refSession struct {
	id, user             string
	start, end           int64
	events, pv, atc, pur int64
	revenue              float64
}

type refFunnel struct {
	steps []int64
	times []int64
	by    map[string]*refFunnel // with a breakdown: by the value of the entity's earliest event
}

type refOut struct {
	read, accepted, invalid, late, duplicates int64
	lateAtEnd                                 int64 // late only for an earlier run's end
	dead                                      []refDead
	kpis                                      map[int64]*refKPI
	sessions                                  map[string]refSession
	funnel                                    map[int64]*refFunnel
}

type arrived struct {
	seq int
	e   clickstream.Event
}

// reference computes the outputs of one finite input.
func reference(cfg pipeline.Config, msgs [][]byte, now time.Time) refOut {
	return referenceRuns(cfg, [][][]byte{msgs}, now)
}

// referenceRuns computes the outputs of finite inputs run one after the
// other over the state the previous one left (its checkpoint after the end
// of input): offsets go on across the runs, and each run's end raises the
// watermark to the newest accepted event_ts plus the horizon, below which
// the next run's events are late (SEMANTICS §3, §10).
func referenceRuns(cfg pipeline.Config, runs [][][]byte, now time.Time) refOut {
	dec := mustDecoder(clickstream.WithClock(func() time.Time { return now }),
		clickstream.WithMaxEventBytes(cfg.MaxEventBytes), clickstream.WithMaxFutureSkew(cfg.MaxFutureSkew))
	out := refOut{kpis: map[int64]*refKPI{}, sessions: map[string]refSession{}, funnel: map[int64]*refFunnel{}}
	delay := cfg.WatermarkDelay.Milliseconds()
	maxTS, started := int64(0), false
	floor := int64(math.MinInt64)
	firstTS := map[string]int64{} // event_id -> event_ts of the accepted event
	var accepted []arrived
	offset := 0
	for ri, msgs := range runs {
		switch {
		case ri > 0 && started:
			floor = max(floor, maxTS+refHorizon(cfg))
		case ri > 0: // nothing accepted yet: the end of input was idle (§11)
			floor = max(floor, now.Add(-cfg.WatermarkDelay).UnixMilli())
		}
		for _, raw := range msgs {
			i := offset
			offset++
			out.read++
			var e clickstream.Event
			if err := dec.Decode(raw, &e); err != nil {
				out.invalid++
				out.dead = append(out.dead, refDead{int64(i), err.(*clickstream.ValidationError).Reason})
				continue
			}
			wm := floor
			if started {
				wm = max(wm, maxTS-delay)
			}
			if e.TS < wm {
				if started && e.TS >= maxTS-delay {
					out.lateAtEnd++
				}
				out.late++
				out.dead = append(out.dead, refDead{int64(i), clickstream.ReasonLate})
				continue
			}
			if ts, ok := firstTS[e.EventID]; ok && ts >= wm {
				out.duplicates++
				continue
			}
			firstTS[e.EventID] = e.TS
			out.accepted++
			accepted = append(accepted, arrived{i, e})
			if !started || e.TS > maxTS {
				maxTS, started = e.TS, true
			}
		}
	}

	// sessions: a user's events by time, cut where a gap reaches session_gap
	byUser := map[string][]arrived{}
	for _, a := range accepted {
		byUser[a.e.UserID] = append(byUser[a.e.UserID], a)
	}
	gap := cfg.SessionGap.Milliseconds()
	for _, evs := range byUser {
		slices.SortStableFunc(evs, func(a, b arrived) int { return cmp.Compare(a.e.TS, b.e.TS) })
		for lo := 0; lo < len(evs); {
			hi := lo + 1
			for hi < len(evs) && evs[hi].e.TS-evs[hi-1].e.TS < gap {
				hi++
			}
			out.addSession(cfg, evs[lo:hi])
			lo = hi
		}
		if cfg.FunnelScope == funnel.ScopeUser {
			out.addUserEntities(cfg, evs)
		}
	}

	// windows of window_size, aligned to the epoch
	win := cfg.WindowSize.Milliseconds()
	users := map[int64]map[string]bool{}
	for _, a := range accepted {
		e := a.e
		m := floorTo(e.TS, win)
		k := out.kpis[m]
		if k == nil {
			k = &refKPI{byCurrency: map[string]float64{}, products: map[string]*kpi.Product{}}
			out.kpis[m] = k
			users[m] = map[string]bool{}
		}
		k.counts.Events++
		// with session_gap >= window_size, a window's sessions are its users
		if !users[m][e.UserID] {
			users[m][e.UserID] = true
			k.counts.Sessions++
		}
		var p *kpi.Product
		if e.ProductID != "" && e.Kind() != clickstream.KindOther {
			if p = k.products[e.ProductID]; p == nil {
				p = &kpi.Product{ProductID: e.ProductID}
				k.products[e.ProductID] = p
			}
		}
		switch e.Kind() {
		case clickstream.KindPageView:
			k.counts.PageViews++
			if p != nil {
				p.Views++
			}
		case clickstream.KindAddToCart:
			k.counts.AddToCarts++
			if p != nil {
				p.Carts++
			}
		case clickstream.KindPurchase:
			k.counts.Purchases++
			k.byCurrency[e.Currency] += e.Price
			rev, ok := refRevenue(cfg, e)
			if ok {
				k.counts.Revenue += rev
				k.counts.RevenuePurchases++
			}
			if p != nil {
				p.Purchases++
				p.Revenue += rev
			}
		}
	}
	return out
}

// refHorizon is how far past the newest event_ts the results of a finished
// input reach: window_size, session_gap, one minute (a funnel minute) and,
// in user scope, one minute plus conversion_window, whichever is longest.
func refHorizon(cfg pipeline.Config) int64 {
	h := max(cfg.WindowSize, cfg.SessionGap, time.Minute)
	if cfg.FunnelScope == funnel.ScopeUser {
		h = max(h, time.Minute+cfg.ConversionWindow)
	}
	return h.Milliseconds()
}

func floorTo(ts, size int64) int64 { return ts - ((ts%size)+size)%size }

func refRevenue(cfg pipeline.Config, e clickstream.Event) (float64, bool) {
	if e.Currency == cfg.Currencies.Base {
		return e.Price, true
	}
	if r, ok := cfg.Currencies.Rates[e.Currency]; ok {
		return e.Price * r, true
	}
	return 0, false
}

func (out *refOut) addSession(cfg pipeline.Config, evs []arrived) {
	s := refSession{user: evs[0].e.UserID, start: evs[0].e.TS, end: evs[len(evs)-1].e.TS}
	s.id = s.user + "/" + clickstream.FormatTime(s.start)
	for _, a := range evs {
		s.events++
		switch a.e.Kind() {
		case clickstream.KindPageView:
			s.pv++
		case clickstream.KindAddToCart:
			s.atc++
		case clickstream.KindPurchase:
			s.pur++
			if r, ok := refRevenue(cfg, a.e); ok {
				s.revenue += r
			}
		}
	}
	out.sessions[s.id] = s
	if cfg.FunnelScope == funnel.ScopeSession {
		out.addEntity(cfg, floorTo(s.start, 60_000), evs) // evs by event_ts, ties in arrival order
	}
}

// addUserEntities cuts one user's events (sorted by event_ts) into the
// entities of user scope (SEMANTICS §7): an entity starts at the earliest
// first step not in an earlier entity and holds the user's events within
// conversion_window of it, [t1, t1 + conversion_window); the next starts
// at the earliest first step at or after that end.
func (out *refOut) addUserEntities(cfg pipeline.Config, evs []arrived) {
	w := cfg.ConversionWindow.Milliseconds()
	end := int64(math.MinInt64)
	for _, a := range evs {
		if a.e.EventType != cfg.FunnelSteps[0] || a.e.TS < end {
			continue
		}
		t1 := a.e.TS
		end = t1 + w
		var ent []arrived
		for _, b := range evs {
			if b.e.TS >= t1 && b.e.TS < end {
				ent = append(ent, b)
			}
		}
		out.addEntity(cfg, floorTo(t1, 60_000), ent)
	}
}

// addEntity counts an entity, its events sorted by event_ts, in the funnel
// of start minute: the earliest S1, then the earliest S2 at or after it, ...
func (out *refOut) addEntity(cfg pipeline.Config, minute int64, evs []arrived) {
	f := out.funnel[minute]
	if f == nil {
		f = &refFunnel{steps: make([]int64, len(cfg.FunnelSteps))}
		out.funnel[minute] = f
	}
	f.count(cfg, evs)
	if cfg.FunnelBreakdown == "" || cfg.FunnelScope != funnel.ScopeSession {
		return
	}
	if f.by == nil {
		f.by = map[string]*refFunnel{}
	}
	v := cfg.FunnelBreakdown.Value(&evs[0].e)
	if f.by[v] == nil {
		f.by[v] = &refFunnel{steps: make([]int64, len(cfg.FunnelSteps))}
	}
	f.by[v].count(cfg, evs)
}

func (f *refFunnel) count(cfg pipeline.Config, evs []arrived) {
	used := make([]bool, len(evs))
	prev, first := int64(math.MinInt64), int64(0)
	for j, step := range cfg.FunnelSteps {
		k := -1
		for i, a := range evs {
			if !used[i] && a.e.EventType == step && a.e.TS >= prev {
				k = i
				break
			}
		}
		if k < 0 {
			return
		}
		used[k] = true
		prev = evs[k].e.TS
		if j == 0 {
			first = prev
		}
		f.steps[j]++
	}
	f.times = append(f.times, prev-first)
}

// mustDecoder returns a decoder of opts; the tests' settings are all valid.
func mustDecoder(opts ...clickstream.DecoderOption) *clickstream.Decoder {
	d, err := clickstream.NewDecoder(opts...)
	if err != nil {
		panic(err)
	}
	return d
}
