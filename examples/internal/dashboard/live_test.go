package dashboard_test

// The dashboard against the real pipeline: examples/fullpipeline with its
// embedded defaults (in-process broker, replay producer, MongoDB-wire server)
// runs as a subprocess; the test waits for live KPIs through the API, then
// loads the page in headless Chromium and checks it against the API for a
// few minutes.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/clickstreamkit/clickstream/examples/internal/dashboard/dashboardtest"
)

// startPipeline builds and starts the full pipeline with embedded defaults
// and returns its base URL.
func startPipeline(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "fullpipeline")
	build := exec.Command("go", "build", "-o", bin, "../../fullpipeline")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var stderr bytes.Buffer
	args := []string{"-http", addr, "-data", filepath.Join(dir, "data"), "-parquet", filepath.Join(dir, "data", "parquet"), "-progress", "2s"}
	if cfg := os.Getenv("DASHBOARD_CONFIG"); cfg != "" { // e.g. ../../fullpipeline/demo.yaml for a fuller screenshot
		args = append(args, "-config", cfg)
	}
	if rate := os.Getenv("DASHBOARD_RATE"); rate != "" {
		args = append(args, "-rate", rate)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("fullpipeline stderr:\n%s", stderr.String())
		}
	})
	return "http://" + addr
}

func latest(t *testing.T, base string) (dashboardtest.KPI, bool) {
	t.Helper()
	resp, err := http.Get(base + "/kpis/latest")
	if err != nil {
		return dashboardtest.KPI{}, false
	}
	defer resp.Body.Close()
	var k dashboardtest.KPI
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&k) != nil {
		return dashboardtest.KPI{}, false
	}
	return k, true
}

func getJSON[T any](base, path string) (T, bool) {
	var v T
	resp, err := http.Get(base + path)
	if err != nil {
		return v, false
	}
	defer resp.Body.Close()
	return v, resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&v) == nil
}

// The default command, driven for DASHBOARD_MINUTES [2] minutes: the
// funnel is non-empty within 60 s of the start (running values, SEMANTICS
// §7), stays so, and is marked provisional; the tiles show what /kpis/latest says; the
// charts carry provisional points and never a negative axis; the anomaly
// panel says nothing was scored while no minute is final; once a minute
// is final (with the default watermark_delay of 10m, a run of 12 minutes or
// more), final points are drawn too. With DASHBOARD_SCREENSHOT set it saves
// the page there at the end.
func TestDashboardLiveWithPipeline(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the full pipeline")
	}
	minutes := 2.0
	if v, err := strconv.ParseFloat(os.Getenv("DASHBOARD_MINUTES"), 64); err == nil && v > 0 {
		minutes = v
	}
	browser := newBrowser(t)
	base := startPipeline(t)
	start := time.Now()
	end := start.Add(time.Duration(minutes * float64(time.Minute)))

	var fu dashboardtest.Funnel
	for {
		if f, ok := getJSON[dashboardtest.Funnel](base, "/funnel?minutes_back=30"); ok && len(f.Counts) > 0 && f.Counts[0] > 0 {
			fu = f
			t.Logf("funnel after %.1f s: counts %v, %d of %d minutes provisional", time.Since(start).Seconds(), f.Counts, f.ProvisionalMinutes, len(f.Minutes))
			break
		}
		if time.Since(start) > 60*time.Second {
			t.Fatal("the funnel was still empty 60 s after the default command's start")
		}
		time.Sleep(500 * time.Millisecond)
	}
	if fu.Final || fu.ProvisionalMinutes == 0 {
		t.Errorf("a funnel of open sessions must be provisional: %+v", fu)
	}

	p := newTab(t, browser)
	p.navigate(base + "/")
	p.waitTilesLive()
	p.waitFor("the funnel to show entered sessions, marked provisional", `(() => {
		const b = document.querySelector('[data-testid="funnel"]');
		const s = [...b.querySelectorAll('[data-testid="funnel-step"]')];
		return s.length === 3 && Number(s[0].dataset.count) > 0 && b.dataset.final === 'false' &&
			document.querySelector('[data-testid="funnel-status"]').textContent === 'provisional';
	})()`)
	p.waitFor("the charts to draw", `document.querySelectorAll('canvas').length >= 4`)

	sawFinal := false
	for checks := 0; ; checks++ {
		matchTiles(t, p, base)
		for _, id := range []string{"chart-revenue", "chart-sessions", "chart-conversion", "chart-latency"} {
			lo := eval[float64](p, fmt.Sprintf(`Chart.getChart(document.querySelector('[data-testid="%s"]')).scales.y.min`, id))
			if lo < 0 {
				t.Errorf("%s: the y axis starts at %v", id, lo)
			}
		}
		finals := eval[[]bool](p, `Chart.getChart(document.querySelector('[data-testid="chart-sessions"]')).$dash.finals`)
		if !slices.Contains(finals, false) {
			t.Errorf("no provisional point on the sessions chart: %v", finals)
		}
		if n := eval[int](p, `Number(document.querySelector('[data-testid="funnel-step"]')?.dataset.count || 0)`); n <= 0 {
			t.Errorf("the funnel shows no session entered after %.1f min", time.Since(start).Minutes())
		}
		sawFinal = sawFinal || slices.Contains(finals, true)
		if !sawFinal { // no final minute: anomalies cannot have been scored, and the page must not say "none"
			if got := eval[string](p, `document.querySelector('[data-testid="anomalies"]').textContent`); !strings.Contains(got, "not scored yet") {
				t.Errorf("anomalies panel before any final minute: %q", got)
			}
		}
		if time.Now().After(end) {
			t.Logf("%d checks over %.1f min; final points drawn: %v", checks+1, time.Since(start).Minutes(), sawFinal)
			break
		}
		time.Sleep(15 * time.Second)
	}
	if minutes >= 12 && !sawFinal {
		t.Error("no final point on the charts after 12 minutes")
	}
	if errs := p.consoleErrors(nil); len(errs) > 0 {
		t.Errorf("console errors: %v", errs)
	}
	if path := os.Getenv("DASHBOARD_SCREENSHOT"); path != "" {
		time.Sleep(3 * time.Second) // let the charts finish their animation
		png, err := chromedp.Run(p.ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", path)
	}
}

// matchTiles reads the tiles and /kpis/latest until they agree on one
// minute's values: the numbers move every second.
func matchTiles(t *testing.T, p *tab, base string) {
	t.Helper()
	var got []tileState
	var want dashboardtest.KPI
	for range 120 {
		got = eval[[]tileState](p, readTilesJS)
		k, ok := latest(t, base)
		want = k
		if ok && len(got) == len(tiles) && tilesMatch(got, k) {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("the tiles never showed /kpis/latest:\ntiles %+v\napi %+v", got, want)
}

func tilesMatch(got []tileState, k dashboardtest.KPI) bool {
	for i, ts := range tiles {
		v, err := strconv.ParseFloat(got[i].Raw, 64)
		if err != nil || got[i].ID != ts.id || v != ts.raw(k) || got[i].Final != strconv.FormatBool(k.Final) {
			return false
		}
	}
	return true
}
