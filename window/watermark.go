package window

import (
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

// Watermark tracks wm = max(event_ts of accepted events) - delay for one
// partition (SEMANTICS §3). The zero value is not usable; see NewWatermark.
type Watermark struct {
	delay    int64
	max      int64
	started  bool
	finished bool
}

// NewWatermark returns a watermark at -inf that lags the newest accepted
// event by delay.
func NewWatermark(delay time.Duration) *Watermark {
	return &Watermark{delay: delay.Milliseconds()}
}

// Current returns wm: NegInf before the first event, PosInf after Finish.
func (w *Watermark) Current() int64 {
	switch {
	case w.finished:
		return PosInf
	case !w.started:
		return NegInf
	}
	return w.max - w.delay
}

// IsLate reports whether an event at ts is late: ts < wm.
func (w *Watermark) IsLate(ts int64) bool { return ts < w.Current() }

// Observe moves wm for an accepted event at ts and reports whether it moved.
func (w *Watermark) Observe(ts int64) bool {
	if w.started && ts <= w.max {
		return false
	}
	w.max, w.started = ts, true
	return !w.finished
}

// Finish sets wm to +inf: the input has ended and everything may close.
func (w *Watermark) Finish() { w.finished = true }

const watermarkVersion = 1

// AppendBinary appends the watermark's state (encoding.BinaryAppender).
func (w *Watermark) AppendBinary(dst []byte) ([]byte, error) {
	dst = snap.AppendHeader(dst, "watermark", watermarkVersion)
	dst = snap.AppendInt(dst, w.delay)
	dst = snap.AppendInt(dst, w.max)
	dst = snap.AppendBool(dst, w.started)
	return snap.AppendBool(dst, w.finished), nil
}

// UnmarshalBinary restores what AppendBinary wrote.
func (w *Watermark) UnmarshalBinary(b []byte) error {
	r := snap.NewReader(b)
	r.Header("watermark", watermarkVersion)
	w.delay, w.max, w.started, w.finished = r.Int(), r.Int(), r.Bool(), r.Bool()
	return r.Done()
}
