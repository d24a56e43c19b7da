package kpi

// Minute is a window's KPIs (SEMANTICS §6): one partition's partial, or
// several merged. Final is false for running updates.
type Minute struct {
	Minute int64 // window start, Unix millis
	Final  bool
	Counts
	RevenueByCurrency map[string]float64
	TopProducts       []Product // ranked, at most TopN
	Latency           Sketch
}

// ConversionRate is purchases / sessions, 0 without sessions.
func (m *Minute) ConversionRate() float64 {
	if m.Sessions == 0 {
		return 0
	}
	return float64(m.Purchases) / float64(m.Sessions)
}

// AOV is revenue / revenue_purchases, 0 without any.
func (m *Minute) AOV() float64 {
	if m.RevenuePurchases == 0 {
		return 0
	}
	return m.Revenue / float64(m.RevenuePurchases)
}

// LatencyP95 returns the p95 latency in milliseconds and whether any latency
// was measured.
func (m *Minute) LatencyP95() (float64, bool) {
	return m.Latency.Quantile(0.95), m.Latency.Count() > 0
}

// Merge sums partials of the same window from several partitions: counts add,
// rates follow from the sums, top products merge from the per-partition
// lists, latency sketches merge. Final holds when every part is final.
func Merge(parts ...Minute) Minute {
	if len(parts) == 0 {
		return Minute{}
	}
	out := Minute{Minute: parts[0].Minute, Final: true, RevenueByCurrency: map[string]float64{}}
	byID := map[string]*Product{}
	for i := range parts {
		p := &parts[i]
		out.Final = out.Final && p.Final
		out.Counts.add(&p.Counts)
		for k, v := range p.RevenueByCurrency {
			out.RevenueByCurrency[k] += v
		}
		for _, pr := range p.TopProducts {
			q, ok := byID[pr.ProductID]
			if !ok {
				q = &Product{ProductID: pr.ProductID}
				byID[pr.ProductID] = q
			}
			q.Views += pr.Views
			q.Carts += pr.Carts
			q.Purchases += pr.Purchases
			q.Revenue += pr.Revenue
		}
		out.Latency.Merge(&p.Latency)
	}
	out.TopProducts = make([]Product, 0, len(byID))
	for _, q := range byID {
		out.TopProducts = append(out.TopProducts, *q)
	}
	out.TopProducts = rank(out.TopProducts)
	return out
}
