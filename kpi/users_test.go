package kpi_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clickstreamkit/clickstream"
	"github.com/clickstreamkit/clickstream/kpi"
	"github.com/clickstreamkit/clickstream/window"
)

// SEMANTICS §6 sessions: a window counts its distinct users, in tumbling
// windows and in hopping ones (where an event falls in size/hop windows),
// whatever the order of arrival; and the count goes on right after Users
// is restored from its incremental segments halfway.
func TestUsersCountSessionsPerWindow(t *testing.T) {
	for _, tt := range []struct {
		name      string
		size, hop time.Duration
	}{
		{"tumbling 1m", time.Minute, time.Minute},
		{"tumbling 5m", 5 * time.Minute, 5 * time.Minute},
		{"hopping 3m every 1m", 3 * time.Minute, time.Minute},
		{"hopping 10m every 2m", 10 * time.Minute, 2 * time.Minute},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, uint64(tt.size)))
			size, hop := tt.size.Milliseconds(), tt.hop.Milliseconds()
			const delay = 2 * 60_000
			want := map[int64]map[string]bool{} // window start -> users
			got := map[int64]int64{}
			w, err := window.NewHopping[kpi.Obs](tt.size, tt.hop, func() *kpi.Partial { return kpi.NewPartial(clickstream.Currencies{Base: "EUR"}) })
			require.NoError(t, err)
			emit := func(start, _ int64, p *kpi.Partial) { got[start] = p.Minute(true).Sessions }
			users := kpi.NewUsers()
			users.Incremental()
			var segs [][]byte
			wm, newest := window.NegInf, int64(0)
			for i := range 4000 {
				ts := int64(i)*300 - r.Int64N(delay) + 1_000_000 // out of order, never late
				ts = max(ts, wm)
				e := &clickstream.Event{EventType: "page_view", UserID: fmt.Sprint("u", r.IntN(40)), TS: ts}
				for s := ts - ts%hop; s > ts-size; s -= hop {
					if want[s] == nil {
						want[s] = map[string]bool{}
					}
					want[s][e.UserID] = true
				}
				w.Add(ts, kpi.Obs{Event: e, Users: users})
				if newest = max(newest, ts); newest-delay > wm {
					wm = newest - delay
					w.Advance(wm, emit)
					users.Advance(wm)
				}
				if i%500 == 499 {
					if seg, _, _ := users.AppendFresh(nil, 1<<20); len(seg) > 0 {
						segs = append(segs, seg)
					}
				}
				if i == 2499 { // a restart from the segments so far
					users = kpi.NewUsers()
					users.Incremental()
					require.NoError(t, users.Restore(wm, segs...))
				}
			}
			w.Advance(window.PosInf, emit)
			require.Len(t, got, len(want))
			for s, us := range want {
				assert.Equal(t, int64(len(us)), got[s], "window at %d", s)
			}
		})
	}
}
