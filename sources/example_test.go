package sources_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/clickstreamkit/clickstream/sources"
)

func ExampleMemory() {
	src := sources.NewMemory(2, []byte("a"), []byte("b"), []byte("c"))
	ctx := context.Background()
	for {
		b, err := src.Read(ctx)
		if errors.Is(err, sources.ErrEndOfInput) {
			break
		}
		for _, m := range b.Messages {
			fmt.Printf("%d:%s ", m.Offset, m.Value)
		}
		last := b.Messages[len(b.Messages)-1]
		src.Commit(ctx, b.Topic, b.Partition, last.Offset+1) // after the results are durable
	}
	fmt.Println(src.Committed())
	// Output: 0:a 1:b 2:c 3
}
