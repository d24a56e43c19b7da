// Package snap is the binary encoding of operator snapshots: append-style
// writers and a reader that records the first error, so decoders stay linear.
package snap

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// ErrCorrupt is returned for truncated or malformed snapshots.
var ErrCorrupt = errors.New("corrupt snapshot")

// AppendHeader starts a snapshot of kind (a short name) at version.
func AppendHeader(dst []byte, kind string, version uint64) []byte {
	dst = AppendString(dst, kind)
	return binary.AppendUvarint(dst, version)
}

// AppendUint appends an unsigned varint.
func AppendUint(dst []byte, v uint64) []byte { return binary.AppendUvarint(dst, v) }

// AppendInt appends a signed varint.
func AppendInt(dst []byte, v int64) []byte { return binary.AppendVarint(dst, v) }

// AppendFloat appends a float64 bit-exactly.
func AppendFloat(dst []byte, v float64) []byte {
	return binary.LittleEndian.AppendUint64(dst, math.Float64bits(v))
}

// AppendBool appends a bool.
func AppendBool(dst []byte, v bool) []byte {
	if v {
		return append(dst, 1)
	}
	return append(dst, 0)
}

// AppendString appends a length-prefixed string.
func AppendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// AppendSection appends what appendTo appends, behind its length as 4
// bytes, without copying it.
func AppendSection(dst []byte, appendTo func([]byte) ([]byte, error)) ([]byte, error) {
	at := len(dst)
	dst, err := appendTo(append(dst, 0, 0, 0, 0))
	if err != nil {
		return nil, err
	}
	n := len(dst) - at - 4
	if uint64(n) > math.MaxUint32 {
		return nil, fmt.Errorf("snap: section of %d bytes", n)
	}
	binary.LittleEndian.PutUint32(dst[at:], uint32(n))
	return dst, nil
}

// Reader decodes what the Append functions wrote. After the first error every
// method returns zero values; Err reports it.
type Reader struct {
	b   []byte
	err error
}

// NewReader reads b.
func NewReader(b []byte) *Reader { return &Reader{b: b} }

// Err returns the first error met, or ErrCorrupt if bytes remain unread when
// done is true.
func (r *Reader) Err() error { return r.err }

// Done reports an error when unread bytes remain, then returns Err.
func (r *Reader) Done() error {
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(r.b))
	}
	return r.err
}

func (r *Reader) fail() {
	if r.err == nil {
		r.err = ErrCorrupt
	}
	r.b = nil
}

// Header checks the kind and returns the version, failing when the version is
// above max.
func (r *Reader) Header(kind string, max uint64) uint64 {
	if k := r.String(); k != kind && r.err == nil {
		r.err = fmt.Errorf("%w: kind %q, want %q", ErrCorrupt, k, kind)
		return 0
	}
	v := r.Uint()
	if v > max && r.err == nil {
		r.err = fmt.Errorf("%w: %s version %d is newer than %d", ErrCorrupt, kind, v, max)
	}
	return v
}

// Uint reads an unsigned varint.
func (r *Reader) Uint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

// Len reads a count and checks it against the bytes left, each element taking
// at least one byte, so corrupt input cannot make a decoder allocate wildly.
func (r *Reader) Len() int {
	v := r.Uint()
	if v > uint64(len(r.b)) {
		r.fail()
		return 0
	}
	return int(v)
}

// Int reads a signed varint.
func (r *Reader) Int() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

// Fixed64 reads a little-endian uint64.
func (r *Reader) Fixed64() uint64 {
	if len(r.b) < 8 {
		r.fail()
		return 0
	}
	v := binary.LittleEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

// Float reads a float64.
func (r *Reader) Float() float64 {
	if len(r.b) < 8 {
		r.fail()
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(r.b))
	r.b = r.b[8:]
	return v
}

// Bool reads a bool.
func (r *Reader) Bool() bool {
	if len(r.b) < 1 || r.b[0] > 1 {
		r.fail()
		return false
	}
	v := r.b[0] == 1
	r.b = r.b[1:]
	return v
}

// More reports whether bytes remain to be read, and no error happened.
func (r *Reader) More() bool { return r.err == nil && len(r.b) > 0 }

// Section reads what AppendSection wrote; the result shares the reader's
// bytes.
func (r *Reader) Section() []byte {
	if len(r.b) < 4 {
		r.fail()
		return nil
	}
	n := uint64(binary.LittleEndian.Uint32(r.b))
	if n > uint64(len(r.b)-4) {
		r.fail()
		return nil
	}
	s := r.b[4 : 4+n : 4+n]
	r.b = r.b[4+n:]
	return s
}

// String reads a length-prefixed string.
func (r *Reader) String() string {
	n := r.Len()
	if r.err != nil {
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}
