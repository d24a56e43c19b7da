package replay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/clickstreamkit/clickstream"
	"github.com/clickstreamkit/clickstream/internal/gen"
)

func TestScanFields(t *testing.T) {
	for _, tc := range []struct {
		line         string
		id, ts, user string // raw values found; "" = absent
	}{
		{`{"event_id":"e1","event_type":"page_view","event_ts":"2025-03-14T12:00:00Z","user_id":"u1"}`, `"e1"`, `"2025-03-14T12:00:00Z"`, `"u1"`},
		{` { "user_id" : "u\"2" , "device":{"ua":"a}\"{","os":"x","mobile":true},"x":[1,{"event_id":"no"}],"event_ts":null, "n": -1.5e3 }`, ``, `null`, `"u\"2"`},
		{`{"event_id":"a","event_id":"b"}`, `"b"`, ``, ``},
		{`{"event_id":"e1","user_id":"u1","event_ts":"2025-03-14T12:00:00Z`, `"e1"`, ``, `"u1"`}, // truncated
		{`not json at all`, ``, ``, ``},
		{`{"event_id":17,"user_id":"u9"}`, `17`, ``, `"u9"`},
		{`{"ev\u0065nt_id":"hidden"}`, ``, ``, ``}, // escaped keys are not recognised
		{`[]`, ``, ``, ``},
		{`{"user_id":`, ``, ``, ``},
	} {
		f := scanFields([]byte(tc.line))
		got := func(s span) string {
			if !s.ok() {
				return ""
			}
			return tc.line[s.start:s.end]
		}
		if got(f.id) != tc.id || got(f.ts) != tc.ts || got(f.user) != tc.user {
			t.Errorf("scanFields(%s) = id %q ts %q user %q; want %q %q %q", tc.line, got(f.id), got(f.ts), got(f.user), tc.id, tc.ts, tc.user)
		}
	}
}

func TestStringValue(t *testing.T) {
	line := []byte(`{"user_id":"a\"b\u00e9","x":"plain","n":5}`)
	f := scanFields(line)
	if v, ok := stringValue(line, f.user); !ok || string(v) != "a\"bé" {
		t.Errorf("escaped: %q %v", v, ok)
	}
	if _, ok := stringValue(line, span{}); ok {
		t.Error("absent span reported as a string")
	}
	n := bytes.Index(line, []byte("5"))
	if _, ok := stringValue(line, span{n, n + 1}); ok {
		t.Error("number reported as a string")
	}
}

// recorder is a fake Producer remembering what it was sent and when.
type recorder struct {
	mu      sync.Mutex
	msgs    []Message
	at      []time.Time
	flushes int
	failAt  int // Send fails on this message (1-based); 0 never
}

func (r *recorder) Send(ctx context.Context, m Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failAt > 0 && len(r.msgs)+1 == r.failAt {
		return errors.New("boom")
	}
	r.msgs = append(r.msgs, m)
	r.at = append(r.at, time.Now())
	return ctx.Err()
}

func (r *recorder) Flush(context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.flushes++
	return nil
}

func (r *recorder) Counts() (int64, int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return int64(len(r.msgs)), 0
}

func genLines(n int, seed uint64, rate float64) ([][]byte, []gen.Message) {
	c := gen.Default(n, seed)
	c.Rate = rate
	msgs := gen.Generate(c)
	lines := make([][]byte, len(msgs))
	for i, m := range msgs {
		lines[i] = m.Value
	}
	return lines, msgs
}

