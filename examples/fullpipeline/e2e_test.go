package main

// End-to-end tests of SEMANTICS §10 (exactly once): the fullpipeline binary,
// run as a subprocess on real Kafka and a MongoDB-wire server, must leave in
// MongoDB, Parquet and the dead-letter topic exactly what an in-process
// replay of each partition produces, whatever crashes, rebalances and
// database outages happen in between.
//
//	bash scripts/services.sh up
//	cd examples && KAFKA_BROKERS=127.0.0.1:19092 MONGODB_URI=mongodb://127.0.0.1:27018/ \
//		go test -count=1 -run 'TestEndToEnd|TestCrash|TestRebalance|TestMongoOutage' -v ./fullpipeline/

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/clickstreamkit/clickstream/examples/internal/embedmongo"
	"github.com/clickstreamkit/clickstream/internal/gen"
)

// TestEndToEndEqualsReplay: one uninterrupted bounded run equals the
// in-process replay of each partition, in every output.
func TestEndToEndEqualsReplay(t *testing.T) {
	env := e2eSetup(t, true)
	e2eBinary(t)
	msgs := gen.Generate(gen.Default(20_000, 11))
	run := newE2ERun(t, env, 4)
	mc := e2eMongo(t, env.mongoURI)
	run.dropDatabaseAtEnd(mc)
	recs := run.produce(msgs)
	exp := e2eReplay(t, recs)
	t.Logf("produced %d messages; replay: %s", len(recs), e2eSummary(exp))

	p := e2eStart(t, "fullpipeline", run.args(true, env.mongoURI)...)
	p.mustSucceed(3 * time.Minute)
	t.Logf("bounded run took %v", time.Since(p.started).Round(time.Millisecond))
	run.check(exp, mc, e2eCheckOptions{})
}

// TestCrashRecovery: a bounded run SIGKILLed at random points and restarted
// with the same group, checkpoints, Parquet directory and database, until a
// run exits 0, leaves the results of the replay: nothing lost, nothing twice.
func TestCrashRecovery(t *testing.T) {
	env := e2eSetup(t, true)
	e2eBinary(t)
	msgs := gen.Generate(gen.Default(150_000, 22)) // long enough to be killed 6 times
	// Short updates: many writes, checkpoints and commits to be killed in.
	run := newE2ERun(t, env, 4, "update_interval: 50ms")
	mc := e2eMongo(t, env.mongoURI)
	run.dropDatabaseAtEnd(mc)
	recs := run.produce(msgs)
	exp := e2eReplay(t, recs)
	t.Logf("produced %d messages; replay: %s", len(recs), e2eSummary(exp))
	ends := run.ends()

	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	t.Logf("kill points from seed %d", seed)
	const kills = 6
	var points []string
	deadline := time.Now().Add(4 * time.Minute)
	for attempt := 1; ; attempt++ {
		require.True(t, time.Now().Before(deadline), "no run completed before the deadline (%d attempts)", attempt-1)
		before, _ := run.committed()
		p := e2eStart(t, fmt.Sprintf("run %d", attempt), run.args(true, env.mongoURI)...)
		if len(points) >= kills {
			p.mustSucceed(3 * time.Minute)
			t.Logf("run %d completed in %v (restored %d checkpoints)", attempt,
				time.Since(p.started).Round(time.Millisecond), p.countLines("restored checkpoint"))
			break
		}
		// A SIGKILLed member stays in the group until its session times out
		// (10 s): the next run gets the partitions only then. The kill point
		// is timed from the moment the run starts working (it holds every
		// partition, or restores checkpoints at the end of the input), so
		// that it lands in the processing and writing, not in the wait; and
		// each run gets a few seconds at most, so that the work (some 15 s
		// with FerretDB) spans several runs and the points fall in all its
		// phases: reading, running updates, final windows and sessions,
		// checkpoints, commits.
		working := p.waitOutput(2*time.Minute, `claims="[0 1 2 3]"`, "restored checkpoint")
		delay := 300*time.Millisecond + time.Duration(rng.Int64N(int64(2200*time.Millisecond)))
		if working {
			select {
			case <-p.done:
			case <-time.After(delay):
			}
		}
		if p.exited() {
			code := p.wait(0)
			require.Zero(t, code, "run %d failed: %v", attempt, p.waitErr)
			t.Logf("run %d completed in %v, before its kill", attempt, time.Since(p.started).Round(time.Millisecond))
			break
		}
		p.signal(syscall.SIGKILL)
		if code := p.wait(30 * time.Second); code == 0 { // the kill came too late
			t.Logf("run %d completed in %v, as it was killed", attempt, time.Since(p.started).Round(time.Millisecond))
			break
		}
		after, _ := run.committed()
		finals, sessions := run.countFinals(mc)
		points = append(points, fmt.Sprintf("run %d killed %v after it started working (%v after its start): committed %d -> %d of %d; restored %d checkpoints; in MongoDB then %d final windows, %d sessions",
			attempt, delay.Round(time.Millisecond), time.Since(p.started).Round(time.Millisecond),
			e2eTotal(before), e2eTotal(after), e2eTotal(ends), p.countLines("restored checkpoint"), finals, sessions))
		t.Log(points[len(points)-1])
	}
	t.Logf("%d kills:\n%s", len(points), strings.Join(points, "\n"))
	require.GreaterOrEqual(t, len(points), 5, "the data must take long enough to process for 5 kills")
	run.check(exp, mc, e2eCheckOptions{
		// The dead-letter sink is at least once: a kill after a batch's dead
		// letters were produced and before its checkpoint was saved makes the
		// next run produce them again. Kafka offers no upsert; consumers
		// dedupe by the record key (source topic/partition/offset).
		dedupeDeadLetters: true,
	})
}

