package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/clickstreamkit/clickstream/sources"
	"github.com/clickstreamkit/clickstream/sources/kafka"
	"github.com/clickstreamkit/clickstream/sources/sourcetest"
)

func TestNewValidates(t *testing.T) {
	tests := []struct {
		name    string
		brokers []string
		topic   string
		group   string
		opts    []kafka.Option
	}{
		{"no brokers", nil, "t", "g", nil},
		{"empty broker", []string{""}, "t", "g", nil},
		{"no topic", []string{"h:1"}, "", "g", nil},
		{"no group", []string{"h:1"}, "t", "", nil},
		{"batch 0", []string{"h:1"}, "t", "g", []kafka.Option{kafka.WithBatch(0)}},
		{"negative wait", []string{"h:1"}, "t", "g", []kafka.Option{kafka.WithMaxWait(-time.Second)}},
		{"bad start", []string{"h:1"}, "t", "g", []kafka.Option{kafka.WithStartAt(7)}},
	}
	for _, tt := range tests {
		if _, err := kafka.New(tt.brokers, tt.topic, tt.group, tt.opts...); err == nil {
			t.Errorf("%s: New succeeded", tt.name)
		}
	}
	// New connects to nothing: an unreachable broker is fine until Read.
	src, err := kafka.New([]string{"127.0.0.1:1"}, "t", "g")
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Read(t.Context()); !errors.Is(err, sources.ErrClosed) {
		t.Errorf("Read after Close = %v", err)
	}
}

// The conformance suite, in bounded mode, on fresh 4-partition topics.
func TestConformance(t *testing.T) {
	bs := brokers(t)
	sourcetest.Run(t, func(tb testing.TB, values [][]byte) sourcetest.Fixture {
		topic := createTopic(tb, bs, 4)
		want := produce(tb, bs, topic, values)
		group := newGroup(tb, bs)
		admin := newAdmin(tb, bs)
		log := testLogger(tb)
		open := func(tb testing.TB) sources.Source {
			src, err := kafka.New(bs, topic, group, kafka.WithBounded(), kafka.WithConfig(testConfig()),
				kafka.WithLogger(log), kafka.WithBatch(37), kafka.WithMaxWait(10*time.Millisecond))
			if err != nil {
				tb.Fatal(err)
			}
			closeAtEnd(tb, src)
			return src
		}
		return sourcetest.Fixture{
			Source: open(tb),
			Want:   want,
			Committed: func(ctx context.Context, topic string, partition int32) (int64, error) {
				return committedOffset(ctx, admin, group, topic, partition)
			},
			Reopen:     open,
			Partitions: 4,
			CaughtUp:   true,
		}
	})
}

// delivery is one message a member got.
type delivery struct {
	member string
	offset int64
}

// member reads a source in a goroutine, as a pipeline would: it processes
// batches (CaughtUp notices hold nothing to process), and on a Revoked notice
// it commits what it decided to commit (hold back messages below its last
// delivery, as if they were still in a window), then releases.
type member struct {
	name     string
	src      *kafka.Source
	holdBack int64

	mu       sync.Mutex
	got      map[int32][]int64 // offsets delivered, by partition
	next     map[int32]int64   // next offset after the last delivered
	revoked  map[int32]int     // notices
	commits  map[int32]int64   // committed at revocation
	errs     []error
	finished chan struct{}
}