// Keys are the events' user_ids (SEMANTICS §2); lines without one go unkeyed;
// the values are the lines unchanged; the record timestamp is the send time.
func TestRunKeysAndValues(t *testing.T) {
	lines, msgs := genLines(2000, 1, 50)
	lines = append(lines, nil, []byte(`not json`), []byte(`{"event_id":"x","user_id":""}`))
	var r recorder
	st, err := Run(t.Context(), &r, lines, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Sent != int64(len(msgs)+2) || len(r.msgs) != len(msgs)+2 || st.Passes != 1 {
		t.Fatalf("stats %+v, %d sent; want %d", st, len(r.msgs), len(msgs)+2)
	}
	keyless := int64(2)
	dec, err := clickstream.NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range msgs {
		got := r.msgs[i]
		if !bytes.Equal(got.Value, m.Value) {
			t.Fatalf("message %d changed: %s", i, got.Value)
		}
		var e clickstream.Event
		err := dec.DecodeAt(m.Value, &e, 1<<62)
		switch {
		case err == nil && string(got.Key) != e.UserID:
			t.Fatalf("message %d keyed %q, user_id %q", i, got.Key, e.UserID)
		case err != nil && got.Key != nil && !bytes.Contains(m.Value, []byte(`"user_id":"`+string(got.Key)+`"`)):
			t.Fatalf("invalid message %d keyed %q: %s", i, got.Key, m.Value)
		case got.Key == nil:
			keyless++
		}
		if got.Timestamp.IsZero() {
			t.Fatalf("message %d has no timestamp", i)
		}
	}
	if st.Keyless != keyless || r.msgs[len(r.msgs)-1].Key != nil {
		t.Errorf("keyless %d, want %d", st.Keyless, keyless)
	}
	if r.flushes != 1 {
		t.Errorf("flushed %d times, want 1", r.flushes)
	}
}

// The pacer spaces sends at 1/rate in (fake) time: after k seconds, about
// rate*k messages are out.
func TestRunRate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lines, _ := genLines(300, 2, 50)
		lines = lines[:250]
		var r recorder
		start := time.Now()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		done := make(chan error, 1)
		go func() { _, err := Run(ctx, &r, lines, Options{Rate: 100}); done <- err }()
		for _, k := range []int{1, 2} {
			time.Sleep(time.Until(start.Add(time.Duration(k)*time.Second - time.Millisecond)))
			synctest.Wait()
			r.mu.Lock()
			n := len(r.msgs)
			r.mu.Unlock()
			if n != 100*k {
				t.Errorf("after %ds: %d sent, want %d", k, n, 100*k)
			}
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took != 2490*time.Millisecond {
			t.Errorf("250 messages at 100/s took %v, want 2.49s", took)
		}
		for i := 1; i < len(r.at); i++ {
			if d := r.at[i].Sub(r.at[i-1]); d != 10*time.Millisecond {
				t.Fatalf("gap %d: %v, want 10ms", i, d)
			}
		}
	})
}

// After a stall, the pacer catches up a second's worth at once, not more.
func TestRunRateAfterStall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lines, _ := genLines(100, 3, 50)
		var mu sync.Mutex
		var at []time.Time
		p := ProducerFunc(func(ctx context.Context, m Message) error {
			mu.Lock()
			defer mu.Unlock()
			if len(at) == 10 {
				time.Sleep(5 * time.Second) // a stalled broker
			}
			at = append(at, time.Now())
			return nil
		})
		start := time.Now()
		if _, err := Run(t.Context(), p, lines[:60], Options{Rate: 10}); err != nil {
			t.Fatal(err)
		}
		burst := 0
		for _, a := range at[10:] {
			if a.Equal(at[10]) {
				burst++
			}
		}
		// Message 10, due at 1s, is delivered at 6s; then a second's worth
		// (messages 11-20) plus the one due now (21) go at once, then 10/s.
		if burst != 12 {
			t.Errorf("burst of %d after the stall, want 12", burst)
		}
		if took, want := time.Since(start), 6*time.Second+(59-21)*100*time.Millisecond; took != want {
			t.Errorf("took %v, want %v", took, want)
		}
	})
}

// steady returns n events, one per 100ms of event time from base, each up to
// 2s out of order, with a retry of event 10, a late event and an invalid one.
func steady(n int, base int64) [][]byte {
	var lines [][]byte
	ev := func(id string, ts int64, user string) []byte {
		e := clickstream.Event{EventID: id, EventType: "page_view", TS: ts, UserID: user,
			Page: "/p", Geo: clickstream.Geo{Country: "DE", City: "Munich"}}
		return clickstream.AppendJSON(nil, &e)
	}
	for i := range n {
		ts := base + int64(i)*100 - int64(i*7919%20)*100
		lines = append(lines, ev(fmt.Sprintf("e%d", i), ts, fmt.Sprintf("u%d", i%13)))
		switch i {
		case 12:
			lines = append(lines, lines[10]) // a retry
		case 30:
			lines = append(lines, ev("late", ts-30*time.Minute.Milliseconds(), "u1"))
		case 40:
			lines = append(lines, []byte(`{"event_id":"bad","event_type":"purchase","event_ts":"2025-03-14T12:00:00Z","user_id":"u2"}`))
		}
	}
	return lines
}

