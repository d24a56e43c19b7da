package window

import (
	"encoding"
	"errors"
	"fmt"
	"time"

	"github.com/clickstreamkit/clickstream/internal/snap"
)

// Aggregate is the per-window state of a [TumblingWindow]: it folds values of
// type T. Reset readies a recycled aggregate for the window [start, end).
type Aggregate[T any] interface {
	Add(v T)
	Reset(start, end int64)
}

// TumblingWindow assigns values by event time to epoch-aligned windows
// [start, start+size), keeping one aggregate per open window. With a hop
// shorter than the size it is a hopping (sliding) window and each value lands
// in size/hop windows. A window is final once the watermark reaches its end;
// before that its running value can be read as an update.
//
// Aggregates are recycled: one handed to an emit callback must not be kept
// after the callback returns.
type TumblingWindow[T any, A Aggregate[T]] struct {
	size, hop int64
	newAgg    func() A
	open      []slot[A] // sorted by start
	free      []A
}

type slot[A any] struct {
	start int64
	agg   A
	dirty bool
}

// ErrBadSize is returned for a non-positive size, or a hop that does not
// divide the size.
var ErrBadSize = errors.New("window: size must be a positive multiple of the hop")

// NewTumbling returns tumbling windows of the given size; newAgg makes empty
// aggregates.
func NewTumbling[T any, A Aggregate[T]](size time.Duration, newAgg func() A) (*TumblingWindow[T, A], error) {
	return NewHopping[T](size, size, newAgg)
}

// NewHopping returns windows of the given size starting every hop.
func NewHopping[T any, A Aggregate[T]](size, hop time.Duration, newAgg func() A) (*TumblingWindow[T, A], error) {
	s, h := size.Milliseconds(), hop.Milliseconds()
	if s <= 0 || h <= 0 || s%h != 0 {
		return nil, fmt.Errorf("%w: size %v, hop %v", ErrBadSize, size, hop)
	}
	return &TumblingWindow[T, A]{size: s, hop: h, newAgg: newAgg}, nil
}

// Size returns the window length in milliseconds.
func (w *TumblingWindow[T, A]) Size() int64 { return w.size }

// Start returns the start of the latest window containing ts.
func (w *TumblingWindow[T, A]) Start(ts int64) int64 { return floorDiv(ts, w.hop) * w.hop }

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// Add folds v into every window containing ts. The caller has checked that ts
// is not late; a value for a window already emitted as final opens it again.
func (w *TumblingWindow[T, A]) Add(ts int64, v T) {
	for start := w.Start(ts); start > ts-w.size; start -= w.hop {
		s := w.slot(start)
		s.agg.Add(v)
		s.dirty = true
	}
}

// slot finds or opens the window starting at start; the newest is the usual hit.
func (w *TumblingWindow[T, A]) slot(start int64) *slot[A] {
	i := len(w.open)
	for i > 0 && w.open[i-1].start > start {
		i--
	}
	if i > 0 && w.open[i-1].start == start {
		return &w.open[i-1]
	}
	var agg A
	if n := len(w.free); n > 0 {
		agg, w.free = w.free[n-1], w.free[:n-1]
	} else {
		agg = w.newAgg()
	}
	agg.Reset(start, start+w.size)
	w.open = append(w.open, slot[A]{})
	copy(w.open[i+1:], w.open[i:])
	w.open[i] = slot[A]{start: start, agg: agg}
	return &w.open[i]
}

// Advance emits, in start order, every window whose end is <= wm, as final,
// and recycles it.
func (w *TumblingWindow[T, A]) Advance(wm int64, emit func(start, end int64, agg A)) {
	n := 0
	for n < len(w.open) && w.open[n].start+w.size <= wm {
		s := w.open[n]
		emit(s.start, s.start+w.size, s.agg)
		w.free = append(w.free, s.agg)
		n++
	}
	if n > 0 {
		m := copy(w.open, w.open[n:])
		clear(w.open[m:])
		w.open = w.open[:m]
	}
}

// Updates emits, in start order, every open window that changed since its
// last update, and marks it clean.
func (w *TumblingWindow[T, A]) Updates(emit func(start, end int64, agg A)) {
	for i := range w.open {
		if s := &w.open[i]; s.dirty {
			emit(s.start, s.start+w.size, s.agg)
			s.dirty = false
		}
	}
}

// Open returns the number of open windows.
func (w *TumblingWindow[T, A]) Open() int { return len(w.open) }

const windowVersion = 1

// AppendBinary appends the open windows (encoding.BinaryAppender). The
// aggregate type must implement encoding.BinaryAppender.
func (w *TumblingWindow[T, A]) AppendBinary(dst []byte) ([]byte, error) {
	dst = snap.AppendHeader(dst, "window", windowVersion)
	dst = snap.AppendInt(dst, w.size)
	dst = snap.AppendInt(dst, w.hop)
	dst = snap.AppendUint(dst, uint64(len(w.open)))
	for _, s := range w.open {
		ba, ok := any(s.agg).(encoding.BinaryAppender)
		if !ok {
			return dst, fmt.Errorf("window: aggregate %T cannot be snapshotted", s.agg)
		}
		dst = snap.AppendInt(dst, s.start)
		dst = snap.AppendBool(dst, s.dirty)
		b, err := ba.AppendBinary(nil)
		if err != nil {
			return dst, err
		}
		dst = snap.AppendString(dst, string(b))
	}
	return dst, nil
}

// UnmarshalBinary replaces the open windows with those AppendBinary wrote.
// The aggregate type must implement encoding.BinaryUnmarshaler.
func (w *TumblingWindow[T, A]) UnmarshalBinary(b []byte) error {
	r := snap.NewReader(b)
	r.Header("window", windowVersion)
	if size, hop := r.Int(), r.Int(); r.Err() == nil && (size != w.size || hop != w.hop) {
		return fmt.Errorf("window: snapshot of size %d hop %d, configured %d/%d", size, hop, w.size, w.hop)
	}
	n := r.Len()
	open := make([]slot[A], 0, n)
	for range n {
		s := slot[A]{start: r.Int(), dirty: r.Bool(), agg: w.newAgg()}
		data := r.String()
		if r.Err() != nil {
			break
		}
		bu, ok := any(s.agg).(encoding.BinaryUnmarshaler)
		if !ok {
			return fmt.Errorf("window: aggregate %T cannot be restored", s.agg)
		}
		if err := bu.UnmarshalBinary([]byte(data)); err != nil {
			return fmt.Errorf("window at %d: %w", s.start, err)
		}
		open = append(open, s)
	}
	if err := r.Done(); err != nil {
		return err
	}
	w.open = open
	return nil
}
