package main

// Helpers of the end-to-end tests (e2e_test.go): the fullpipeline binary run
// as a subprocess against real Kafka and a MongoDB-wire server, and the
// expected results computed by an in-process replay of each partition.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	mongoopts "go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/clickstreamkit/clickstream"
	"github.com/clickstreamkit/clickstream/checkpoint"
	"github.com/clickstreamkit/clickstream/funnel"
	"github.com/clickstreamkit/clickstream/internal/gen"
	"github.com/clickstreamkit/clickstream/kpi"
	"github.com/clickstreamkit/clickstream/pipeline"
	"github.com/clickstreamkit/clickstream/session"
	"github.com/clickstreamkit/clickstream/sinks"
	"github.com/clickstreamkit/clickstream/sinks/kafkadl"
	mongosink "github.com/clickstreamkit/clickstream/sinks/mongo"
	"github.com/clickstreamkit/clickstream/sinks/parquet"
	"github.com/clickstreamkit/clickstream/sources"
)

// e2eEnv is where the services are.
type e2eEnv struct {
	brokers  []string
	mongoURI string // "" when the test brings its own server
}

// e2eSetup skips the test in -short mode and when the services are not
// configured.
func e2eSetup(t *testing.T, needMongo bool) e2eEnv {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end integration test: skipped in -short mode")
	}
	b := os.Getenv("KAFKA_BROKERS")
	if b == "" {
		t.Skip("KAFKA_BROKERS not set: skipping an end-to-end test that needs Kafka (bash scripts/services.sh up prints KAFKA_BROKERS and MONGODB_URI)")
	}
	env := e2eEnv{brokers: strings.Split(b, ",")}
	if needMongo {
		env.mongoURI = os.Getenv("MONGODB_URI")
		if env.mongoURI == "" {
			t.Skip("MONGODB_URI not set: skipping an end-to-end test that needs MongoDB (bash scripts/services.sh up prints KAFKA_BROKERS and MONGODB_URI)")
		}
	}
	return env
}

var e2eBuild struct {
	once sync.Once
	path string
	err  error
}

// e2eBinary builds the fullpipeline binary once per test process, into
// tmp/fullpipeline (tmp/ holds a .gitignore that ignores it all).
// $FULLPIPELINE_BIN, when set, names a binary to use instead.
func e2eBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("FULLPIPELINE_BIN"); p != "" {
		return p
	}
	e2eBuild.once.Do(func() {
		dir, err := filepath.Abs("tmp")
		if err == nil {
			err = os.MkdirAll(dir, 0o755)
		}
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, ".gitignore"), []byte("*\n"), 0o644)
		}
		if err != nil {
			e2eBuild.err = err
			return
		}
		path := filepath.Join(dir, "fullpipeline")
		cmd := exec.Command("go", "build", "-o", path, ".")
		if out, err := cmd.CombinedOutput(); err != nil {
			e2eBuild.err = fmt.Errorf("go build: %w\n%s", err, out)
			return
		}
		e2eBuild.path = path
	})
	require.NoError(t, e2eBuild.err, "building the fullpipeline binary")
	return e2eBuild.path
}

// e2eName returns prefix + "_" + a random suffix.
func e2eName(prefix string) string {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	return prefix + "_" + hex.EncodeToString(b)
}

// e2eFreePort returns a TCP port that was free a moment ago.
func e2eFreePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// e2eWaitFor polls cond every interval until it returns true; it fails the
// test when timeout passes first.
func e2eWaitFor(t *testing.T, timeout, interval time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(interval)
	}
}

func e2eSaramaConfig() *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.ClientID = "clickstream-e2e-test"
	cfg.Metadata.Retry.Backoff = 100 * time.Millisecond
	return cfg
}

// e2eRun is one scenario's fresh names, directories and clients: a source
// topic, a dead-letter topic, a consumer group, a database, Parquet and
// checkpoint directories and a project.yaml; all dropped when the test ends.
type e2eRun struct {
	t          *testing.T
	env        e2eEnv
	topic      string
	dlTopic    string
	group      string
	database   string
	parquetDir string
	ckptDir    string
	configPath string
	partitions int32
	admin      sarama.ClusterAdmin
	client     sarama.Client
}

