// Package retry calls an operation again, with back-off, until it succeeds:
// the one retry loop of the pipeline's steps and of sinks.Tee's sinks.
package retry

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/clickstreamkit/clickstream"
)

// The back-off: the wait after the first failure, doubled after each
// further one up to Max.
const (
	First = 100 * time.Millisecond
	Max   = 10 * time.Second
)

// Do calls f until it succeeds, ctx ends or f's error is permanent
// (clickstream.ErrPermanent), waiting First after the first failure and
// twice as long after each further one, up to Max. It logs each retry on log
// at Warn as "retrying" with op, the attempt, the wait, the error and attrs.
// It returns nil, f's permanent error, or f's last error joined with
// ctx.Err().
func Do(ctx context.Context, log *slog.Logger, op string, f func() error, attrs ...any) error {
	wait := First
	for attempt := 1; ; attempt++ {
		err := f()
		if err == nil {
			return nil
		}
		if errors.Is(err, clickstream.ErrPermanent) {
			return err
		}
		if ctx.Err() != nil {
			return errors.Join(err, ctx.Err())
		}
		log.Warn("retrying", append([]any{"op", op, "attempt", attempt, "in", wait, "err", err}, attrs...)...)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return errors.Join(err, ctx.Err())
		}
		wait = min(2*wait, Max)
	}
}
