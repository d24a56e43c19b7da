// Package gen makes synthetic clickstream data sets: users in sessions that
// walk the funnel over a product catalogue, with optional fractions of
// duplicates, late, out-of-order and invalid messages. The same seed gives
// the same data.
package gen

import (
	"cmp"
	"container/heap"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/clickstreamkit/clickstream"
)

// Config describes a data set.
type Config struct {
	Seed      uint64
	Events    int           // messages to make (about)
	Users     int           // distinct users
	Products  int           // catalogue size
	Start     time.Time     // event time of the first event
	Rate      float64       // events per second of event time
	Duplicate float64       // fraction of messages re-sent with the same id and ts
	Late      float64       // fraction sent far behind the watermark
	Disorder  time.Duration // events arrive up to this much out of order
	Invalid   float64       // fraction of invalid messages
	LateBy    time.Duration // how far behind late events are (> watermark delay)
}

// Default returns a modest, realistic data set of n events.
func Default(n int, seed uint64) Config {
	return Config{Seed: seed, Events: n, Users: max(10, n/8), Products: 200,
		Start: time.Date(2025, 3, 14, 12, 0, 0, 0, time.UTC), Rate: 50,
		Duplicate: 0.02, Late: 0.01, Disorder: 2 * time.Minute, Invalid: 0.01, LateBy: 30 * time.Minute}
}

// Message is one generated message with its key (the user id).
type Message struct {
	Key   string
	Value []byte
}

type pending struct {
	at  int64 // arrival order key
	msg Message
}

// Generate makes the data set in arrival order. Users alternate sessions of
// a few events, about 40 s apart, with idle spells beyond the session gap.
func Generate(c Config) []Message {
	r := rand.New(rand.NewPCG(c.Seed, c.Seed^0x9e3779b97f4a7c15))
	startMs := float64(c.Start.UnixMilli())
	span := float64(c.Events) / max(c.Rate, 1e-3) * 1000
	users := make(userHeap, c.Users)
	for i := range users {
		users[i] = &user{id: fmt.Sprintf("u_%06d", i), nextAt: startMs + r.Float64()*span,
			left: 1 + int(r.ExpFloat64()*7), device: devices[r.IntN(len(devices))], geo: geos[r.IntN(len(geos))]}
	}
	heap.Init(&users)
	out := make([]pending, 0, c.Events+c.Events/10)
	for seq := 0; len(out) < c.Events; seq++ {
		u := users[0]
		ts := int64(u.nextAt)
		e := clickstream.Event{EventID: fmt.Sprintf("e_%d_%08x", seq, r.Uint32()), TS: ts, UserID: u.id,
			SessionID: fmt.Sprintf("s_%s_%d", u.id, u.session), Device: u.device, Geo: u.geo}
		u.step(r, &e, c.Products)
		if u.left--; u.left > 0 {
			u.nextAt += 1000 + r.ExpFloat64()*40_000
		} else { // idle beyond the session gap, then a new session
			u.nextAt += float64(31*time.Minute/time.Millisecond) + r.Float64()*span
			u.left, u.stage = 1+int(r.ExpFloat64()*7), 0
			u.session++
		}
		heap.Fix(&users, 0)
		at := ts
		if c.Disorder > 0 {
			at += r.Int64N(c.Disorder.Milliseconds() + 1)
		}
		if r.Float64() < c.Late {
			e.TS -= c.LateBy.Milliseconds() + r.Int64N(60_000)
		}
		msg := Message{Key: u.id, Value: clickstream.AppendJSON(nil, &e)}
		out = append(out, pending{at, msg})
		if r.Float64() < c.Duplicate {
			out = append(out, pending{at + r.Int64N(120_000), msg})
		}
		if r.Float64() < c.Invalid {
			out = append(out, pending{at, Message{Key: u.id, Value: invalid(r, e)}})
		}
	}
	sortStable(out)
	msgs := make([]Message, len(out))
	for i := range out {
		msgs[i] = out[i].msg
	}
	return msgs
}

type user struct {
	id      string
	nextAt  float64 // event time of the user's next event
	left    int     // events left in the session
	session int
	stage   int // funnel progress: 0 none, 1 viewed, 2 in cart
	prod    int
	device  clickstream.Device
	geo     clickstream.Geo
}