// Live shifts event_ts so the first events are "now", keeps relative timing,
// and changes nothing else; valid events stay valid, invalid ones invalid.
func TestRunLive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		base := time.Date(2025, 3, 14, 12, 0, 0, 0, time.UTC).UnixMilli()
		lines := steady(300, base)
		var r recorder
		st, err := Run(t.Context(), &r, lines, Options{Rate: 10, Live: true})
		if err != nil {
			t.Fatal(err)
		}
		if st.Rewritten != int64(len(lines)) { // the invalid one has an event_ts too
			t.Errorf("rewrote %d of %d", st.Rewritten, len(lines))
		}
		dec, err := clickstream.NewDecoder()
		if err != nil {
			t.Fatal(err)
		}
		var offset int64 = -1
		for i, m := range r.msgs {
			var orig, got clickstream.Event
			origErr := dec.DecodeAt(lines[i], &orig, 1<<62)
			err := dec.DecodeAt(m.Value, &got, r.at[i].UnixMilli())
			if (origErr == nil) != (err == nil) {
				t.Fatalf("message %d: validity changed: %v -> %v\n%s\n%s", i, origErr, err, lines[i], m.Value)
			}
			if err != nil {
				continue
			}
			if d := got.TS - orig.TS; offset == -1 {
				offset = d
			} else if d != offset {
				t.Fatalf("message %d: shifted by %d, earlier ones by %d: relative timing lost", i, d, offset)
			}
			if lead := got.TS - r.at[i].UnixMilli(); lead > 0 {
				t.Fatalf("message %d leads the clock by %dms", i, lead)
			}
			got.TS, orig.TS = 0, 0
			if got != orig {
				t.Fatalf("message %d: more than event_ts changed:\n%+v\n%+v", i, orig, got)
			}
		}
		// The anchor is the median of the first 64 timestamps, a few seconds
		// of event time in: the first event is that much behind the clock.
		var first clickstream.Event
		if err := dec.DecodeAt(r.msgs[0].Value, &first, 1<<62); err != nil {
			t.Fatal(err)
		}
		if d := r.at[0].UnixMilli() - first.TS; d < 1000 || d > 4000 {
			t.Errorf("first event %dms behind the clock, want 1-4s", d)
		}
	})
}

// When the data's event rate is ten times the replay rate, event time would
// run ahead of the clock: the offset shrinks so no event leads by more than
// MaxLead (and none is rejected as future_timestamp).
func TestRunLiveClampsLead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lines, _ := genLines(600, 5, 100)
		var r recorder
		if _, err := Run(t.Context(), &r, lines, Options{Rate: 10, Live: true, MaxLead: 30 * time.Second}); err != nil {
			t.Fatal(err)
		}
		dec, err := clickstream.NewDecoder()
		if err != nil {
			t.Fatal(err)
		}
		clamped := 0
		for i, m := range r.msgs {
			var e clickstream.Event
			err := dec.DecodeAt(m.Value, &e, r.at[i].UnixMilli())
			var ve *clickstream.ValidationError
			if errors.As(err, &ve) && ve.Reason == clickstream.ReasonFutureTimestamp {
				t.Fatalf("message %d: %v", i, err)
			}
			if err == nil {
				lead := e.TS - r.at[i].UnixMilli()
				if lead > 30_000 {
					t.Fatalf("message %d leads by %dms", i, lead)
				}
				if lead == 30_000 {
					clamped++
				}
			}
		}
		if clamped == 0 {
			t.Error("no event was held at MaxLead: the test data did not run ahead")
		}
	})
}

