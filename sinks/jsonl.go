package sinks

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/clickstreamkit/clickstream/kpi"
	"github.com/clickstreamkit/clickstream/session"
	"github.com/clickstreamkit/clickstream/window"
)

var _ Sink = (*JSONL)(nil)

// The files a JSONL sink writes (SEMANTICS §9).
const (
	FileKPIs       = "kpis_minute.jsonl"
	FileSessions   = "sessions.jsonl"
	FileFunnel     = "funnel.jsonl"
	FileAnomalies  = "anomalies.jsonl"
	FileDeadLetter = "deadletter.jsonl"
	FileSummary    = "summary.json"
)

// JSONL writes the outputs of a finite replay as JSON-lines files in a
// directory (SEMANTICS §9). It holds final results in memory and writes the
// sorted files on Close, each through a temporary name and a rename; partials
// of several partitions merge per minute in a View, and anomalies are scored
// on the merged final minutes. A merged record is final once every partition
// has passed it: by its progress, or by the end of its input (Batch.End). It
// suits finite inputs, not endless streams.
type JSONL struct {
	dir      string
	detector func() (*kpi.Detector, error)

	// Results are keyed by what identifies them, so a replayed batch
	// overwrites instead of adding: the sink is idempotent.
	mu       sync.Mutex
	view     *View // final windows and funnel minutes
	sessions map[sessionKey]session.Record
	dead     map[deadKey]DeadLetter
	counters map[part]Counters
	closed   bool
}

type part struct {
	topic     string
	partition int32
}

type sessionKey struct {
	part
	user  string
	start int64
}

type deadKey struct {
	part
	offset int64
}

// NewJSONL returns a sink writing into dir (created if missing), for
// windows of windowSize (window_size); newDetector makes the anomaly
// detector of §8.
func NewJSONL(dir string, windowSize time.Duration, newDetector func() (*kpi.Detector, error)) (*JSONL, error) {
	if windowSize < time.Millisecond {
		return nil, errors.New("sinks: JSONL window size must be at least 1ms")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("sinks: %w", err)
	}
	return &JSONL{dir: dir, detector: newDetector, view: NewView(windowSize),
		sessions: map[sessionKey]session.Record{}, dead: map[deadKey]DeadLetter{}, counters: map[part]Counters{}}, nil
}

// Write keeps each batch's final results.
func (j *JSONL) Write(ctx context.Context, bs ...*Batch) error {
	return WriteEach(ctx, bs, j.write)
}

func (j *JSONL) write(_ context.Context, b *Batch) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return errors.New("sinks: write to closed JSONL sink")
	}
	p := part{b.Topic, b.Partition}
	for i := range b.KPIs {
		if m := &b.KPIs[i]; m.Final && m.Events > 0 {
			j.view.AddMinute(b.Topic, b.Partition, m)
		}
	}
	for _, s := range b.Sessions {
		s.Marks = nil
		j.sessions[sessionKey{p, s.UserID, s.Start}] = s
	}
	for i := range b.Funnel {
		if f := &b.Funnel[i]; f.Final {
			j.view.AddFunnel(b.Topic, b.Partition, f)
		}
	}
	for _, d := range b.DeadLetters {
		d.Raw = slices.Clone(d.Raw)
		j.dead[deadKey{p, d.Offset}] = d
	}
	j.view.SetProgress(b.Topic, b.Partition, b.Progress)
	if b.End {
		j.view.End(b.Topic, b.Partition)
	}
	j.counters[p] = b.Counters
	return nil
}

// Durable reports false: the files are written at Close, so a pipeline
// writing into a JSONL sink never checkpoints or commits.
func (*JSONL) Durable() bool { return false }

// Close writes the files.
func (j *JSONL) Close(context.Context) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return nil
	}
	j.closed = true
	det, err := j.detector()
	if err != nil {
		return err
	}
	var kpis, anomalies []any
	for _, m := range j.view.Minutes(window.NegInf, window.PosInf) {
		kpis = append(kpis, NewKPIRecord(&m.Minute))
	}
	found, _ := j.view.Score(det, window.NegInf, window.PosInf)
	for i := range found {
		anomalies = append(anomalies, NewAnomalyRecord(&found[i]))
	}
	sessions := slices.SortedFunc(maps.Values(j.sessions), func(a, b session.Record) int {
		return cmp.Or(cmp.Compare(a.Start, b.Start), strings.Compare(a.UserID, b.UserID))
	})
	var funnels []any
	for _, f := range j.view.Funnel(window.NegInf, window.PosInf) {
		funnels = append(funnels, NewFunnelRecord(&f.Record))
	}
	var dead []any
	for _, k := range slices.SortedFunc(maps.Keys(j.dead), func(a, b deadKey) int {
		return cmp.Or(strings.Compare(a.topic, b.topic), cmp.Compare(a.partition, b.partition), cmp.Compare(a.offset, b.offset))
	}) {
		d := j.dead[k]
		dead = append(dead, NewDeadLetterRecord(&d))
	}
	var total Counters
	for _, c := range j.counters {
		total.Add(c)
	}
	return errors.Join(
		j.writeLines(FileKPIs, kpis),
		j.writeFile(FileSessions, func(w *bufio.Writer) error {
			var line []byte
			for i := range sessions {
				line = append(AppendSessionJSON(line[:0], &sessions[i]), '\n')
				if _, err := w.Write(line); err != nil {
					return err
				}
			}
			return nil
		}),
		j.writeLines(FileFunnel, funnels),
		j.writeLines(FileAnomalies, anomalies),
		j.writeLines(FileDeadLetter, dead),
		j.writeFile(FileSummary, func(w *bufio.Writer) error { return json.NewEncoder(w).Encode(total) }),
	)
}

func (j *JSONL) writeLines(name string, recs []any) error {
	return j.writeFile(name, func(w *bufio.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		for _, r := range recs {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return nil
	})
}

// writeFile writes name through a temporary file, fsync and rename.
func (j *JSONL) writeFile(name string, fill func(*bufio.Writer) error) error {
	path := filepath.Join(j.dir, name)
	f, err := os.CreateTemp(j.dir, "."+name+".tmp*")
	if err != nil {
		return fmt.Errorf("sinks: %w", err)
	}
	w := bufio.NewWriter(f)
	err = errors.Join(fill(w), w.Flush(), f.Chmod(0o644), f.Sync(), f.Close())
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("sinks: write %s: %w", path, err)
	}
	return nil
}
