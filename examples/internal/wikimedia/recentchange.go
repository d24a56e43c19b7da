package wikimedia

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math"
	"net/url"
	"strings"
	"sync/atomic"

	"github.com/clickstreamkit/clickstream"
)

// RecentChange is the part of a mediawiki/recentchange event
// (https://schema.wikimedia.org/#!/primary/jsonschema/mediawiki/recentchange)
// that the mapping reads.
type RecentChange struct {
	Schema string `json:"$schema"`
	Meta   struct {
		URI       string `json:"uri"`
		RequestID string `json:"request_id"`
		ID        string `json:"id"`
		DT        string `json:"dt"`
		Domain    string `json:"domain"`
		Stream    string `json:"stream"`
		Topic     string `json:"topic"`
		Partition int32  `json:"partition"`
		Offset    int64  `json:"offset"`
	} `json:"meta"`
	ID         int64  `json:"id"`
	Type       string `json:"type"` // edit, new, log, categorize, external
	Namespace  int    `json:"namespace"`
	Title      string `json:"title"`
	TitleURL   string `json:"title_url"`
	Comment    string `json:"comment"`
	Timestamp  int64  `json:"timestamp"` // Unix seconds
	User       string `json:"user"`
	Bot        bool   `json:"bot"`
	Minor      bool   `json:"minor"`
	ServerURL  string `json:"server_url"`
	ServerName string `json:"server_name"`
	Wiki       string `json:"wiki"`
	Length     struct {
		Old *int64 `json:"old"`
		New *int64 `json:"new"`
	} `json:"length"`
	Revision struct {
		Old *int64 `json:"old"`
		New *int64 `json:"new"`
	} `json:"revision"`
}

// Parse decodes one event's data.
func Parse(data []byte) (RecentChange, error) {
	var rc RecentChange
	err := json.Unmarshal(data, &rc)
	return rc, err
}

// Map appends the clickstream events rc stands for (none, one, two or three;
// see the package documentation) to dst and returns the extended slice.
func Map(dst []clickstream.Event, rc *RecentChange) []clickstream.Event {
	if rc.Type != "edit" && rc.Type != "new" || rc.Meta.Domain == "canary" || rc.Meta.ID == "" || rc.User == "" {
		return dst
	}
	var ts int64
	if t, ok := clickstream.ParseTimestamp(rc.Meta.DT); ok {
		ts = t
	} else if rc.Timestamp > 0 {
		ts = rc.Timestamp * 1000
	} else {
		return dst
	}
	if len(rc.Meta.ID)+len("/purchase") > 128 { // SEMANTICS §1: event_id <= 128 bytes
		return dst
	}
	title := strings.ReplaceAll(rc.Title, " ", "_")
	e := clickstream.Event{
		EventID:   rc.Meta.ID,
		EventType: clickstream.TypePageView,
		TS:        ts,
		UserID:    UserID(rc.User),
		Page:      pagePath(rc.TitleURL, title),
		ProductID: rc.Wiki + ":" + title,
		Geo:       GeoOf(rc.ServerName),
	}
	dst = append(dst, e)
	if rc.Bot {
		return dst
	}
	var oldLen, newLen int64
	if rc.Length.Old != nil {
		oldLen = *rc.Length.Old
	}
	if rc.Length.New != nil {
		newLen = *rc.Length.New
	}
	added := newLen - oldLen
	if added <= 0 {
		return dst
	}
	cart := e
	cart.EventID, cart.EventType = rc.Meta.ID+"/cart", clickstream.TypeAddToCart
	dst = append(dst, cart)
	if rc.Type == "new" {
		buy := e
		buy.EventID, buy.EventType = rc.Meta.ID+"/purchase", clickstream.TypePurchase
		buy.HasPrice, buy.Price, buy.Currency = true, math.Round(float64(added))/100, "EUR"
		dst = append(dst, buy)
	}
	return dst
}

// UserID returns the pseudonymous user id of a wiki user name.
func UserID(user string) string {
	h := sha256.Sum256([]byte(user))
	return "wm_" + hex.EncodeToString(h[:8])
}