// Loop replays until ctx ends; Live renames event ids and users per pass
// (keying by the new user) so a pass is not taken for duplicates of the
// previous one and brings new users, and every pass starts now.
func TestRunLoopLive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lines := [][]byte{
			[]byte(`{"event_id":"a","event_type":"page_view","event_ts":"2025-03-14T12:00:00Z","user_id":"u1"}`),
			[]byte(`{"event_id":"b","event_type":"page_view","event_ts":"2025-03-14T12:00:01Z","user_id":"u2"}`),
			[]byte(`{"event_id":"a","event_type":"page_view","event_ts":"2025-03-14T12:00:00Z","user_id":"u1"}`), // a retry
			[]byte(`{"user_id":"` + strings.Repeat("y", 127) + `","event_id":"` + strings.Repeat("x", 127) + `","event_type":"page_view","event_ts":"2025-03-14T12:00:02Z"}`),
		}
		var r recorder
		ctx, cancel := context.WithTimeout(t.Context(), 3750*time.Millisecond)
		defer cancel()
		st, err := Run(ctx, &r, lines, Options{Rate: 2, Loop: true, Live: true})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Run = %v, want the context's error", err)
		}
		if st.Passes != 3 || st.Sent != 8 { // the third started, waiting to send
			t.Fatalf("stats %+v, want 3 passes, 8 sent", st)
		}
		dec, err := clickstream.NewDecoder()
		if err != nil {
			t.Fatal(err)
		}
		var ids, users []string
		var ts []int64
		for i, m := range r.msgs {
			var e clickstream.Event
			if err := dec.DecodeAt(m.Value, &e, r.at[i].UnixMilli()); err != nil {
				t.Fatalf("message %d: %v", i, err)
			}
			if string(m.Key) != e.UserID {
				t.Errorf("message %d keyed %q, user_id %q", i, m.Key, e.UserID)
			}
			ids = append(ids, e.EventID)
			users = append(users, e.UserID)
			ts = append(ts, e.TS)
		}
		long := strings.Repeat("x", 127)
		if want := []string{"a", "b", "a", long, "a#1", "b#1", "a#1", long}; !slices.Equal(ids, want) {
			t.Errorf("ids %q, want %q", ids, want)
		}
		if want := []string{"u1", "u2", "u1", strings.Repeat("y", 127), "u1#1", "u2#1", "u1#1", strings.Repeat("y", 127)}; !slices.Equal(users, want) {
			t.Errorf("users %q, want %q", users, want)
		}
		if ts[0] != ts[2] {
			t.Error("a retry's event_ts differs from the original's")
		}
		if ts[1]-ts[0] != 1000 || ts[5]-ts[4] != 1000 {
			t.Error("relative timing lost")
		}
		// pass 2 starts at 2s of the run: its events are 2s later.
		if d := ts[4] - ts[0]; d != 2000 {
			t.Errorf("pass 2 shifted %dms beyond pass 1, want 2000", d)
		}
	})
}

// Skip resumes where an earlier run stopped: the same pass and line (empty
// lines not counted), pass suffixes going on, and the resumed line's event
// time at the clock; a run without Loop that sent everything sends nothing.
func TestRunSkipResumes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lines := [][]byte{
			[]byte(`{"event_id":"a","event_type":"page_view","event_ts":"2025-03-14T12:00:00Z","user_id":"u1"}`),
			nil,
			[]byte(`{"event_id":"b","event_type":"page_view","event_ts":"2025-03-14T12:00:05Z","user_id":"u2"}`),
			[]byte(`{"event_id":"c","event_type":"page_view","event_ts":"2025-03-14T12:00:07Z","user_id":"u3"}`),
		}
		var r recorder
		ctx, cancel := context.WithTimeout(t.Context(), 1250*time.Millisecond)
		defer cancel()
		start := time.Now()
		// 4 sent before: a, b, c, a#1; this run resumes at b#1
		st, err := Run(ctx, &r, lines, Options{Rate: 2, Loop: true, Live: true, Skip: 4})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Run = %v, want the context's error", err)
		}
		if st.Sent != 3 || st.Passes != 2 {
			t.Fatalf("stats %+v, want 3 sent in 2 passes", st)
		}
		var ids []string
		var ts []int64
		dec, err := clickstream.NewDecoder()
		if err != nil {
			t.Fatal(err)
		}
		for i, m := range r.msgs {
			var e clickstream.Event
			if err := dec.DecodeAt(m.Value, &e, r.at[i].UnixMilli()); err != nil {
				t.Fatalf("message %d: %v", i, err)
			}
			ids, ts = append(ids, e.EventID), append(ts, e.TS)
		}
		if want := []string{"b#1", "c#1", "a#2"}; !slices.Equal(ids, want) {
			t.Fatalf("ids %q, want %q", ids, want)
		}
		if ts[0] != start.UnixMilli() || ts[1]-ts[0] != 2000 {
			t.Errorf("resumed event times %v: want the first at the start (%d), the next 2s later", ts, start.UnixMilli())
		}

		r = recorder{}
		if st, err := Run(t.Context(), &r, lines, Options{Skip: 3}); err != nil || st.Sent != 0 {
			t.Errorf("Skip of every line without Loop: %+v, %v; want nothing sent", st, err)
		}
		if st, err := Run(t.Context(), &r, lines, Options{Skip: 2}); err != nil || st.Sent != 1 || !bytes.Contains(r.msgs[0].Value, []byte(`"c"`)) {
			t.Errorf("Skip 2 without Loop: %+v, %v; want c alone", st, err)
		}
		if _, err := Run(t.Context(), &r, lines, Options{Skip: -1}); err == nil {
			t.Error("negative skip accepted")
		}
	})
}