func startMember(ctx context.Context, name string, src *kafka.Source, holdBack int64) *member {
	m := &member{name: name, src: src, holdBack: holdBack, got: map[int32][]int64{}, next: map[int32]int64{},
		revoked: map[int32]int{}, commits: map[int32]int64{}, finished: make(chan struct{})}
	go func() {
		defer close(m.finished)
		for {
			b, err := src.Read(ctx)
			if err != nil {
				if ctx.Err() == nil {
					m.mu.Lock()
					m.errs = append(m.errs, fmt.Errorf("%s: Read: %w", name, err))
					m.mu.Unlock()
				}
				return
			}
			m.mu.Lock()
			if b.Revoked {
				m.revoked[b.Partition]++
				at := max(m.next[b.Partition]-m.holdBack, 0)
				if len(m.got[b.Partition]) > 0 {
					at = max(at, m.got[b.Partition][0])
				}
				m.commits[b.Partition] = at
				m.mu.Unlock()
				if err := src.Commit(ctx, b.Topic, b.Partition, at); err != nil {
					m.mu.Lock()
					m.errs = append(m.errs, fmt.Errorf("%s: Commit(%d, %d) on revocation: %w", name, b.Partition, at, err))
					m.mu.Unlock()
				}
				b.Release()
				continue
			}
			if len(b.Messages) == 0 {
				m.mu.Unlock()
				continue
			}
			for _, msg := range b.Messages {
				m.got[b.Partition] = append(m.got[b.Partition], msg.Offset)
			}
			m.next[b.Partition] = b.Messages[len(b.Messages)-1].Offset + 1
			m.mu.Unlock()
		}
	}()
	return m
}

func (m *member) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, os := range m.got {
		n += len(os)
	}
	return n
}

