package main

import (
	"bufio"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// readLines parses a JSON-lines file into objects, without the fields that
// SEMANTICS §9 leaves free: latency_ms_p95 (not deterministic) and the
// dead letters' detail, topic and partition (additions of this project).
func readLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m), "%s: %s", path, sc.Text())
		for _, k := range []string{"latency_ms_p95", "detail", "topic", "partition"} {
			delete(m, k)
		}
		out = append(out, m)
	}
	require.NoError(t, sc.Err())
	return out
}

// SEMANTICS §9 on a small input whose every output line was worked out by
// hand from the rules: a duplicate, a timestamp with an offset, a purchase in
// a currency without a rate, malformed JSON, a late event, an event exactly
// at the watermark, a purchase without a price, sessions and the funnel.
func TestReplayGolden(t *testing.T) {
	out := t.TempDir()
	err := run(context.Background(), []string{"-source", "file:testdata/replay/input.jsonl", "-jsonl", out,
		"-mongo", "off", "-parquet", "off", "-http", "off"}, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	for _, name := range []string{"kpis_minute.jsonl", "sessions.jsonl", "funnel.jsonl", "anomalies.jsonl", "deadletter.jsonl", "summary.json"} {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, readLines(t, filepath.Join("testdata/replay", name)), readLines(t, filepath.Join(out, name)))
		})
	}
}
