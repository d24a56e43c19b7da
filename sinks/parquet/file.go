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
// through fill, then finish puts the file in place (see parquetFile.finish).
func writeParquet[T any](dir, name string, stale []string, fill func(add func(T) error) error, same func(old, tmp string) (bool, error)) error {
	pf, err := createParquet[T](dir, name)
	if err != nil {
		return err
	}
	if err := fill(pf.add); err != nil {
		pf.abort()
		return fmt.Errorf("parquet: write %s: %w", filepath.Join(dir, name), err)
	}
	return pf.finish(name, stale, same)
}

// parquetFile is a Parquet file being written into a temporary file of its
// directory, which finish puts in place and abort removes. Rows may come in
// over time: the bytes depend only on the rows and their order.
//
// The writer runs with one goroutine (np = 1): with more, parquet-go builds
// dictionaries in goroutine order and the bytes would vary from run to run.
type parquetFile[T any] struct {
	dir  string
	f    *os.File
	bw   *bufio.Writer
	pw   *writer.ParquetWriter
	rows int
}

// createParquet starts a file meant to be named name in dir.
func createParquet[T any](dir, name string) (*parquetFile[T], error) {
	f, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("parquet: %w", err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	pw, err := writer.NewParquetWriterFromWriter(bw, new(T), 1)
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("parquet: %w", err)
	}
	pw.RowGroupSize = rowGroupBytes
	pw.PageSize = pageBytes
	pw.CompressionType = pq.CompressionCodec_SNAPPY
	return &parquetFile[T]{dir: dir, f: f, bw: bw, pw: pw}, nil
}

func (p *parquetFile[T]) add(row T) error {
	p.rows++
	return p.pw.Write(row)
}

// abort removes the temporary file.
func (p *parquetFile[T]) abort() {
	p.f.Close()
	os.Remove(p.f.Name())
}

// finish ends the file, fsyncs it, removes the names in stale, renames it
// to dir/name and fsyncs dir.
//
// A file never replaces another of its name: when dir/name exists with the
// same bytes (a replay), it is kept; with other bytes, finish fails with
// ErrConflict and leaves it alone, unless same (when not nil) finds the two
// files' rows equivalent, when it is kept too.
func (p *parquetFile[T]) finish(name string, stale []string, same func(old, tmp string) (bool, error)) error {
	err := p.pw.WriteStop()
	if err == nil {
		err = errors.Join(p.bw.Flush(), p.f.Sync())
	}
	err = errors.Join(err, p.f.Close())
	path := filepath.Join(p.dir, name)
	exists := false
	if err == nil {
		exists, err = keepExisting(path, p.f.Name(), same)
	}
	if err == nil {
		for _, s := range stale {
			if s != name {
				if err = os.Remove(filepath.Join(p.dir, s)); err != nil && !errors.Is(err, os.ErrNotExist) {
					break
				}
				err = nil
			}
		}
	}
	if err == nil && exists {
		err = os.Remove(p.f.Name())
	} else if err == nil {
		err = os.Rename(p.f.Name(), path)
	}
	if err == nil {
		err = syncDir(p.dir)
	}
	if err != nil {
		os.Remove(p.f.Name())
		return fmt.Errorf("parquet: write %s: %w", path, err)
	}
	return nil
}

// keepExisting reports whether path exists and is to be kept in place of
// tmp: with the same bytes, or rows same finds equivalent. With other
// content it returns ErrConflict.
func keepExisting(path, tmp string, same func(old, tmp string) (bool, error)) (bool, error) {
	eq, err := sameBytes(path, tmp)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil || eq {
		return eq, err
	}
	if same != nil {
		if eq, err = same(path, tmp); err != nil || eq {
			return eq, err
		}
	}
	return false, ErrConflict
}

// sameBytes reports whether files a and b hold the same bytes.
func sameBytes(a, b string) (bool, error) {
	fa, err := os.Open(a)
	if err != nil {
		return false, err
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return false, err
	}
	defer fb.Close()
	sa, err := fa.Stat()
	if err != nil {
		return false, err
	}
	sb, err := fb.Stat()
	if err != nil {
		return false, err
	}
	if sa.Size() != sb.Size() {
		return false, nil
	}
	ra, rb := bufio.NewReaderSize(fa, 1<<16), bufio.NewReaderSize(fb, 1<<16)
	bufA, bufB := make([]byte, 1<<16), make([]byte, 1<<16)
	for {
		na, errA := io.ReadFull(ra, bufA)
		nb, errB := io.ReadFull(rb, bufB)
		if na != nb || !bytes.Equal(bufA[:na], bufB[:nb]) {
			return false, nil
		}
		if errA == io.EOF || errA == io.ErrUnexpectedEOF {
			return errB == io.EOF || errB == io.ErrUnexpectedEOF, nil
		}
		if err := errors.Join(errA, errB); err != nil {
			return false, err
		}
	}
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
