package pipeline_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clickstreamkit/clickstream"
	"github.com/clickstreamkit/clickstream/checkpoint"
	"github.com/clickstreamkit/clickstream/funnel"
	"github.com/clickstreamkit/clickstream/pipeline"
	"github.com/clickstreamkit/clickstream/sources"
)

// settingChange is one setting changed between a checkpoint and a restart.
type settingChange struct {
	name    string
	refused bool // whether a checkpoint of the old setting must be refused
	change  func(*pipeline.Config)
}

// settingChanges returns a change of each setting a checkpoint depends on,
// for cfg, each still valid.
func settingChanges(cfg pipeline.Config) []settingChange {
	cs := []settingChange{
		{"watermark_delay", true, func(c *pipeline.Config) { c.WatermarkDelay += 30 * time.Second }},
		{"session_gap", true, func(c *pipeline.Config) { c.SessionGap += time.Minute }},
		{"window_size", true, func(c *pipeline.Config) {
			if c.WindowSize*2 <= c.SessionGap {
				c.WindowSize *= 2
			} else {
				c.WindowSize /= 2
			}
		}},
		{"funnel steps", true, func(c *pipeline.Config) {
			if slices.Equal(c.FunnelSteps, funnel.DefaultSteps) {
				c.FunnelSteps = []string{"page_view", "purchase"}
			} else {
				c.FunnelSteps = funnel.DefaultSteps
			}
		}},
		{"funnel steps order", true, func(c *pipeline.Config) {
			c.FunnelSteps = slices.Clone(c.FunnelSteps)
			slices.Reverse(c.FunnelSteps)
			if slices.Equal(c.FunnelSteps, cfg.FunnelSteps) {
				c.FunnelSteps = append(c.FunnelSteps, "purchase")
			}
		}},
		{"funnel scope", true, func(c *pipeline.Config) {
			if c.FunnelScope == funnel.ScopeUser {
				c.FunnelScope = funnel.ScopeSession
			} else {
				c.FunnelScope = funnel.ScopeUser
			}
		}},
	}
	// conversion_window matters in user scope only, funnel_breakdown in
	// session scope only
	cs = append(cs, settingChange{"conversion_window", cfg.FunnelScope == funnel.ScopeUser,
		func(c *pipeline.Config) { c.ConversionWindow += 30 * time.Second }})
	cs = append(cs, settingChange{"funnel_breakdown", cfg.FunnelScope == funnel.ScopeSession,
		func(c *pipeline.Config) {
			if c.FunnelBreakdown == funnel.DeviceOS {
				c.FunnelBreakdown = ""
			} else {
				c.FunnelBreakdown = funnel.DeviceOS
			}
		}})
	return cs
}

func cloneCheckpoint(cp checkpoint.Checkpoint) checkpoint.Checkpoint {
	cp.State = slices.Clone(cp.State)
	segs := make([]checkpoint.Segment, len(cp.Segments))
	for i, s := range cp.Segments {
		segs[i] = checkpoint.Segment{ID: s.ID, Data: slices.Clone(s.Data)}
	}
	cp.Segments = segs
	return cp
}

// SEMANTICS §10 with a settings change: a checkpoint taken with other
// window_size, session_gap, watermark_delay or funnel settings is refused
// with a permanent error, and the refused attempt changes nothing: neither
// the checkpoint nor the processor it was offered to. A restart with the
// original settings then goes on as if nothing had happened.
func TestRestartAfterSettingsChange(t *testing.T) {
	refused := map[string]int{}
	for _, seed := range seeds(20) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			cfg, values := randomCase(seed)
			t.Log(describe(cfg))
			whole := run(t, cfg, values, rand.New(rand.NewPCG(seed, 1)), -1)
			r := rand.New(rand.NewPCG(seed, 2))
			cut := r.IntN(len(values) + 1)
			h := newHarness(t, cfg, rand.New(rand.NewPCG(seed, 3)))
			h.feed(values[:cut], 0.3*r.Float64(), nil)
			h.save()
			stored, err := h.store.Load(context.Background(), "t", 0)
			require.NoError(t, err)
			kept := cloneCheckpoint(stored)

			for _, sc := range settingChanges(cfg) {
				changed := cfg
				sc.change(&changed)
				q, err := pipeline.NewProcessor(changed, "t", 0)
				require.NoError(t, err, sc.name)
				err = q.Restore(stored)
				if !sc.refused {
					assert.NoError(t, err, sc.name)
					continue
				}
				require.Error(t, err, "a checkpoint of another %s restored", sc.name)
				assert.True(t, errors.Is(err, clickstream.ErrPermanent), "%s: %v is not permanent", sc.name, err)
				assert.Equal(t, kept, stored, "%s: the refused restore changed the checkpoint", sc.name)
				refused[sc.name]++
			}
			again, err := h.store.Load(context.Background(), "t", 0)
			require.NoError(t, err)
			assert.Equal(t, kept, again, "the stored checkpoint changed")

			h.restart(cfg)
			require.Equal(t, cut, h.next)
			h.feed(values, 0.3*r.Float64(), nil)
			h.finish()
			got := h.output()
			sameResults(t, whole, got)
			compare(t, reference(cfg, values, processingTime), got)
		})
	}
	t.Logf("refused restores: %v", refused)
}

// A refused restore leaves the processor it was offered to as it was: a
// caller that goes on with it (from scratch, say) must not find part of the
// checkpoint's state in it. One event is enough to tell.
func TestRestartRefusedChangesNothing(t *testing.T) {
	for name, scope := range map[string]funnel.Scope{"session": funnel.ScopeSession, "user": funnel.ScopeUser} {
		cfg := pipeline.DefaultConfig()
		cfg.Clock = func() time.Time { return processingTime }
		cfg.FunnelScope = scope
		p, err := pipeline.NewProcessor(cfg, "t", 0)
		require.NoError(t, err)
		e := clickstream.Event{EventID: "a", EventType: "page_view", UserID: "u", TS: processingTime.Add(-time.Hour).UnixMilli()}
		p.ProcessEvent(&e, &sources.Message{Topic: "t", Offset: 0}, processingTime)
		p.Reset()
		cp, err := p.Checkpoint()
		require.NoError(t, err)
		for _, sc := range settingChanges(cfg) {
			if !sc.refused {
				continue
			}
			t.Run(name+" scope, "+sc.name, func(t *testing.T) {
				changed := cfg
				sc.change(&changed)
				q, err := pipeline.NewProcessor(changed, "t", 0)
				require.NoError(t, err)
				fresh, err := pipeline.NewProcessor(changed, "t", 0)
				require.NoError(t, err)
				kept := cloneCheckpoint(cp)
				err = q.Restore(cp)
				require.Error(t, err)
				assert.True(t, errors.Is(err, clickstream.ErrPermanent), "%v is not permanent", err)
				assert.Equal(t, kept, cp, "the checkpoint changed")
				assert.Equal(t, fresh.Progress(), q.Progress(), "the refused restore moved the watermark")
				assert.False(t, q.Moved(), "the refused restore left progress or results to write")
				assert.Equal(t, int64(-1), q.Next())
				assert.Zero(t, q.Counters())
				got, err := q.Checkpoint()
				require.NoError(t, err)
				want, err := fresh.Checkpoint()
				require.NoError(t, err)
				assert.True(t, bytes.Equal(want.State, got.State), "the refused restore changed the processor's state")
				assert.Equal(t, want.Segments, got.Segments)
			})
		}
	}
}
