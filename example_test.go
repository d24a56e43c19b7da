package clickstream_test

import (
	"errors"
	"fmt"

	"github.com/clickstreamkit/clickstream"
)

func ExampleDecoder() {
	d, err := clickstream.NewDecoder()
	if err != nil {
		panic(err)
	}
	var e clickstream.Event
	err = d.Decode([]byte(`{"event_id":"e1","event_type":"purchase","event_ts":"2025-03-14T13:00:04.235+01:00","user_id":"u1","price":29.9,"currency":"EUR"}`), &e)
	fmt.Println(err, e.UserID, clickstream.FormatTime(e.TS), e.Price)

	err = d.Decode([]byte(`{"event_id":"e2","event_type":"purchase","event_ts":"2025-03-14T12:00:00Z","user_id":"u1","price":-1,"currency":"EUR"}`), &e)
	var ve *clickstream.ValidationError
	if errors.As(err, &ve) {
		fmt.Println(ve.Reason, ve.Field)
	}
	wrapped := fmt.Errorf("offset 7: %w", err)
	fmt.Println(clickstream.ReasonOf(wrapped))
	fmt.Println(clickstream.ReasonOf(errors.New("not an event error")))
	// Output:
	// <nil> u1 2025-03-14T12:00:04.235Z 29.9
	// bad_price price
	// bad_price true
	//  false
}