func e2eTotal(m map[int32]int64) int64 {
	var n int64
	for _, v := range m {
		n += max(v, 0)
	}
	return n
}

// TestRebalance: two unbounded instances share a group; one stops
// (SIGTERM), the other takes over every partition, and a bounded instance
// finally closes every window and session. The shared checkpoint and
// Parquet directories and database must end as the replay.
func TestRebalance(t *testing.T) {
	env := e2eSetup(t, true)
	e2eBinary(t)
	msgs := gen.Generate(gen.Default(20_000, 33))
	run := newE2ERun(t, env, 4, "update_interval: 200ms")
	mc := e2eMongo(t, env.mongoURI)
	run.dropDatabaseAtEnd(mc)
	n := len(msgs)
	recs := run.produce(msgs[:n/4])

	a := e2eStart(t, "instance A", run.args(false, env.mongoURI)...)
	b := e2eStart(t, "instance B", run.args(false, env.mongoURI)...)
	var members map[string][]int32
	e2eWaitFor(t, 90*time.Second, 200*time.Millisecond, "both instances to hold partitions", func() bool {
		require.False(t, a.exited() || b.exited(), "an instance exited")
		state, m, err := run.groupAssignment()
		members = m
		if err != nil || state != "Stable" || len(m) != 2 {
			return false
		}
		for _, ps := range m {
			if len(ps) == 0 {
				return false
			}
		}
		return true
	})
	t.Logf("two members: %v", members)
	// The rest of the first half arrives while both hold partitions.
	recs = append(recs, run.produce(msgs[n/4:n/2])...)
	run.waitCommittedAtEnd(run.ends(), 2*time.Minute, a, b)
	t.Log("first half committed; stopping instance B")

	b.signal(syscall.SIGTERM)
	b.mustSucceed(time.Minute)
	e2eWaitFor(t, 90*time.Second, 200*time.Millisecond, "instance A to hold every partition", func() bool {
		require.False(t, a.exited(), "instance A exited")
		state, m, err := run.groupAssignment()
		members = m
		if err != nil || state != "Stable" || len(m) != 1 {
			return false
		}
		for _, ps := range m {
			return slices.Equal(ps, []int32{0, 1, 2, 3})
		}
		return false
	})
	t.Logf("one member: %v", members)
	recs = append(recs, run.produce(msgs[n/2:])...)
	run.waitCommittedAtEnd(run.ends(), 2*time.Minute, a)
	a.signal(syscall.SIGTERM)
	a.mustSucceed(time.Minute)
	for _, p := range []*e2eProc{a, b} {
		t.Logf("%s: %d partitions revoked, %d checkpoints restored; %s", p.name, p.countLines(`msg="partition revoked"`),
			p.countLines("restored checkpoint"), p.lastLine("msg=done"))
	}

	// Nothing is left to read: the bounded run restores every partition's
	// checkpoint and closes its windows and sessions.
	c := e2eStart(t, "bounded instance C", run.args(true, env.mongoURI)...)
	c.mustSucceed(2 * time.Minute)
	t.Logf("instance C: %d checkpoints restored", c.countLines("restored checkpoint"))

	exp := e2eReplay(t, recs)
	t.Logf("produced %d messages; replay: %s", len(recs), e2eSummary(exp))
	run.check(exp, mc, e2eCheckOptions{})
}

