package sources_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/clickstreamkit/clickstream/sources"
	"github.com/clickstreamkit/clickstream/sources/sourcetest"
)

// openFile writes values as lines ending with eol, the last one too unless
// noFinal, and opens the file with a maxLine that fits every value.
func openFile(eol string, noFinal bool) sourcetest.Opener {
	return func(tb testing.TB, values [][]byte) sourcetest.Fixture {
		var data []byte
		maxLine := 0
		for i, v := range values {
			data = append(data, v...)
			if i < len(values)-1 || !noFinal {
				data = append(data, eol...)
			}
			maxLine = max(maxLine, len(v))
		}
		if noFinal && len(values) > 0 && len(values[len(values)-1]) == 0 {
			tb.Fatalf("openFile: an empty last line needs its line end")
		}
		f := openLines(tb, string(data), maxLine)
		return sourcetest.Fixture{Source: f, Partitions: 1}
	}
}

func openLines(tb testing.TB, data string, maxLine int) *sources.File {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "events.jsonl")
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		tb.Fatal(err)
	}
	f, err := sources.OpenFile(path, maxLine)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = f.Close(context.Background()) })
	return f
}

func TestFileConformance(t *testing.T) {
	t.Run("LF", func(t *testing.T) { sourcetest.Run(t, openFile("\n", false)) })
	t.Run("CRLF", func(t *testing.T) { sourcetest.Run(t, openFile("\r\n", false)) })
	t.Run("NoFinalNewline", func(t *testing.T) { sourcetest.Run(t, openFile("\n", true)) })
}

// readLines reads f to its end and returns the values, checking that the
// offsets are the line numbers.
func readLines(t *testing.T, f *sources.File) []string {
	t.Helper()
	ctx := t.Context()
	var got []string
	for {
		b, err := f.Read(ctx)
		if errors.Is(err, sources.ErrEndOfInput) {
			return got
		}
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		if b.Partitions != 1 || b.CaughtUp || b.Generation != 0 {
			t.Fatalf("batch at line %d: Partitions %d, CaughtUp %v, Generation %d; want 1, false, 0",
				len(got), b.Partitions, b.CaughtUp, b.Generation)
		}
		for _, m := range b.Messages {
			if m.Offset != int64(len(got)) {
				t.Fatalf("message %d has offset %d: want the 0-based line number", len(got), m.Offset)
			}
			if m.Partition != 0 || m.Topic != b.Topic {
				t.Fatalf("message %d: topic %q partition %d in a batch of %q", len(got), m.Topic, m.Partition, b.Topic)
			}
			got = append(got, string(m.Value))
		}
	}
}

func TestFileLines(t *testing.T) {
	long := strings.Repeat("y", 3<<20) // longer than the reader's 1 MiB buffer
	tests := []struct {
		name    string
		data    string
		maxLine int
		want    []string
	}{
		{"empty file", "", 10, nil},
		{"one line end only", "\n", 10, []string{""}},
		{"LF", "a\nbb\n", 10, []string{"a", "bb"}},
		{"CRLF", "a\r\nbb\r\n", 10, []string{"a", "bb"}},
		{"mixed line ends", "a\r\nbb\nc\r\n", 10, []string{"a", "bb", "c"}},
		{"no final newline", "a\nbb", 10, []string{"a", "bb"}},
		{"no final newline after CR", "a\nbb\r", 10, []string{"a", "bb"}},
		{"empty lines are messages", "\n\na\n\n", 10, []string{"", "", "a", ""}},
		{"empty CRLF lines", "\r\n\r\n", 10, []string{"", ""}},
		{"CR inside a line is data", "a\rb\n\rc\n", 10, []string{"a\rb", "\rc"}},
		{"only the last CR goes", "a\r\r\n", 10, []string{"a\r"}},
		{"line of maxLine bytes is whole", "abc\n", 3, []string{"abc"}},
		{"CRLF line of maxLine bytes is whole", "abc\r\n", 3, []string{"abc"}},
		{"over-long line cut at maxLine+1", "abcdef\nxy\n", 3, []string{"abcd", "xy"}},
		{"over-long CRLF line cut at maxLine+1", "abcdef\r\nxy\r\n", 3, []string{"abcd", "xy"}},
		{"CR at the cut stays", "abc\rdef\n", 3, []string{"abc\r"}},
		{"over-long last line without newline", "ab\nabcdef", 3, []string{"ab", "abcd"}},
		{"line longer than the read buffer", long + "\nz\n", 5, []string{"yyyyyy", "z"}},
		{"line longer than the read buffer, kept whole", long + "\r\nz", len(long), []string{long, "z"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := openLines(t, tt.data, tt.maxLine)
			got := readLines(t, f)
			if len(got) != len(tt.want) {
				t.Fatalf("got %d lines %q, want %d %q", len(got), short(got), len(tt.want), short(tt.want))
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("line %d = %q, want %q", i, short(got[i:i+1]), short(tt.want[i:i+1]))
				}
			}
		})
	}
}

func short(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		if len(s) > 20 {
			s = fmt.Sprintf("%s...(%d bytes)", s[:20], len(s))
		}
		out[i] = s
	}
	return out
}

// Lines over maxLine are cut to maxLine+1 bytes so that validation rejects
// them as too large (SEMANTICS §1) without the reader holding them whole.
func TestFileCutLineIsTooLarge(t *testing.T) {
	const maxLine = 64
	line := bytes.Repeat([]byte("z"), 10*maxLine)
	f := openLines(t, string(line)+"\n{}\n", maxLine)
	got := readLines(t, f)
	if len(got) != 2 || len(got[0]) != maxLine+1 || got[1] != "{}" {
		t.Fatalf("got %d lines, first of %d bytes; want 2, the first of %d", len(got), len(got[0]), maxLine+1)
	}
}

func TestFileBatches(t *testing.T) {
	var sb strings.Builder
	const n = 10000 // more than a batch
	for range n {
		sb.WriteString("{}\n")
	}
	f := openLines(t, sb.String(), 10)
	ctx := t.Context()
	total := 0
	for {
		b, err := f.Read(ctx)
		if errors.Is(err, sources.ErrEndOfInput) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(b.Messages) == 0 {
			t.Fatal("empty batch")
		}
		total += len(b.Messages)
	}
	if total != n {
		t.Errorf("read %d lines, want %d", total, n)
	}
}

func TestOpenFileMissing(t *testing.T) {
	_, err := sources.OpenFile(filepath.Join(t.TempDir(), "nope.jsonl"), 10)
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("OpenFile(missing) = %v, want an error wrapping os.ErrNotExist", err)
	}
}
