package wikimedia

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/clickstreamkit/clickstream"
)

// feedFixture maps the recorded stream through Feed, as the producer does.
func feedFixture(t *testing.T) ([]clickstream.Event, *Counts) {
	blocks, ids := fixture(t)
	ts := httptest.NewServer(&recordedServer{t: t, blocks: blocks, ids: ids, drops: []int{-9}})
	defer ts.Close()
	s, err := NewStream(ts.URL, WithBackoff(time.Millisecond, time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	// The last change is a human's edit adding bytes: its add_to_cart ends
	// the stream.
	last := blocks[len(blocks)-1]
	last = last[strings.Index(last, `"meta":`):]
	last = last[strings.Index(last, `"id":"`)+6:]
	lastCart := last[:strings.IndexByte(last, '"')] + "/cart"
	var got []clickstream.Event
	var c Counts
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	err = Feed(ctx, s, func(e *clickstream.Event) error {
		got = append(got, *e)
		if e.EventID == lastCart {
			return errDone
		}
		return nil
	}, &c)
	if !errors.Is(err, errDone) {
		t.Fatal(err)
	}
	return got, &c
}

// Every event the recorded stream maps to is valid (SEMANTICS §1), and the
// stream maps as the package documentation says.
func TestFeedRecorded(t *testing.T) {
	got, c := feedFixture(t)
	if m, ch, mp := c.Messages.Load(), c.Changes.Load(), c.Mapped.Load(); m != 20 || ch != 20 || mp != 15 {
		t.Errorf("counts: %d messages, %d changes, %d mapped; want 20, 20, 15", m, ch, mp)
	}
	dec, err := clickstream.NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	var revenue float64
	seen := map[string]bool{}
	for _, e := range got {
		line := clickstream.AppendJSON(nil, &e)
		var back clickstream.Event
		if err := dec.Decode(line, &back); err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		if back != e {
			t.Errorf("round trip changed the event:\n%+v\n%+v", e, back)
		}
		if seen[e.EventID] {
			t.Errorf("event id %s twice", e.EventID)
		}
		seen[e.EventID] = true
		kinds[e.EventType]++
		revenue += e.Price
	}
	if len(got) != 28 || kinds["page_view"] != 15 || kinds["add_to_cart"] != 10 || kinds["purchase"] != 3 {
		t.Errorf("%d events %v; want 28: 15 page views, 10 add-to-carts, 3 purchases", len(got), kinds)
	}
	if math.Abs(revenue-95.89) > 1e-9 {
		t.Errorf("revenue %v, want 95.89 (53.21 + 8.12 + 34.56)", revenue)
	}
}

// A human's page creation, in full.
func TestMapGolden(t *testing.T) {
	got, _ := feedFixture(t)
	var lines []string
	for _, e := range got {
		if strings.HasPrefix(e.ProductID, "dewiki:Straßenbahn") {
			lines = append(lines, string(clickstream.AppendJSON(nil, &e)))
		}
	}
	const user = `"user_id":"wm_ee16f65db38095dc"`
	want := []string{
		`{"event_id":"5a181dab-1003-406f-812f-c0ffee04cb4b","event_type":"page_view","event_ts":"2025-03-14T12:00:02.000Z",` + user + `,"page":"/wiki/Stra%C3%9Fenbahn_G%C3%B6rlitz_Linie_3","product_id":"dewiki:Straßenbahn_Görlitz_Linie_3","geo":{"country":"DE","city":"Berlin"}}`,
		`{"event_id":"5a181dab-1003-406f-812f-c0ffee04cb4b/cart","event_type":"add_to_cart","event_ts":"2025-03-14T12:00:02.000Z",` + user + `,"page":"/wiki/Stra%C3%9Fenbahn_G%C3%B6rlitz_Linie_3","product_id":"dewiki:Straßenbahn_Görlitz_Linie_3","geo":{"country":"DE","city":"Berlin"}}`,
		`{"event_id":"5a181dab-1003-406f-812f-c0ffee04cb4b/purchase","event_type":"purchase","event_ts":"2025-03-14T12:00:02.000Z",` + user + `,"page":"/wiki/Stra%C3%9Fenbahn_G%C3%B6rlitz_Linie_3","product_id":"dewiki:Straßenbahn_Görlitz_Linie_3","price":53.21,"currency":"EUR","geo":{"country":"DE","city":"Berlin"}}`,
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	if UserID("Tramfreund") != "wm_ee16f65db38095dc" {
		t.Errorf("UserID(Tramfreund) = %s", UserID("Tramfreund"))
	}
}

func TestMap(t *testing.T) {
	base := func() RecentChange {
		rc, err := Parse([]byte(`{"meta":{"id":"m1","dt":"2025-03-14T13:00:00.250+01:00","domain":"fr.wikipedia.org"},
			"type":"edit","title":"Café de Flore","title_url":"https://fr.wikipedia.org/wiki/Caf%C3%A9_de_Flore",
			"timestamp":1741953600,"user":"Lutèce","bot":false,"server_name":"fr.wikipedia.org","wiki":"frwiki",
			"length":{"old":100,"new":150}}`))
		if err != nil {
			t.Fatal(err)
		}
		return rc
	}
	types := func(es []clickstream.Event) string {
		var s []string
		for _, e := range es {
			s = append(s, e.EventType)
		}
		return strings.Join(s, ",")
	}
	for _, tc := range []struct {
		name  string
		edit  func(*RecentChange)
		types string
		check func(*testing.T, []clickstream.Event)
	}{
		{"a human's edit adding bytes: view and cart", func(*RecentChange) {}, "page_view,add_to_cart", func(t *testing.T, es []clickstream.Event) {
			if es[0].TS != 1741953600250 || es[0].Page != "/wiki/Caf%C3%A9_de_Flore" || es[0].ProductID != "frwiki:Café_de_Flore" ||
				es[0].Geo != (clickstream.Geo{Country: "FR", City: "Paris"}) || es[1].EventID != "m1/cart" {
				t.Errorf("%+v", es)
			}
		}},
		{"removing bytes: view only", func(rc *RecentChange) { *rc.Length.New = 90 }, "page_view", nil},
		{"a bot: view only", func(rc *RecentChange) { rc.Bot = true }, "page_view", nil},
		{"a human's new page: view, cart, purchase", func(rc *RecentChange) { rc.Type, rc.Length.Old = "new", nil },
			"page_view,add_to_cart,purchase", func(t *testing.T, es []clickstream.Event) {
				if p := es[2]; !p.HasPrice || p.Price != 1.5 || p.Currency != "EUR" || p.EventID != "m1/purchase" {
					t.Errorf("%+v", p)
				}
			}},
		{"an empty new page: view only", func(rc *RecentChange) { rc.Type, rc.Length.Old, rc.Length.New = "new", nil, nil }, "page_view", nil},
		{"log", func(rc *RecentChange) { rc.Type = "log" }, "", nil},
		{"categorize", func(rc *RecentChange) { rc.Type = "categorize" }, "", nil},
		{"canary", func(rc *RecentChange) { rc.Meta.Domain = "canary" }, "", nil},
		{"no meta.id", func(rc *RecentChange) { rc.Meta.ID = "" }, "", nil},
		{"no user", func(rc *RecentChange) { rc.User = "" }, "", nil},
		{"a too long meta.id", func(rc *RecentChange) { rc.Meta.ID = strings.Repeat("x", 120) }, "", nil},
		{"no meta.dt: timestamp", func(rc *RecentChange) { rc.Meta.DT = "" }, "page_view,add_to_cart", func(t *testing.T, es []clickstream.Event) {
			if es[0].TS != 1741953600000 {
				t.Errorf("ts %d", es[0].TS)
			}
		}},
		{"no time at all", func(rc *RecentChange) { rc.Meta.DT, rc.Timestamp = "", 0 }, "", nil},
		{"no title_url: built from the title", func(rc *RecentChange) { rc.TitleURL = "" }, "page_view,add_to_cart", func(t *testing.T, es []clickstream.Event) {
			if es[0].Page != "/wiki/Caf%C3%A9_de_Flore" {
				t.Errorf("page %s", es[0].Page)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := base()
			tc.edit(&rc)
			es := Map(nil, &rc)
			if got := types(es); got != tc.types {
				t.Fatalf("types %q, want %q", got, tc.types)
			}
			dec, err := clickstream.NewDecoder()
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range es {
				if err := dec.Decode(clickstream.AppendJSON(nil, &e), new(clickstream.Event)); err != nil {
					t.Errorf("%+v: %v", e, err)
				}
			}
			if tc.check != nil {
				tc.check(t, es)
			}
		})
	}
}

func TestGeoOf(t *testing.T) {
	for name, want := range map[string]string{
		"de.wikipedia.org":      "DE/Berlin",
		"en.wiktionary.org":     "US/New York",
		"ja.wikipedia.org":      "JP/Tokyo",
		"commons.wikimedia.org": "/",
		"www.wikidata.org":      "/",
		"xx.wikipedia.org":      "/",
		"de.wikipedia.org.evil": "/",
		"":                      "/",
	} {
		g := GeoOf(name)
		if got := g.Country + "/" + g.City; got != want {
			t.Errorf("GeoOf(%q) = %s, want %s", name, got, want)
		}
	}
}

func ExampleMap() {
	rc, _ := Parse([]byte(`{"meta":{"id":"8c2e","dt":"2025-03-14T12:00:00Z","domain":"de.wikipedia.org"},
		"type":"new","title":"Görlitz","user":"Tramfreund","bot":false,
		"server_name":"de.wikipedia.org","wiki":"dewiki","length":{"new":1234}}`))
	for _, e := range Map(nil, &rc) {
		fmt.Println(e.EventID, e.EventType, e.Page, e.ProductID, e.Price, e.Geo.Country)
	}
	// Output:
	// 8c2e page_view /wiki/G%C3%B6rlitz dewiki:Görlitz 0 DE
	// 8c2e/cart add_to_cart /wiki/G%C3%B6rlitz dewiki:Görlitz 0 DE
	// 8c2e/purchase purchase /wiki/G%C3%B6rlitz dewiki:Görlitz 12.34 DE
}
