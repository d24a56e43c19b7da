package parquet

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	pq "github.com/xitongsys/parquet-go/parquet"
	"github.com/xitongsys/parquet-go/reader"
	"github.com/xitongsys/parquet-go/source"
	"github.com/xitongsys/parquet-go/writer"
)

const (
	// rowGroupBytes bounds a row group (and the memory a file's writer
	// holds): a default chunk of 100,000 events fits in one.
	rowGroupBytes = 64 << 20
	pageBytes     = 64 << 10
)

// writeParquet writes dir/name through a temporary file in dir: rows go in
// through fill, the file is fsynced, the names in stale are removed, the
// file is renamed into place and dir is fsynced.
//
// The writer runs with one goroutine (np = 1): with more, parquet-go builds
// dictionaries in goroutine order and the bytes would vary from run to run.
func writeParquet[T any](dir, name string, stale []string, fill func(add func(T) error) error) error {
	f, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return fmt.Errorf("parquet: %w", err)
	}
	err = func() error {
		bw := bufio.NewWriterSize(f, 1<<20)
		pw, err := writer.NewParquetWriterFromWriter(bw, new(T), 1)
		if err != nil {
			return err
		}
		pw.RowGroupSize = rowGroupBytes
		pw.PageSize = pageBytes
		pw.CompressionType = pq.CompressionCodec_SNAPPY
		if err := fill(func(row T) error { return pw.Write(row) }); err != nil {
			return err
		}
		if err := pw.WriteStop(); err != nil {
			return err
		}
		return errors.Join(bw.Flush(), f.Sync())
	}()
	err = errors.Join(err, f.Close())
	if err == nil {
		for _, s := range stale {
			if s != name {
				if err = os.Remove(filepath.Join(dir, s)); err != nil && !errors.Is(err, os.ErrNotExist) {
					break
				}
				err = nil
			}
		}
	}
	if err == nil {
		err = os.Rename(f.Name(), filepath.Join(dir, name))
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("parquet: write %s: %w", filepath.Join(dir, name), err)
	}
	return nil
}

// readParquet reads every row of the Parquet file at path with parquet-go's
// reader.
func readParquet[T any](path string) (rows []T, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("parquet: %w", err)
	}
	defer func() {
		if r := recover(); r != nil { // parquet-go panics on some corrupt input
			rows, err = nil, fmt.Errorf("parquet: read %s: %w: %v", path, ErrCorrupt, r)
		}
	}()
	pr, err := reader.NewParquetReader(newMemFile(data), new(T), 1)
	if err != nil {
		return nil, fmt.Errorf("parquet: read %s: %w", path, err)
	}
	defer pr.ReadStop()
	rows = make([]T, pr.GetNumRows())
	if len(rows) > 0 {
		if err := pr.Read(&rows); err != nil {
			return nil, fmt.Errorf("parquet: read %s: %w", path, err)
		}
	}
	return rows, nil
}

// memFile is a read-only source.ParquetFile over a file's bytes; Open gives
// each column reader its own cursor.
type memFile struct {
	data []byte
	*bytes.Reader
}

var _ source.ParquetFile = (*memFile)(nil)

func newMemFile(data []byte) *memFile { return &memFile{data: data, Reader: bytes.NewReader(data)} }

func (m *memFile) Open(string) (source.ParquetFile, error) { return newMemFile(m.data), nil }

func (m *memFile) Create(string) (source.ParquetFile, error) {
	return nil, errors.New("parquet: read-only file")
}

func (m *memFile) Write([]byte) (int, error) { return 0, errors.New("parquet: read-only file") }

func (m *memFile) Close() error { return nil }

// Read fills p unless the data ends, as parquet-go expects.
func (m *memFile) Read(p []byte) (int, error) {
	n, err := io.ReadFull(m.Reader, p)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		err = io.EOF
	}
	return n, err
}