// newE2ERun creates the topics (partitions of the source, one of the
// dead-letter topic) and writes project.yaml with the dead-letter topic and
// the extra settings given (YAML lines).
func newE2ERun(t *testing.T, env e2eEnv, partitions int32, extraConfig ...string) *e2eRun {
	t.Helper()
	r := &e2eRun{t: t, env: env, topic: e2eName("events_raw"), dlTopic: e2eName("dl"), group: e2eName("g"),
		database: e2eName("e2e"), partitions: partitions}
	dir := t.TempDir()
	r.parquetDir, r.ckptDir = filepath.Join(dir, "parquet"), filepath.Join(dir, "checkpoints")
	r.configPath = filepath.Join(dir, "project.yaml")
	conf := append([]string{"deadletter_topic: " + r.dlTopic}, extraConfig...)
	require.NoError(t, os.WriteFile(r.configPath, []byte(strings.Join(conf, "\n")+"\n"), 0o644))

	var err error
	r.client, err = sarama.NewClient(env.brokers, e2eSaramaConfig())
	require.NoError(t, err, "kafka client")
	r.admin, err = sarama.NewClusterAdminFromClient(r.client)
	require.NoError(t, err, "kafka admin")
	t.Cleanup(func() { _ = r.admin.Close() }) // closes the client too
	r.createTopic(r.topic, partitions)
	r.createTopic(r.dlTopic, 1)
	// Registered before any process starts, so it runs after they are gone.
	t.Cleanup(func() { _ = r.admin.DeleteConsumerGroup(r.group) })
	t.Logf("topic %s (%d partitions), dead letters %s, group %s, database %s", r.topic, partitions, r.dlTopic, r.group, r.database)
	return r
}

func (r *e2eRun) createTopic(name string, partitions int32) {
	t := r.t
	t.Helper()
	require.NoError(t, r.admin.CreateTopic(name, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: 1}, false),
		"create topic %s", name)
	t.Cleanup(func() { _ = r.admin.DeleteTopic(name) })
	e2eWaitFor(t, time.Minute, 100*time.Millisecond, "topic "+name+" to have leaders", func() bool {
		if r.client.RefreshMetadata(name) != nil {
			return false
		}
		ps, err := r.client.Partitions(name)
		if err != nil || int32(len(ps)) != partitions {
			return false
		}
		for _, p := range ps {
			if _, err := r.client.Leader(name, p); err != nil {
				return false
			}
		}
		return true
	})
}

// e2eRecord is a produced message and where it landed.
type e2eRecord struct {
	Partition int32
	Offset    int64
	Key       string
	Value     []byte
}

// produce sends msgs to the source topic, keyed by user id with sarama's
// default hash partitioner, synchronously (idempotent producer, acks all),
// and returns where each landed.
func (r *e2eRun) produce(msgs []gen.Message) []e2eRecord {
	t := r.t
	t.Helper()
	cfg := e2eSaramaConfig()
	cfg.Producer.Return.Successes = true
	cfg.Producer.Idempotent = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Net.MaxOpenRequests = 1
	cfg.Producer.Retry.Max = 20
	cfg.Producer.Retry.Backoff = 100 * time.Millisecond
	p, err := sarama.NewSyncProducer(r.env.brokers, cfg)
	require.NoError(t, err, "producer")
	defer p.Close()
	out := make([]e2eRecord, 0, len(msgs))
	for chunk := range slices.Chunk(msgs, 5000) {
		pms := make([]*sarama.ProducerMessage, len(chunk))
		for i, m := range chunk {
			pms[i] = &sarama.ProducerMessage{Topic: r.topic, Key: sarama.StringEncoder(m.Key), Value: sarama.ByteEncoder(m.Value)}
		}
		require.NoError(t, p.SendMessages(pms), "produce to %s", r.topic)
		for i, pm := range pms {
			out = append(out, e2eRecord{Partition: pm.Partition, Offset: pm.Offset, Key: chunk[i].Key, Value: chunk[i].Value})
		}
	}
	return out
}

// ends returns the end offset (high watermark) of every source partition.
func (r *e2eRun) ends() map[int32]int64 {
	t := r.t
	t.Helper()
	ends := map[int32]int64{}
	for p := range r.partitions {
		off, err := r.client.GetOffset(r.topic, p, sarama.OffsetNewest)
		require.NoError(t, err)
		ends[p] = off
	}
	return ends
}

// committed returns the group's committed offset of every source partition
// (-1 where none).
func (r *e2eRun) committed() (map[int32]int64, error) {
	parts := make([]int32, r.partitions)
	for i := range parts {
		parts[i] = int32(i)
	}
	resp, err := r.admin.ListConsumerGroupOffsets(r.group, map[string][]int32{r.topic: parts})
	if err != nil {
		return nil, err
	}
	out := map[int32]int64{}
	for _, p := range parts {
		b := resp.GetBlock(r.topic, p)
		if b == nil {
			return nil, fmt.Errorf("no committed offset of partition %d in the answer", p)
		}
		if !errors.Is(b.Err, sarama.ErrNoError) {
			return nil, b.Err
		}
		out[p] = b.Offset
	}
	return out, nil
}

