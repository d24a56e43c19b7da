package main

// Helpers of the end-to-end tests: a run's topic on the real broker, what
// it produced, the group's committed offsets and assignment, and the
// fullpipeline flags of the run.

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/require"

	"github.com/clickstreamkit/clickstream/internal/gen"
)

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
