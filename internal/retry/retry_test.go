package retry_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/clickstreamkit/clickstream"
	"github.com/clickstreamkit/clickstream/internal/retry"
)

var errDown = errors.New("down")

// The waits double from 100ms up to 10s, each retry logged with its attrs.
func TestDoBacksOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logged bytes.Buffer
		start := time.Now()
		var at []time.Duration // when each call came
		err := retry.Do(t.Context(), slog.New(slog.NewTextHandler(&logged, nil)), "save", func() error {
			at = append(at, time.Since(start))
			if len(at) < 10 {
				return errDown
			}
			return nil
		}, "k", "v")
		if err != nil {
			t.Fatalf("Do = %v", err)
		}
		ms := time.Millisecond
		want := []time.Duration{0, 100 * ms, 300 * ms, 700 * ms, 1500 * ms, 3100 * ms, 6300 * ms, 12700 * ms, 22700 * ms, 32700 * ms}
		if !slices.Equal(at, want) {
			t.Errorf("calls at %v, want %v", at, want)
		}
		if n := strings.Count(logged.String(), "msg=retrying op=save"); n != 9 || strings.Count(logged.String(), "k=v") != 9 {
			t.Errorf("want 9 retries logged with k=v:\n%s", logged.String())
		}
	})
}

// A permanent error ends at once; so does ctx, in a back-off.
func TestDoStops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log := slog.New(slog.DiscardHandler)
		calls := 0
		permanent := clickstream.Permanent(errDown)
		err := retry.Do(t.Context(), log, "save", func() error { calls++; return permanent })
		if !errors.Is(err, clickstream.ErrPermanent) || calls != 1 {
			t.Errorf("Do = %v after %d calls, want the permanent error after 1", err, calls)
		}

		ctx, cancel := context.WithTimeout(t.Context(), 250*time.Millisecond)
		defer cancel()
		start, calls := time.Now(), 0
		err = retry.Do(ctx, log, "save", func() error { calls++; return errDown })
		if !errors.Is(err, errDown) || !errors.Is(err, context.DeadlineExceeded) || calls != 2 {
			t.Errorf("Do = %v after %d calls, want the last error and the deadline after 2", err, calls)
		}
		if took := time.Since(start); took != 250*time.Millisecond {
			t.Errorf("Do returned after %v, want 250ms: at the deadline", took)
		}
	})
}