// waitCommittedAtEnd waits until the group's committed offsets reach ends.
func (r *e2eRun) waitCommittedAtEnd(ends map[int32]int64, timeout time.Duration, procs ...*e2eProc) {
	t := r.t
	t.Helper()
	var last map[int32]int64
	deadline := time.Now().Add(timeout)
	for {
		c, err := r.committed()
		if err == nil {
			last = c
			done := true
			for p, end := range ends {
				done = done && c[p] >= end
			}
			if done {
				return
			}
		}
		for _, p := range procs {
			if p.exited() {
				t.Fatalf("%s exited while waiting for the committed offsets to reach %v (last %v): %v", p.name, ends, last, p.waitErr)
			}
		}
		if time.Now().After(deadline) {
			for _, p := range procs {
				p.quit()
			}
			t.Fatalf("timed out after %v waiting for the committed offsets to reach %v: last %v (err %v)", timeout, ends, last, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// groupAssignment describes the group: its state and each member's
// partitions of the source topic.
func (r *e2eRun) groupAssignment() (string, map[string][]int32, error) {
	ds, err := r.admin.DescribeConsumerGroups([]string{r.group})
	if err != nil {
		return "", nil, err
	}
	if len(ds) != 1 {
		return "", nil, fmt.Errorf("%d groups described", len(ds))
	}
	d := ds[0]
	out := map[string][]int32{}
	for id, m := range d.Members {
		a, err := m.GetMemberAssignment()
		if err != nil {
			return "", nil, err
		}
		if a != nil {
			out[id] = slices.Sorted(slices.Values(a.Topics[r.topic]))
		} else {
			out[id] = nil
		}
	}
	return d.State, out, nil
}

// args returns the binary's flags for this run.
func (r *e2eRun) args(bounded bool, mongoURI string) []string {
	src := "kafka://" + strings.Join(r.env.brokers, ",") + "/" + url.PathEscape(r.topic) + "?group=" + url.QueryEscape(r.group)
	if bounded {
		src += "&bounded=true"
	}
	return []string{"-source", src, "-mongo", mongoURI, "-database", r.database, "-parquet", r.parquetDir,
		"-checkpoints", r.ckptDir, "-jsonl", "off", "-http", "off", "-config", r.configPath, "-progress", "1s"}
}

// e2eProc is the fullpipeline binary running as a subprocess. Its stderr is
// kept, and written to the test log if the test fails; it is killed when the
// test ends if it still runs. With $E2E_VERBOSE set the output is always
// logged; with $E2E_LOGDIR set it is also written whole to a file there.
type e2eProc struct {
	t       *testing.T
	name    string
	cmd     *exec.Cmd
	out     *e2eBuffer
	started time.Time
	done    chan struct{}
	waitErr error
}

// e2eBuffer is a goroutine-safe buffer.
type e2eBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *e2eBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *e2eBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func e2eStart(t *testing.T, name string, args ...string) *e2eProc {
	t.Helper()
	p := &e2eProc{t: t, name: name, out: &e2eBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(e2eBinary(t), args...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	require.NoError(t, p.cmd.Start(), "start %s", name)
	p.started = time.Now()
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if !p.exited() {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() || os.Getenv("E2E_VERBOSE") != "" {
			p.dump(200)
		}
		if dir := os.Getenv("E2E_LOGDIR"); dir != "" {
			name := strings.NewReplacer(" ", "_", "/", "_").Replace(t.Name() + "-" + p.name + ".log")
			_ = os.WriteFile(filepath.Join(dir, name), []byte(p.out.String()), 0o644)
		}
	})
	return p
}

func (p *e2eProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// dump writes the last n lines of the process's output to the test log.
func (p *e2eProc) dump(n int) {
	lines := strings.Split(strings.TrimRight(p.out.String(), "\n"), "\n")
	skipped := max(0, len(lines)-n)
	p.t.Logf("---- %s (%v): last %d of %d lines of output ----\n%s\n---- end of %s ----", p.name, p.cmd.Args[1:],
		len(lines)-skipped, len(lines), strings.Join(lines[skipped:], "\n"), p.name)
}

// wait waits for the process to exit and returns its exit code (-1 when a
// signal ended it); it fails the test when timeout passes first.
func (p *e2eProc) wait(timeout time.Duration) int {
	p.t.Helper()
	if !p.exited() {
		select {
		case <-p.done:
		case <-time.After(timeout):
			p.t.Fatalf("%s still running after %v", p.name, timeout)
		}
	}
	return p.cmd.ProcessState.ExitCode()
}

// mustSucceed waits for the process to exit 0.
func (p *e2eProc) mustSucceed(timeout time.Duration) {
	p.t.Helper()
	if code := p.wait(timeout); code != 0 {
		p.t.Fatalf("%s exited with %d (%v)", p.name, code, p.waitErr)
	}
}

func (p *e2eProc) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil && !p.exited() {
		p.t.Fatalf("signal %v to %s: %v", sig, p.name, err)
	}
}

// quit makes a hung process dump its goroutines into its output and exit
// (SIGQUIT), for the diagnosis of a hang.
func (p *e2eProc) quit() {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
	}
}

// contains reports whether the output holds s.
func (p *e2eProc) contains(s string) bool { return strings.Contains(p.out.String(), s) }

// waitOutput waits until the output holds one of ss (true) or the process
// exits (false); it fails the test when timeout passes first.
func (p *e2eProc) waitOutput(timeout time.Duration, ss ...string) bool {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		out := p.out.String()
		for _, s := range ss {
			if strings.Contains(out, s) {
				return true
			}
		}
		if p.exited() {
			return false
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: none of %q in its output after %v", p.name, ss, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// lastLine returns the last output line holding s, "" if none.
func (p *e2eProc) lastLine(s string) string {
	last := ""
	for line := range strings.Lines(p.out.String()) {
		if strings.Contains(line, s) {
			last = strings.TrimSpace(line)
		}
	}
	return last
}

// countLines counts the output lines holding s.
func (p *e2eProc) countLines(s string) int {
	n := 0
	sc := bufio.NewScanner(strings.NewReader(p.out.String()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), s) {
			n++
		}
	}
	return n
}

// ---- expected results: the in-process replay ----

// e2ePartExpect is one partition's expected results.
type e2ePartExpect struct {
	KPIs     map[int64]kpi.Minute      // final windows by minute
	Sessions map[string]session.Record // by session_id
	Funnel   map[int64]funnel.Record   // last record of each start minute
	Events   []sinks.Accepted          // offsets are the partition's
	Dead     []sinks.DeadLetter        // offsets are the partition's
	Counters sinks.Counters
}

// e2eReplay runs, for each partition, the finite replay of its messages in
// offset order through pipeline.NewRunner with a Memory source and sink and
// the default settings, and maps the Memory source's offsets (indexes,
// partition 0 of topic "memory") back to the partition's.
func e2eReplay(t *testing.T, recs []e2eRecord) map[int32]*e2ePartExpect {
	t.Helper()
	byPart := map[int32][]e2eRecord{}
	for _, r := range recs {
		byPart[r.Partition] = append(byPart[r.Partition], r)
	}
	out := map[int32]*e2ePartExpect{}
	for part, rs := range byPart {
		slices.SortFunc(rs, func(a, b e2eRecord) int { return int(a.Offset - b.Offset) })
		values := make([][]byte, len(rs))
		for i := range rs {
			values[i] = rs[i].Value
		}
		cfg := pipeline.DefaultConfig()
		cfg.KeepEvents = true
		sink := &sinks.Memory{}
		runner, err := pipeline.NewRunner(sources.NewMemory(500, values...), sink, &checkpoint.Memory{}, cfg)
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		err = runner.Run(ctx)
		cancel()
		require.NoError(t, err, "in-process replay of partition %d", part)
		o := sink.Output()
		e := &e2ePartExpect{KPIs: map[int64]kpi.Minute{}, Sessions: map[string]session.Record{},
			Funnel: map[int64]funnel.Record{}, Counters: o.Counters[0]}
		for _, k := range o.KPIs {
			_, dup := e.KPIs[k.Minute]
			require.False(t, dup, "the replay emitted minute %d final twice", k.Minute)
			e.KPIs[k.Minute] = k
		}
		for _, s := range o.Sessions {
			id := s.SessionID()
			_, dup := e.Sessions[id]
			require.False(t, dup, "the replay emitted session %s twice", id)
			e.Sessions[id] = s
		}
		for _, f := range o.Funnel {
			e.Funnel[f.Minute] = f
		}
		for _, a := range o.Events {
			a.Offset = rs[a.Offset].Offset
			e.Events = append(e.Events, a)
		}
		for _, d := range o.DeadLetters {
			d.Offset = rs[d.Offset].Offset
			e.Dead = append(e.Dead, d)
		}
		out[part] = e
	}
	return out
}

// summary is a short description of the expected results, for the log.
func e2eSummary(exp map[int32]*e2ePartExpect) string {
	var c sinks.Counters
	var kpis, sess, fun int
	for _, e := range exp {
		c.Add(e.Counters)
		kpis, sess, fun = kpis+len(e.KPIs), sess+len(e.Sessions), fun+len(e.Funnel)
	}
	return fmt.Sprintf("%d partitions: read %d, accepted %d, invalid %d, late %d, duplicates %d; %d final minute partials, %d sessions, %d funnel minute partials",
		len(exp), c.Read, c.Accepted, c.Invalid, c.Late, c.Duplicates, kpis, sess, fun)
}

// ---- actual results ----

type e2eKPIDoc struct {
	ID                string             `bson:"_id"`
	Minute            bson.DateTime      `bson:"minute"`
	Topic             string             `bson:"topic"`
	Partition         int32              `bson:"partition"`
	Final             bool               `bson:"final"`
	Events            int64              `bson:"events"`
	PageViews         int64              `bson:"page_views"`
	AddToCarts        int64              `bson:"add_to_carts"`
	Purchases         int64              `bson:"purchases"`
	Sessions          int64              `bson:"sessions"`
	Revenue           float64            `bson:"revenue"`
	RevenuePurchases  int64              `bson:"revenue_purchases"`
	RevenueByCurrency map[string]float64 `bson:"revenue_by_currency"`
	ConversionRate    float64            `bson:"conversion_rate"`
	AOV               float64            `bson:"aov"`
	TopProducts       []struct {
		ProductID string  `bson:"product_id"`
		Views     int64   `bson:"views"`
		Carts     int64   `bson:"carts"`
		Purchases int64   `bson:"purchases"`
		Revenue   float64 `bson:"revenue"`
	} `bson:"top_products"`
}

type e2eSessionDoc struct {
	ID         string        `bson:"_id"`
	SessionID  string        `bson:"session_id"`
	UserID     string        `bson:"user_id"`
	Topic      string        `bson:"topic"`
	Partition  int32         `bson:"partition"`
	Start      bson.DateTime `bson:"start"`
	End        bson.DateTime `bson:"end"`
	DurationMs int64         `bson:"duration_ms"`
	Events     int64         `bson:"events"`
	PageViews  int64         `bson:"page_views"`
	AddToCarts int64         `bson:"add_to_carts"`
	Purchases  int64         `bson:"purchases"`
	Revenue    float64       `bson:"revenue"`
	Bounced    bool          `bson:"bounced"`
	Converted  bool          `bson:"converted"`
}

type e2eFunnelDoc struct {
	ID                    string          `bson:"_id"`
	Minute                bson.DateTime   `bson:"minute"`
	Topic                 string          `bson:"topic"`
	Partition             int32           `bson:"partition"`
	Entered               int64           `bson:"entered"`
	Steps                 []int64         `bson:"steps"`
	StepRates             []float64       `bson:"step_rates"`
	OverallRate           float64         `bson:"overall_rate"`
	MedianTimeToConvertMs *int64          `bson:"median_time_to_convert_ms"`
	TimesMs               mongosink.Times `bson:"times_ms"`
	Final                 bool            `bson:"final"`
	Running               *struct {
		Steps []int64 `bson:"steps"`
	} `bson:"running"`
}

// e2eMongo connects to uri for reading results.
func e2eMongo(t *testing.T, uri string) *mongo.Client {
	t.Helper()
	c, err := mongo.Connect(mongoopts.Client().ApplyURI(uri).SetTimeout(30 * time.Second))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Disconnect(context.Background()) })
	return c
}

// dropDatabaseAtEnd drops the run's database when the test ends.
func (r *e2eRun) dropDatabaseAtEnd(c *mongo.Client) {
	r.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = c.Database(r.database).Drop(ctx)
	})
}

// countFinals counts the final KPI documents and the sessions in the run's
// database, for the log.
func (r *e2eRun) countFinals(c *mongo.Client) (finals, sessions int64) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db := c.Database(r.database)
	finals, _ = db.Collection("kpis_minute").CountDocuments(ctx, bson.D{{Key: "final", Value: true}})
	sessions, _ = db.Collection("sessions").CountDocuments(ctx, bson.D{})
	return finals, sessions
}

