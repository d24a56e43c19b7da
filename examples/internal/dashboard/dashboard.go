// Package dashboard serves the live dashboard page of examples/fullpipeline:
// one HTML page, a small hand-written JavaScript module, a style sheet and a
// vendored copy of Chart.js, all embedded into the binary with //go:embed, so
// the page loads nothing from any other origin.
//
// The page reads the read API described in docs/API.md from its own origin
// (relative URLs): live tiles and pipeline health from the server-sent events
// on /events, the rest by polling /kpis, /funnel, /anomalies and
// /top-products. With a bearer token, open the page as /#token=T: the
// fragment never leaves the browser, and the page sends
// "Authorization: Bearer T" on every request (polling /kpis/latest and /stats
// each second instead of /events, which EventSource cannot authorize). The
// page and its assets hold no data, so they need no token.
//
// Mount [Handler] at the root of the API server's mux:
//
//	mux.Handle("GET /{$}", dashboard.Handler())
//	mux.Handle("GET /static/", dashboard.Handler())
//
// The browser-side libraries are pinned in web/package.json; web/vendor.sh
// refreshes the committed copy under static/vendor (see VERSIONS there).
package dashboard

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"
)

//go:embed static
var staticFS embed.FS

// versionPlaceholder in index.html is replaced by [AssetVersion], so that asset
// URLs change whenever any asset does and can be cached for good.
const versionPlaceholder = "{{ASSET_VERSION}}"

type asset struct {
	body        []byte
	contentType string
	etag        string
}

type assetSet struct {
	version string
	index   asset
	files   map[string]asset // by path under static/, e.g. "app.js"
}

var loadAssets = sync.OnceValue(func() *assetSet {
	s, err := buildAssets(staticFS)
	if err != nil {
		panic("dashboard: " + err.Error()) // the embedded tree is fixed at build time
	}
	return s
})

func buildAssets(fsys fs.FS) (*assetSet, error) {
	s := &assetSet{files: map[string]asset{}}
	all := sha256.New()
	var index []byte
	err := fs.WalkDir(fsys, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		name := strings.TrimPrefix(p, "static/")
		fmt.Fprintf(all, "%s\x00%d\x00", name, len(b))
		all.Write(b)
		if name == "index.html" {
			index = b
			return nil
		}
		s.files[name] = newAsset(name, b)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if index == nil {
		return nil, fmt.Errorf("static/index.html is missing")
	}
	s.version = hex.EncodeToString(all.Sum(nil))[:12]
	s.index = newAsset("index.html", bytes.ReplaceAll(index, []byte(versionPlaceholder), []byte(s.version)))
	return s, nil
}

func newAsset(name string, b []byte) asset {
	sum := sha256.Sum256(b)
	return asset{body: b, contentType: contentType(name), etag: `"` + hex.EncodeToString(sum[:16]) + `"`}
}

// contentType does not depend on the machine's MIME tables (mime.TypeByExtension
// reads /etc/mime.types, which differ between systems).
func contentType(name string) string {
	switch ext := path.Ext(name); ext {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js", ".mjs":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".json", ".map":
		return "application/json"
	case ".svg":
		return "image/svg+xml"
	case ".png":
		return "image/png"
	case ".ico":
		return "image/x-icon"
	case ".md":
		return "text/markdown; charset=utf-8"
	default: // VERSIONS, LICENSE and other plain files
		return "text/plain; charset=utf-8"
	}
}

// AssetVersion is a digest of all embedded assets. index.html references its
// assets as static/NAME?v=AssetVersion(); such requests are cached by browsers
// for a year, since the URL changes with the content.
func AssetVersion() string { return loadAssets().version }

// contentSecurityPolicy allows only same-origin scripts, styles and requests:
// the page must work offline from the program that serves it.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; " +
	"img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Handler serves the dashboard: GET or HEAD "/" answers the page, and
// "/static/NAME" its assets, with their content types, strong ETags (so
// If-None-Match gets 304) and cache headers: the page and unversioned asset
// URLs are revalidated on every load ("no-cache"), asset URLs carrying the
// current ?v=[AssetVersion] are immutable for a year. Any other path is a 404
// and any other method a 405, both with a JSON body {"error": "..."} as in
// docs/API.md.
func Handler() http.Handler {
	s := loadAssets()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			jsonError(w, http.StatusMethodNotAllowed, "method not allowed")
			return
		}
		var (
			a  asset
			ok bool
		)
		switch p := r.URL.Path; {
		case p == "/" || p == "/index.html":
			a, ok = s.index, true
			w.Header().Set("Content-Security-Policy", contentSecurityPolicy)
			w.Header().Set("Referrer-Policy", "no-referrer")
			w.Header().Set("Cache-Control", "no-cache")
		case strings.HasPrefix(p, "/static/"):
			name := strings.TrimPrefix(p, "/static/")
			a, ok = s.files[name]
			if ok && r.URL.Query().Get("v") == s.version {
				w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
			} else {
				w.Header().Set("Cache-Control", "no-cache")
			}
		}
		if !ok {
			w.Header().Del("Cache-Control")
			jsonError(w, http.StatusNotFound, "not found")
			return
		}
		h := w.Header()
		h.Set("Content-Type", a.contentType)
		h.Set("ETag", a.etag)
		h.Set("X-Content-Type-Options", "nosniff")
		// ServeContent answers HEAD, If-None-Match (304) and Range requests.
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
	})
}

func jsonError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	b, _ := json.Marshal(map[string]string{"error": msg})
	w.Write(append(b, '\n'))
}
