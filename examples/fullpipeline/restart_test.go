package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	mongoopts "go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/clickstreamkit/clickstream/examples/internal/embedmongo"
	"github.com/clickstreamkit/clickstream/sinks"
	mongosink "github.com/clickstreamkit/clickstream/sinks/mongo"
)

// demoState is what a stopped demo left under its -data directory: the
// final documents of each MongoDB collection by _id, and the Parquet files
// by path.
type demoState struct {
	docs    map[string]map[string]bson.M // collection -> _id -> document
	parquet map[string][]byte
}

// volatile are the fields a replay after a crash may rewrite: the latency
// of a minute (SEMANTICS §6: not deterministic) and the time of the write.
var volatile = []string{"latency_ms_p95", "latency_bins", "updated_at"}

// readDemoState opens the demo's MongoDB data with an embedded server of
// its own (the demo's is gone with it) and reads the final documents, and
// reads the Parquet files.
func readDemoState(t *testing.T, data string) demoState {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	srv, err := embedmongo.Start(ctx, "127.0.0.1:0", filepath.Join(data, "mongo"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	mc, err := mongo.Connect(mongoopts.Client().ApplyURI(srv.URI()))
	if err != nil {
		t.Fatal(err)
	}
	defer mc.Disconnect(context.Background())
	st := demoState{docs: map[string]map[string]bson.M{}, parquet: map[string][]byte{}}
	for _, coll := range []string{mongosink.DefaultKPIs, mongosink.DefaultSessions, mongosink.DefaultFunnel} {
		cur, err := mc.Database("clickstream").Collection(coll).Find(ctx, bson.D{})
		if err != nil {
			t.Fatalf("find in %s: %v", coll, err)
		}
		var docs []bson.M
		if err := cur.All(ctx, &docs); err != nil {
			t.Fatalf("read %s: %v", coll, err)
		}
		st.docs[coll] = map[string]bson.M{}
		for _, d := range docs {
			if f, ok := d["final"]; ok && f != true {
				continue // a running update: it may change
			}
			for _, k := range volatile {
				delete(d, k)
			}
			st.docs[coll][fmt.Sprint(d["_id"])] = unordered(d).(bson.M)
		}
	}
	root := filepath.Join(data, "parquet")
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".parquet") {
			return err
		}
		b, err := os.ReadFile(path)
		rel, _ := filepath.Rel(root, path)
		st.parquet[rel] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// keeps checks that now holds everything before held, unchanged.
func (now demoState) keeps(t *testing.T, before demoState, after string) {
	t.Helper()
	for coll, docs := range before.docs {
		for id, d := range docs {
			got, ok := now.docs[coll][id]
			switch {
			case !ok:
				t.Errorf("after %s: %s %s, final before, is gone or no longer final", after, coll, id)
			case !reflect.DeepEqual(got, d):
				for k := range mergeKeys(got, d) {
					if !reflect.DeepEqual(got[k], d[k]) {
						t.Errorf("after %s: %s %s: %s is %v, was %v", after, coll, id, k, got[k], d[k])
					}
				}
			}
		}
	}
	for path, b := range before.parquet {
		if got, ok := now.parquet[path]; !ok || string(got) != string(b) {
			t.Errorf("after %s: Parquet file %s changed or is gone", after, path)
		}
	}
}

var (
	mongoURILine = regexp.MustCompile(`msg="embedded MongoDB-wire server" uri=(\S+)`)
	restoredLine = regexp.MustCompile(`msg="embedded Kafka-protocol broker" .*restored=(\d+)`)
)

// TestRestartKeepsHistory runs the default demo (embedded broker, embedded
// MongoDB-wire server, Parquet) on one -data directory, stopping it with
// SIGINT three times and SIGKILL once at different points and starting it
// again: what was final before a stop (KPI minutes, sessions, funnel
// minutes, Parquet files) is unchanged after it, the broker comes back with
// every record it had, and every run makes progress of its own.
func TestRestartKeepsHistory(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the demo for about two minutes")
	}
	data := t.TempDir()
	config := filepath.Join(t.TempDir(), "restart.yaml")
	// horizons of seconds, so that minutes (10s windows here) and sessions
	// become final within a run
	yaml := "watermark_delay: 3s\nsession_gap: 10s\nwindow_size: 10s\nupdate_interval: 1s\n"
	if err := os.WriteFile(config, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"-config", config, "-rate", "40", "-http", "off", "-data", data,
		"-parquet-chunk", "150", "-progress", "1s"}

	stops := []struct {
		sig           syscall.Signal
		finals, files int // new final KPI documents and Parquet files to wait for before the stop
	}{
		{syscall.SIGINT, 8, 1},
		{syscall.SIGKILL, 5, 2}, // in the middle of a checkpoint interval
		{syscall.SIGINT, 3, 0},  // soon after the restart
		{syscall.SIGINT, 8, 1},
	}
	var before demoState
	restored := int64(-1)
	for i, stop := range stops {
		name := fmt.Sprintf("run %d", i+1)
		p := e2eStart(t, name, args...)
		var uri string
		e2eWaitFor(t, time.Minute, 50*time.Millisecond, name+" to start its MongoDB-wire server", func() bool {
			if m := mongoURILine.FindStringSubmatch(p.out.String()); m != nil {
				uri = m[1]
				return true
			}
			if p.exited() {
				t.Fatalf("%s exited at start", name)
			}
			return false
		})
		m := restoredLine.FindStringSubmatch(p.out.String())
		if m == nil {
			t.Fatalf("%s: no broker line", name)
		}
		n, _ := strconv.ParseInt(m[1], 10, 64)
		if n < restored || (i > 0 && n == 0) {
			t.Fatalf("%s: broker restored %d records, the run before had %d and more", name, n, restored)
		}
		restored = n

		mc := e2eMongo(t, uri)
		finals := func() int64 {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			c, err := mc.Database("clickstream").Collection(mongosink.DefaultKPIs).CountDocuments(ctx, bson.D{{Key: "final", Value: true}})
			if err != nil {
				return -1
			}
			return c
		}
		base, baseFiles := int64(len(before.docs[mongosink.DefaultKPIs])), len(before.parquet)
		e2eWaitFor(t, 90*time.Second, 200*time.Millisecond,
			fmt.Sprintf("%s to write %d new final KPI documents and %d Parquet files", name, stop.finals, stop.files), func() bool {
				if p.exited() {
					t.Fatalf("%s exited", name)
				}
				return finals() >= base+int64(stop.finals) && countParquet(t, data) >= baseFiles+stop.files
			})
		mc.Disconnect(context.Background())
		p.signal(stop.sig)
		code := p.wait(90 * time.Second)
		if stop.sig == syscall.SIGINT && code != 0 {
			t.Fatalf("%s exited with %d after SIGINT", name, code)
		}
		if p.contains("level=ERROR") {
			t.Errorf("%s logged an error", name)
		}

		now := readDemoState(t, data)
		now.keeps(t, before, fmt.Sprintf("%s (%v)", name, stop.sig))
		if len(now.docs[mongosink.DefaultKPIs]) < int(base)+stop.finals || len(now.docs[mongosink.DefaultSessions]) <= len(before.docs[mongosink.DefaultSessions]) {
			t.Errorf("%s: %d final KPI documents and %d sessions, before it %d and %d: no progress", name,
				len(now.docs[mongosink.DefaultKPIs]), len(now.docs[mongosink.DefaultSessions]), base, len(before.docs[mongosink.DefaultSessions]))
		}
		t.Logf("after %s (%v): broker had %d records at start; %d final KPI documents, %d sessions, %d final funnel minutes, %d Parquet files",
			name, stop.sig, n, len(now.docs[mongosink.DefaultKPIs]), len(now.docs[mongosink.DefaultSessions]), len(now.docs[mongosink.DefaultFunnel]), len(now.parquet))
		before = now
	}
}

func countParquet(t *testing.T, data string) int {
	n := 0
	filepath.WalkDir(filepath.Join(data, "parquet"), func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".parquet") {
			n++
		}
		return nil
	})
	return n
}

