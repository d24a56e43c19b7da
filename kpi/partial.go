package kpi

import (
	"cmp"
	"slices"
	"strings"

	"github.com/clickstreamkit/clickstream"
	"github.com/clickstreamkit/clickstream/internal/snap"
)

// TopN is how many products a window reports.
const TopN = 10

// Obs is one accepted event as a window sees it.
type Obs struct {
	Event *clickstream.Event
	// Users counts the window's sessions: the event counts in sessions when
	// it is its user's first in the window. Nil counts none.
	Users *Users
	// LatencyMs is the time the event was applied minus its record timestamp.
	LatencyMs float64
}

// Partial is one partition's running KPIs for one window. It implements
// window.Aggregate[Obs]. Create it with NewPartial.
type Partial struct {
	money      clickstream.Currencies
	start, end int64
	counts     Counts
	byCur      map[string]float64
	products   map[string]*Product
	pool       []*Product
	names      map[string]string // product ids of the windows served so far, interned

	latency Sketch
}

// Counts are the additive counters of a window.
type Counts struct {
	Events           int64   `json:"events"`
	PageViews        int64   `json:"page_views"`
	AddToCarts       int64   `json:"add_to_carts"`
	Purchases        int64   `json:"purchases"`
	Sessions         int64   `json:"sessions"`
	Revenue          float64 `json:"revenue"`
	RevenuePurchases int64   `json:"revenue_purchases"`
}

func (c *Counts) add(o *Counts) {
	c.Events += o.Events
	c.PageViews += o.PageViews
	c.AddToCarts += o.AddToCarts
	c.Purchases += o.Purchases
	c.Sessions += o.Sessions
	c.Revenue += o.Revenue
	c.RevenuePurchases += o.RevenuePurchases
}

// Product is one product's figures in a window.
type Product struct {
	ProductID string  `json:"product_id"`
	Views     int64   `json:"views"`
	Carts     int64   `json:"carts"`
	Purchases int64   `json:"purchases"`
	Revenue   float64 `json:"revenue"`
}

// NewPartial returns an empty partial that values purchases with money.
func NewPartial(money clickstream.Currencies) *Partial {
	return &Partial{money: money, byCur: map[string]float64{}, products: map[string]*Product{}, names: map[string]string{}}
}

// Reset empties p for the window [start, end).
func (p *Partial) Reset(start, end int64) {
	p.start, p.end = start, end
	p.counts = Counts{}
	clear(p.byCur)
	for _, pr := range p.products {
		p.pool = append(p.pool, pr)
	}
	clear(p.products)
	p.latency.Reset()
}

// Add folds one accepted event in.
func (p *Partial) Add(o Obs) {
	e := o.Event
	c := &p.counts
	c.Events++
	if o.Users != nil && o.Users.First(e.UserID, p.start, p.end) {
		c.Sessions++
	}
	p.latency.Add(o.LatencyMs)
	var pr *Product
	kind := e.Kind()
	if e.ProductID != "" && kind != clickstream.KindOther {
		pr = p.product(e.ProductID)
	}
	switch kind {
	case clickstream.KindPageView:
		c.PageViews++
		if pr != nil {
			pr.Views++
		}
	case clickstream.KindAddToCart:
		c.AddToCarts++
		if pr != nil {
			pr.Carts++
		}
	case clickstream.KindPurchase:
		c.Purchases++
		p.addCurrency(e.Currency, e.Price)
		r, ok := p.money.Revenue(e)
		if ok {
			c.Revenue += r
			c.RevenuePurchases++
		}
		if pr != nil {
			pr.Purchases++
			pr.Revenue += r
		}
	}
}

func (p *Partial) addCurrency(cur string, price float64) {
	if _, ok := p.byCur[cur]; !ok {
		cur = strings.Clone(cur)
	}
	p.byCur[cur] += price
}

// maxNames bounds a partial's interned product ids.
const maxNames = 1 << 14

