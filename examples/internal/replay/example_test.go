package replay_test

import (
	"context"
	"fmt"

	"github.com/clickstreamkit/clickstream/examples/internal/replay"
)

func ExampleRun() {
	lines := [][]byte{
		[]byte(`{"event_id":"e1","event_type":"page_view","event_ts":"2025-03-14T12:00:00Z","user_id":"u1"}`),
		[]byte(`not json`),
		[]byte(`{"event_id":"e2","event_type":"purchase","event_ts":"2025-03-14T12:00:09Z","user_id":"u2","price":9.5,"currency":"EUR"}`),
	}
	p := replay.ProducerFunc(func(_ context.Context, m replay.Message) error {
		fmt.Printf("key %q: %s\n", m.Key, m.Value)
		return nil
	})
	st, err := replay.Run(context.Background(), p, lines, replay.Options{Rate: 1000})
	fmt.Println(st.Sent, st.Keyless, err)
	// Output:
	// key "u1": {"event_id":"e1","event_type":"page_view","event_ts":"2025-03-14T12:00:00Z","user_id":"u1"}
	// key "": not json
	// key "u2": {"event_id":"e2","event_type":"purchase","event_ts":"2025-03-14T12:00:09Z","user_id":"u2","price":9.5,"currency":"EUR"}
	// 3 1 <nil>
}
