package sinktest_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/clickstreamkit/clickstream/kpi"
	"github.com/clickstreamkit/clickstream/sinks"
	"github.com/clickstreamkit/clickstream/sinks/sinktest"
)

// The suite holds for its own reference.
func TestReference(t *testing.T) {
	sinktest.Run(t, func(t *testing.T) sinktest.Target {
		r := &sinktest.Reference{}
		return sinktest.Target{Sink: r, PerPartition: true,
			Read: func(context.Context) (sinktest.Snapshot, error) { return r.Snapshot(), nil }}
	})
}

// A stale running update, replayed after the final window, changes nothing.
func ExampleReference() {
	ctx := context.Background()
	var r sinktest.Reference
	m := sinktest.Window(0, 1, false)
	final := sinktest.Window(0, 2, true)
	for _, w := range []kpi.Minute{m, final, m} {
		r.Write(ctx, &sinks.Batch{Topic: "clicks", KPIs: []kpi.Minute{w}})
		k := r.Snapshot().KPIs[0]
		fmt.Println(k.Events, k.Final)
	}
	// Output:
	// 21 false
	// 22 true
	// 22 true
}
