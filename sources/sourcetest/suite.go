package sourcetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/clickstreamkit/clickstream/sources"
)

// Fixture is a fresh source over the values an Opener was given, and what
// the suite needs to know about it.
type Fixture struct {
	// Source holds the values and has not been read.
	Source sources.Source
	// Want lists the messages Source must deliver, with their topic,
	// partition and offset (Timestamp is not compared). Nil means one
	// partition, named as the source's batches say, whose offsets are the
	// values' indexes.
	Want []sources.Message
	// Committed, when set, returns the offset committed for a partition (-1
	// for none), as a restarted source would see it: the suite checks Commit
	// with it.
	Committed func(ctx context.Context, topic string, partition int32) (int64, error)
	// Reopen, when set, returns a new source over the same input that
	// resumes at the committed offsets. Leave it nil for a source that always
	// starts at the beginning.
	Reopen func(tb testing.TB) sources.Source
	// Partitions, when set, is the partition count every batch and notice
	// must report (Batch.Partitions).
	Partitions int32
	// CaughtUp says that the source reports Batch.CaughtUp: the suite then
	// requires it on the batch that delivers a partition's last message.
	CaughtUp bool
}

// Opener returns a fresh fixture holding values, in order. It registers the
// fixture's cleanup with tb.Cleanup; the suite closes the sources it reads
// itself too. The values belong to the opener.
type Opener func(tb testing.TB, values [][]byte) Fixture

// Timeout bounds each check of Run, so that a source that hangs fails the
// test instead of blocking it.
const Timeout = 2 * time.Minute

// BigValueLen is the length of the longest value the suite uses.
const BigValueLen = 256 << 10

// Values returns the suite's input: n JSON lines of events with, among them,
// duplicates (equal bytes, distinct slices), an empty value and one value of
// BigValueLen bytes. No value holds a '\n' or ends with '\r', so that every
// value survives a round trip through a JSON-lines file.
func Values(n int) [][]byte {
	vs := make([][]byte, n)
	for i := range vs {
		switch {
		case i == 5:
			vs[i] = []byte{}
		case i == n/2:
			const head, tail = `{"event_id":"big","pad":"`, `"}`
			vs[i] = []byte(head + strings.Repeat("x", BigValueLen-len(head)-len(tail)) + tail)
		case i%17 == 16: // a retry: the same bytes as an earlier value
			vs[i] = bytes.Clone(vs[i-7])
		case i%29 == 3: // a carriage return inside a line is data
			vs[i] = fmt.Appendf(nil, "{\"event_id\":\"e%05d\",\r\"user_id\":\"u%d\"}", i, i%13)
		default:
			vs[i] = fmt.Appendf(nil, `{"event_id":"e%05d","event_type":"page_view","user_id":"u%d","page":"/p/%d/é"}`, i, i%13, i)
		}
	}
	return vs
}

func clone(vs [][]byte) [][]byte {
	out := make([][]byte, len(vs))
	for i, v := range vs {
		out[i] = bytes.Clone(v)
	}
	return out
}

// Run checks the contract of sources.Source on fresh fixtures from open:
// every message is delivered once, in offset order within its partition, in
// non-empty batches of one partition or in notices (Revoked, or CaughtUp
// without messages); no message of a partition follows a CaughtUp batch of
// it before a Revoked notice; the partition count, when reported, holds the
// batch's partition; the generation never goes back; a finite source marks
// the end of each partition it covers once (End, on its last batch or in a
// notice), with nothing of the partition after it, then returns
// ErrEndOfInput, again and again; Read with an ended context returns
// ctx.Err() and loses nothing; Commit is idempotent and never moves back; a
// reopened source resumes at the committed offsets; Close may be repeated and
// later calls return ErrClosed; and the batches belong to the caller:
// mutating or appending to a returned value changes no other value, and the
// source never changes a value it returned.
func Run(t *testing.T, open Opener) {
	t.Run("ReadAll", func(t *testing.T) { testReadAll(t, open) })
	t.Run("Empty", func(t *testing.T) { testEmpty(t, open) })
	t.Run("EndedContext", func(t *testing.T) { testEndedContext(t, open) })
	t.Run("Commit", func(t *testing.T) { testCommit(t, open) })
	t.Run("Close", func(t *testing.T) { testClose(t, open) })
	t.Run("CloseBeforeRead", func(t *testing.T) { testCloseBeforeRead(t, open) })
}

func timeout(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), Timeout)
	t.Cleanup(cancel)
	return ctx
}

type part struct {
	topic     string
	partition int32
}

func (p part) String() string { return fmt.Sprintf("%s/%d", p.topic, p.partition) }

