package dashboard

import (
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, method, target string, hdr map[string]string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	Handler().ServeHTTP(w, req)
	return w.Result()
}

func body(t *testing.T, res *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestIndex(t *testing.T) {
	res := get(t, http.MethodGet, "/", nil)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET / = %d", res.StatusCode)
	}
	if ct := res.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	if cc := res.Header.Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("Cache-Control %q, want no-cache", cc)
	}
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "connect-src 'self'") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	html := body(t, res)
	if strings.Contains(html, versionPlaceholder) {
		t.Error("index.html still has the version placeholder")
	}
	if !strings.Contains(html, `src="static/app.js?v=`+AssetVersion()+`"`) {
		t.Errorf("index.html does not load static/app.js?v=%s", AssetVersion())
	}
	// Nothing from another origin: every src and href is relative (or data:).
	for _, m := range regexp.MustCompile(`(?:src|href)="([^"]*)"`).FindAllStringSubmatch(html, -1) {
		ref := m[1]
		if strings.HasPrefix(ref, "data:") {
			continue
		}
		if strings.Contains(ref, "//") || !strings.HasPrefix(ref, "static/") {
			t.Errorf("index.html references %q: only static/... is allowed", ref)
			continue
		}
		name, _, _ := strings.Cut(strings.TrimPrefix(ref, "static/"), "?")
		if r := get(t, http.MethodGet, "/"+strings.TrimPrefix(ref, "/"), nil); r.StatusCode != http.StatusOK {
			t.Errorf("index.html references %s, which answers %d", name, r.StatusCode)
		}
	}
	for _, id := range []string{"tile-sessions", "tile-conversion", "tile-revenue", "tile-aov", "tile-latency",
		"funnel", "chart-revenue", "chart-sessions", "chart-conversion", "chart-latency", "anomalies",
		"health-throughput", "health-lag", "health-latency", "health-deadletters", "top-products"} {
		if !strings.Contains(html, `data-testid="`+id+`"`) {
			t.Errorf("index.html has no data-testid %q", id)
		}
	}
}

func TestStaticAssets(t *testing.T) {
	for _, tc := range []struct{ path, ctype, prefix string }{
		{"/static/app.js", "text/javascript; charset=utf-8", "// Clickstream live dashboard"},
		{"/static/style.css", "text/css; charset=utf-8", "/* Clickstream"},
		{"/static/vendor/chart.umd.min.js", "text/javascript; charset=utf-8", "/*!\n * Chart.js v4."},
		{"/static/vendor/chart.js.LICENSE.md", "text/markdown; charset=utf-8", "The MIT License"},
		{"/static/vendor/VERSIONS", "text/plain; charset=utf-8", "chart.js 4."},
	} {
		res := get(t, http.MethodGet, tc.path, nil)
		if res.StatusCode != http.StatusOK {
			t.Errorf("GET %s = %d", tc.path, res.StatusCode)
			continue
		}
		if ct := res.Header.Get("Content-Type"); ct != tc.ctype {
			t.Errorf("%s: Content-Type %q, want %q", tc.path, ct, tc.ctype)
		}
		if b := body(t, res); !strings.HasPrefix(b, tc.prefix) {
			t.Errorf("%s starts with %.40q, want %q", tc.path, b, tc.prefix)
		}
		if res.Header.Get("ETag") == "" || res.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: headers %v", tc.path, res.Header)
		}
		if cc := res.Header.Get("Cache-Control"); cc != "no-cache" {
			t.Errorf("%s: Cache-Control %q, want no-cache without ?v=", tc.path, cc)
		}
		if cc := get(t, http.MethodGet, tc.path+"?v="+AssetVersion(), nil).Header.Get("Cache-Control"); !strings.Contains(cc, "immutable") {
			t.Errorf("%s?v=current: Cache-Control %q, want immutable", tc.path, cc)
		}
		if cc := get(t, http.MethodGet, tc.path+"?v=old", nil).Header.Get("Cache-Control"); cc != "no-cache" {
			t.Errorf("%s?v=old: Cache-Control %q, want no-cache", tc.path, cc)
		}
	}
}

func TestConditionalAndHead(t *testing.T) {
	res := get(t, http.MethodGet, "/static/app.js", nil)
	etag := res.Header.Get("ETag")
	if r := get(t, http.MethodGet, "/static/app.js", map[string]string{"If-None-Match": etag}); r.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match: %d, want 304", r.StatusCode)
	}
	r := get(t, http.MethodHead, "/", nil)
	if r.StatusCode != http.StatusOK || body(t, r) != "" || r.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Errorf("HEAD /: %d %v", r.StatusCode, r.Header)
	}
}

func TestErrors(t *testing.T) {
	for _, p := range []string{"/static/", "/static/nope.js", "/static/../dashboard.go", "/dashboard.go", "/static/vendor"} {
		res := get(t, http.MethodGet, p, nil)
		var e struct{ Error string }
		if res.StatusCode != http.StatusNotFound || json.Unmarshal([]byte(body(t, res)), &e) != nil || e.Error == "" {
			t.Errorf("GET %s: %d, want a JSON 404", p, res.StatusCode)
		}
	}
	res := get(t, http.MethodPost, "/", nil)
	if res.StatusCode != http.StatusMethodNotAllowed || res.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /: %d Allow %q", res.StatusCode, res.Header.Get("Allow"))
	}
}

// The vendored Chart.js is the version web/package.json pins, with its licence.
func TestVendoredChartJS(t *testing.T) {
	var pkg struct{ Dependencies map[string]string }
	b, err := os.ReadFile("web/package.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &pkg); err != nil {
		t.Fatal(err)
	}
	pin := pkg.Dependencies["chart.js"]
	if !regexp.MustCompile(`^4\.\d+\.\d+$`).MatchString(pin) {
		t.Fatalf("web/package.json pins chart.js %q, want an exact 4.x.y", pin)
	}
	var lock struct {
		Packages map[string]struct{ Version string } `json:"packages"`
	}
	b, err = os.ReadFile("web/package-lock.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &lock); err != nil {
		t.Fatal(err)
	}
	if v := lock.Packages["node_modules/chart.js"].Version; v != pin {
		t.Errorf("package-lock.json has chart.js %q, package.json %q", v, pin)
	}
	js, err := fs.ReadFile(staticFS, "static/vendor/chart.umd.min.js")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(js[:200]), "Chart.js v"+pin) {
		t.Errorf("vendored chart.umd.min.js is not v%s: run web/vendor.sh", pin)
	}
	versions, err := fs.ReadFile(staticFS, "static/vendor/VERSIONS")
	if err != nil || !strings.HasPrefix(string(versions), "chart.js "+pin+" ") {
		t.Errorf("static/vendor/VERSIONS = %q, %v", versions, err)
	}
	for _, lic := range []string{"static/vendor/chart.js.LICENSE.md", "static/vendor/kurkle-color.LICENSE.md"} {
		if b, err := fs.ReadFile(staticFS, lic); err != nil || !strings.Contains(string(b), "MIT License") {
			t.Errorf("%s: %v", lic, err)
		}
	}
}
