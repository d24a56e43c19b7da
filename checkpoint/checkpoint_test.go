package checkpoint_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/clickstreamkit/clickstream"
	"github.com/clickstreamkit/clickstream/checkpoint"
	"github.com/clickstreamkit/clickstream/checkpoint/checkpointtest"
	"github.com/clickstreamkit/clickstream/internal/snap"
)

func TestMemory(t *testing.T) {
	checkpointtest.Run(t, func(*testing.T) checkpoint.Store { return &checkpoint.Memory{} })
}

func newDir(t *testing.T) *checkpoint.Dir {
	t.Helper()
	d, err := checkpoint.NewDir(filepath.Join(t.TempDir(), "ckpt"))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestDir(t *testing.T) {
	checkpointtest.Run(t, func(t *testing.T) checkpoint.Store { return newDir(t) })
}

// dirWithOne returns a Dir path holding one saved checkpoint and its file.
func dirWithOne(t *testing.T) (path, file string, d *checkpoint.Dir) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "ckpt")
	d, err := checkpoint.NewDir(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Save(t.Context(), checkpoint.Checkpoint{Topic: "clicks", Partition: 2, Next: 77, State: []byte("some operator state")}); err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(path, "*.ckpt"))
	if err != nil || len(files) != 1 {
		t.Fatalf("checkpoint files = %v, %v; want one", files, err)
	}
	return path, files[0], d
}

func TestDirCorrupt(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func([]byte) []byte
	}{
		{"flipped byte", func(b []byte) []byte { b[len(b)/2] ^= 0x40; return b }},
		{"bad checksum", func(b []byte) []byte { b[len(b)-1] ^= 1; return b }},
		{"truncated", func(b []byte) []byte { return b[:len(b)-7] }},
		{"too short", func(b []byte) []byte { return b[:2] }},
		{"empty", func([]byte) []byte { return nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, file, d := dirWithOne(t)
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(file, tc.damage(b), 0o644); err != nil {
				t.Fatal(err)
			}
			cp, err := d.Load(t.Context(), "clicks", 2)
			if !errors.Is(err, snap.ErrCorrupt) || !errors.Is(err, clickstream.ErrPermanent) {
				t.Fatalf("Load of a damaged file = next %d, %v; want a permanent error wrapping snap.ErrCorrupt", cp.Next, err)
			}
		})
	}
}

// A crash between writing a temporary file and renaming it leaves the
// temporary file behind; it must not be taken for a checkpoint.
func TestDirIgnoresTempFiles(t *testing.T) {
	path, file, d := dirWithOne(t)
	good, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string][]byte{
		".ckpt-123456":           []byte("half a checkpoint"),
		".ckpt-999":              good, // a whole one, never renamed
		"clicks.3.ckpt.tmp":      good,
		".kpis_minute.jsonl.tmp": nil,
	} {
		if err := os.WriteFile(filepath.Join(path, name), body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cp, err := d.Load(t.Context(), "clicks", 2)
	if err != nil || cp.Next != 77 || string(cp.State) != "some operator state" {
		t.Fatalf("Load = %+v, %v; want the saved checkpoint", cp, err)
	}
	if _, err := d.Load(t.Context(), "clicks", 3); !errors.Is(err, checkpoint.ErrNotFound) {
		t.Fatalf("Load of a partition with only a temporary file = %v, want ErrNotFound", err)
	}
	// A new Save still replaces the checkpoint with the temporary files around.
	if err := d.Save(t.Context(), checkpoint.Checkpoint{Topic: "clicks", Partition: 2, Next: 78}); err != nil {
		t.Fatal(err)
	}
	if cp, err := d.Load(t.Context(), "clicks", 2); err != nil || cp.Next != 78 {
		t.Fatalf("Load after Save = %+v, %v; want next 78", cp, err)
	}
}

// A store reopened on the same directory finds what was saved.
func TestDirReopen(t *testing.T) {
	path, _, _ := dirWithOne(t)
	d, err := checkpoint.NewDir(path)
	if err != nil {
		t.Fatal(err)
	}
	if cp, err := d.Load(t.Context(), "clicks", 2); err != nil || cp.Next != 77 {
		t.Fatalf("Load after reopening = %+v, %v; want next 77", cp, err)
	}
}

// dirWithSegments returns a Dir holding clicks/2 at next 77 with segments
// 1, 2 and 3, and the checkpoint.
func dirWithSegments(t *testing.T) (path string, d *checkpoint.Dir, cp checkpoint.Checkpoint) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "ckpt")
	d, err := checkpoint.NewDir(path)
	if err != nil {
		t.Fatal(err)
	}
	cp = checkpoint.Checkpoint{Topic: "clicks", Partition: 2, Next: 77, Generation: 4, State: []byte("head"),
		Segments: []checkpoint.Segment{{ID: 1, Data: []byte("one")}, {ID: 2, Data: []byte("two")}, {ID: 3, Data: []byte("three")}}}
	if err := d.Save(t.Context(), cp); err != nil {
		t.Fatal(err)
	}
	return path, d, cp
}

