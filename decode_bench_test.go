package clickstream_test

import (
	"encoding/json"
	"testing"

	"github.com/clickstreamkit/clickstream"
)

// jsonEvent is Event's shape for encoding/json, the baseline.
type jsonEvent struct {
	EventID   string   `json:"event_id"`
	EventType string   `json:"event_type"`
	EventTS   string   `json:"event_ts"`
	UserID    string   `json:"user_id"`
	SessionID string   `json:"session_id"`
	Page      string   `json:"page"`
	ProductID string   `json:"product_id"`
	Price     *float64 `json:"price"`
	Currency  string   `json:"currency"`
	UTM       struct {
		Source   string `json:"source"`
		Medium   string `json:"medium"`
		Campaign string `json:"campaign"`
	} `json:"utm"`
	Device struct {
		UA     string `json:"ua"`
		OS     string `json:"os"`
		Mobile bool   `json:"mobile"`
	} `json:"device"`
	Geo struct {
		Country string `json:"country"`
		City    string `json:"city"`
	} `json:"geo"`
}

var sinkEvent clickstream.Event

// BenchmarkDecode compares the decoder (parse and validate all of §1) with
// encoding/json merely unmarshalling the same ~400-byte message.
func BenchmarkDecode(b *testing.B) {
	msg := []byte(seedEvent)
	b.Run("clickstream", func(b *testing.B) {
		d := decoder()
		b.ReportAllocs()
		b.SetBytes(int64(len(msg)))
		for b.Loop() {
			if err := d.Decode(msg, &sinkEvent); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
	b.Run("encoding_json", func(b *testing.B) {
		var je jsonEvent
		b.ReportAllocs()
		b.SetBytes(int64(len(msg)))
		for b.Loop() {
			je = jsonEvent{}
			if err := json.Unmarshal(msg, &je); err != nil {
				b.Fatal(err)
			}
		}
		sinkEvent.EventID = je.EventID
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
}
