package window

import (
	"fmt"
	"math"
	"time"

	"github.com/clickstreamkit/clickstream/internal/snap"
)

// NegInf and PosInf are the watermark before the first event and after the
// end of a finite input.
const (
	NegInf int64 = math.MinInt64
	PosInf int64 = math.MaxInt64
)

// DefaultWatermarkDelay is SEMANTICS §3's watermark_delay.
const DefaultWatermarkDelay = 10 * time.Minute

// Watermark tracks one partition's wm (SEMANTICS §3, §11): the newest
// accepted event_ts less the delay, never below a floor that only rises (an
// idle partition's advance to processing time - delay, or the end of an
// earlier finite input). The zero value is not usable; see NewWatermark.
type Watermark struct {
	delay    int64
	max      int64
	started  bool
	floor    int64
	finished bool // +inf until the process ends; never in a snapshot
}

// NewWatermark returns a watermark at -inf that lags the newest accepted
// event by delay.
func NewWatermark(delay time.Duration) *Watermark {
	return &Watermark{delay: delay.Milliseconds(), floor: NegInf}
}

// Current returns wm: NegInf before the first event and any advance,
// PosInf after Finish.
func (w *Watermark) Current() int64 {
	switch {
	case w.finished:
		return PosInf
	case !w.started:
		return w.floor
	}
	return max(w.max-w.delay, w.floor)
}

// IsLate reports whether an event at ts is late: ts < wm.
func (w *Watermark) IsLate(ts int64) bool { return ts < w.Current() }

// Max returns the newest accepted event_ts, and false before the first.
func (w *Watermark) Max() (int64, bool) { return w.max, w.started }

// Observe moves wm for an accepted event at ts and reports whether it moved.
func (w *Watermark) Observe(ts int64) bool {
	if w.started && ts <= w.max {
		return false
	}
	before := w.Current()
	w.max, w.started = ts, true
	return w.Current() > before
}

// AdvanceTo raises wm to at least t without an event (SEMANTICS §11) and
// reports whether it moved.
func (w *Watermark) AdvanceTo(t int64) bool {
	if t <= w.Current() {
		return false
	}
	w.floor = t
	return true
}

// Finish sets wm to +inf: the input has ended and everything may close. It
// is not part of the snapshot: a later run over the same state goes on from
// the floor (see AdvanceTo).
func (w *Watermark) Finish() { w.finished = true }

const watermarkVersion = 2

// AppendBinary appends the watermark's state (encoding.BinaryAppender). The
// delay is there only to be checked on restore.
func (w *Watermark) AppendBinary(dst []byte) ([]byte, error) {
	dst = snap.AppendHeader(dst, "watermark", watermarkVersion)
	dst = snap.AppendInt(dst, w.delay)
	dst = snap.AppendInt(dst, w.max)
	dst = snap.AppendBool(dst, w.started)
	return snap.AppendInt(dst, w.floor), nil
}

// UnmarshalBinary restores what AppendBinary wrote into a watermark of the
// same delay; a snapshot taken with another delay is refused.
func (w *Watermark) UnmarshalBinary(b []byte) error {
	r := snap.NewReader(b)
	if v := r.Header("watermark", watermarkVersion); v != watermarkVersion && r.Err() == nil {
		return fmt.Errorf("%w: watermark snapshot version %d", snap.ErrCorrupt, v)
	}
	delay, m, started, floor := r.Int(), r.Int(), r.Bool(), r.Int()
	if err := r.Done(); err != nil {
		return err
	}
	if delay != w.delay {
		return fmt.Errorf("watermark: snapshot taken with watermark_delay %v, configured %v",
			time.Duration(delay)*time.Millisecond, time.Duration(w.delay)*time.Millisecond)
	}
	w.max, w.started, w.floor, w.finished = m, started, floor, false
	return nil
}