// files lists the names in path matching pattern.
func files(t *testing.T, path, pattern string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(path, pattern))
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range names {
		names[i] = filepath.Base(n)
	}
	return names
}

func TestDirSegmentDamaged(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(file string) error
		want   error
	}{
		{"flipped byte", func(f string) error {
			b, err := os.ReadFile(f)
			if err != nil {
				return err
			}
			b[len(b)/2] ^= 0x40
			return os.WriteFile(f, b, 0o644)
		}, snap.ErrCorrupt},
		{"truncated", func(f string) error { return os.Truncate(f, 3) }, snap.ErrCorrupt},
		{"another segment's file", func(f string) error {
			return os.Rename(filepath.Join(filepath.Dir(f), "clicks.2.3.seg"), f)
		}, snap.ErrCorrupt},
		{"missing", os.Remove, fs.ErrNotExist},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path, d, _ := dirWithSegments(t)
			if err := tc.damage(filepath.Join(path, "clicks.2.2.seg")); err != nil {
				t.Fatal(err)
			}
			_, err := d.Load(t.Context(), "clicks", 2)
			if !errors.Is(err, tc.want) || !errors.Is(err, clickstream.ErrPermanent) {
				t.Fatalf("Load with segment 2 %s = %v; want a permanent error wrapping %v", tc.name, err, tc.want)
			}
		})
	}
}

// A damaged head is permanent too, and a Save does not write over it: it
// cannot tell whether it is fenced.
func TestDirHeadDamagedPermanent(t *testing.T) {
	path, d, cp := dirWithSegments(t)
	head := filepath.Join(path, "clicks.2.ckpt")
	b, err := os.ReadFile(head)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-1] ^= 1
	if err := os.WriteFile(head, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Load(t.Context(), "clicks", 2); !errors.Is(err, clickstream.ErrPermanent) {
		t.Fatalf("Load of a damaged head = %v, want a permanent error", err)
	}
	cp.Next++
	if err := d.Save(t.Context(), cp); !errors.Is(err, clickstream.ErrPermanent) {
		t.Fatalf("Save over a damaged head = %v, want a permanent error", err)
	}
}

// A Save removes the files of the segments it drops, once its head is
// written.
func TestDirRemovesDropped(t *testing.T) {
	path, d, _ := dirWithSegments(t)
	if err := d.Save(t.Context(), checkpoint.Checkpoint{Topic: "clicks", Partition: 2, Next: 78, Generation: 4,
		Segments: []checkpoint.Segment{{ID: 3}, {ID: 4, Data: []byte("four")}}}); err != nil {
		t.Fatal(err)
	}
	if got, want := files(t, path, "*.seg"), []string{"clicks.2.3.seg", "clicks.2.4.seg"}; !slices.Equal(got, want) {
		t.Fatalf("segment files = %v, want %v", got, want)
	}
	if got := files(t, path, ".*"); len(got) != 0 {
		t.Fatalf("temporary files left: %v", got)
	}
}

