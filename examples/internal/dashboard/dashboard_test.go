package dashboard_test

// Real-browser tests of the dashboard page against the read API handler of
// package readapi over the fake store of package dashboardtest: what the page
// shows is compared with what that handler answers. They need Chromium at /usr/bin/chromium (Debian:
// apt-get install -y chromium) and skip without it. Set DASHBOARD_SCREENSHOT
// to a file name to get a PNG of the page as the main test sees it.
//
// No test asserts on timing: every wait polls the page for a condition, and
// its timeout only turns a hang into a failure.

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/clickstreamkit/clickstream/examples/internal/dashboard/dashboardtest"
)

const chromiumPath = "/usr/bin/chromium"

// waitTimeout bounds every wait for the page; generous, since it only turns a
// hang into a failure.
const waitTimeout = 45 * time.Second

// newBrowser starts a headless Chromium that cannot reach the internet: no
// background networking, component updates or sync, a new empty profile, and
// every host name resolving to nothing (the fake API is on 127.0.0.1).
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Skipf("browser test skipped: no Chromium at %s (install it with: apt-get install -y chromium)", chromiumPath)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1440, 1000),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("no-pings", true),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"),
		chromedp.Flag("lang", "en-GB"),
	)
	ctx, cancel := context.WithCancel(t.Context()) // each wait has its own timeout
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	bctx, bcancel := chromedp.NewContext(actx)
	t.Cleanup(func() { bcancel(); acancel(); cancel() })
	if err := chromedp.Do(bctx); err != nil { // starts the browser
		t.Fatalf("starting %s: %v", chromiumPath, err)
	}
	return bctx
}

// tab is one browser tab, with what it logged and requested.
type tab struct {
	t   *testing.T
	ctx context.Context

	mu       sync.Mutex
	requests []string
	console  []string
}

func newTab(t *testing.T, browser context.Context) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser)
	t.Cleanup(cancel)
	p := &tab{t: t, ctx: ctx}
	if err := chromedp.Do(ctx); err != nil { // opens the tab
		t.Fatal(err)
	}
	if err := chromedp.Listen(ctx, func(ev any) {
		if ev, ok := ev.(*network.EventRequestWillBeSent); ok {
			p.mu.Lock()
			p.requests = append(p.requests, ev.Request.URL)
			p.mu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				p.mu.Lock()
				p.console = append(p.console, fmt.Sprintf("%s (%s:%d)", m, m.URL, m.Line+1))
				p.mu.Unlock()
			}
		}
	}()
	return p
}

func (p *tab) navigate(url string) {
	p.t.Helper()
	if err := chromedp.Do(p.ctx, chromedp.Navigate(url)); err != nil {
		p.t.Fatalf("navigate %s: %v", url, err)
	}
}

// waitFor polls the JavaScript expression until it is truthy.
func (p *tab) waitFor(what, expr string) {
	p.t.Helper()
	_, err := chromedp.Run(p.ctx, chromedp.Poll[chromedp.Void](expr,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(waitTimeout)))
	if err != nil {
		p.t.Fatalf("waiting for %s: %v\npage state: %s\nconsole errors: %v", what, err, p.dump(), p.consoleErrors(nil))
	}
}