func e2eFind[T any](t *testing.T, coll *mongo.Collection) []T {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cur, err := coll.Find(ctx, bson.D{})
	require.NoError(t, err, "find in %s", coll.Name())
	var out []T
	require.NoError(t, cur.All(ctx, &out), "read %s", coll.Name())
	return out
}

// e2eClose says whether a and b agree within 1e-9 relative.
func e2eClose(a, b float64) bool {
	if a == b {
		return true
	}
	return math.Abs(a-b) <= 1e-9*max(math.Abs(a), math.Abs(b))
}

func e2eCloseSlices(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !e2eClose(a[i], b[i]) {
			return false
		}
	}
	return true
}

func e2eCloseMaps(a, b map[string]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || !e2eClose(v, w) {
			return false
		}
	}
	return true
}

// e2eCheckOptions says what a scenario allows.
type e2eCheckOptions struct {
	// dedupeDeadLetters allows the same dead letter (same source partition
	// and offset, same content) more than once in the dead-letter topic.
	dedupeDeadLetters bool
}

// check compares everything the run produced with the replay: MongoDB's
// final KPI, session and funnel documents, the Parquet archive, the
// dead-letter topic and the group's committed offsets.
func (r *e2eRun) check(exp map[int32]*e2ePartExpect, mc *mongo.Client, opt e2eCheckOptions) {
	t := r.t
	t.Helper()
	r.checkMongo(exp, mc)
	r.checkParquet(exp)
	r.checkDeadLetters(exp, opt)
	ends := r.ends()
	c, err := r.committed()
	require.NoError(t, err, "committed offsets")
	for p, end := range ends {
		assert.Equal(t, end, c[p], "committed offset of partition %d must reach its end", p)
	}
}