func pagePath(titleURL, title string) string {
	if u, err := url.Parse(titleURL); err == nil && strings.HasPrefix(u.EscapedPath(), "/wiki/") {
		return u.EscapedPath()
	}
	return "/wiki/" + url.PathEscape(title)
}

// languageGeo is an illustrative place for a language edition: the country
// where most of its readers live, and a large city there.
var languageGeo = map[string]clickstream.Geo{
	"en": {Country: "US", City: "New York"},
	"de": {Country: "DE", City: "Berlin"},
	"fr": {Country: "FR", City: "Paris"},
	"es": {Country: "ES", City: "Madrid"},
	"it": {Country: "IT", City: "Rome"},
	"pt": {Country: "BR", City: "São Paulo"},
	"nl": {Country: "NL", City: "Amsterdam"},
	"pl": {Country: "PL", City: "Warsaw"},
	"sv": {Country: "SE", City: "Stockholm"},
	"no": {Country: "NO", City: "Oslo"},
	"da": {Country: "DK", City: "Copenhagen"},
	"fi": {Country: "FI", City: "Helsinki"},
	"cs": {Country: "CZ", City: "Prague"},
	"hu": {Country: "HU", City: "Budapest"},
	"ro": {Country: "RO", City: "Bucharest"},
	"el": {Country: "GR", City: "Athens"},
	"tr": {Country: "TR", City: "Istanbul"},
	"uk": {Country: "UA", City: "Kyiv"},
	"ru": {Country: "RU", City: "Moscow"},
	"ja": {Country: "JP", City: "Tokyo"},
	"ko": {Country: "KR", City: "Seoul"},
	"vi": {Country: "VN", City: "Hanoi"},
	"th": {Country: "TH", City: "Bangkok"},
	"id": {Country: "ID", City: "Jakarta"},
	"hi": {Country: "IN", City: "New Delhi"},
	"ar": {Country: "EG", City: "Cairo"},
	"fa": {Country: "IR", City: "Tehran"},
}

// languageProjects are the projects with one wiki per language sub-domain.
var languageProjects = map[string]bool{"wikipedia": true, "wiktionary": true, "wikibooks": true, "wikinews": true,
	"wikiquote": true, "wikisource": true, "wikiversity": true, "wikivoyage": true}

// GeoOf returns the illustrative location of a wiki's server name, or the
// zero Geo.
func GeoOf(serverName string) clickstream.Geo {
	labels := strings.Split(serverName, ".")
	if len(labels) != 3 || labels[2] != "org" || !languageProjects[labels[1]] {
		return clickstream.Geo{}
	}
	return languageGeo[labels[0]]
}

// Counts are what [Feed] has seen; safe to read while it runs.
type Counts struct {
	Messages atomic.Int64 // server events of type "message"
	Changes  atomic.Int64 // of which parsed as recent changes
	Mapped   atomic.Int64 // of which mapped to at least one event
	Events   atomic.Int64 // clickstream events emitted
}

// Feed runs s and calls emit for every event the stream's recent changes map
// to, in order. Server events of other types than "message", and data that
// is not a recent change, are skipped. It returns what [Stream.Run] returns;
// an error from emit ends it. c may be nil.
func Feed(ctx context.Context, s *Stream, emit func(*clickstream.Event) error, c *Counts) error {
	if c == nil {
		c = new(Counts)
	}
	var buf []clickstream.Event
	return s.Run(ctx, func(ev ServerEvent) error {
		if ev.Type != "message" {
			return nil
		}
		c.Messages.Add(1)
		rc, err := Parse(ev.Data)
		if err != nil {
			return nil
		}
		c.Changes.Add(1)
		buf = Map(buf[:0], &rc)
		if len(buf) > 0 {
			c.Mapped.Add(1)
		}
		for i := range buf {
			if err := emit(&buf[i]); err != nil {
				return err
			}
			c.Events.Add(1)
		}
		return nil
	})
}