// step makes the user's next event walk the funnel.
func (u *user) step(r *rand.Rand, e *clickstream.Event, products int) {
	switch p := r.Float64(); {
	case u.stage >= 2 && p < 0.35:
		e.EventType, e.ProductID = clickstream.TypePurchase, fmt.Sprintf("sku_%05d", u.prod)
		e.HasPrice, e.Price = true, float64(500+r.IntN(20000))/100
		e.Currency = currencies[r.IntN(len(currencies))]
		u.stage = 0
	case u.stage >= 1 && p < 0.30:
		e.EventType, e.ProductID = clickstream.TypeAddToCart, fmt.Sprintf("sku_%05d", u.prod)
		u.stage = 2
	case p < 0.05:
		e.EventType = "search"
	default:
		u.prod = int(r.ExpFloat64()*float64(products)/5) % products
		e.EventType, e.ProductID = clickstream.TypePageView, fmt.Sprintf("sku_%05d", u.prod)
		e.Page = "/product/" + e.ProductID
		if r.Float64() < 0.3 {
			e.UTM = clickstream.UTM{Source: "google", Medium: "cpc", Campaign: "spring24"}
		}
		u.stage = max(u.stage, 1)
	}
}

type userHeap []*user

func (h userHeap) Len() int           { return len(h) }
func (h userHeap) Less(i, j int) bool { return h[i].nextAt < h[j].nextAt }
func (h userHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *userHeap) Push(x any)        { *h = append(*h, x.(*user)) }
func (h *userHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

var (
	currencies = []string{"EUR", "EUR", "EUR", "EUR", "USD", "GBP"}
	devices    = []clickstream.Device{{UA: "Mozilla/5.0", OS: "Windows"}, {UA: "Mozilla/5.0", OS: "iOS", Mobile: true}, {UA: "Mozilla/5.0", OS: "Android", Mobile: true}, {UA: "Mozilla/5.0", OS: "macOS"}}
	geos       = []clickstream.Geo{{Country: "DE", City: "Munich"}, {Country: "FR", City: "Paris"}, {Country: "US", City: "Austin"}, {Country: "GB", City: "Leeds"}}
)

// invalid returns a broken variant of e, one of the §1 failure kinds.
func invalid(r *rand.Rand, e clickstream.Event) []byte {
	good := clickstream.AppendJSON(nil, &e)
	switch r.IntN(7) {
	case 0:
		return good[:len(good)/2] // malformed JSON
	case 1:
		e.UserID = ""
		return clickstream.AppendJSON(nil, &e) // bad value
	case 2:
		return []byte(`{"event_id":"x1","event_type":"page_view","event_ts":"yesterday","user_id":"` + e.UserID + `"}`)
	case 3:
		return []byte(`{"event_id":"x2","event_type":"purchase","event_ts":"2025-03-14T12:00:00Z","user_id":"` + e.UserID + `","currency":"EUR"}`)
	case 4:
		return []byte(`{"event_id":"x3","event_type":"purchase","event_ts":"2025-03-14T12:00:00Z","user_id":"` + e.UserID + `","price":-1,"currency":"EUR"}`)
	case 5:
		return []byte(`{"event_id":17,"event_type":"page_view","event_ts":"2025-03-14T12:00:00Z","user_id":"` + e.UserID + `"}`)
	default:
		return []byte(`not json at all`)
	}
}

func sortStable(ps []pending) {
	slices.SortStableFunc(ps, func(a, b pending) int { return cmp.Compare(a.at, b.at) })
}

// Baseline is the event's shape for encoding/json, which benchmarks compare
// the decoder with.
type Baseline struct {
	EventID   string   `json:"event_id"`
	EventType string   `json:"event_type"`
	EventTS   string   `json:"event_ts"`
	UserID    string   `json:"user_id"`
	SessionID string   `json:"session_id"`
	Page      string   `json:"page"`
	ProductID string   `json:"product_id"`
	Price     *float64 `json:"price"`
	Currency  string   `json:"currency"`
	UTM       struct {
		Source   string `json:"source"`
		Medium   string `json:"medium"`
		Campaign string `json:"campaign"`
	} `json:"utm"`
	Device struct {
		UA     string `json:"ua"`
		OS     string `json:"os"`
		Mobile bool   `json:"mobile"`
	} `json:"device"`
	Geo struct {
		Country string `json:"country"`
		City    string `json:"city"`
	} `json:"geo"`
}
