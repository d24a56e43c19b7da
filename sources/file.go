package sources

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

var _ Source = (*File)(nil)

// File reads a JSON-lines file as one partition (topic = the path, partition
// 0; every batch says Partitions 1): one message a line, offset = 0-based line number. A trailing '\r' is
// dropped; empty lines are messages too (they are malformed events). Commit
// is recorded but a File always starts at line 0.
type File struct {
	mu        sync.Mutex
	f         *os.File
	r         *bufio.Reader
	path      string
	line      int64
	batch     int
	maxLine   int
	committed int64
	done      bool // no message left
	ended     bool // the End notice went out
	eof       bool // the file ended with a line end
}

// OpenFile opens path. Lines longer than maxLine bytes are delivered cut to
// maxLine+1 bytes, so that they fail validation as too large without being
// held whole.
func OpenFile(path string, maxLine int) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("sources: %w", err)
	}
	return &File{f: f, r: bufio.NewReaderSize(f, 1<<20), path: path, batch: 4096, maxLine: maxLine}, nil
}

// Read returns up to 4096 lines in one batch whose values share one buffer;
// the batch that reaches the end of the file is marked End (a notice without
// lines when none is left), and later Reads return ErrEndOfInput.
func (s *File) Read(ctx context.Context) (Batch, error) {
	if err := ctx.Err(); err != nil {
		return Batch{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return Batch{}, ErrClosed
	}
	if s.ended {
		return Batch{}, ErrEndOfInput
	}
	b := Batch{Topic: s.path, Partitions: 1, Messages: make([]Message, 0, s.batch)}
	buf := make([]byte, 0, 512*s.batch)
	for len(b.Messages) < s.batch {
		if len(buf)+s.maxLine+1 > cap(buf) { // a new buffer: earlier values stay intact
			buf = make([]byte, 0, max(s.maxLine+1, 512*s.batch))
		}
		start := len(buf)
		var err error
		buf, err = s.appendLine(buf)
		if errors.Is(err, io.EOF) && len(buf) == start && s.eof {
			s.done = true
			break
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return Batch{}, fmt.Errorf("sources: read %s: %w", s.path, err)
		}
		b.Messages = append(b.Messages, Message{Topic: s.path, Offset: s.line, Value: buf[start:len(buf):len(buf)]})
		s.line++
		if errors.Is(err, io.EOF) {
			s.done = true
			break
		}
	}
	b.End, s.ended = s.done, s.done
	return b, nil
}

// appendLine appends the next line without its end to dst, cut at maxLine+1
// bytes. At the end of the file it returns io.EOF, with s.eof set when no
// byte of a line was left.
func (s *File) appendLine(dst []byte) ([]byte, error) {
	start := len(dst)
	full := 0 // bytes of the line, cut or not
	for {
		frag, err := s.r.ReadSlice('\n')
		body := frag
		if err == nil {
			body = frag[:len(frag)-1]
		}
		if room := s.maxLine + 1 - (len(dst) - start); room > 0 {
			dst = append(dst, body[:min(len(body), room)]...)
		}
		full += len(body)
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err != nil && !errors.Is(err, io.EOF):
			return dst, err
		case errors.Is(err, io.EOF) && full == 0:
			s.eof = true
			return dst, io.EOF
		}
		if n := len(dst); full == n-start && n > start && dst[n-1] == '\r' {
			dst = dst[:n-1]
		}
		return dst, err
	}
}

// Commit records next.
func (s *File) Commit(_ context.Context, _ string, _ int32, next int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return ErrClosed
	}
	s.committed = max(s.committed, next)
	return nil
}

// Close closes the file.
func (s *File) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}
