package kafka_test

import (
	"fmt"

	"github.com/clickstreamkit/clickstream/sources/kafka"
)

func ExampleParseURL() {
	u, err := kafka.ParseURL("kafka://127.0.0.1:19092,127.0.0.1:19093/events?group=replay&bounded=true")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(u.Brokers, u.Topic, u.Group, u.Bounded, u.Start)
	// New connects to nothing: the first Read does.
	src, err := kafka.New(u.Brokers, u.Topic, u.Group, u.Options()...)
	fmt.Println(src.Topic(), err)
	// Output:
	// [127.0.0.1:19092 127.0.0.1:19093] events replay true oldest
	// events <nil>
}
