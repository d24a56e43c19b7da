package sinks_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clickstreamkit/clickstream/sinks"
)

// Tee writes its sinks concurrently: each of these two waits until the other
// has started, which a Tee writing one after the other never lets happen
// (synctest reports the deadlock). The errors of every failing sink come
// back.
func TestTeeWritesConcurrently(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := make(chan struct{}), make(chan struct{})
		meet := func(mine, other chan struct{}, err error) sinks.Sink {
			return sinks.SinkFunc(func(context.Context, *sinks.Batch) error {
				close(mine)
				<-other
				return err
			})
		}
		errA, errB := errors.New("a failed"), errors.New("b failed")
		err := sinks.Tee(meet(a, b, errA), meet(b, a, errB)).Write(t.Context(), &sinks.Batch{})
		assert.ErrorIs(t, err, errA)
		assert.ErrorIs(t, err, errB)
	})
	var m sinks.Memory
	require.NoError(t, sinks.Tee(&m).Write(context.Background(), &sinks.Batch{Topic: "t"}))
}
