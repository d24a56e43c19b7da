package pipeline_test

import (
	"fmt"
	"time"

	"github.com/clickstreamkit/clickstream"
	"github.com/clickstreamkit/clickstream/pipeline"
	"github.com/clickstreamkit/clickstream/sources"
)

// A Processor embeds the whole chain of SEMANTICS §2 (validation, watermark,
// dedup, sessions, KPI windows, funnel) for one partition of your own
// consumer: hand it messages in offset order, then take what it emitted.
func ExampleProcessor() {
	p, err := pipeline.NewProcessor(pipeline.DefaultConfig(), "clicks", 0)
	if err != nil {
		panic(err)
	}
	now := time.Date(2025, 3, 14, 12, 30, 0, 0, time.UTC) // processing time
	for i, v := range []string{
		`{"event_id":"1","event_type":"page_view","event_ts":"2025-03-14T12:00:04Z","user_id":"u1"}`,
		`{"event_id":"2","event_type":"add_to_cart","event_ts":"2025-03-14T12:00:09Z","user_id":"u1"}`,
		`{"event_id":"3","event_type":"purchase","event_ts":"2025-03-14T12:00:30Z","user_id":"u1","price":29.9,"currency":"EUR"}`,
		`{"event_id":"3","event_type":"purchase","event_ts":"2025-03-14T12:00:30Z","user_id":"u1","price":29.9,"currency":"EUR"}`,
		`{"event_id":"4","event_type":"purchase","event_ts":"2025-03-14T12:00:40Z","user_id":"u2","price":-1,"currency":"EUR"}`,
	} {
		p.Process([]sources.Message{{Topic: "clicks", Offset: int64(i), Value: []byte(v)}}, now)
	}
	p.Finish() // a finite input; a live one calls p.Updates() on a tick instead
	b := p.Batch()
	for _, m := range b.KPIs {
		fmt.Println("window", clickstream.FormatTime(m.Minute), "final", m.Final, "sessions", m.Sessions, "revenue", m.Revenue)
	}
	for _, s := range b.Sessions {
		fmt.Println("session", s.SessionID(), "events", s.Events, "converted", s.Converted)
	}
	for _, f := range b.Funnel {
		fmt.Println("funnel", clickstream.FormatTime(f.Minute), f.Steps, f.StepRates)
	}
	for _, d := range b.DeadLetters {
		fmt.Println("dead letter at offset", d.Offset, d.Reason, d.Field)
	}
	fmt.Printf("%+v\n", b.Counters)
	p.Reset() // once b is written; Checkpoint() then saves the state with its offset
	// Output:
	// window 2025-03-14T12:00:00.000Z final true sessions 1 revenue 29.9
	// session u1/2025-03-14T12:00:04.000Z events 3 converted true
	// funnel 2025-03-14T12:00:00.000Z [1 1 1] [1 1]
	// dead letter at offset 4 bad_price price
	// {Read:5 Accepted:3 Invalid:1 Late:0 Duplicates:1}
}
