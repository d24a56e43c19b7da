package kafkadl_test

import (
	"fmt"

	"github.com/clickstreamkit/clickstream"
	"github.com/clickstreamkit/clickstream/sinks"
	"github.com/clickstreamkit/clickstream/sinks/kafkadl"
)

// The record a dead letter becomes.
func ExampleMessage() {
	m := kafkadl.Message(kafkadl.DefaultTopic, sinks.DeadLetter{
		Reason: clickstream.ReasonBadPrice, Field: "price", Detail: "negative",
		Topic: "events", Partition: 2, Offset: 41, Raw: []byte(`{"price":-1}`),
	})
	key, _ := m.Key.Encode()
	value, _ := m.Value.Encode()
	fmt.Printf("%s key=%s value=%s\n", m.Topic, key, value)
	for _, h := range m.Headers {
		fmt.Printf("%s=%s\n", h.Key, h.Value)
	}
	// Output:
	// events_deadletter key=events/2/41 value={"price":-1}
	// reason=bad_price
	// field=price
	// detail=negative
	// source_topic=events
	// source_partition=2
	// source_offset=41
}

// The sink goes beside the sinks of the results; New connects to nothing.
func ExampleNew() {
	dl, err := kafkadl.New([]string{"127.0.0.1:19092"}, kafkadl.WithTopic("events_deadletter"))
	if err != nil {
		fmt.Println(err)
		return
	}
	sink := sinks.Tee(&sinks.Memory{}, dl)
	_ = sink
	fmt.Println(dl.Topic())
	// Output: events_deadletter
}