// waitFor polls cond until it holds or ctx ends.
func waitFor(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("gave up waiting for %s: %v", what, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// A second member joins: the first gets Revoked notices, commits (holding
// back a few messages) and releases; then each partition is read again, by
// whichever member gets it, from exactly the committed offset, and nothing
// is lost.
func TestRebalance(t *testing.T) {
	bs := brokers(t)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	topic := createTopic(t, bs, 4)
	group := newGroup(t, bs)
	first := produce(t, bs, topic, sourcetest.Values(200))
	newSource := func(name string) *kafka.Source {
		src, err := kafka.New(bs, topic, group, kafka.WithConfig(testConfig()),
			kafka.WithLogger(testLogger(t).With("member", name)), kafka.WithBatch(16))
		if err != nil {
			t.Fatal(err)
		}
		closeAtEnd(t, src)
		return src
	}
	readCtx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	a := startMember(readCtx, "a", newSource("a"), 3)
	waitFor(t, ctx, "a to read the first 200 messages", func() bool { return a.count() == len(first) })

	b := startMember(readCtx, "b", newSource("b"), 0)
	waitFor(t, ctx, "b to get partitions", func() bool { return len(b.src.Lag()) > 0 })
	a.mu.Lock()
	revokedA := len(a.revoked)
	a.mu.Unlock()
	if revokedA == 0 {
		t.Fatal("a got no Revoked notice when b joined")
	}

	second := produceFrom(t, bs, topic, 200, sourcetest.Values(200))
	all := append(append([]sources.Message{}, first...), second...)
	end := map[int32]int64{}
	for _, m := range all {
		end[m.Partition] = max(end[m.Partition], m.Offset+1)
	}
	// every partition read to its end by its current owner
	waitFor(t, ctx, "every partition to be read to its end", func() bool {
		for p, e := range end {
			if a.reached(p) < e && b.reached(p) < e {
				return false
			}
		}
		return true
	})

	stopReading()
	<-a.finished
	<-b.finished
	for _, err := range append(a.errs, b.errs...) {
		t.Error(err)
	}
	if len(b.got) == 0 {
		t.Fatal("b read nothing")
	}
	for p := range end {
		// before the rebalance a read the partition from 0; a committed
		// commits[p] and released it; after, one member reads it from
		// there.
		firstEnd := int64(0)
		for _, m := range first {
			if m.Partition == p {
				firstEnd = max(firstEnd, m.Offset+1)
			}
		}
		at, ok := a.commits[p]
		if !ok {
			t.Errorf("partition %d: a got no Revoked notice", p)
			continue
		}
		before, after := a.got[p], b.got[p]
		owner := "b"
		if len(after) == 0 { // a got it back
			owner = "a"
			i := 0
			for i < len(before) && (i == 0 || before[i] > before[i-1]) {
				i++
			}
			before, after = before[:i], before[i:]
		}
		if want := offsets(0, firstEnd); !equal(before, want) {
			t.Errorf("partition %d: a read %v before the rebalance, want %v", p, span(before), span(want))
		}
		if want := offsets(at, end[p]); !equal(after, want) {
			t.Errorf("partition %d: %s read %v after a committed %d, want %v", p, owner, span(after), at, span(want))
		}
	}
}

func (m *member) reached(p int32) int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.next[p]
}

func offsets(from, to int64) []int64 {
	var out []int64
	for o := from; o < to; o++ {
		out = append(out, o)
	}
	return out
}

func equal(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// span summarizes a list of offsets.
func span(os []int64) any {
	if len(os) <= 6 {
		return os
	}
	return struct {
		N           int
		First, Last int64
	}{len(os), os[0], os[len(os)-1]}
}

func TestLag(t *testing.T) {
	bs := brokers(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	topic := createTopic(t, bs, 4)
	want := produce(t, bs, topic, sourcetest.Values(100))
	end := map[int32]int64{}
	for _, m := range want {
		end[m.Partition] = max(end[m.Partition], m.Offset+1)
	}
	src, err := kafka.New(bs, topic, newGroup(t, bs), kafka.WithConfig(testConfig()),
		kafka.WithLogger(testLogger(t)), kafka.WithBatch(5), kafka.WithMaxWait(0))
	if err != nil {
		t.Fatal(err)
	}
	closeAtEnd(t, src)
	if len(src.Lag()) != 0 {
		t.Errorf("Lag before the first Read = %v, want none", src.Lag())
	}
	var b sources.Batch
	for len(b.Messages) == 0 { // past CaughtUp notices of empty partitions
		if b, err = src.Read(ctx); err != nil {
			t.Fatal(err)
		}
	}
	p, next := b.Partition, b.Messages[len(b.Messages)-1].Offset+1
	waitFor(t, ctx, "the lag of the partition read", func() bool { return src.Lag()[p] == end[p]-next })
	// read everything: no lag left anywhere
	got := len(b.Messages)
	for got < len(want) {
		b, err := src.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got += len(b.Messages)
	}
	waitFor(t, ctx, "no lag", func() bool {
		lag := src.Lag()
		for q := range end {
			if l, ok := lag[q]; !ok || l != 0 {
				return false
			}
		}
		return true
	})
}

// Close ends a Read that waits for messages.
func TestCloseUnblocksRead(t *testing.T) {
	bs := brokers(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	topic := createTopic(t, bs, 1)
	src, err := kafka.New(bs, topic, newGroup(t, bs), kafka.WithConfig(testConfig()), kafka.WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	// the empty partition's notice; then nothing to read
	if b, err := src.Read(ctx); err != nil || !b.CaughtUp || len(b.Messages) != 0 {
		t.Fatalf("first Read = %+v, %v; want the CaughtUp notice of the empty partition", b, err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := src.Read(ctx)
		done <- err
	}()
	if err := src.Close(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, sources.ErrClosed) {
			t.Errorf("Read blocked during Close = %v, want ErrClosed", err)
		}
	case <-ctx.Done():
		t.Fatal("Read still blocked after Close")
	}
	if err := src.Close(ctx); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// A Commit for a partition this member does not hold does nothing.
func TestCommitNotHeld(t *testing.T) {
	bs := brokers(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	topic := createTopic(t, bs, 1)
	produce(t, bs, topic, sourcetest.Values(3))
	group := newGroup(t, bs)
	src, err := kafka.New(bs, topic, group, kafka.WithConfig(testConfig()), kafka.WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	closeAtEnd(t, src)
	if err := src.Commit(ctx, topic, 0, 2); err != nil { // before the first Read
		t.Errorf("Commit before Read = %v, want nil", err)
	}
	if _, err := src.Read(ctx); err != nil {
		t.Fatal(err)
	}
	if err := src.Commit(ctx, topic, 7, 2); err != nil { // no such partition
		t.Errorf("Commit of a partition not held = %v, want nil", err)
	}
	if err := src.Commit(ctx, "other", 0, 2); err == nil {
		t.Errorf("Commit of another topic succeeded")
	}
	admin := newAdmin(t, bs)
	if got, err := committedOffset(ctx, admin, group, topic, 0); err != nil || got != -1 {
		t.Errorf("committed = %d, %v; want nothing committed", got, err)
	}
	if err := src.Commit(ctx, topic, 0, 2); err != nil {
		t.Fatal(err)
	}
	if got, err := committedOffset(ctx, admin, group, topic, 0); err != nil || got != 2 {
		t.Errorf("committed = %d, %v; want 2", got, err)
	}
}

// Newest skips what was there before the partition was claimed.
func TestStartAtNewest(t *testing.T) {
	bs := brokers(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	topic := createTopic(t, bs, 1)
	produce(t, bs, topic, sourcetest.Values(10))
	src, err := kafka.New(bs, topic, newGroup(t, bs), kafka.WithConfig(testConfig()),
		kafka.WithStartAt(kafka.Newest), kafka.WithBounded(), kafka.WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	closeAtEnd(t, src)
	if b, err := src.Read(ctx); err != nil || !b.End || len(b.Messages) > 0 {
		t.Errorf("bounded Read from newest = %+v, %v; want the End notice", b, err)
	}
	if b, err := src.Read(ctx); !errors.Is(err, sources.ErrEndOfInput) {
		t.Errorf("bounded Read after the End notice = %d messages, %v; want ErrEndOfInput", len(b.Messages), err)
	}
}

// A member that holds a revoked partition past the rebalance timeout is
// dropped from the group; its commit then does nothing and returns nil, so
// that the reader releases instead of retrying forever, and the member joins
// again.
func TestCommitAfterDroppedFromGroup(t *testing.T) {
	bs := brokers(t)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	topic := createTopic(t, bs, 2)
	want := produce(t, bs, topic, sourcetest.Values(20))
	group := newGroup(t, bs)
	newSource := func(name string) *kafka.Source {
		cfg := testConfig()
		cfg.ClientID = name
		cfg.Consumer.Group.Rebalance.Timeout = 2 * time.Second
		src, err := kafka.New(bs, topic, group, kafka.WithConfig(cfg), kafka.WithLogger(testLogger(t).With("member", name)))
		if err != nil {
			t.Fatal(err)
		}
		closeAtEnd(t, src)
		return src
	}
	a := newSource("member-a")
	got := 0
	for got < len(want) {
		b, err := a.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got += len(b.Messages)
	}
	b := newSource("member-b")
	go func() { // b joins; its batches are not the point
		for {
			batch, err := b.Read(ctx)
			if err != nil {
				return
			}
			if batch.Revoked {
				batch.Release()
			}
		}
	}()
	notice, err := a.Read(ctx)
	if err != nil || !notice.Revoked {
		t.Fatalf("a: Read = %+v, %v; want a Revoked notice", notice, err)
	}
	admin := newAdmin(t, bs)
	waitFor(t, ctx, "the group to drop a", func() bool {
		ds, err := admin.DescribeConsumerGroups([]string{group})
		if err != nil || len(ds) != 1 {
			return false
		}
		for _, m := range ds[0].Members {
			if m.ClientId == "member-a" {
				return false
			}
		}
		return len(ds[0].Members) > 0
	})
	if err := a.Commit(ctx, topic, notice.Partition, 5); err != nil {
		t.Errorf("Commit by a dropped member = %v, want nil", err)
	}
	if off, err := committedOffset(ctx, admin, group, topic, notice.Partition); err != nil || off != -1 {
		t.Errorf("committed = %d, %v; want nothing committed", off, err)
	}
	notice.Release()
	// a joins again and gets partitions back: it reads, from offset 0
	// since nothing was committed
	for {
		batch, err := a.Read(ctx)
		if err != nil {
			t.Fatalf("a: Read after rejoining: %v", err)
		}
		if batch.Revoked {
			batch.Release()
			continue
		}
		if batch.Messages[0].Offset != 0 {
			t.Errorf("a read %d/%d first after rejoining, want offset 0", batch.Partition, batch.Messages[0].Offset)
		}
		break
	}
}
