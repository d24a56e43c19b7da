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
// 0): one message a line, offset = 0-based line number. A trailing '\r' is
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
	done      bool
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

// Read returns up to 4096 lines in one batch whose values share one buffer.
func (s *File) Read(ctx context.Context) (Batch, error) {
	if err := ctx.Err(); err != nil {
		return Batch{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return Batch{}, ErrClosed
	}
	if s.done {
		return Batch{}, ErrEndOfInput
	}
	b := Batch{Topic: s.path, Messages: make([]Message, 0, s.batch)}
	buf := make([]byte, 0, 512*s.batch)
	for len(b.Messages) < s.batch {
		line, err := s.readLine()
		if errors.Is(err, io.EOF) && line == nil {
			s.done = true
			break
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return Batch{}, fmt.Errorf("sources: read %s: %w", s.path, err)
		}
		if cap(buf)-len(buf) < len(line) { // keep earlier values intact
			buf = make([]byte, 0, max(len(line), 512*s.batch))
		}
		start := len(buf)
		buf = append(buf, line...)
		b.Messages = append(b.Messages, Message{Topic: s.path, Offset: s.line, Value: buf[start:len(buf):len(buf)]})
		s.line++
		if errors.Is(err, io.EOF) {
			s.done = true
			break
		}
	}
	if len(b.Messages) == 0 {
		return Batch{}, ErrEndOfInput
	}
	return b, nil
}

// readLine returns the next line without its end, cut at maxLine+1 bytes; a
// nil line with io.EOF means the file has ended.
func (s *File) readLine() ([]byte, error) {
	line := []byte{}
	full := 0 // bytes of the line, cut or not
	for {
		frag, err := s.r.ReadSlice('\n')
		body := frag
		if err == nil {
			body = frag[:len(frag)-1]
		}
		if room := s.maxLine + 1 - len(line); room > 0 {
			line = append(line, body[:min(len(body), room)]...)
		}
		full += len(body)
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err != nil && !errors.Is(err, io.EOF):
			return nil, err
		case errors.Is(err, io.EOF) && full == 0:
			return nil, io.EOF
		}
		if full == len(line) && len(line) > 0 && line[len(line)-1] == '\r' {
			line = line[:len(line)-1]
		}
		return line, err
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
