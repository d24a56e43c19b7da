// Command apiload measures the read API under a fixed request rate: it sends
// GET requests round-robin over a set of paths at -rate requests/s for
// -duration (bounded; loopback only by default) and prints the latency
// percentiles.
//
//	go run ./examples/apiload -base http://127.0.0.1:8080 -rate 500 -duration 60s
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(os.Args[1:], os.Stdout); err != nil {
		log.Error("apiload failed", "err", err)
		os.Exit(1)
	}
}

// result is one request's outcome.
type result struct {
	d   time.Duration
	err bool
}

func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("apiload", flag.ContinueOnError)
	base := fs.String("base", "http://127.0.0.1:8080", "API base URL (loopback)")
	rate := fs.Float64("rate", 500, "requests per second")
	duration := fs.Duration("duration", 60*time.Second, "how long to send (at most 10m)")
	paths := fs.String("paths", "/kpis/latest,/kpis?minutes_back=30,/funnel?minutes_back=5,/stats,/top-products?minutes_back=5", "comma-separated paths")
	token := fs.String("token", "", "bearer token")
	if err := fs.Parse(args); err != nil {
		return err
	}
	u, err := url.Parse(*base)
	if err != nil {
		return err
	}
	if h := u.Hostname(); h != "127.0.0.1" && h != "localhost" && h != "::1" {
		return fmt.Errorf("-base %s: only loopback targets", *base)
	}
	if *rate <= 0 || *duration <= 0 || *duration > 10*time.Minute {
		return fmt.Errorf("-rate must be > 0 and -duration in (0, 10m]")
	}
	ps := strings.Split(*paths, ",")
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	ctx, cancel := context.WithTimeout(context.Background(), *duration)
	defer cancel()

	var mu sync.Mutex
	var results []result
	var wg sync.WaitGroup
	interval := time.Duration(float64(time.Second) / *rate)
	next := time.Now()
	for i := 0; ctx.Err() == nil; i++ {
		time.Sleep(time.Until(next))
		next = next.Add(interval)
		path := ps[i%len(ps)]
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodGet, *base+path, nil)
			if *token != "" {
				req.Header.Set("Authorization", "Bearer "+*token)
			}
			start := time.Now()
			resp, err := client.Do(req)
			failed := err != nil
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				failed = resp.StatusCode >= 500
			}
			mu.Lock()
			results = append(results, result{time.Since(start), failed})
			mu.Unlock()
		})
	}
	wg.Wait()
	ds := make([]time.Duration, 0, len(results))
	errs := 0
	for _, r := range results {
		ds = append(ds, r.d)
		if r.err {
			errs++
		}
	}
	slices.Sort(ds)
	q := func(p float64) time.Duration {
		if len(ds) == 0 {
			return 0
		}
		return ds[min(len(ds)-1, int(p*float64(len(ds))))]
	}
	fmt.Fprintf(out, "requests %d (%.0f/s) errors %d p50 %v p95 %v p99 %v max %v\n", len(ds),
		float64(len(ds))/duration.Seconds(), errs, q(0.50), q(0.95), q(0.99), q(1))
	return nil
}
