package pipelinetest_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/clickstreamkit/clickstream/pipeline"
	"github.com/clickstreamkit/clickstream/pipeline/pipelinetest"
)

func ExampleHarness() {
	t := &testing.T{} // in a real test, the *testing.T you are given
	h := pipelinetest.New(t, pipeline.DefaultConfig())
	h.FeedLines(
		`{"event_id":"1","event_type":"page_view","event_ts":"2025-03-14T11:50:00Z","user_id":"u1"}`,
		`{"event_id":"2","event_type":"page_view","event_ts":"2025-03-14T11:50:01Z","user_id":"u2"}`,
		`{"event_id":"3","event_type":"page_view","event_ts":"2025-03-14T11:30:00Z","user_id":"u3"}`, // late
	)
	h.Advance(time.Second) // an update tick: running values, not final
	u := h.Output().Updates
	fmt.Println(len(u), u[0].Events, u[0].Final)
	h.Finish()
	k := h.Output().KPIs
	fmt.Println(len(k), k[0].Events, k[0].Sessions, k[0].Final)
	fmt.Println(h.Output().DeadLetters[0].Reason)
	// Output:
	// 1 2 false
	// 1 2 2 true
	// late
}