// TestMongoOutage: the MongoDB-wire server goes away for 20 s in the middle
// of a bounded run. Offsets must not be committed while nothing can be
// written, the binary must keep retrying, and once the server is back the
// run completes with the replay's results.
func TestMongoOutage(t *testing.T) {
	env := e2eSetup(t, false)
	e2eBinary(t)
	addr := fmt.Sprintf("127.0.0.1:%d", e2eFreePort(t))
	dir := t.TempDir()
	srvLog := &e2eBuffer{}
	logger := slog.New(slog.NewTextHandler(srvLog, nil))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("---- embedded server log ----\n%s", srvLog.String())
		}
	})
	ctx := context.Background()
	srv, err := embedmongo.Start(ctx, addr, filepath.Join(dir, "mongo"), logger)
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Close() })
	uri := srv.URI()

	msgs := gen.Generate(gen.Default(100_000, 44)) // enough to outlast the first commit
	run := newE2ERun(t, env, 4, "update_interval: 100ms")
	recs := run.produce(msgs)
	exp := e2eReplay(t, recs)
	t.Logf("produced %d messages; replay: %s", len(recs), e2eSummary(exp))
	ends := run.ends()

	p := e2eStart(t, "fullpipeline", run.args(true, uri)...)
	var before map[int32]int64
	e2eWaitFor(t, 2*time.Minute, 20*time.Millisecond, "a first commit", func() bool {
		require.False(t, p.exited(), "the run ended before any commit was seen")
		c, err := run.committed()
		if err != nil {
			return false
		}
		before = c
		return e2eTotal(c) > 0
	})
	closing := time.Now()
	require.NoError(t, srv.Close())
	down := time.Now()
	atClose, err := run.committed()
	require.NoError(t, err)
	t.Logf("server closed %v after the start (Close took %v): committed %v before, %v after, of %v",
		closing.Sub(p.started).Round(time.Millisecond), down.Sub(closing).Round(time.Millisecond), before, atClose, ends)

	const outage, grace = 20 * time.Second, 3 * time.Second
	time.Sleep(grace) // what was being written as the server went away
	frozen, err := run.committed()
	require.NoError(t, err)
	require.Less(t, e2eTotal(frozen), e2eTotal(ends), "the run was done before the outage: make the data set larger")
	for time.Since(down) < outage {
		require.False(t, p.exited(), "the binary must keep running while MongoDB is down")
		c, err := run.committed()
		require.NoError(t, err)
		require.Equal(t, frozen, c, "offsets committed while MongoDB was down")
		time.Sleep(500 * time.Millisecond)
	}
	require.True(t, p.contains("retrying"), "the binary must retry its writes while MongoDB is down")
	t.Logf("committed during the outage: %v (%d retries logged)", frozen, p.countLines("retrying"))

	e2eWaitFor(t, 30*time.Second, 200*time.Millisecond, "the server to start again on "+addr, func() bool {
		again, err := embedmongo.Start(ctx, addr, filepath.Join(dir, "mongo"), logger)
		if err != nil {
			return false
		}
		srv = again
		return true
	})
	t.Logf("server back after %v", time.Since(down).Round(time.Millisecond))
	p.mustSucceed(3 * time.Minute)
	t.Logf("run completed %v after the start", time.Since(p.started).Round(time.Millisecond))
	run.check(exp, e2eMongo(t, uri), e2eCheckOptions{})
}
