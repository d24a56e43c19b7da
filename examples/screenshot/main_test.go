package main

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clickstreamkit/clickstream/examples/internal/dashboard/dashboardtest"
)

// needChromium skips the test without a Chromium to drive.
func needChromium(t *testing.T) {
	t.Helper()
	if _, err := findChromium(""); err != nil {
		t.Skipf("screenshot test skipped: %v", err)
	}
}

// ssePage serves a page that paints a box grey, opens a Server-Sent Events
// stream after its load event, and paints the box green on the stream's
// first event. The stream
// stays open until the test ends, as the dashboard's does: virtual time
// never advances on such a page.
func ssePage(t *testing.T) string {
	t.Helper()
	done := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, `<!doctype html><html><head><style>
body { margin: 0; background: #fff }
#box { position: absolute; left: 0; top: 0; width: 200px; height: 200px; background: rgb(128, 128, 128) }
</style></head><body><div id="box"></div><script>
// data comes a while after the load event, where --screenshot captures
addEventListener('load', () => setTimeout(() => {
	const es = new EventSource('events');
	es.onmessage = ev => {
		document.getElementById('box').style.background = 'rgb(0, 160, 0)';
		document.body.dataset.ready = ev.data;
	};
}, 300));
</script></body></html>`)
	})
	mux.HandleFunc("/events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-store")
		io.WriteString(w, "data: yes\n\n")
		w.(http.Flusher).Flush()
		select { // open until the browser or the test goes
		case <-r.Context().Done():
		case <-done:
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(done) }) // before srv.Close, which waits for open requests
	return srv.URL + "/"
}

func readPNG(t *testing.T, path string) image.Image {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s is not a PNG: %v", path, err)
	}
	return img
}

func TestScreenshotOfAPageWithAnOpenEventStream(t *testing.T) {
	needChromium(t)
	out := filepath.Join(t.TempDir(), "page.png")
	var log bytes.Buffer
	err := run(t.Context(), []string{"-url", ssePage(t), "-out", out, "-wait", "45s",
		"-ready", `document.body.dataset.ready === 'yes'`, "-size", "640x480"}, &log)
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	img := readPNG(t, out)
	if b := img.Bounds(); b.Dx() != 640 || b.Dy() != 480 {
		t.Errorf("PNG of %v, want 640x480", b)
	}
	r, g, b, _ := img.At(100, 100).RGBA()
	if r>>8 > 40 || g>>8 < 120 || b>>8 > 40 {
		t.Errorf("the box is rgb(%d, %d, %d), want the green it turns on the stream's event", r>>8, g>>8, b>>8)
	}
	if !strings.Contains(log.String(), "wrote "+out) {
		t.Errorf("no report of the file: %q", log.String())
	}
}

// TestScreenshotOfTheDashboard captures the dashboard served by the fake
// read API, with its live stream, under the default -ready expression.
func TestScreenshotOfTheDashboard(t *testing.T) {
	needChromium(t)
	api := dashboardtest.NewFakeAPI(t)
	out := filepath.Join(t.TempDir(), "dashboard.png")
	var log bytes.Buffer
	if err := run(t.Context(), []string{"-url", api.URL + "/", "-out", out, "-wait", "45s"}, &log); err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	if b := readPNG(t, out).Bounds(); b.Dx() != 1440 || b.Dy() < 1000 {
		t.Errorf("PNG of %v, want 1440 wide and the whole page", b)
	}
	if os.Getenv("SCREENSHOT_KEEP") != "" {
		b, _ := os.ReadFile(out)
		os.WriteFile(os.Getenv("SCREENSHOT_KEEP"), b, 0o644)
	}
}

// TestScreenshotWithoutData fails after -wait and writes nothing when the
// page never shows data, here a dashboard whose API has none.
func TestScreenshotWithoutData(t *testing.T) {
	needChromium(t)
	api := dashboardtest.NewFakeAPIWithOptions(t, dashboardtest.Options{Empty: true})
	out := filepath.Join(t.TempDir(), "dashboard.png")
	err := run(t.Context(), []string{"-url", api.URL + "/", "-out", out, "-wait", "2s"}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "did not show data within -wait 2s") {
		t.Fatalf("error %v, want one saying the page showed no data within -wait", err)
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("%s written for a page without data", out)
	}
}

func TestScreenshotErrors(t *testing.T) {
	for _, args := range [][]string{
		{"-size", "640"},
		{"-size", "0x480"},
		{"-wait", "0s"},
		{"extra"},
		{"-chromium", filepath.Join(t.TempDir(), "no-such-browser")},
	} {
		if err := run(context.Background(), args, io.Discard); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
	needChromium(t)
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	err := run(ctx, []string{"-url", srv.URL + "/", "-out", filepath.Join(t.TempDir(), "x.png")}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "HTTP 404") {
		t.Errorf("a page answering 404: error %v, want one naming the status", err)
	}
}