func (r *e2eRun) checkMongo(exp map[int32]*e2ePartExpect, mc *mongo.Client) {
	t := r.t
	t.Helper()
	db := mc.Database(r.database)
	topicID := url.PathEscape(r.topic)

	// KPI windows
	kpiDocs := e2eFind[e2eKPIDoc](t, db.Collection("kpis_minute"))
	got := map[int32]map[int64]e2eKPIDoc{}
	for _, d := range kpiDocs {
		require.Equal(t, r.topic, d.Topic, "kpis_minute document %s of another topic", d.ID)
		if got[d.Partition] == nil {
			got[d.Partition] = map[int64]e2eKPIDoc{}
		}
		got[d.Partition][int64(d.Minute)] = d
	}
	nKPIs, kpiBad := 0, 0
	for part, e := range exp {
		nKPIs += len(e.KPIs)
		assert.Len(t, got[part], len(e.KPIs), "partition %d: kpis_minute documents vs final minutes of the replay", part)
		for minute, want := range e.KPIs {
			d, ok := got[part][minute]
			if !ok {
				kpiBad++
				t.Errorf("partition %d minute %s: no kpis_minute document", part, clickstream.FormatTime(minute))
				continue
			}
			id := topicID + "/" + strconv.Itoa(int(part)) + "/" + clickstream.FormatTime(minute)
			ok = d.ID == id && d.Final && d.Events == want.Events && d.PageViews == want.PageViews &&
				d.AddToCarts == want.AddToCarts && d.Purchases == want.Purchases && d.Sessions == want.Sessions &&
				d.RevenuePurchases == want.RevenuePurchases && e2eClose(d.Revenue, want.Revenue) &&
				e2eClose(d.ConversionRate, want.ConversionRate()) && e2eClose(d.AOV, want.AOV()) &&
				e2eCloseMaps(d.RevenueByCurrency, want.RevenueByCurrency) && len(d.TopProducts) == len(want.TopProducts)
			for i := 0; ok && i < len(d.TopProducts); i++ {
				g, w := d.TopProducts[i], want.TopProducts[i]
				ok = g.ProductID == w.ProductID && g.Views == w.Views && g.Carts == w.Carts && g.Purchases == w.Purchases &&
					e2eClose(g.Revenue, w.Revenue)
			}
			if !ok {
				kpiBad++
				if kpiBad <= 5 {
					t.Errorf("partition %d minute %s: kpis_minute document differs from the replay:\n got  %+v\n want %+v (conversion_rate %v, aov %v)",
						part, clickstream.FormatTime(minute), d, want, want.ConversionRate(), want.AOV())
				}
			}
		}
	}
	assert.Len(t, kpiDocs, nKPIs, "kpis_minute documents in all")
	assert.Zero(t, kpiBad, "kpis_minute documents differing from the replay")

	// sessions
	sessDocs := e2eFind[e2eSessionDoc](t, db.Collection("sessions"))
	gotS := map[int32]map[string]e2eSessionDoc{}
	for _, d := range sessDocs {
		require.Equal(t, r.topic, d.Topic, "sessions document %s of another topic", d.ID)
		if gotS[d.Partition] == nil {
			gotS[d.Partition] = map[string]e2eSessionDoc{}
		}
		gotS[d.Partition][d.SessionID] = d
	}
	nSess, sessBad := 0, 0
	for part, e := range exp {
		nSess += len(e.Sessions)
		assert.Len(t, gotS[part], len(e.Sessions), "partition %d: sessions documents vs sessions of the replay", part)
		for id, w := range e.Sessions {
			d, ok := gotS[part][id]
			ok = ok && d.ID == topicID+"/"+strconv.Itoa(int(part))+"/"+id && d.UserID == w.UserID &&
				int64(d.Start) == w.Start && int64(d.End) == w.End && d.DurationMs == w.DurationMs &&
				d.Events == w.Events && d.PageViews == w.PageViews && d.AddToCarts == w.AddToCarts &&
				d.Purchases == w.Purchases && e2eClose(d.Revenue, w.Revenue) && d.Bounced == w.Bounced && d.Converted == w.Converted
			if !ok {
				sessBad++
				if sessBad <= 5 {
					t.Errorf("partition %d session %s: document differs from the replay or is missing:\n got  %+v\n want %+v", part, id, d, w)
				}
			}
		}
	}
	assert.Len(t, sessDocs, nSess, "sessions documents in all")
	assert.Zero(t, sessBad, "sessions differing from the replay")

	// funnel
	funDocs := e2eFind[e2eFunnelDoc](t, db.Collection("funnel_minute"))
	gotF := map[int32]map[int64]e2eFunnelDoc{}
	finals := 0
	for _, d := range funDocs {
		require.Equal(t, r.topic, d.Topic, "funnel_minute document %s of another topic", d.ID)
		if !d.Final {
			// After the end of input only a minute whose sessions all moved
			// to an earlier one keeps running values: zeros, or what was
			// shown before a restart that lost the zero record. The merged
			// views leave them out (sinks.View); the replay has no record of
			// the minute, which the counts below check.
			require.NotNil(t, d.Running, "funnel_minute document %s neither final nor running", d.ID)
			continue
		}
		finals++
		if gotF[d.Partition] == nil {
			gotF[d.Partition] = map[int64]e2eFunnelDoc{}
		}
		gotF[d.Partition][int64(d.Minute)] = d
	}
	nFun, funBad := 0, 0
	for part, e := range exp {
		nFun += len(e.Funnel)
		assert.Len(t, gotF[part], len(e.Funnel), "partition %d: funnel_minute documents vs funnel minutes of the replay", part)
		for minute, w := range e.Funnel {
			d, ok := gotF[part][minute]
			ok = ok && d.ID == topicID+"/"+strconv.Itoa(int(part))+"/"+clickstream.FormatTime(minute) &&
				d.Entered == w.Entered && slices.Equal(d.Steps, w.Steps) && e2eCloseSlices(d.StepRates, w.StepRates) &&
				e2eClose(d.OverallRate, w.OverallRate) && slices.Equal(e2eNonNilInts(d.TimesMs), e2eNonNilInts(w.TimesMs)) &&
				(d.MedianTimeToConvertMs != nil) == w.HasMedian &&
				(!w.HasMedian || *d.MedianTimeToConvertMs == w.MedianTimeToConvertMs)
			if !ok {
				funBad++
				if funBad <= 5 {
					t.Errorf("partition %d funnel minute %s: document differs from the replay or is missing:\n got  %+v\n want %+v",
						part, clickstream.FormatTime(minute), d, w)
				}
			}
		}
	}
	assert.Equal(t, nFun, finals, "final funnel_minute documents in all")
	assert.Zero(t, funBad, "funnel minutes differing from the replay")

	// The merged view of every minute, stale running documents left out,
	// is the replay's records merged over partitions.
	ms, err := mongosink.New(mc, r.database)
	require.NoError(t, err)
	merged, err := ms.Funnel(context.Background(), time.UnixMilli(0), time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC))
	require.NoError(t, err)
	byMinute := map[int64][]funnel.Record{}
	for _, e := range exp {
		for minute, w := range e.Funnel {
			byMinute[minute] = append(byMinute[minute], w)
		}
	}
	assert.Len(t, merged, len(byMinute), "merged funnel minutes vs the replay's")
	for _, m := range merged {
		w := funnel.Merge(byMinute[m.Minute]...)
		assert.True(t, m.Final && m.Entered == w.Entered && slices.Equal(m.Steps, w.Steps),
			"merged funnel minute %s: got %v %v final %v, want %v %v", clickstream.FormatTime(m.Minute), m.Entered, m.Steps, m.Final, w.Entered, w.Steps)
	}
}

