package embedkafka_test

import (
	"context"
	"fmt"

	"github.com/IBM/sarama"

	"github.com/clickstreamkit/clickstream/examples/internal/embedkafka"
)

func ExampleStart() {
	b, err := embedkafka.Start(context.Background(), "127.0.0.1:0", nil)
	if err != nil {
		panic(err)
	}
	defer b.Close()
	p, err := sarama.NewSyncProducer(b.Addrs(), embedkafka.SaramaConfig())
	if err != nil {
		panic(err)
	}
	defer p.Close()
	_, offset, err := p.SendMessage(&sarama.ProducerMessage{Topic: embedkafka.TopicEvents,
		Key: sarama.StringEncoder("u1"), Value: sarama.StringEncoder(`{"event_id":"e1"}`)})
	fmt.Println(offset, err)
	// Output:
	// 0 <nil>
}
