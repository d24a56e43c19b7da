package kpi

import (
	"errors"
	"math"
)

// Defaults of SEMANTICS §8.
const (
	DefaultAnomalyWindow    = 30
	DefaultAnomalyMinPoints = 10
	DefaultAnomalyZ         = 3.0
)

// Anomaly is a conversion rate far from its baseline (SEMANTICS §8).
type Anomaly struct {
	Minute    int64   `json:"-"`
	Metric    string  `json:"metric"`
	Value     float64 `json:"value"`
	Mean      float64 `json:"mean"`
	Std       float64 `json:"std"`
	Z         float64 `json:"z"`
	Direction string  `json:"direction"` // "spike" or "drop"
}

// Detector scores final minutes' conversion rate against the previous
// window minutes that had sessions. Feed it final minutes in minute order.
type Detector struct {
	window, minPoints int
	z                 float64
	base              []float64 // ring of the last window values
	next              int
}

// ErrBadDetector is returned for non-positive settings.
var ErrBadDetector = errors.New("kpi: anomaly window, min points and z must be positive")

// NewDetector returns a detector with a baseline of window minutes, scoring
// from minPoints of them, flagging |z| >= z.
func NewDetector(window, minPoints int, z float64) (*Detector, error) {
	if window <= 0 || minPoints <= 0 || !(z > 0) {
		return nil, ErrBadDetector
	}
	return &Detector{window: window, minPoints: minPoints, z: z}, nil
}

// Observe scores a final minute and adds it to the baseline. Minutes without
// sessions are neither scored nor part of any baseline.
func (d *Detector) Observe(m *Minute) (Anomaly, bool) {
	if m.Sessions == 0 {
		return Anomaly{}, false
	}
	v := m.ConversionRate()
	a, found := d.score(m.Minute, v)
	if len(d.base) < d.window {
		d.base = append(d.base, v)
	} else {
		d.base[d.next] = v
		d.next = (d.next + 1) % d.window
	}
	return a, found
}

func (d *Detector) score(minute int64, v float64) (Anomaly, bool) {
	n := len(d.base)
	if n < d.minPoints {
		return Anomaly{}, false
	}
	var mean float64
	constant := true
	for _, x := range d.base {
		mean += x
		constant = constant && x == d.base[0]
	}
	if constant { // exactly zero deviation, whatever the rounding of the mean
		return Anomaly{}, false
	}
	mean /= float64(n)
	var ss float64
	for _, x := range d.base {
		ss += (x - mean) * (x - mean)
	}
	std := math.Sqrt(ss / float64(n))
	z := (v - mean) / std
	if math.Abs(z) < d.z {
		return Anomaly{}, false
	}
	dir := "spike"
	if z < 0 {
		dir = "drop"
	}
	return Anomaly{Minute: minute, Metric: "conversion_rate", Value: v, Mean: mean, Std: std, Z: z, Direction: dir}, true
}

// Baseline returns the values held, oldest first (for snapshots).
func (d *Detector) Baseline() []float64 {
	return append(append([]float64(nil), d.base[d.next:]...), d.base[:d.next]...)
}

// SetBaseline replaces the values held, oldest first.
func (d *Detector) SetBaseline(vs []float64) {
	if len(vs) > d.window {
		vs = vs[len(vs)-d.window:]
	}
	d.base, d.next = append([]float64(nil), vs...), 0
}
