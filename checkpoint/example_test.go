package checkpoint_test

import (
	"context"
	"fmt"
	"os"

	"github.com/clickstreamkit/clickstream/checkpoint"
)

func ExampleDir() {
	dir, _ := os.MkdirTemp("", "ckpt")
	defer os.RemoveAll(dir)
	store, _ := checkpoint.NewDir(dir)
	ctx := context.Background()
	store.Save(ctx, checkpoint.Checkpoint{Topic: "events_raw", Partition: 3, Next: 1042, State: []byte("state")})
	cp, _ := store.Load(ctx, "events_raw", 3)
	fmt.Println(cp.Next, string(cp.State))
	_, err := store.Load(ctx, "events_raw", 4)
	fmt.Println(err)
	// Output:
	// 1042 state
	// checkpoint: not found
}