// Live never starts a pass behind the latest event_ts sent before it: a
// resumed run goes on from NotBefore, and a pass after one that MaxLead let
// run ahead of the clock goes on from there, so no event is late for the
// watermark of the earlier ones.
func TestRunLiveNeverGoesBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// 10s of event time per line at 1 line/s: the lead grows to MaxLead
		lines := [][]byte{
			[]byte(`{"event_id":"a","event_type":"page_view","event_ts":"2025-03-14T12:00:00Z","user_id":"u1"}`),
			[]byte(`{"event_id":"b","event_type":"page_view","event_ts":"2025-03-14T12:00:10Z","user_id":"u2"}`),
			[]byte(`{"event_id":"c","event_type":"page_view","event_ts":"2025-03-14T12:00:20Z","user_id":"u3"}`),
		}
		var r recorder
		start := time.Now()
		notBefore := start.Add(7 * time.Second)
		ctx, cancel := context.WithTimeout(t.Context(), 4500*time.Millisecond)
		defer cancel()
		o := Options{Rate: 1, Loop: true, Live: true, NotBefore: notBefore, MaxLead: 15 * time.Second}
		if _, err := Run(ctx, &r, lines, o); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Run = %v, want the context's error", err)
		}
		var ts []int64
		dec, err := clickstream.NewDecoder()
		if err != nil {
			t.Fatal(err)
		}
		for i, m := range r.msgs {
			var e clickstream.Event
			if err := dec.DecodeAt(m.Value, &e, r.at[i].UnixMilli()); err != nil {
				t.Fatalf("message %d: %v", i, err)
			}
			ts = append(ts, e.TS)
		}
		if len(ts) != 5 || ts[0] != notBefore.UnixMilli() {
			t.Fatalf("event times %v: want 5, the first at NotBefore %d", ts, notBefore.UnixMilli())
		}
		// the third is clamped to its send time (2s) + MaxLead
		if want := start.Add(17 * time.Second).UnixMilli(); ts[2] != want {
			t.Errorf("third event at %d, want %d (clamped)", ts[2], want)
		}
		if ts[3] < ts[2] {
			t.Errorf("the second pass starts at %d, behind the first pass's latest %d", ts[3], ts[2])
		}
	})
}

func TestRunStops(t *testing.T) {
	lines, _ := genLines(100, 6, 50)
	r := recorder{failAt: 10}
	st, err := Run(t.Context(), &r, lines, Options{})
	if err == nil || !strings.Contains(err.Error(), "boom") || st.Sent != 9 {
		t.Errorf("Run = %+v, %v; want 9 sent and the send error", st, err)
	}
	if r.flushes != 1 {
		t.Errorf("not flushed after an error")
	}
	if _, err := Run(t.Context(), &r, lines, Options{Rate: -1}); err == nil {
		t.Error("negative rate accepted")
	}
	if st, err := Run(t.Context(), &r, [][]byte{nil, {}}, Options{Loop: true}); err != nil || st.Sent != 0 {
		t.Errorf("empty input with Loop: %+v, %v", st, err)
	}
}

// Progress lines come every second with the rate, totals and the producer's
// counts, and a last one at the end.
func TestRunProgress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lines, _ := genLines(400, 7, 50)
		var buf bytes.Buffer
		log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}}))
		var r recorder
		// 73.3/s: no send falls on a tick, so the counts are exact.
		if _, err := Run(t.Context(), &r, lines[:350], Options{Rate: 73.3, Logger: log}); err != nil {
			t.Fatal(err)
		}
		want := strings.Join([]string{
			"level=INFO msg=\"replay progress\" events_per_s=74 sent=74 passes=1 delivered=74 errors=0",
			"level=INFO msg=\"replay progress\" events_per_s=73 sent=147 passes=1 delivered=147 errors=0",
			"level=INFO msg=\"replay progress\" events_per_s=73 sent=220 passes=1 delivered=220 errors=0",
			"level=INFO msg=\"replay progress\" events_per_s=74 sent=294 passes=1 delivered=294 errors=0",
			"level=INFO msg=\"replay done\" events_per_s=73.5 sent=350 passes=1 delivered=350 errors=0",
		}, "\n") + "\n"
		if buf.String() != want {
			t.Errorf("progress:\n%s\nwant:\n%s", buf.String(), want)
		}
	})
}

func TestReadFile(t *testing.T) {
	path := t.TempDir() + "/events.jsonl"
	if err := writeFile(path, "a\r\nb\n\nc"); err != nil {
		t.Fatal(err)
	}
	lines, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprintf("%q", lines); got != `["a" "b" "" "c"]` {
		t.Errorf("lines %s", got)
	}
}