// reading is what readAll got.
type reading struct {
	got      map[part][]sources.Message // copies
	order    []part                     // partitions in order of first delivery
	revoked  []part
	kept     []sources.Message // values handed out and left untouched, with their copies in got
	caughtUp map[part]bool     // whether the partition's latest batch with messages was CaughtUp
	ended    map[part]bool     // partitions whose End came
}

// readAll reads src until ErrEndOfInput, checking the batches' in-band
// fields against partitions (the fixture's count, 0 for any). With mutate,
// it scribbles over every other batch it gets (values, appends past them,
// the slice) and keeps the others as they came, to check later that the
// source left them alone.
func readAll(t *testing.T, ctx context.Context, src sources.Source, partitions int32, mutate bool) reading {
	t.Helper()
	r := reading{got: map[part][]sources.Message{}, caughtUp: map[part]bool{}, ended: map[part]bool{}}
	caught := map[part]bool{} // partitions caught up since their last Revoked notice
	var generation int64
	for n := 0; ; n++ {
		b, err := src.Read(ctx)
		if errors.Is(err, sources.ErrEndOfInput) {
			return r
		}
		if err != nil {
			t.Fatalf("Read after %d batches: %v", n, err)
		}
		k := part{b.Topic, b.Partition}
		if b.Revoked {
			if len(b.Messages) > 0 || b.Release == nil || b.CaughtUp {
				t.Fatalf("Read: revoked notice for %v with %d messages, Release set %v, CaughtUp %v",
					k, len(b.Messages), b.Release != nil, b.CaughtUp)
			}
			r.revoked = append(r.revoked, k)
			delete(caught, k)
			b.Release()
			continue
		}
		switch {
		case partitions != 0 && b.Partitions != partitions:
			t.Fatalf("Read: batch of %v says the topic has %d partitions, want %d", k, b.Partitions, partitions)
		case b.Partitions < 0 || b.Partitions > 0 && (b.Partition < 0 || b.Partition >= b.Partitions):
			t.Fatalf("Read: batch of %v says the topic has %d partitions", k, b.Partitions)
		case b.Generation < generation:
			t.Fatalf("Read: batch of %v in generation %d after one in generation %d: the generation went back", k, b.Generation, generation)
		}
		generation = b.Generation
		if r.ended[k] {
			t.Fatalf("Read: a batch of %v (%d messages, End %v) after its End", k, len(b.Messages), b.End)
		}
		r.ended[k] = b.End
		if len(b.Messages) == 0 {
			if !b.CaughtUp && !b.End {
				t.Fatalf("Read: empty batch for %v, neither a Revoked, a CaughtUp nor an End notice", k)
			}
			caught[k] = caught[k] || b.CaughtUp
			continue
		}
		if caught[k] {
			t.Fatalf("Read: %v delivered offset %d after saying it was caught up", k, b.Messages[0].Offset)
		}
		caught[k] = b.CaughtUp
		r.caughtUp[k] = b.CaughtUp
		if _, ok := r.got[k]; !ok {
			r.order = append(r.order, k)
		}
		for _, m := range b.Messages {
			if m.Topic != b.Topic || m.Partition != b.Partition {
				t.Fatalf("Read: message of %s/%d in a batch of %v", m.Topic, m.Partition, k)
			}
			c := m
			c.Value = bytes.Clone(m.Value)
			r.got[k] = append(r.got[k], c)
		}
		if !mutate {
			continue
		}
		if n%2 == 1 {
			r.kept = append(r.kept, b.Messages...)
			continue
		}
		for i := range b.Messages {
			v := b.Messages[i].Value
			for j := range v {
				v[j] ^= 0xFF
			}
			_ = append(v, "appended by the reader"...)
			b.Messages[i] = sources.Message{Value: []byte("overwritten")}
		}
		_ = append(b.Messages, sources.Message{Value: []byte("appended message")})
	}
}

// wantByPart groups want by partition; with want nil it places values at
// offsets 0..n-1 of the single partition got holds.
func wantByPart(t *testing.T, want []sources.Message, values [][]byte, got map[part][]sources.Message) (map[part][]sources.Message, []part) {
	t.Helper()
	out := map[part][]sources.Message{}
	var order []part
	if want == nil {
		if len(values) == 0 {
			return out, nil
		}
		if len(got) != 1 {
			t.Fatalf("got messages in %d partitions, want all %d values in one", len(got), len(values))
		}
		var k part
		for k = range got {
		}
		for i, v := range values {
			out[k] = append(out[k], sources.Message{Topic: k.topic, Partition: k.partition, Offset: int64(i), Value: v})
		}
		return out, []part{k}
	}
	for _, m := range want {
		k := part{m.Topic, m.Partition}
		if _, ok := out[k]; !ok {
			order = append(order, k)
		}
		out[k] = append(out[k], m)
	}
	return out, order
}

