package checkpoint_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

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
			if !errors.Is(err, snap.ErrCorrupt) {
				t.Fatalf("Load of a damaged file = next %d, %v; want an error wrapping snap.ErrCorrupt", cp.Next, err)
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