func e2eNonNilInts(s []int64) []int64 {
	if s == nil {
		return []int64{}
	}
	return s
}

func (r *e2eRun) checkParquet(exp map[int32]*e2ePartExpect) {
	t := r.t
	t.Helper()
	rows, err := parquet.ReadEvents(r.parquetDir)
	require.NoError(t, err, "parquet.ReadEvents")
	got := map[int32][]parquet.Row{}
	for _, row := range rows {
		require.Equal(t, r.topic, row.Topic, "parquet row of another topic")
		got[row.Partition] = append(got[row.Partition], row)
	}
	n := 0
	for part, e := range exp {
		n += len(e.Events)
		g := got[part]
		bad := 0
		if len(g) != len(e.Events) {
			t.Errorf("partition %d: %d Parquet event rows, the replay accepted %d events", part, len(g), len(e.Events))
		}
		for i := range min(len(g), len(e.Events)) {
			if g[i].Offset != e.Events[i].Offset || g[i].Event != e.Events[i].Event {
				bad++
				if bad <= 5 {
					t.Errorf("partition %d: Parquet row %d differs from the replay's accepted event:\n got  offset %d %+v\n want offset %d %+v",
						part, i, g[i].Offset, g[i].Event, e.Events[i].Offset, e.Events[i].Event)
				}
			}
		}
		seen := map[int64]bool{}
		for _, row := range g {
			if seen[row.Offset] {
				t.Errorf("partition %d: offset %d archived more than once", part, row.Offset)
			}
			seen[row.Offset] = true
		}
	}
	assert.Len(t, rows, n, "Parquet event rows in all")

	// The KPI archive: every final minute of the replay, counts exact.
	kpis, err := parquet.ReadKPIs(r.parquetDir)
	require.NoError(t, err, "parquet.ReadKPIs")
	gotK := map[int32]map[int64]parquet.KPIRow{}
	for _, k := range kpis {
		if gotK[k.Partition] == nil {
			gotK[k.Partition] = map[int64]parquet.KPIRow{}
		}
		gotK[k.Partition][k.Minute] = k
	}
	nk := 0
	for part, e := range exp {
		nk += len(e.KPIs)
		for minute, w := range e.KPIs {
			g, ok := gotK[part][minute]
			if !ok || g.Events != w.Events || g.PageViews != w.PageViews || g.AddToCarts != w.AddToCarts ||
				g.Purchases != w.Purchases || g.Sessions != w.Sessions || g.RevenuePurchases != w.RevenuePurchases ||
				!e2eClose(g.Revenue, w.Revenue) {
				t.Errorf("partition %d minute %s: Parquet KPI row differs from the replay or is missing:\n got  %+v\n want %+v",
					part, clickstream.FormatTime(minute), g, w.Counts)
			}
		}
	}
	assert.Len(t, kpis, nk, "Parquet KPI rows in all")
}