// sameMessages checks that got holds exactly want, per partition, in order.
func sameMessages(t *testing.T, want, got map[part][]sources.Message) {
	t.Helper()
	for k, ms := range got {
		for i := 1; i < len(ms); i++ {
			if ms[i].Offset <= ms[i-1].Offset {
				t.Errorf("%v: offset %d delivered after %d: offsets must increase", k, ms[i].Offset, ms[i-1].Offset)
				break
			}
		}
		if _, ok := want[k]; !ok {
			t.Errorf("%v: %d messages delivered from a partition that holds none", k, len(ms))
		}
	}
	for k, ws := range want {
		gs := got[k]
		for i := range max(len(ws), len(gs)) {
			switch {
			case i >= len(gs):
				t.Errorf("%v: %d of %d messages delivered; first missing: offset %d", k, len(gs), len(ws), ws[i].Offset)
			case i >= len(ws):
				t.Errorf("%v: %d messages delivered, want %d; first extra: offset %d %s", k, len(gs), len(ws), gs[i].Offset, show(gs[i].Value))
			case gs[i].Offset > ws[i].Offset:
				t.Errorf("%v: offset %d not delivered (delivered next: %d)", k, ws[i].Offset, gs[i].Offset)
			case gs[i].Offset != ws[i].Offset || !bytes.Equal(gs[i].Value, ws[i].Value):
				t.Errorf("%v: message %d is offset %d %s, want offset %d %s", k, i, gs[i].Offset, show(gs[i].Value), ws[i].Offset, show(ws[i].Value))
			default:
				continue
			}
			break
		}
	}
}

func show(v []byte) string {
	if len(v) > 40 {
		return fmt.Sprintf("%q... (%d bytes)", v[:40], len(v))
	}
	return fmt.Sprintf("%q", v)
}

func wantEnd(t *testing.T, ctx context.Context, src sources.Source) {
	t.Helper()
	for range 2 {
		if b, err := src.Read(ctx); !errors.Is(err, sources.ErrEndOfInput) {
			t.Fatalf("Read after the end = %d messages, %v; want ErrEndOfInput", len(b.Messages), err)
		}
	}
}

func closeSource(t *testing.T, ctx context.Context, src sources.Source) {
	t.Helper()
	if err := src.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func testReadAll(t *testing.T, open Opener) {
	ctx := timeout(t)
	values := Values(300)
	fx := open(t, clone(values))
	r := readAll(t, ctx, fx.Source, fx.Partitions, true)
	want, _ := wantByPart(t, fx.Want, values, r.got)
	sameMessages(t, want, r.got)
	checkEnds(t, fx, r)
	for k := range want {
		if !r.ended[k] {
			t.Errorf("%v: no End before ErrEndOfInput", k)
		}
	}
	if fx.CaughtUp {
		for k := range want {
			if !r.caughtUp[k] {
				t.Errorf("%v: the batch with the partition's last message is not CaughtUp", k)
			}
		}
	}
	wantEnd(t, ctx, fx.Source)
	// the values left alone are still what they were when delivered
	copies := map[part]map[int64][]byte{}
	for k, ms := range r.got {
		copies[k] = map[int64][]byte{}
		for _, m := range ms {
			copies[k][m.Offset] = m.Value
		}
	}
	for _, m := range r.kept {
		if c := copies[part{m.Topic, m.Partition}][m.Offset]; !bytes.Equal(m.Value, c) {
			t.Errorf("%s/%d offset %d: the source changed a value it had returned: now %s, was %s",
				m.Topic, m.Partition, m.Offset, show(m.Value), show(c))
			break
		}
	}
	if len(r.revoked) > 0 {
		t.Logf("revoked while reading: %v", r.revoked)
	}
	closeSource(t, ctx, fx.Source)
}

// checkEnds checks that every partition the source covers ended.
func checkEnds(t *testing.T, fx Fixture, r reading) {
	t.Helper()
	n := 0
	for _, e := range r.ended {
		if e {
			n++
		}
	}
	switch {
	case fx.Partitions > 0 && n != int(fx.Partitions):
		t.Errorf("%d partitions ended before ErrEndOfInput, want %d: %v", n, fx.Partitions, r.ended)
	case n == 0:
		t.Errorf("no partition ended before ErrEndOfInput")
	}
}

// testEmpty checks that an empty input still ends each partition it covers:
// a reader restarted after a crash closes its restored state then.
func testEmpty(t *testing.T, open Opener) {
	ctx := timeout(t)
	fx := open(t, nil)
	r := readAll(t, ctx, fx.Source, fx.Partitions, false)
	if len(r.got) > 0 {
		t.Errorf("an empty input delivered %v", r.got)
	}
	checkEnds(t, fx, r)
	wantEnd(t, ctx, fx.Source)
	closeSource(t, ctx, fx.Source)
}

func testEndedContext(t *testing.T, open Opener) {
	ctx := timeout(t)
	values := Values(40)
	fx := open(t, clone(values))
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := fx.Source.Read(cancelled); !errors.Is(err, context.Canceled) {
		t.Errorf("Read(cancelled context) = %v, want context.Canceled", err)
	}
	expired, cancel := context.WithDeadline(ctx, time.Unix(1, 0))
	defer cancel()
	if _, err := fx.Source.Read(expired); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Read(expired context) = %v, want context.DeadlineExceeded", err)
	}
	r := readAll(t, ctx, fx.Source, fx.Partitions, false) // the failed reads lost nothing
	want, _ := wantByPart(t, fx.Want, values, r.got)
	sameMessages(t, want, r.got)
	closeSource(t, ctx, fx.Source)
}