func mergeKeys(a, b bson.M) map[string]bool {
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	return keys
}

// unordered turns the embedded documents of v into maps: a Go map written
// again (revenue_by_currency) may list its keys in another order, which
// changes no value.
func unordered(v any) any {
	switch v := v.(type) {
	case bson.M:
		for k, x := range v {
			v[k] = unordered(x)
		}
		return v
	case bson.D:
		m := bson.M{}
		for _, e := range v {
			m[e.Key] = unordered(e.Value)
		}
		return m
	case bson.A:
		for i, x := range v {
			v[i] = unordered(x)
		}
		return v
	}
	return v
}

var readAPILine = regexp.MustCompile(`msg="dashboard and read API" url=(http://127\.0\.0\.1:\d+/)`)

// TestReadAPIKeepsHistoryAfterRestart runs the default demo with its read
// API on a free port until windows are final, stops it and starts it again
// on the same -data: the restarted read API loads the history in the
// background while the pipeline runs, and answers either 503 (loading) or
// with every window final before the stop, unchanged, never without them.
func TestReadAPIKeepsHistoryAfterRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the demo twice")
	}
	data := t.TempDir()
	config := filepath.Join(t.TempDir(), "restart.yaml")
	yaml := "watermark_delay: 3s\nsession_gap: 10s\nwindow_size: 10s\nupdate_interval: 1s\n"
	if err := os.WriteFile(config, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"-config", config, "-rate", "40", "-http", "127.0.0.1:0", "-data", data, "-progress", "1s"}
	start := func(name string) (*e2eProc, string) {
		p := e2eStart(t, name, args...)
		var url string
		e2eWaitFor(t, time.Minute, 20*time.Millisecond, name+" to serve its read API", func() bool {
			if m := readAPILine.FindStringSubmatch(p.out.String()); m != nil {
				url = m[1]
				return true
			}
			if p.exited() {
				t.Fatalf("%s exited at start", name)
			}
			return false
		})
		return p, url
	}
	// finals asks /kpis for the final windows by minute; ok is false for a
	// 503 while the history loads.
	finals := func(url string) (map[string]sinks.GlobalKPIRecord, bool) {
		resp, err := http.Get(url + "kpis?minutes_back=1440")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		switch {
		case resp.StatusCode == http.StatusServiceUnavailable && strings.Contains(string(body), "loading the history"):
			return nil, false
		case resp.StatusCode != http.StatusOK:
			t.Fatalf("/kpis: %d %s", resp.StatusCode, body)
		}
		var v struct{ KPIs []sinks.GlobalKPIRecord }
		if err := json.Unmarshal(body, &v); err != nil {
			t.Fatalf("/kpis: %v: %s", err, body)
		}
		out := map[string]sinks.GlobalKPIRecord{}
		for _, r := range v.KPIs {
			if r.Final {
				r.LatencyMsP95 = nil // SEMANTICS §6: not deterministic
				out[r.Minute] = r
			}
		}
		return out, true
	}

	p, url := start("run 1")
	var before map[string]sinks.GlobalKPIRecord
	e2eWaitFor(t, 90*time.Second, 200*time.Millisecond, "run 1 to have 5 final windows", func() bool {
		before, _ = finals(url)
		return len(before) >= 5
	})
	p.signal(syscall.SIGINT)
	if code := p.wait(90 * time.Second); code != 0 {
		t.Fatalf("run 1 exited with %d after SIGINT", code)
	}

	p, url = start("run 2")
	loading, answers := 0, 0
	e2eWaitFor(t, 90*time.Second, 10*time.Millisecond, "run 2 to answer with its history and a new final window", func() bool {
		got, ok := finals(url)
		if !ok {
			loading++
			return false
		}
		answers++
		for minute, want := range before {
			if g, found := got[minute]; !found || !reflect.DeepEqual(g, want) {
				t.Fatalf("run 2 answered without window %s as it was final before the stop: %+v, want %+v", minute, g, want)
			}
		}
		return len(got) > len(before)
	})
	t.Logf("run 2: %d answers while loading, then %d with the %d windows of run 1", loading, answers, len(before))
	p.signal(syscall.SIGINT)
	if code := p.wait(90 * time.Second); code != 0 {
		t.Fatalf("run 2 exited with %d after SIGINT", code)
	}
}