// A crash between writing segments and the head leaves segment and
// temporary files the head does not list; Load removes them, and only those
// of its partition.
func TestDirRemovesCrashGarbage(t *testing.T) {
	path, d, cp := dirWithSegments(t)
	garbage := []string{"clicks.2.4.seg", ".clicks.2.5.seg-123456", ".clicks.2.ckpt-42"}
	others := []string{
		"clicks.20.4.seg",       // partition 20
		"clicks.2.x.0.4.seg",    // topic "clicks.2.x"
		".clicks.2.x.0.ckpt-12", // its temporary head
		".clicks.2.ckpt-x.0.ckpt-1",
		".ckpt-999",
		"clicks.2.4.seg.bak",
	}
	for _, name := range append(slices.Clone(garbage), others...) {
		if err := os.WriteFile(filepath.Join(path, name), []byte("left by a crash"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := d.Load(t.Context(), "clicks", 2)
	if err != nil || got.Next != cp.Next || len(got.Segments) != 3 {
		t.Fatalf("Load = next %d, %d segments, %v; want the saved checkpoint", got.Next, len(got.Segments), err)
	}
	for _, name := range garbage {
		if _, err := os.Stat(filepath.Join(path, name)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: %v after Load, want it removed", name, err)
		}
	}
	for _, name := range append(others, "clicks.2.1.seg", "clicks.2.2.seg", "clicks.2.3.seg", "clicks.2.ckpt") {
		if _, err := os.Stat(filepath.Join(path, name)); err != nil {
			t.Errorf("%s: %v after Load, want it kept", name, err)
		}
	}
	// Without a head every segment file of the partition is garbage.
	if err := os.WriteFile(filepath.Join(path, "clicks.7.1.seg"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Load(t.Context(), "clicks", 7); !errors.Is(err, checkpoint.ErrNotFound) {
		t.Fatalf("Load of a partition without a head = %v, want ErrNotFound", err)
	}
	if _, err := os.Stat(filepath.Join(path, "clicks.7.1.seg")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("segment file without a head: %v after Load, want it removed", err)
	}
}

// Two Dir values on one directory, as two processes would have, fence each
// other: the Save with the greatest Next wins, whatever the interleaving,
// and no Save leaves a head listing a segment another removed.
func TestDirFencingAcrossValues(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ckpt")
	var dirs [2]*checkpoint.Dir
	for i := range dirs {
		d, err := checkpoint.NewDir(path)
		if err != nil {
			t.Fatal(err)
		}
		dirs[i] = d
	}
	if err := dirs[0].Save(t.Context(), checkpoint.Checkpoint{Topic: "clicks", Partition: 0, Next: 100, Generation: 2}); err != nil {
		t.Fatal(err)
	}
	if err := dirs[1].Save(t.Context(), checkpoint.Checkpoint{Topic: "clicks", Partition: 0, Next: 200, Generation: 1}); !errors.Is(err, checkpoint.ErrFenced) {
		t.Fatalf("Save of an older generation through another Dir = %v, want ErrFenced", err)
	}
	const rounds, writers = 20, 16
	for r := range int64(rounds) {
		base := 1000 * (r + 1)
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for i := range int64(writers) {
			wg.Go(func() {
				// Each keeps the segment of the round before (if it is the
				// winner's) and adds its own; only the last must succeed.
				cp := checkpoint.Checkpoint{Topic: "clicks", Partition: 0, Next: base + i, Generation: 2,
					Segments: []checkpoint.Segment{{ID: uint64(base + i), Data: []byte{byte(i)}}}}
				if r > 0 {
					cp.Segments = append(cp.Segments, checkpoint.Segment{ID: uint64(base - 1000 + writers - 1)})
				}
				err := dirs[i%2].Save(t.Context(), cp)
				if err != nil && (i == writers-1 || !errors.Is(err, checkpoint.ErrFenced)) {
					errs <- fmt.Errorf("round %d: Save(next %d): %w", r, cp.Next, err)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		cp, err := dirs[r%2].Load(t.Context(), "clicks", 0)
		if err != nil || cp.Next != base+writers-1 {
			t.Fatalf("round %d: Load = next %d, %v; want %d", r, cp.Next, err, base+writers-1)
		}
	}
	if got := files(t, path, "*.seg"); len(got) != 2 {
		t.Fatalf("segment files = %v, want the two of the last checkpoint", got)
	}
}

// A head written before segments and generations (version 1) still loads.
func TestDirReadsVersion1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ckpt")
	d, err := checkpoint.NewDir(path)
	if err != nil {
		t.Fatal(err)
	}
	b := snap.AppendHeader(nil, "checkpoint", 1)
	b = snap.AppendString(b, "clicks")
	b = snap.AppendInt(b, 2)
	b = snap.AppendInt(b, 77)
	b = snap.AppendString(b, "old state")
	b = binary.LittleEndian.AppendUint32(b, crc32.ChecksumIEEE(b))
	if err := os.WriteFile(filepath.Join(path, "clicks.2.ckpt"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	cp, err := d.Load(t.Context(), "clicks", 2)
	if err != nil || cp.Next != 77 || cp.Generation != 0 || string(cp.State) != "old state" || len(cp.Segments) != 0 {
		t.Fatalf("Load of a version 1 head = %+v, %v", cp, err)
	}
}

func BenchmarkSave5k(b *testing.B) {
	d, err := checkpoint.NewDir(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	checkpointtest.Save5k(b, d)
}

func BenchmarkLoad5k(b *testing.B) {
	d, err := checkpoint.NewDir(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	checkpointtest.Load5k(b, d)
}