func testCommit(t *testing.T, open Opener) {
	ctx := timeout(t)
	values := Values(120)
	fx := open(t, clone(values))
	src := fx.Source
	r := readAll(t, ctx, src, fx.Partitions, false)
	want, order := wantByPart(t, fx.Want, values, r.got)
	sameMessages(t, want, r.got)
	if t.Failed() {
		return
	}
	check := func(k part, next int64, what string) {
		t.Helper()
		if fx.Committed == nil {
			return
		}
		got, err := fx.Committed(ctx, k.topic, k.partition)
		if err != nil {
			t.Fatalf("%v: committed offset: %v", k, err)
		}
		if got != next {
			t.Errorf("%v: committed offset after %s = %d, want %d", k, what, got, next)
		}
	}
	commit := func(src sources.Source, k part, next int64) {
		t.Helper()
		if err := src.Commit(ctx, k.topic, k.partition, next); err != nil {
			t.Fatalf("Commit(%v, %d): %v", k, next, err)
		}
	}
	mids := map[part]int64{}
	for _, k := range order {
		ms := want[k]
		mid := ms[len(ms)/2].Offset
		mids[k] = mid
		commit(src, k, mid)
		check(k, mid, "a commit")
		commit(src, k, mid)
		check(k, mid, "the same commit again")
		commit(src, k, ms[0].Offset)
		check(k, mid, "a commit of a lower offset")
	}
	if fx.Reopen == nil {
		for _, k := range order {
			ms := want[k]
			commit(src, k, ms[len(ms)-1].Offset+1)
			check(k, ms[len(ms)-1].Offset+1, "a commit of the end")
		}
		closeSource(t, ctx, src)
		return
	}
	closeSource(t, ctx, src)
	again := fx.Reopen(t)
	r = readAll(t, ctx, again, fx.Partitions, false)
	rest := map[part][]sources.Message{}
	for k, ms := range want {
		i := slices.IndexFunc(ms, func(m sources.Message) bool { return m.Offset >= mids[k] })
		rest[k] = ms[i:]
	}
	sameMessages(t, rest, r.got)
	for _, k := range order {
		ms := want[k]
		commit(again, k, ms[len(ms)-1].Offset+1)
		check(k, ms[len(ms)-1].Offset+1, "a commit of the end by the reopened source")
	}
	closeSource(t, ctx, again)
}

func testClose(t *testing.T, open Opener) {
	ctx := timeout(t)
	fx := open(t, clone(Values(30)))
	b, err := fx.Source.Read(ctx)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	closeAndCheck(t, ctx, fx.Source, b.Topic, b.Partition)
}

func testCloseBeforeRead(t *testing.T, open Opener) {
	ctx := timeout(t)
	fx := open(t, clone(Values(30)))
	topic, partition := "", int32(0)
	if len(fx.Want) > 0 {
		topic, partition = fx.Want[0].Topic, fx.Want[0].Partition
	}
	closeAndCheck(t, ctx, fx.Source, topic, partition)
}

func closeAndCheck(t *testing.T, ctx context.Context, src sources.Source, topic string, partition int32) {
	t.Helper()
	for i := range 2 {
		if err := src.Close(ctx); err != nil {
			t.Errorf("Close #%d: %v", i+1, err)
		}
	}
	if b, err := src.Read(ctx); !errors.Is(err, sources.ErrClosed) {
		t.Errorf("Read after Close = %d messages, %v; want ErrClosed", len(b.Messages), err)
	}
	if err := src.Commit(ctx, topic, partition, 1); !errors.Is(err, sources.ErrClosed) {
		t.Errorf("Commit after Close = %v, want ErrClosed", err)
	}
}
