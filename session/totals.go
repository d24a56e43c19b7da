package session

// Totals sums final sessions: how many, how many bounced and converted,
// their durations and revenue. The zero value is empty.
type Totals struct {
	Sessions, Bounced, Converted int64
	DurationMs                   int64 // the sum of the sessions' durations
	Revenue                      float64
}

// Add counts r.
func (t *Totals) Add(r *Record) {
	t.Sessions++
	if r.Bounced {
		t.Bounced++
	}
	if r.Converted {
		t.Converted++
	}
	t.DurationMs += r.DurationMs
	t.Revenue += r.Revenue
}

// Merge adds what o counted.
func (t *Totals) Merge(o Totals) {
	t.Sessions += o.Sessions
	t.Bounced += o.Bounced
	t.Converted += o.Converted
	t.DurationMs += o.DurationMs
	t.Revenue += o.Revenue
}

// BounceRate is Bounced / Sessions, 0 without sessions.
func (t Totals) BounceRate() float64 { return ratio(t.Bounced, t.Sessions) }

// AvgDurationMs is DurationMs / Sessions, 0 without sessions.
func (t Totals) AvgDurationMs() float64 { return ratio(t.DurationMs, t.Sessions) }

func ratio(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}
