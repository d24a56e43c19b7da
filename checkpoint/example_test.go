package checkpoint_test

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/clickstreamkit/clickstream/checkpoint"
)

func ExampleDir() {
	dir, _ := os.MkdirTemp("", "ckpt")
	defer os.RemoveAll(dir)
	store, _ := checkpoint.NewDir(dir)
	ctx := context.Background()
	// The first checkpoint writes two segments.
	store.Save(ctx, checkpoint.Checkpoint{Topic: "events_raw", Partition: 3, Next: 1042, Generation: 7, State: []byte("state"),
		Segments: []checkpoint.Segment{{ID: 1, Data: []byte("ids 1")}, {ID: 2, Data: []byte("ids 2")}}})
	// The next keeps segment 2, drops 1 and writes 3.
	store.Save(ctx, checkpoint.Checkpoint{Topic: "events_raw", Partition: 3, Next: 2077, Generation: 7, State: []byte("state'"),
		Segments: []checkpoint.Segment{{ID: 2}, {ID: 3, Data: []byte("ids 3")}}})
	cp, _ := store.Load(ctx, "events_raw", 3)
	fmt.Println(cp.Next, string(cp.State))
	for _, s := range cp.Segments {
		fmt.Println(s.ID, string(s.Data))
	}
	// A writer of an older generation is fenced.
	err := store.Save(ctx, checkpoint.Checkpoint{Topic: "events_raw", Partition: 3, Next: 3000, Generation: 6})
	fmt.Println(errors.Is(err, checkpoint.ErrFenced))
	_, err = store.Load(ctx, "events_raw", 4)
	fmt.Println(err)
	// Output:
	// 2077 state'
	// 2 ids 2
	// 3 ids 3
	// true
	// checkpoint: not found
}
