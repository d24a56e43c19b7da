package clickstream_test

import (
	"encoding/json"
	"testing"

	"github.com/clickstreamkit/clickstream"
)

// FuzzDecode: the decoder never panics; what it accepts is valid JSON, and
// re-encodes to a message that decodes to the same event.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{seedEvent, ev(""), ev(`"price":1e3,"currency":"USD","device":{"mobile":true}`),
		`{"event_id":"e\u00e91","event_type":"purchase","event_ts":"2025-03-14T12:00:00.123456+05:45","user_id":"u","price":0.1,"currency":"GBP"}`,
		`{"a":[{"b":[1,2,"\ud83d\ude00"]}],` + ev("")[1:], `{}`, `[`, `{"event_id":"\udc00"}`} {
		f.Add([]byte(s))
	}
	d := decoder()
	f.Fuzz(func(t *testing.T, data []byte) {
		var e, back clickstream.Event
		if err := d.Decode(data, &e); err != nil {
			return
		}
		if !json.Valid(data) {
			t.Fatalf("accepted invalid JSON %q", data)
		}
		out := clickstream.AppendJSON(nil, &e)
		if err := d.Decode(out, &back); err != nil {
			t.Fatalf("re-encoded event %s rejected: %v", out, err)
		}
		if e != back {
			t.Fatalf("round trip changed the event:\n%+v\n%+v", e, back)
		}
	})
}
