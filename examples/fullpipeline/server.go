package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/clickstreamkit/clickstream/examples/internal/readapi"
	"github.com/clickstreamkit/clickstream/pipeline"
)

type server struct {
	srv *http.Server
	ln  net.Listener
}

func (s *server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.srv.Shutdown(ctx)
}

func startServer(ctx context.Context, o options, cfg pipeline.Config, st readapi.Store, p *progress, log *slog.Logger) (*server, error) {
	h := readapi.New(st, cfg, readapi.Options{Stats: p.stats, Token: o.token, Log: log, Metrics: newRegistry(p)})
	ln, err := net.Listen("tcp", o.http)
	if err != nil {
		return nil, fmt.Errorf("http: %w", err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      0, // server-sent events stream; other handlers bound their work by context
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server", "err", err)
		}
	}()
	log.Info("dashboard and read API", "url", "http://"+ln.Addr().String()+"/")
	return &server{srv: srv, ln: ln}, nil
}

// servePprof serves net/http/pprof's handlers on addr, apart from the read
// API (no token guards them), until the closers run, and returns the
// address it listens on.
func servePprof(addr string, log *slog.Logger, c *closers) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("pprof: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("pprof server", "err", err)
		}
	}()
	log.Info("profiles", "url", "http://"+ln.Addr().String()+"/debug/pprof/")
	c.add(srv.Close)
	return ln.Addr().String(), nil
}

// newRegistry exposes the pipeline's counters to Prometheus, with the Go
// runtime's and the process's own (heap, GC, CPU, resident memory).
func newRegistry(p *progress) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	readapi.RegisterStats(reg, p.stats)
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "clickstream_consumer_lag", Help: "Messages behind the partitions' ends."},
		func() float64 { return float64(p.lag()) }))
	reg.MustRegister(deadCollector{p.dead})
	reg.MustRegister(p.latency.collectors()...)
	return reg
}

// deadCollector reports dead letters by reason.
type deadCollector struct{ d *deadLetters }

var deadDesc = prometheus.NewDesc("clickstream_dead_letters_total", "Dead letters written, by reason.", []string{"reason"}, nil)

func (c deadCollector) Describe(ch chan<- *prometheus.Desc) { ch <- deadDesc }

func (c deadCollector) Collect(ch chan<- prometheus.Metric) {
	byReason, _ := c.d.snapshot()
	for reason, n := range byReason {
		ch <- prometheus.MustNewConstMetric(deadDesc, prometheus.CounterValue, float64(n), reason)
	}
}
