package main

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/clickstreamkit/clickstream/pipeline"
)

// -pprof serves the runtime's profiles until shutdown.
func TestServePprof(t *testing.T) {
	var c closers
	addr, err := servePprof("127.0.0.1:0", slog.New(slog.DiscardHandler), &c)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + addr + "/debug/pprof/heap?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "heap profile") {
		t.Fatalf("heap profile: %d %.200s", resp.StatusCode, body)
	}
	if err := c.close(); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get("http://" + addr + "/debug/pprof/"); err == nil {
		t.Error("still served after shutdown")
	}
}

// /metrics carries the Go runtime's and the process's metrics beside the
// pipeline's.
func TestRegistryHasRuntimeMetrics(t *testing.T) {
	p := newProgress(func() pipeline.Stats { return pipeline.Stats{} }, func() int64 { return 0 },
		&deadLetters{byReason: map[string]int64{}}, newLatencyTracker(), slog.New(slog.DiscardHandler), time.Now)
	mfs, err := newRegistry(p).Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, want := range []string{"go_memstats_heap_inuse_bytes", "go_gc_duration_seconds", "process_resident_memory_bytes", "clickstream_consumer_lag"} {
		if !names[want] {
			t.Errorf("no %s in /metrics", want)
		}
	}
}