func eval[T any](p *tab, expr string) T {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		p.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

func (p *tab) dump() string {
	s, err := chromedp.Run(p.ctx, chromedp.Evaluate[string](`JSON.stringify({
		tiles: [...document.querySelectorAll('.tile')].map(t => [t.dataset.testid, t.dataset.raw, t.dataset.final, t.querySelector('[data-testid=value]').textContent]),
		connection: document.querySelector('[data-testid=connection]').dataset.mode,
		notice: document.querySelector('[data-testid=notice]').textContent})`))
	if err != nil {
		return err.Error()
	}
	return s
}

// consoleErrors answers the console errors that no allowed substring matches.
func (p *tab) consoleErrors(allowed []string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, m := range p.console {
		if !slices.ContainsFunc(allowed, func(a string) bool { return strings.Contains(m, a) }) {
			out = append(out, m)
		}
	}
	return out
}

// checkClean fails on console errors and on requests to anything but origin.
func (p *tab) checkClean(origin string, allowedConsole ...string) {
	p.t.Helper()
	if errs := p.consoleErrors(allowedConsole); len(errs) > 0 {
		p.t.Errorf("console errors:\n%s", strings.Join(errs, "\n"))
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.requests) == 0 {
		p.t.Error("saw no network requests")
	}
	for _, u := range p.requests {
		if !strings.HasPrefix(u, origin+"/") && !strings.HasPrefix(u, "data:") {
			p.t.Errorf("the page requested %s: everything must come from %s", u, origin)
		}
	}
}

func (p *tab) requested(path string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.ContainsFunc(p.requests, func(u string) bool { return strings.Contains(u, path) })
}

// thousands formats n as the page does (en-GB): 3400 is "3,400".
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func jsJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

type tileSpec struct {
	id   string
	raw  func(dashboardtest.KPI) float64
	unit string // what the displayed value must contain
}

var tiles = []tileSpec{
	{"tile-sessions", func(k dashboardtest.KPI) float64 { return float64(k.Sessions) }, ""},
	{"tile-conversion", func(k dashboardtest.KPI) float64 { return k.ConversionRate }, "%"},
	{"tile-revenue", func(k dashboardtest.KPI) float64 { return k.Revenue }, "€"},
	{"tile-aov", func(k dashboardtest.KPI) float64 { return k.AOV }, "€"},
	{"tile-latency", func(k dashboardtest.KPI) float64 { return k.LatencyMsP95 }, "ms"},
}

type tileState struct {
	ID        string `json:"id"`
	Raw       string `json:"raw"`
	Final     string `json:"final"`
	Value     string `json:"value"`
	Delta     string `json:"delta"`
	Direction string `json:"direction"`
}

const readTilesJS = `[...document.querySelectorAll('.tile')].map(t => ({
	id: t.dataset.testid, raw: t.dataset.raw, final: t.dataset.final,
	value: t.querySelector('[data-testid="value"]').textContent,
	delta: t.querySelector('[data-testid="delta"]').textContent,
	direction: t.querySelector('[data-testid="delta"]').dataset.direction || ''}))`

// waitTilesLive waits until every tile shows a number.
func (p *tab) waitTilesLive() {
	p.t.Helper()
	p.waitFor("all five tiles to show live numbers", `(() => {
		const ts = [...document.querySelectorAll('.tile')];
		return ts.length === 5 && ts.every(t => t.dataset.raw !== '' && !isNaN(Number(t.dataset.raw)));
	})()`)
}

// checkTiles waits until the tiles show want (the fake must be paused) and
// then asserts each tile's data-raw, data-final, value and delta.
func (p *tab) checkTiles(want, prev dashboardtest.KPI) {
	p.t.Helper()
	exp := map[string]float64{}
	dirs := map[string]string{}
	for _, ts := range tiles {
		exp[ts.id] = ts.raw(want)
		switch d := ts.raw(want) - ts.raw(prev); {
		case !want.Final: // an open minute is compared with nothing
			dirs[ts.id] = ""
		case d > 0:
			dirs[ts.id] = "up"
		case d < 0:
			dirs[ts.id] = "down"
		default:
			dirs[ts.id] = "flat"
		}
	}
	p.waitFor("the tiles to show the fake's /kpis/latest and the delta to its previous minute", fmt.Sprintf(`(() => {
		const exp = %s, dirs = %s, fin = %q;
		return Object.entries(exp).every(([id, v]) => {
			const t = document.querySelector('[data-testid="' + id + '"]');
			const d = t.querySelector('[data-testid="delta"]');
			return t.dataset.raw !== '' && Number(t.dataset.raw) === v && t.dataset.final === fin && (d.dataset.direction || '') === dirs[id];
		});
	})()`, jsJSON(exp), jsJSON(dirs), strconv.FormatBool(want.Final)))

	got := eval[[]tileState](p, readTilesJS)
	if len(got) != len(tiles) {
		p.t.Fatalf("%d tiles, want %d", len(got), len(tiles))
	}
	for i, ts := range tiles {
		g := got[i]
		if g.ID != ts.id {
			p.t.Errorf("tile %d is %q, want %q", i, g.ID, ts.id)
			continue
		}
		raw, err := strconv.ParseFloat(g.Raw, 64)
		if err != nil || raw != ts.raw(want) {
			p.t.Errorf("%s: data-raw %q, want exactly %v (/kpis/latest)", ts.id, g.Raw, ts.raw(want))
		}
		if g.Final != strconv.FormatBool(want.Final) {
			p.t.Errorf("%s: data-final %q, want %v", ts.id, g.Final, want.Final)
		}
		if g.Value == "" || !strings.ContainsAny(g.Value, "0123456789") || !strings.Contains(g.Value, ts.unit) {
			p.t.Errorf("%s: displayed value %q, want a number with %q", ts.id, g.Value, ts.unit)
		}
		if !want.Final {
			if g.Delta != "compared once final" {
				p.t.Errorf("%s: delta %q for an open minute, want no comparison", ts.id, g.Delta)
			}
			continue
		}
		arrow := map[string]string{"up": "▲", "down": "▼", "flat": "="}[dirs[ts.id]]
		if !strings.HasPrefix(g.Delta, arrow) || !strings.Contains(g.Delta, "%") && dirs[ts.id] != "flat" {
			p.t.Errorf("%s: delta %q, want it to start with %s and give a %% change", ts.id, g.Delta, arrow)
		}
	}
	p.t.Logf("tiles: %+v", got)
}

func TestDashboardInBrowser(t *testing.T) {
	browser := newBrowser(t)
	// The clock moves only by Step, so the page must converge to exactly
	// what the API says; the stream keeps repeating the current values.
	fake := dashboardtest.NewFakeAPIWithOptions(t, dashboardtest.Options{
		Tick: 150 * time.Millisecond, TicksPerMinute: 8, Seed: 7, Paused: true,
	})
	p := newTab(t, browser)
	p.navigate(fake.URL + "/")

	p.waitTilesLive()
	p.waitFor("the event stream to be live", `document.querySelector('[data-testid="connection"]').dataset.mode === 'live'`)
	first := eval[string](p, `document.querySelector('[data-testid="tile-sessions"]').dataset.raw`)
	for range 6 { // most of the open minute: the tiles compare like with like
		fake.Step()
	}
	p.waitFor("the sessions tile to follow the stream", fmt.Sprintf(
		`document.querySelector('[data-testid="tile-sessions"]').dataset.raw !== %q`, first))

	want, ok := fake.Latest()
	if !ok {
		t.Fatal("fake has no data")
	}
	series := fake.KPIs(2)
	if len(series) != 2 {
		t.Fatalf("fake /kpis?minutes_back=2 has %d records", len(series))
	}
	p.checkTiles(want, series[0])
	excluded := want.Purchases - want.RevenuePurchases
	if excluded <= 0 {
		t.Fatalf("the fake's newest minute leaves no purchase out of revenue (%d purchases, %d valued): the check below would prove nothing", want.Purchases, want.RevenuePurchases)
	}
	p.waitFor("the revenue tile to say how many purchases it leaves out", fmt.Sprintf(`(() => {
		const e = document.querySelector('[data-testid="revenue-excluded"]');
		return !e.hidden && e.dataset.raw === %q && e.textContent.includes(%q);
	})()`, strconv.FormatInt(excluded, 10), strconv.FormatInt(excluded, 10)))

	// Funnel: three steps with the fake's counts.
	fu, _ := fake.Funnel(30)
	p.waitFor("the funnel to show the fake's 3 steps", fmt.Sprintf(`(() => {
		const s = [...document.querySelectorAll('[data-testid="funnel"] [data-testid="funnel-step"]')];
		return JSON.stringify(s.map(e => Number(e.dataset.count))) === %q;
	})()`, jsJSON(fu.Counts)))
	steps := eval[[]string](p, `[...document.querySelectorAll('[data-testid="funnel-step"]')].map(e => e.dataset.step)`)
	if !slices.Equal(steps, dashboardtest.FunnelSteps) {
		t.Errorf("funnel steps %v, want %v", steps, dashboardtest.FunnelSteps)
	}
	// The open minute's running values make the funnel provisional, and the
	// page says so: a badge, hatched bars, the count of open minutes.
	if fu.Final || fu.ProvisionalMinutes != 1 {
		t.Fatalf("test data: the fake's funnel should have one open minute: %+v", fu)
	}
	// The breakdown table: one row per value with the API's counts.
	var rows []string
	for _, v := range fu.Breakdown.Values {
		rows = append(rows, fmt.Sprintf("%s=%d/%d", v.Value, v.Entered, v.Counts[len(v.Counts)-1]))
	}
	p.waitFor("the funnel breakdown to show the API's values", fmt.Sprintf(`(() => {
		const t = document.querySelector('[data-testid="funnel-breakdown"]');
		const r = [...t.querySelectorAll('[data-testid="breakdown-row"]')].map(e => e.dataset.value + '=' + e.dataset.entered + '/' + e.dataset.converted);
		return !t.hidden && t.dataset.dimension === 'utm.source' && JSON.stringify(r) === %q;
	})()`, jsJSON(rows)))
	// Each provisional number says how many partitions have passed it: the
	// open minute's tiles (3 of the fake's 4) and the chart points.
	p.waitFor("the tiles to say how many partitions passed the open minute", `[...document.querySelectorAll('.tile [data-testid="status"]')].every(
		s => s.textContent === 'provisional · 3/4 partitions' && s.dataset.partitions === '3/4 partitions')`)
	if got := eval[[]string](p, `Chart.getChart(document.querySelector('[data-testid="chart-sessions"]')).$dash.partitions.slice(-2)`); !slices.Equal(got, []string{"4/4 partitions", "3/4 partitions"}) {
		t.Errorf("partitions of the last two chart points: %q", got)
	}
	p.waitFor("the funnel to be marked provisional", `(() => {
		const b = document.querySelector('[data-testid="funnel"]'), s = document.querySelector('[data-testid="funnel-status"]');
		return b.dataset.final === 'false' && b.dataset.provisional === '1' && b.classList.contains('provisional') &&
			!s.hidden && s.textContent === 'provisional' &&
			document.querySelector('[data-testid="funnel-summary"]').textContent.includes('1 minute still open');
	})()`)

	// Charts: a Chart.js chart with the 30-minute series on a canvas that has ink.
	n30 := len(fake.KPIs(30))
	for _, id := range []string{"chart-revenue", "chart-sessions", "chart-conversion", "chart-latency"} {
		p.waitFor(id+" to plot the 30-minute series", fmt.Sprintf(`(() => {
			const c = document.querySelector('[data-testid="%s"]');
			const ch = c && window.Chart && Chart.getChart(c);
			return !!ch && ch.data.datasets[0].data.length === %d;
		})()`, id, n30))
		ink := eval[int](p, fmt.Sprintf(`(() => {
			const c = document.querySelector('[data-testid="%s"]');
			const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
			let n = 0;
			for (let i = 3; i < d.length; i += 4) if (d[i] !== 0) n++;
			return n;
		})()`, id))
		if lo := eval[float64](p, fmt.Sprintf(`Chart.getChart(document.querySelector('[data-testid="%s"]')).scales.y.min`, id)); lo < 0 {
			t.Errorf("%s: the y axis starts at %v: a non-negative quantity drawn on a negative axis", id, lo)
		}
		area := eval[int](p, fmt.Sprintf(`(() => { const c = document.querySelector('[data-testid="%s"]'); return c.width * c.height; })()`, id))
		if area == 0 || ink < area/100 {
			t.Errorf("%s: %d of %d pixels drawn: the chart looks empty", id, ink, area)
		}
	}

	// Anomalies: the fake's list for the last 60 minutes, newest first.
	anoms := fake.Anomalies(60)
	if len(anoms) == 0 {
		t.Fatal("the fake should have anomalies in its last 60 minutes with this seed")
	}
	p.waitFor("the anomaly list", fmt.Sprintf(`document.querySelectorAll('[data-testid="anomalies"] [data-testid="anomaly"]').length === %d`, len(anoms)))
	type anomalyState struct {
		Minute    string `json:"minute"`
		Z         string `json:"z"`
		Direction string `json:"direction"`
		Text      string `json:"text"`
	}
	gotA := eval[[]anomalyState](p, `[...document.querySelectorAll('[data-testid="anomaly"]')].map(e => ({minute: e.dataset.minute, z: e.dataset.z, direction: e.dataset.direction, text: e.textContent}))`)
	for i, a := range gotA {
		w := anoms[len(anoms)-1-i]
		z, _ := strconv.ParseFloat(a.Z, 64)
		if a.Minute != w.Minute || z != w.Z || a.Direction != w.Direction || !strings.Contains(a.Text, w.Direction) {
			t.Errorf("anomaly %d: %+v, want %+v", i, a, w)
		}
	}

	// Health: the fake's /stats.
	st := fake.Stats()
	p.waitFor("the health panel to show /stats", fmt.Sprintf(`(() => {
		const exp = %s;
		return Object.entries(exp).every(([id, v]) => Number(document.querySelector('[data-testid="' + id + '"]').dataset.raw) === v);
	})()`, jsJSON(map[string]float64{
		"health-throughput": st.EventsPerSec, "health-lag": float64(st.Lag),
		"health-latency": st.E2ELatencyP95, "health-deadletters": float64(st.DeadLetters),
	})))
	if st.LastFinalMinute == nil {
		t.Fatal("fake stats without last_final_minute")
	}
	if got := eval[string](p, `document.querySelector('[data-testid="health-last-final"]').dataset.raw`); got != *st.LastFinalMinute {
		t.Errorf("last final minute %q, want %q", got, *st.LastFinalMinute)
	}

	// A stall reads as one: how long nothing was read and the lag, in the
	// warning style, instead of a rate; the rate comes back once it reads.
	fake.Stall()
	for range 2 {
		fake.Step()
	}
	st = fake.Stats()
	if st.StalledS <= 0 || st.Lag <= 0 {
		t.Fatalf("test data: the stalled fake's stats %+v", st)
	}
	p.waitFor("the throughput tile to show the stall", fmt.Sprintf(`(() => {
		const b = document.querySelector('[data-testid="health-throughput"]');
		return b.classList.contains('warn') && b.querySelector('[data-testid="value"]').textContent === %q;
	})()`, fmt.Sprintf("stalled %d s (lag %s)", int64(math.Round(st.StalledS)), thousands(st.Lag))))
	fake.Recover()
	p.waitFor("the throughput tile to show a rate again", `(() => {
		const b = document.querySelector('[data-testid="health-throughput"]');
		return !b.classList.contains('warn') && / events\/s$/.test(b.querySelector('[data-testid="value"]').textContent);
	})()`)

	// The page shows the server's clock, not the browser's; a minute that
	// starts after it is marked ahead of the clock, in the header, the tiles
	// and the series, until the clock has caught up.
	serverNow := func() time.Time {
		now, err := time.Parse(dashboardtest.TimeLayout, fake.Stats().Now)
		if err != nil {
			t.Fatalf("fake /stats now: %v", err)
		}
		return now
	}
	p.waitFor("the header to show the server's clock", fmt.Sprintf(
		`document.querySelector('[data-testid="updated"]').textContent === %q`, "as of "+serverNow().Format("15:04:05")+" UTC"))
	if n := eval[int](p, `document.querySelectorAll('[data-testid="ahead"]').length`); n != 0 {
		t.Errorf("%d minutes marked ahead of the clock while event times are behind it", n)
	}
	fake.SetAhead(3 * time.Minute) // more than the clock is past the newest minute's start
	now, ahead := serverNow(), 0
	for _, k := range fake.KPIs(30) {
		if m, _ := time.Parse(dashboardtest.TimeLayout, k.Minute); m.After(now) {
			ahead++
		}
	}
	if ahead == 0 {
		t.Fatal("test data: no minute starts after the fake's clock set back by 3 min")
	}
	p.waitFor("the newest minute to be marked ahead of the clock", fmt.Sprintf(`(() => {
		const n = document.querySelector('[data-testid="newest-minute"]'), note = n.querySelector('[data-testid="ahead"]');
		const tiles = [...document.querySelectorAll('.tile [data-testid="minute"]')];
		return document.querySelector('[data-testid="updated"]').textContent === %q &&
			n.dataset.ahead === 'true' && note !== null && note.textContent === 'ahead of clock' && note.title !== '' &&
			tiles.length === 5 && tiles.every(m => m.querySelector('[data-testid="ahead"]') !== null) &&
			document.querySelector('[data-testid="chart-sessions"]').dataset.ahead === %q;
	})()`, "as of "+now.Format("15:04:05")+" UTC", strconv.Itoa(ahead)))
	fake.SetAhead(0)
	p.waitFor("the ahead-of-clock marks to go once the clock is past the newest minute", `(() =>
		document.querySelectorAll('[data-testid="ahead"]').length === 0 &&
		document.querySelector('[data-testid="newest-minute"]').dataset.ahead === 'false' &&
		document.querySelector('[data-testid="chart-sessions"]').dataset.ahead === '0')()`)

	// Top products: the fake's top 10 in order.
	var wantIDs []string
	for _, tp := range fake.TopProducts(5) {
		wantIDs = append(wantIDs, tp.ProductID)
	}
	p.waitFor("the top products table", fmt.Sprintf(`JSON.stringify([...document.querySelectorAll('[data-testid="top-product-row"]')].map(r => r.dataset.product)) === %q`, jsJSON(wantIDs)))

	if path := os.Getenv("DASHBOARD_SCREENSHOT"); path != "" {
		png, err := chromedp.Run(p.ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s (%d bytes)", path, len(png))
	}
	p.checkClean(fake.URL)
}

func TestDashboardWaitsForData(t *testing.T) {
	browser := newBrowser(t)
	fake := dashboardtest.NewFakeAPIWithOptions(t, dashboardtest.Options{
		Tick: 150 * time.Millisecond, TicksPerMinute: 8, Empty: true,
	})
	p := newTab(t, browser)
	p.navigate(fake.URL + "/")

	p.waitFor("the stream to connect", `document.querySelector('[data-testid="connection"]').dataset.mode === 'live'`)
	p.waitFor("the first polls to have answered (404 no data yet)", `['/kpis/latest', '/kpis?minutes_back=', '/funnel?minutes_back='].every(
		path => performance.getEntriesByType('resource').some(e => e.name.includes(path)))`)
	for _, ts := range tiles {
		got := eval[string](p, fmt.Sprintf(`document.querySelector('[data-testid="%s"] [data-testid="value"]').textContent`, ts.id))
		if got != "waiting for data…" {
			t.Errorf("%s shows %q before any data, want %q", ts.id, got, "waiting for data…")
		}
	}
	if got := eval[string](p, `document.querySelector('[data-testid="funnel"]').textContent.trim()`); got != "waiting for data…" {
		t.Errorf("funnel shows %q before any data", got)
	}
	if hidden := eval[bool](p, `document.querySelector('[data-testid="notice"]').hidden`); !hidden {
		t.Errorf("404 no data yet shows an error notice: %s", p.dump())
	}

	fake.Begin()
	p.waitTilesLive()
	p.waitFor("the funnel", `document.querySelectorAll('[data-testid="funnel-step"]').length === 3`)
	// Chromium logs every 404 answer as a console error; here they are expected.
	p.checkClean(fake.URL, "404")
}

func TestDashboardWithToken(t *testing.T) {
	browser := newBrowser(t)
	const token = "s3cret-token"
	fake := dashboardtest.NewFakeAPIWithOptions(t, dashboardtest.Options{
		Tick: 150 * time.Millisecond, TicksPerMinute: 8, Token: token,
	})

	t.Run("fragment", func(t *testing.T) {
		p := newTab(t, browser)
		p.navigate(fake.URL + "/#token=" + token)
		p.waitTilesLive()
		if mode := eval[string](p, `document.querySelector('[data-testid="connection"]').dataset.mode`); mode != "polling" {
			t.Errorf("connection mode %q with a token, want polling", mode)
		}
		fake.Pause()
		defer fake.Resume()
		want, _ := fake.Latest()
		series := fake.KPIs(2)
		p.checkTiles(want, series[0])
		p.waitFor("the funnel", `document.querySelectorAll('[data-testid="funnel-step"]').length === 3`)
		if p.requested("/events") {
			t.Error("the page opened /events although it needs a token, which EventSource cannot send")
		}
		p.checkClean(fake.URL)
	})

	t.Run("missing", func(t *testing.T) {
		p := newTab(t, browser)
		p.navigate(fake.URL + "/")
		p.waitFor("the unauthorized notice", `(() => {
			const c = document.querySelector('[data-testid="connection"]'), n = document.querySelector('[data-testid="notice"]');
			return c.dataset.mode === 'unauthorized' && !n.hidden && n.textContent.includes('#token=');
		})()`)
		if raw := eval[string](p, `document.querySelector('[data-testid="tile-revenue"]').dataset.raw`); raw != "" {
			t.Errorf("revenue tile shows %q without a token", raw)
		}
		p.checkClean(fake.URL, "401", "EventSource")
	})
}
