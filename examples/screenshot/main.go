// Command screenshot writes a PNG of a web page once the page shows data: by
// default the dashboard of examples/fullpipeline, once its KPI tiles and
// health panel show numbers and its live stream is connected.
//
//	go run ./examples/screenshot -url http://127.0.0.1:8080/ -out dashboard.png -wait 2m
//
// It drives headless Chromium over the DevTools protocol (chromedp): it
// loads the page, polls the -ready expression in it until it is true, and
// captures the whole page. `chromium --screenshot --virtual-time-budget`
// never finishes on the dashboard, whose Server-Sent Events stream stays
// open and keeps virtual time from advancing; `chromium --screenshot`
// without it captures the page at its load event, before the data has come.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/chromedp/chromedp"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "screenshot:", err)
		os.Exit(1)
	}
}

// dashboardReady is true once the dashboard shows the read API's first
// answers: its five tiles show numbers, the health panel /stats's
// throughput, and the live stream (or its polling fallback) is connected.
const dashboardReady = `(() => {
	const ts = [...document.querySelectorAll('.tile')];
	const health = document.querySelector('[data-testid="health-throughput"]');
	const conn = document.querySelector('[data-testid="connection"]');
	return ts.length === 5 && ts.every(t => t.dataset.raw !== '' && !isNaN(Number(t.dataset.raw))) &&
		health !== null && health.dataset.raw !== '' && conn !== null && ['live', 'polling'].includes(conn.dataset.mode);
})()`

// nextFrames resolves after two animation frames: what the last change of
// the page drew is on the screen.
const nextFrames = `new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))`

type options struct {
	url, out, ready, chromium string
	wait                      time.Duration
	width, height             int
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("screenshot", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	var size string
	fs.StringVar(&o.url, "url", "http://127.0.0.1:8080/", "page to capture")
	fs.StringVar(&o.out, "out", "dashboard.png", "PNG file to write")
	fs.DurationVar(&o.wait, "wait", 2*time.Minute, "longest wait for the page to load (while its server refuses connections) and show data (-ready); then it fails and writes nothing")
	fs.StringVar(&o.ready, "ready", dashboardReady, "JavaScript expression, true once the page shows what to capture (default: the dashboard shows its tiles, health and live stream); empty: capture at the load event")
	fs.StringVar(&size, "size", "1440x1000", "the page's viewport, WIDTHxHEIGHT; the PNG holds the whole page, taller if it scrolls")
	fs.StringVar(&o.chromium, "chromium", "", "Chromium's executable (default: chromium, chromium-browser or google-chrome on $PATH)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	w, h, ok := strings.Cut(size, "x")
	var err1, err2 error
	o.width, err1 = strconv.Atoi(w)
	o.height, err2 = strconv.Atoi(h)
	if !ok || err1 != nil || err2 != nil || o.width < 1 || o.height < 1 {
		return o, fmt.Errorf("-size %q: want WIDTHxHEIGHT", size)
	}
	if o.wait <= 0 {
		return o, fmt.Errorf("-wait %v: want more than 0", o.wait)
	}
	return o, nil
}

// load navigates to url, again while its server refuses connections (one
// started with the screenshot, say), until deadline.
func load(ctx context.Context, url string, deadline time.Time) error {
	for {
		resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(url))
		switch {
		case err == nil && resp != nil && resp.Status >= 400:
			return fmt.Errorf("load %s: HTTP %d %s", url, resp.Status, resp.StatusText)
		case err == nil:
			return nil
		case !strings.Contains(err.Error(), "ERR_CONNECTION_REFUSED") || time.Now().After(deadline):
			return fmt.Errorf("load %s: %w", url, err)
		}
		t := time.NewTimer(250 * time.Millisecond)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
}

// findChromium returns path, or the first of Chromium's usual names on $PATH.
func findChromium(path string) (string, error) {
	if path != "" {
		return exec.LookPath(path)
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("no chromium, chromium-browser or google-chrome on $PATH (Debian: apt-get install -y chromium), or name it with -chromium")
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	exe, err := findChromium(o.chromium)
	if err != nil {
		return err
	}
	profile, err := os.MkdirTemp("", "screenshot-chromium-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(profile)
	start := time.Now()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.DisableGPU,
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(o.width, o.height),
		chromedp.NoFirstRun,
		// a new profile that reaches for nothing but the page
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("no-pings", true),
	)
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // Chromium refuses to start as root with its sandbox
	}
	// the browser's start, the load and the capture get a minute beside -wait
	ctx, cancel := context.WithTimeout(ctx, o.wait+time.Minute)
	defer cancel()
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()

	// the window's size holds the browser's own frame: the page gets -size
	if err := chromedp.Do(bctx, chromedp.EmulateViewport(int64(o.width), int64(o.height))); err != nil {
		return fmt.Errorf("start %s: %w", exe, err)
	}
	deadline := time.Now().Add(o.wait)
	if err := load(bctx, o.url, deadline); err != nil {
		return err
	}
	if o.ready != "" {
		_, err := chromedp.Run(bctx, chromedp.Poll[chromedp.Void](o.ready,
			chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(time.Until(deadline))))
		if err != nil {
			return fmt.Errorf("%s did not show data within -wait %v (the -ready expression stayed false): %w", o.url, o.wait, err)
		}
	}
	if _, err := chromedp.Run(bctx, chromedp.Evaluate[bool](nextFrames, chromedp.EvalAwaitPromise)); err != nil {
		return fmt.Errorf("wait for the page to draw: %w", err)
	}
	png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100)) // quality 100: PNG
	if err != nil {
		return fmt.Errorf("capture: %w", err)
	}
	if err := os.WriteFile(o.out, png, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "screenshot: wrote %s (%d bytes) of %s in %v\n", o.out, len(png), o.url, time.Since(start).Round(10*time.Millisecond))
	return nil
}
