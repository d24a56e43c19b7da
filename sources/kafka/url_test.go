package kafka_test

import (
	"reflect"
	"testing"

	"github.com/clickstreamkit/clickstream/sources/kafka"
)

func TestParseURL(t *testing.T) {
	tests := []struct {
		raw     string
		want    kafka.URL
		wantErr bool
	}{
		{raw: "kafka://127.0.0.1:19092/events?group=pipeline",
			want: kafka.URL{Brokers: []string{"127.0.0.1:19092"}, Topic: "events", Group: "pipeline"}},
		{raw: "kafka://a:9092,b:9093/events?group=g&bounded=true&start=oldest",
			want: kafka.URL{Brokers: []string{"a:9092", "b:9093"}, Topic: "events", Group: "g", Bounded: true}},
		{raw: "kafka://a:9092/events.v2_x-y?start=newest&group=g&bounded=false&batch=100",
			want: kafka.URL{Brokers: []string{"a:9092"}, Topic: "events.v2_x-y", Group: "g", Start: kafka.Newest, Batch: 100}},
		{raw: "kafka://[::1]:9092,[fe80::1]:9093/t?group=g",
			want: kafka.URL{Brokers: []string{"[::1]:9092", "[fe80::1]:9093"}, Topic: "t", Group: "g"}},
		{raw: "kafka://a:1/t?group=g&bounded=1", want: kafka.URL{Brokers: []string{"a:1"}, Topic: "t", Group: "g", Bounded: true}},
		{raw: "kafka://a:1/t?group=my%20group", want: kafka.URL{Brokers: []string{"a:1"}, Topic: "t", Group: "my group"}},

		{raw: "file:events.jsonl", wantErr: true},
		{raw: "http://a:1/t?group=g", wantErr: true},
		{raw: "kafka://a:1/t", wantErr: true},                        // no group
		{raw: "kafka://a:1/t?group=", wantErr: true},                 // empty group
		{raw: "kafka://a:1/?group=g", wantErr: true},                 // no topic
		{raw: "kafka://a:1?group=g", wantErr: true},                  // no topic
		{raw: "kafka://a:1/t/u?group=g", wantErr: true},              // two path parts
		{raw: "kafka://a/t?group=g", wantErr: true},                  // no port
		{raw: "kafka://a:0/t?group=g", wantErr: true},                // bad port
		{raw: "kafka://a:x/t?group=g", wantErr: true},                // bad port
		{raw: "kafka://a:1,/t?group=g", wantErr: true},               // empty broker
		{raw: "kafka:///t?group=g", wantErr: true},                   // no broker
		{raw: "kafka://u@a:1/t?group=g", wantErr: true},              // user info
		{raw: "kafka://a:1/t?group=g&bounded=yes", wantErr: true},    // bad bool
		{raw: "kafka://a:1/t?group=g&start=earliest", wantErr: true}, // unknown start
		{raw: "kafka://a:1/t?group=g&batch=0", wantErr: true},        // batch < 1
		{raw: "kafka://a:1/t?group=g&grp=x", wantErr: true},          // unknown parameter
		{raw: "kafka://a:1/t?group=g&group=h", wantErr: true},        // repeated
	}
	for _, tt := range tests {
		got, err := kafka.ParseURL(tt.raw)
		if tt.wantErr {
			if err == nil {
				t.Errorf("ParseURL(%q) = %+v, want an error", tt.raw, got)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseURL(%q): %v", tt.raw, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseURL(%q) = %+v, want %+v", tt.raw, got, tt.want)
		}
		// String gives an address that parses to the same thing
		again, err := kafka.ParseURL(got.String())
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Errorf("ParseURL(%q) = %+v, %v; want %+v", got.String(), again, err, got)
		}
	}
}

func TestNewFromURL(t *testing.T) {
	src, err := kafka.NewFromURL("kafka://127.0.0.1:1/events?group=g&bounded=true")
	if err != nil {
		t.Fatal(err)
	}
	if src.Topic() != "events" || src.Group() != "g" {
		t.Errorf("topic %q group %q", src.Topic(), src.Group())
	}
	if _, err := kafka.NewFromURL("kafka://127.0.0.1:1/events"); err == nil {
		t.Error("NewFromURL without a group succeeded")
	}
}
