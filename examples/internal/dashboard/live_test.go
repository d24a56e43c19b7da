package dashboard_test

// The dashboard against the real pipeline: examples/fullpipeline with its
// embedded defaults (in-process broker, replay producer, MongoDB-wire server)
// runs as a subprocess; the test waits for live KPIs through the API, then
// loads the page in headless Chromium and checks the tiles against
// /kpis/latest. With DASHBOARD_SCREENSHOT set it saves the page there.

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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

// The default command serves the dashboard with non-zero KPIs within 90 s,
// and the page shows what the API says.
func TestDashboardLiveWithPipeline(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the full pipeline")
	}
	base := startPipeline(t)
	deadline := time.Now().Add(90 * time.Second)
	for {
		if k, ok := latest(t, base); ok && k.Events > 0 && k.Sessions > 0 {
			t.Logf("live KPIs after start: minute %s, %d events, %d sessions", k.Minute, k.Events, k.Sessions)
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no non-zero KPIs from /kpis/latest within 90 s of the default command's start")
		}
		time.Sleep(500 * time.Millisecond)
	}

	warmup, _ := time.ParseDuration(os.Getenv("DASHBOARD_WARMUP")) // more history for a screenshot
	time.Sleep(warmup)
	p := newTab(t, newBrowser(t))
	p.navigate(base + "/")
	p.waitTilesLive()
	// The numbers move every second: read the tiles and the API until they
	// agree on one minute's values.
	var got []tileState
	var want dashboardtest.KPI
	agreed := false
	for range 120 {
		got = eval[[]tileState](p, readTilesJS)
		k, ok := latest(t, base)
		want = k
		if ok && len(got) == len(tiles) && tilesMatch(got, k) {
			agreed = true
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if !agreed {
		t.Fatalf("the tiles never showed /kpis/latest:\ntiles %+v\napi %+v", got, want)
	}
	p.waitFor("the charts to draw", `document.querySelectorAll('canvas').length >= 4`)
	p.waitFor("the funnel's three steps", `document.querySelectorAll('[data-testid="funnel-step"]').length === 3`)
	if errs := p.consoleErrors(nil); len(errs) > 0 {
		t.Errorf("console errors: %v", errs)
	}
	if path := os.Getenv("DASHBOARD_SCREENSHOT"); path != "" {
		warmup, _ := time.ParseDuration(os.Getenv("DASHBOARD_WARMUP")) // more history on the charts
		time.Sleep(3*time.Second + warmup)                             // and let them finish their animation
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

func tilesMatch(got []tileState, k dashboardtest.KPI) bool {
	for i, ts := range tiles {
		v, err := strconv.ParseFloat(got[i].Raw, 64)
		if err != nil || got[i].ID != ts.id || v != ts.raw(k) || got[i].Final != strconv.FormatBool(k.Final) {
			return false
		}
	}
	return true
}