// intern returns a copy of id, the same for each window: the event's
// strings pin its whole message.
func (p *Partial) intern(id string) string {
	if v, ok := p.names[id]; ok {
		return v
	}
	id = strings.Clone(id)
	if len(p.names) < maxNames {
		p.names[id] = id
	}
	return id
}

func (p *Partial) product(id string) *Product {
	if pr, ok := p.products[id]; ok {
		return pr
	}
	var pr *Product
	if n := len(p.pool); n > 0 {
		pr, p.pool = p.pool[n-1], p.pool[:n-1]
	} else {
		pr = new(Product)
	}
	*pr = Product{ProductID: p.intern(id)}
	p.products[pr.ProductID] = pr
	return pr
}

// Minute returns the window's record.
func (p *Partial) Minute(final bool) Minute {
	m := Minute{Minute: p.start, Final: final, Counts: p.counts, Latency: p.latency.Clone()}
	m.RevenueByCurrency = make(map[string]float64, len(p.byCur))
	for k, v := range p.byCur {
		m.RevenueByCurrency[k] = v
	}
	m.TopProducts = make([]Product, 0, len(p.products))
	for _, pr := range p.products {
		m.TopProducts = append(m.TopProducts, *pr)
	}
	m.TopProducts = rank(m.TopProducts)
	return m
}

// rank orders products by purchases desc, views desc, product_id asc and
// keeps the first TopN.
func rank(ps []Product) []Product {
	slices.SortFunc(ps, func(a, b Product) int {
		if c := cmp.Compare(b.Purchases, a.Purchases); c != 0 {
			return c
		}
		if c := cmp.Compare(b.Views, a.Views); c != 0 {
			return c
		}
		return strings.Compare(a.ProductID, b.ProductID)
	})
	if len(ps) > TopN {
		ps = ps[:TopN]
	}
	return ps
}

const partialVersion = 1

// AppendBinary appends p's state (encoding.BinaryAppender).
func (p *Partial) AppendBinary(dst []byte) ([]byte, error) {
	dst = snap.AppendHeader(dst, "kpi", partialVersion)
	dst = snap.AppendInt(dst, p.start)
	dst = snap.AppendInt(dst, p.end)
	c := p.counts
	for _, v := range [...]int64{c.Events, c.PageViews, c.AddToCarts, c.Purchases, c.Sessions, c.RevenuePurchases} {
		dst = snap.AppendInt(dst, v)
	}
	dst = snap.AppendFloat(dst, c.Revenue)
	keys := make([]string, 0, len(p.byCur))
	for k := range p.byCur {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	dst = snap.AppendUint(dst, uint64(len(keys)))
	for _, k := range keys {
		dst = snap.AppendString(dst, k)
		dst = snap.AppendFloat(dst, p.byCur[k])
	}
	keys = keys[:0]
	for k := range p.products {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	dst = snap.AppendUint(dst, uint64(len(keys)))
	for _, k := range keys {
		pr := p.products[k]
		dst = snap.AppendString(dst, k)
		dst = snap.AppendInt(dst, pr.Views)
		dst = snap.AppendInt(dst, pr.Carts)
		dst = snap.AppendInt(dst, pr.Purchases)
		dst = snap.AppendFloat(dst, pr.Revenue)
	}
	return p.latency.appendBinary(dst), nil
}

// UnmarshalBinary restores what AppendBinary wrote; the currencies stay.
func (p *Partial) UnmarshalBinary(b []byte) error {
	r := snap.NewReader(b)
	r.Header("kpi", partialVersion)
	p.Reset(r.Int(), r.Int())
	c := &p.counts
	c.Events, c.PageViews, c.AddToCarts, c.Purchases, c.Sessions, c.RevenuePurchases = r.Int(), r.Int(), r.Int(), r.Int(), r.Int(), r.Int()
	c.Revenue = r.Float()
	for range r.Len() {
		k := r.String()
		p.byCur[k] = r.Float()
	}
	for range r.Len() {
		pr := p.product(r.String())
		pr.Views, pr.Carts, pr.Purchases, pr.Revenue = r.Int(), r.Int(), r.Int(), r.Float()
	}
	p.latency.restore(r)
	return r.Done()
}
