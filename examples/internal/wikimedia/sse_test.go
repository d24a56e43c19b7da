package wikimedia

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// parseAll runs the EventSource parser over a whole stream.
func parseAll(stream string) []ServerEvent {
	var p parser
	var out []ServerEvent
	sc := bufio.NewScanner(strings.NewReader(stream))
	sc.Split(scanLines)
	for sc.Scan() {
		if ev, ok := p.line(sc.Bytes()); ok {
			out = append(out, ev)
		}
	}
	return out
}

func TestParser(t *testing.T) {
	for _, tc := range []struct {
		name, stream string
		want         []ServerEvent
	}{
		{"data lines join with LF", "data: a\ndata:b\ndata:  c\n\n",
			[]ServerEvent{{Type: "message", Data: []byte("a\nb\n c")}}},
		{"comments and unknown fields are ignored", ":ok\n: keep-alive\nfoo: bar\ndata: x\n\n",
			[]ServerEvent{{Type: "message", Data: []byte("x")}}},
		{"event type applies to one event", "event: edit\ndata: 1\n\ndata: 2\n\n",
			[]ServerEvent{{Type: "edit", Data: []byte("1")}, {Type: "message", Data: []byte("2")}}},
		{"id persists until changed", "id: 7\ndata: 1\n\ndata: 2\n\nid\ndata: 3\n\n",
			[]ServerEvent{{ID: "7", Type: "message", Data: []byte("1")}, {ID: "7", Type: "message", Data: []byte("2")},
				{ID: "", Type: "message", Data: []byte("3")}}},
		{"an id with NUL is ignored", "id: 1\ndata: a\n\nid: x\x00y\ndata: b\n\n",
			[]ServerEvent{{ID: "1", Type: "message", Data: []byte("a")}, {ID: "1", Type: "message", Data: []byte("b")}}},
		{"CR and CRLF end lines", "data: a\r\rdata: b\r\n\r\ndata: c\n\n",
			[]ServerEvent{{Type: "message", Data: []byte("a")}, {Type: "message", Data: []byte("b")}, {Type: "message", Data: []byte("c")}}},
		{"a field without colon has an empty value", "data\ndata\n\n",
			[]ServerEvent{{Type: "message", Data: []byte("\n")}}},
		{"no data, no event", "event: x\nid: 3\n\n\n", nil},
		{"an event cut off by the end is dropped", "data: a\n\ndata: b\n", []ServerEvent{{Type: "message", Data: []byte("a")}}},
		{"a partial line at the end is dropped", "data: a\n\ndata: b", []ServerEvent{{Type: "message", Data: []byte("a")}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := parseAll(tc.stream)
			if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", tc.want) {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestParserRetry(t *testing.T) {
	var p parser
	for _, l := range []string{"retry: 2500", "retry: 12x", "retry: -1"} {
		p.line([]byte(l))
	}
	if p.retry != 2500*time.Millisecond {
		t.Errorf("retry %v, want 2.5s", p.retry)
	}
}

// fixture returns the recorded stream's blocks (what lies between blank
// lines) and, for each event block, its id.
func fixture(t testing.TB) (blocks []string, ids []string) {
	data, err := os.ReadFile("testdata/recentchange.sse")
	if err != nil {
		t.Fatal(err)
	}
	for b := range strings.SplitSeq(strings.TrimSuffix(string(data), "\n"), "\n\n") {
		blocks = append(blocks, b+"\n\n")
		id := ""
		for l := range strings.SplitSeq(b, "\n") {
			if v, ok := strings.CutPrefix(l, "id: "); ok {
				id = v
			}
		}
		ids = append(ids, id)
	}
	return blocks, ids
}

// recordedServer serves the fixture from after the request's Last-Event-ID.
// Its first connections end early as drops says (a block count; a negative
// one aborts the connection in the middle of the next block).
type recordedServer struct {
	t      testing.TB
	blocks []string
	ids    []string
	drops  []int

	mu       sync.Mutex
	requests []*http.Request
}

func (s *recordedServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	n := len(s.requests)
	s.requests = append(s.requests, r)
	s.mu.Unlock()
	from := 0
	if last := r.Header.Get("Last-Event-ID"); last != "" {
		i := slices.Index(s.ids, last)
		if i < 0 {
			http.Error(w, "unknown Last-Event-ID", http.StatusBadRequest)
			return
		}
		from = i + 1
	}
	w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	limit, abort := len(s.blocks), false
	if n < len(s.drops) {
		limit, abort = from+s.drops[n], s.drops[n] < 0
		if abort {
			limit = from - s.drops[n]
		}
	}
	for i := from; i < min(limit, len(s.blocks)); i++ {
		fmt.Fprint(w, s.blocks[i])
	}
	if abort && limit < len(s.blocks) {
		b := s.blocks[limit]
		fmt.Fprint(w, b[:len(b)/2])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // drop the connection mid-event
	}
}

func collect(t *testing.T, url string, opts ...Option) ([]ServerEvent, error) {
	s, err := NewStream(url, append([]Option{WithBackoff(time.Millisecond, 5*time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	var got []ServerEvent
	want := 20
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	err = s.Run(ctx, func(ev ServerEvent) error {
		got = append(got, ev)
		if len(got) == want {
			return errDone
		}
		return nil
	})
	if errors.Is(err, errDone) {
		err = nil
	}
	return got, err
}

var errDone = errors.New("done")

// The server drops the connection mid-event, then ends one cleanly: the
// client reconnects each time with the last complete event's id and gets
// every event exactly once, in order.
func TestStreamReconnects(t *testing.T) {
	blocks, ids := fixture(t)
	srv := &recordedServer{t: t, blocks: blocks, ids: ids, drops: []int{-6, 7}}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	got, err := collect(t, ts.URL+"/v2/stream/recentchange")
	if err != nil {
		t.Fatal(err)
	}
	var wantIDs []string
	for _, id := range ids {
		if id != "" {
			wantIDs = append(wantIDs, id)
		}
	}
	var gotIDs []string
	for _, ev := range got {
		gotIDs = append(gotIDs, ev.ID)
		if ev.Type != "message" || len(ev.Data) == 0 || ev.Data[0] != '{' {
			t.Errorf("event %s: type %q data %.20q", ev.ID, ev.Type, ev.Data)
		}
	}
	if !slices.Equal(gotIDs, wantIDs) {
		t.Fatalf("got ids\n%q\nwant\n%q", gotIDs, wantIDs)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if len(srv.requests) != 3 {
		t.Fatalf("%d requests, want 3", len(srv.requests))
	}
	// Block 0 is ":ok"; the first connection delivers blocks 1-5 (events
	// 0-4), the second events 5-11.
	for i, want := range []string{"", ids[5], ids[12]} {
		r := srv.requests[i]
		if got := r.Header.Get("Last-Event-ID"); got != want {
			t.Errorf("request %d: Last-Event-ID %q, want %q", i, got, want)
		}
		if r.Header.Get("Accept") != "text/event-stream" || r.Header.Get("User-Agent") != DefaultUserAgent {
			t.Errorf("request %d: headers %v", i, r.Header)
		}
	}
}

func TestStreamStatus(t *testing.T) {
	blocks, ids := fixture(t)
	var calls int
	var mu sync.Mutex
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		switch {
		case r.URL.Path == "/gone":
			http.NotFound(w, r)
		case r.URL.Path == "/html":
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprint(w, "<html>")
		case n <= 2: // overloaded twice, then fine
			w.Header().Set("Retry-After", "1")
			http.Error(w, "busy", http.StatusServiceUnavailable)
		default:
			(&recordedServer{t: t, blocks: blocks, ids: ids}).ServeHTTP(w, r)
		}
	}))
	defer ts.Close()
	got, err := collect(t, ts.URL+"/ok")
	if err != nil || len(got) != 20 || calls != 3 {
		t.Errorf("after two 503s: %d events, %d calls, %v", len(got), calls, err)
	}
	for _, path := range []string{"/gone", "/html"} {
		if _, err := collect(t, ts.URL+path); !errors.Is(err, ErrStatus) {
			t.Errorf("%s: %v, want ErrStatus", path, err)
		}
	}
}

// A connection on which nothing arrives is dropped and reopened.
func TestStreamIdleTimeout(t *testing.T) {
	blocks, ids := fixture(t)
	var calls int
	var mu sync.Mutex
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		if n == 1 {
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, ":ok\n\n")
			w.(http.Flusher).Flush()
			select { // hang
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
			return
		}
		(&recordedServer{t: t, blocks: blocks, ids: ids}).ServeHTTP(w, r)
	}))
	defer ts.Close()
	got, err := collect(t, ts.URL, WithIdleTimeout(100*time.Millisecond))
	if err != nil || len(got) != 20 || calls != 2 {
		t.Errorf("%d events, %d calls, %v", len(got), calls, err)
	}
}

func TestStreamStops(t *testing.T) {
	blocks, ids := fixture(t)
	ts := httptest.NewServer(&recordedServer{t: t, blocks: blocks, ids: ids})
	defer ts.Close()
	s, err := NewStream(ts.URL, WithLastEventID(ids[18]))
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	var got []string
	err = s.Run(t.Context(), func(ev ServerEvent) error {
		got = append(got, ev.ID)
		return boom
	})
	if !errors.Is(err, boom) || len(got) != 1 || got[0] != ids[19] {
		t.Errorf("Run = %v after %q; want boom after the event following Last-Event-ID", err, got)
	}
	if s.LastEventID() != ids[18] {
		t.Errorf("LastEventID moved to %q though fn failed", s.LastEventID())
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.Run(ctx, func(ServerEvent) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled Run = %v", err)
	}
}

func TestNewStreamRejects(t *testing.T) {
	for _, tc := range []struct {
		url  string
		opts []Option
	}{
		{"ftp://x/y", nil},
		{"::", nil},
		{"http://x", []Option{WithBackoff(0, time.Second)}},
		{"http://x", []Option{WithBackoff(time.Second, time.Millisecond)}},
		{"http://x", []Option{WithHTTPClient(nil)}},
		{"http://x", []Option{WithIdleTimeout(-1)}},
	} {
		if _, err := NewStream(tc.url, tc.opts...); err == nil {
			t.Errorf("NewStream(%q) accepted", tc.url)
		}
	}
}
