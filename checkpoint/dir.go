package checkpoint

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"

	"github.com/clickstreamkit/clickstream/internal/snap"
)

var _ Store = (*Dir)(nil)

// Dir keeps each partition's checkpoint in a file of a directory, replaced
// by writing a temporary file, fsyncing it, renaming it over the old one and
// fsyncing the directory. A CRC guards each file.
type Dir struct{ path string }

// NewDir returns a store in path, creating the directory if needed.
func NewDir(path string) (*Dir, error) {
	if err := os.MkdirAll(path, 0o755); err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	return &Dir{path: path}, nil
}

func (d *Dir) file(topic string, partition int32) string {
	return filepath.Join(d.path, fmt.Sprintf("%s.%d.ckpt", url.PathEscape(topic), partition))
}

const fileVersion = 1

// Save writes cp durably.
func (d *Dir) Save(_ context.Context, cp Checkpoint) error {
	body := snap.AppendHeader(nil, "checkpoint", fileVersion)
	body = snap.AppendString(body, cp.Topic)
	body = snap.AppendInt(body, int64(cp.Partition))
	body = snap.AppendInt(body, cp.Next)
	body = snap.AppendString(body, string(cp.State))
	body = binary.LittleEndian.AppendUint32(body, crc32.ChecksumIEEE(body))
	f, err := os.CreateTemp(d.path, ".ckpt-*")
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	_, err = f.Write(body)
	err = errors.Join(err, f.Sync(), f.Close())
	if err == nil {
		err = os.Rename(f.Name(), d.file(cp.Topic, cp.Partition))
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("checkpoint: save %s/%d: %w", cp.Topic, cp.Partition, err)
	}
	return syncDir(d.path)
}

func syncDir(path string) error {
	dir, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return errors.Join(dir.Sync(), dir.Close())
}
// Durable reports true: Save returns once the file and its directory are
// fsynced.
func (*Dir) Durable() bool { return true }


// Load reads the partition's checkpoint.
func (d *Dir) Load(_ context.Context, topic string, partition int32) (Checkpoint, error) {
	b, err := os.ReadFile(d.file(topic, partition))
	if errors.Is(err, fs.ErrNotExist) {
		return Checkpoint{}, ErrNotFound
	}
	if err != nil {
		return Checkpoint{}, fmt.Errorf("checkpoint: %w", err)
	}
	if len(b) < 4 || crc32.ChecksumIEEE(b[:len(b)-4]) != binary.LittleEndian.Uint32(b[len(b)-4:]) {
		return Checkpoint{}, fmt.Errorf("checkpoint: %s/%d: %w: bad checksum", topic, partition, snap.ErrCorrupt)
	}
	r := snap.NewReader(b[:len(b)-4])
	r.Header("checkpoint", fileVersion)
	cp := Checkpoint{Topic: r.String(), Partition: int32(r.Int()), Next: r.Int(), State: []byte(r.String())}
	if err := r.Done(); err != nil {
		return Checkpoint{}, fmt.Errorf("checkpoint: %s/%d: %w", topic, partition, err)
	}
	return cp, nil
}
