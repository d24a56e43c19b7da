package sourcetest_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/clickstreamkit/clickstream/sources"
	"github.com/clickstreamkit/clickstream/sources/sourcetest"
)

// A reader under test meets a source that fails after two batches, and one
// whose first commit fails.
func ExampleErrAfter() {
	ctx := context.Background()
	lost := errors.New("connection lost")
	m := sources.NewMemory(2, []byte("a"), []byte("b"), []byte("c"), []byte("d"), []byte("e"))
	src := sourcetest.FailCommit(sourcetest.ErrAfter(m, 2, lost), 1, errors.New("coordinator moved"))
	for {
		b, err := src.Read(ctx)
		if err != nil {
			fmt.Println("read:", err)
			break
		}
		next := b.Messages[len(b.Messages)-1].Offset + 1
		for {
			err := src.Commit(ctx, b.Topic, b.Partition, next)
			if err == nil {
				break
			}
			fmt.Println("commit:", err)
		}
		fmt.Println("committed", m.Committed())
	}
	// Output:
	// commit: coordinator moved
	// committed 2
	// committed 4
	// read: connection lost
}