// e2eDead is a dead letter as read from the dead-letter topic.
type e2eDead struct {
	Reason, Field, SourceTopic string
	SourcePartition            int32
	SourceOffset               int64
	Raw                        string
}

func (r *e2eRun) readDeadLetters() []e2eDead {
	t := r.t
	t.Helper()
	end, err := r.client.GetOffset(r.dlTopic, 0, sarama.OffsetNewest)
	require.NoError(t, err)
	var out []e2eDead
	if end == 0 {
		return out
	}
	consumer, err := sarama.NewConsumerFromClient(r.client)
	require.NoError(t, err)
	defer consumer.Close()
	pc, err := consumer.ConsumePartition(r.dlTopic, 0, sarama.OffsetOldest)
	require.NoError(t, err)
	defer pc.Close()
	timeout := time.After(time.Minute)
	for {
		select {
		case m := <-pc.Messages():
			h := map[string]string{}
			for _, rh := range m.Headers {
				h[string(rh.Key)] = string(rh.Value)
			}
			part, err1 := strconv.ParseInt(h[kafkadl.HeaderSourcePartition], 10, 32)
			off, err2 := strconv.ParseInt(h[kafkadl.HeaderSourceOffset], 10, 64)
			require.NoError(t, errors.Join(err1, err2), "dead letter at %d: headers %v", m.Offset, h)
			out = append(out, e2eDead{Reason: h[kafkadl.HeaderReason], Field: h[kafkadl.HeaderField],
				SourceTopic: h[kafkadl.HeaderSourceTopic], SourcePartition: int32(part), SourceOffset: off, Raw: string(m.Value)})
			if m.Offset+1 >= end {
				return out
			}
		case err := <-pc.Errors():
			t.Fatalf("reading %s: %v", r.dlTopic, err)
		case <-timeout:
			t.Fatalf("timed out reading %s: %d of %d records", r.dlTopic, len(out), end)
		}
	}
}

