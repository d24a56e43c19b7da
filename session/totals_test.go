package session

import "testing"

func TestTotals(t *testing.T) {
	var zero Totals
	if zero.BounceRate() != 0 || zero.AvgDurationMs() != 0 {
		t.Fatalf("empty totals: bounce rate %v, average %v; want 0, 0", zero.BounceRate(), zero.AvgDurationMs())
	}
	var a, b Totals
	a.Add(&Record{DurationMs: 0, Bounced: true})
	a.Add(&Record{DurationMs: 3000, Converted: true, Revenue: 9.5})
	b.Add(&Record{DurationMs: 1000, Converted: true, Revenue: 0.5})
	a.Merge(b)
	want := Totals{Sessions: 3, Bounced: 1, Converted: 2, DurationMs: 4000, Revenue: 10}
	if a != want {
		t.Fatalf("totals %+v, want %+v", a, want)
	}
	if a.BounceRate() != 1.0/3 || a.AvgDurationMs() != 4000.0/3 {
		t.Errorf("bounce rate %v, average %v; want 1/3, 4000/3", a.BounceRate(), a.AvgDurationMs())
	}
}
