package pipeline_test

import (
	"cmp"
	"math"
	"slices"
	"time"

	"github.com/clickstreamkit/clickstream"
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
}

type refOut struct {
	read, accepted, invalid, late, duplicates int64
	dead                                      []refDead
	kpis                                      map[int64]*refKPI
	sessions                                  map[string]refSession
	funnel                                    map[int64]*refFunnel
}

type arrived struct {
	seq int
	e   clickstream.Event
}

func reference(cfg pipeline.Config, msgs [][]byte, now time.Time) refOut {
	dec := clickstream.NewDecoder(clickstream.WithClock(func() time.Time { return now }),
		clickstream.WithMaxEventBytes(cfg.MaxEventBytes), clickstream.WithMaxFutureSkew(cfg.MaxFutureSkew))
	out := refOut{kpis: map[int64]*refKPI{}, sessions: map[string]refSession{}, funnel: map[int64]*refFunnel{}}
	delay := cfg.WatermarkDelay.Milliseconds()
	maxTS, started := int64(0), false
	firstTS := map[string]int64{} // event_id -> event_ts of the accepted event
	var accepted []arrived
	for i, raw := range msgs {
		out.read++
		var e clickstream.Event
		if err := dec.Decode(raw, &e); err != nil {
			out.invalid++
			out.dead = append(out.dead, refDead{int64(i), err.(*clickstream.ValidationError).Reason})
			continue
		}
		wm := int64(math.MinInt64)
		if started {
			wm = maxTS - delay
		}
		if e.TS < wm {
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
	}

	// one-minute windows
	win := cfg.WindowSize.Milliseconds()
	users := map[int64]map[string]bool{}
	for _, a := range accepted {
		e := a.e
		m := e.TS - ((e.TS%win)+win)%win
		k := out.kpis[m]
		if k == nil {
			k = &refKPI{byCurrency: map[string]float64{}, products: map[string]*kpi.Product{}}
			out.kpis[m] = k
			users[m] = map[string]bool{}
		}
		k.counts.Events++
		if !users[m][e.UserID] {
			users[m][e.UserID] = true
			k.counts.Sessions++
		}
		var p *kpi.Product
		if e.ProductID != "" && e.Kind != clickstream.KindOther {
			if p = k.products[e.ProductID]; p == nil {
				p = &kpi.Product{ProductID: e.ProductID}
				k.products[e.ProductID] = p
			}
		}
		switch e.Kind {
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
		switch a.e.Kind {
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
	// funnel: the earliest S1, then the earliest S2 at or after it, ...
	minute := s.start - ((s.start%60_000)+60_000)%60_000
	f := out.funnel[minute]
	if f == nil {
		f = &refFunnel{steps: make([]int64, len(cfg.FunnelSteps))}
		out.funnel[minute] = f
	}
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