func (r *e2eRun) checkDeadLetters(exp map[int32]*e2ePartExpect, opt e2eCheckOptions) {
	t := r.t
	t.Helper()
	type key struct {
		part int32
		off  int64
	}
	got := map[key]e2eDead{}
	dups := 0
	for _, d := range r.readDeadLetters() {
		k := key{d.SourcePartition, d.SourceOffset}
		if prev, ok := got[k]; ok {
			dups++
			assert.Equal(t, prev, d, "a dead letter produced twice must be the same")
			continue
		}
		got[k] = d
	}
	if opt.dedupeDeadLetters {
		t.Logf("dead-letter topic: %d distinct dead letters, %d produced again by replays after a crash", len(got), dups)
	} else {
		assert.Zero(t, dups, "dead letters produced more than once in a run without crashes")
	}
	want := map[key]e2eDead{}
	reasons := map[string]int{}
	for part, e := range exp {
		for _, d := range e.Dead {
			want[key{part, d.Offset}] = e2eDead{Reason: string(d.Reason), Field: d.Field, SourceTopic: r.topic,
				SourcePartition: part, SourceOffset: d.Offset, Raw: string(d.Raw)}
			reasons[string(d.Reason)]++
		}
	}
	t.Logf("expected dead letters by reason: %v", reasons)
	require.NotZero(t, reasons["late"], "the data set must hold late events")
	bad := 0
	for k, w := range want {
		if g, ok := got[k]; !ok || g != w {
			bad++
			if bad <= 5 {
				t.Errorf("dead letter of partition %d offset %d differs or is missing:\n got  %+v\n want %+v", k.part, k.off, g, w)
			}
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			bad++
			if bad <= 10 {
				t.Errorf("unexpected dead letter of partition %d offset %d: %+v", k.part, k.off, g)
			}
		}
	}
	assert.Len(t, got, len(want), "distinct dead letters")
	assert.Zero(t, bad, "dead letters differing from the replay's invalid and late messages")
}
