package clickstream_test

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clickstreamkit/clickstream"
)

var now = time.Date(2025, 3, 14, 12, 0, 0, 0, time.UTC)

func decoder() *clickstream.Decoder {
	d, err := clickstream.NewDecoder(clickstream.WithClock(func() time.Time { return now }))
	if err != nil {
		panic(err)
	}
	return d
}

const seedEvent = `{"event_id":"b1a9e1f0-2aee-4dfb-9d19-0a3c0b5a2c0e","event_type":"page_view","event_ts":"2025-03-14T12:00:04.235Z","user_id":"u_204983","session_id":"s_7a3b1e","page":"/product/sku_12345","product_id":"sku_12345","price":29.90,"currency":"EUR","utm":{"source":"google","medium":"cpc","campaign":"spring24"},"device":{"ua":"Mozilla/5.0","os":"Windows","mobile":false},"geo":{"country":"DE","city":"Munich"}}`

func TestDecodeSeedEvent(t *testing.T) {
	var e clickstream.Event
	require.NoError(t, decoder().Decode([]byte(seedEvent), &e))
	assert.Equal(t, clickstream.Event{
		EventID: "b1a9e1f0-2aee-4dfb-9d19-0a3c0b5a2c0e", EventType: "page_view",
		TS: time.Date(2025, 3, 14, 12, 0, 4, 235e6, time.UTC).UnixMilli(), UserID: "u_204983", SessionID: "s_7a3b1e",
		Page: "/product/sku_12345", ProductID: "sku_12345", Price: 29.90, HasPrice: true, Currency: "EUR",
		UTM:    clickstream.UTM{Source: "google", Medium: "cpc", Campaign: "spring24"},
		Device: clickstream.Device{UA: "Mozilla/5.0", OS: "Windows"},
		Geo:    clickstream.Geo{Country: "DE", City: "Munich"},
	}, e)
}

// ev builds a message from the required fields plus extra members.
func ev(extra string) string {
	base := `"event_id":"e1","event_type":"page_view","event_ts":"2025-03-14T12:00:00Z","user_id":"u1"`
	if extra != "" {
		base += "," + extra
	}
	return "{" + base + "}"
}

// SEMANTICS §1: every invalid case has its reason code and field.
func TestDecodeInvalid(t *testing.T) {
	tests := []struct {
		name, msg string
		reason    clickstream.Reason
		field     string
	}{
		{"§1 malformed: truncated", `{"event_id":"e1"`, clickstream.ReasonMalformedJSON, ""},
		{"§1 malformed: empty", ``, clickstream.ReasonMalformedJSON, ""},
		{"§1 malformed: not an object", `["e1"]`, clickstream.ReasonMalformedJSON, ""},
		{"§1 malformed: trailing data", ev("") + `{}`, clickstream.ReasonMalformedJSON, ""},
		{"§1 malformed: bad escape", ev(`"page":"\x"`), clickstream.ReasonMalformedJSON, ""},
		{"§1 malformed: raw control char", ev("\"page\":\"a\tb\""), clickstream.ReasonMalformedJSON, ""},
		{"§1 malformed: invalid UTF-8", ev("\"page\":\"\xff\""), clickstream.ReasonMalformedJSON, ""},
		{"§1 malformed: bad number", ev(`"price":01,"currency":"EUR"`), clickstream.ReasonMalformedJSON, ""},
		{"§1 malformed: bad literal in unknown field", ev(`"x":tru`), clickstream.ReasonMalformedJSON, ""},
		{"§1 missing event_id", `{"event_type":"page_view","event_ts":"2025-03-14T12:00:00Z","user_id":"u1"}`, clickstream.ReasonMissingField, "event_id"},
		{"§1 missing event_type", `{"event_id":"e1","event_ts":"2025-03-14T12:00:00Z","user_id":"u1"}`, clickstream.ReasonMissingField, "event_type"},
		{"§1 missing event_ts", `{"event_id":"e1","event_type":"page_view","user_id":"u1"}`, clickstream.ReasonMissingField, "event_ts"},
		{"§1 missing user_id", `{"event_id":"e1","event_type":"page_view","event_ts":"2025-03-14T12:00:00Z"}`, clickstream.ReasonMissingField, "user_id"},
		{"§1 null required field", `{"event_id":null,"event_type":"page_view","event_ts":"2025-03-14T12:00:00Z","user_id":"u1"}`, clickstream.ReasonMissingField, "event_id"},
		{"§1 ill-typed event_id", `{"event_id":17,"event_type":"page_view","event_ts":"2025-03-14T12:00:00Z","user_id":"u1"}`, clickstream.ReasonBadType, "event_id"},
		{"§1 ill-typed user_id", `{"event_id":"e1","event_type":"page_view","event_ts":"2025-03-14T12:00:00Z","user_id":["u1"]}`, clickstream.ReasonBadType, "user_id"},
		{"§1 ill-typed optional page", ev(`"page":{}`), clickstream.ReasonBadType, "page"},
		{"§1 ill-typed price", ev(`"price":"29.90","currency":"EUR"`), clickstream.ReasonBadType, "price"},
		{"§1 ill-typed utm", ev(`"utm":"google"`), clickstream.ReasonBadType, "utm"},
		{"§1 ill-typed device.mobile", ev(`"device":{"mobile":"yes"}`), clickstream.ReasonBadType, "device.mobile"},
		{"§1 ill-typed geo.city", ev(`"geo":{"city":1}`), clickstream.ReasonBadType, "geo.city"},
		{"§1 empty event_id", `{"event_id":"","event_type":"page_view","event_ts":"2025-03-14T12:00:00Z","user_id":"u1"}`, clickstream.ReasonBadValue, "event_id"},
		{"§1 event_id over 128 bytes", `{"event_id":"` + strings.Repeat("a", 129) + `","event_type":"page_view","event_ts":"2025-03-14T12:00:00Z","user_id":"u1"}`, clickstream.ReasonBadValue, "event_id"},
		{"§1 user_id over 128 bytes", `{"event_id":"e1","event_type":"page_view","event_ts":"2025-03-14T12:00:00Z","user_id":"` + strings.Repeat("u", 129) + `"}`, clickstream.ReasonBadValue, "user_id"},
		{"§1 event_type upper case", `{"event_id":"e1","event_type":"Page_view","event_ts":"2025-03-14T12:00:00Z","user_id":"u1"}`, clickstream.ReasonBadValue, "event_type"},
		{"§1 event_type starts with a digit", `{"event_id":"e1","event_type":"1view","event_ts":"2025-03-14T12:00:00Z","user_id":"u1"}`, clickstream.ReasonBadValue, "event_type"},
		{"§1 event_type over 64", `{"event_id":"e1","event_type":"` + strings.Repeat("a", 65) + `","event_ts":"2025-03-14T12:00:00Z","user_id":"u1"}`, clickstream.ReasonBadValue, "event_type"},
		{"§1 timestamp without zone", `{"event_id":"e1","event_type":"page_view","event_ts":"2025-03-14T12:00:00","user_id":"u1"}`, clickstream.ReasonBadTimestamp, "event_ts"},
		{"§1 timestamp date only", `{"event_id":"e1","event_type":"page_view","event_ts":"2025-03-14","user_id":"u1"}`, clickstream.ReasonBadTimestamp, "event_ts"},
		{"§1 timestamp Feb 30", `{"event_id":"e1","event_type":"page_view","event_ts":"2025-02-30T12:00:00Z","user_id":"u1"}`, clickstream.ReasonBadTimestamp, "event_ts"},
		{"§1 timestamp hour 24", `{"event_id":"e1","event_type":"page_view","event_ts":"2025-03-14T24:00:00Z","user_id":"u1"}`, clickstream.ReasonBadTimestamp, "event_ts"},
		{"§1 timestamp empty fraction", `{"event_id":"e1","event_type":"page_view","event_ts":"2025-03-14T12:00:00.Z","user_id":"u1"}`, clickstream.ReasonBadTimestamp, "event_ts"},
		{"§1 timestamp unix number", `{"event_id":"e1","event_type":"page_view","event_ts":1741953600,"user_id":"u1"}`, clickstream.ReasonBadType, "event_ts"},
		{"§1 purchase without price", `{"event_id":"e1","event_type":"purchase","event_ts":"2025-03-14T12:00:00Z","user_id":"u1","currency":"EUR"}`, clickstream.ReasonMissingField, "price"},
		{"§1 negative price", `{"event_id":"e1","event_type":"purchase","event_ts":"2025-03-14T12:00:00Z","user_id":"u1","price":-0.01,"currency":"EUR"}`, clickstream.ReasonBadPrice, "price"},
		{"§1 infinite price", ev(`"price":1e400,"currency":"EUR"`), clickstream.ReasonBadPrice, "price"},
		{"§1 price without currency", ev(`"price":3`), clickstream.ReasonMissingField, "currency"},
		{"§1 lower-case currency", ev(`"price":3,"currency":"eur"`), clickstream.ReasonBadCurrency, "currency"},
		{"§1 four-letter currency", ev(`"currency":"EURO"`), clickstream.ReasonBadCurrency, "currency"},
		{"§1 future timestamp", `{"event_id":"e1","event_type":"page_view","event_ts":"2025-03-14T12:05:00.001Z","user_id":"u1"}`, clickstream.ReasonFutureTimestamp, "event_ts"},
		{"§1 too large", ev(`"page":"` + strings.Repeat("p", 64<<10) + `"`), clickstream.ReasonTooLarge, ""},
	}
	d := decoder()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e clickstream.Event
			err := d.Decode([]byte(tt.msg), &e)
			require.Error(t, err)
			assert.ErrorIs(t, err, clickstream.ErrInvalidEvent)
			var ve *clickstream.ValidationError
			require.True(t, errors.As(err, &ve))
			assert.Equal(t, tt.reason, ve.Reason, "error: %v", err)
			assert.Equal(t, tt.field, ve.Field, "error: %v", err)
		})
	}
}

// SEMANTICS §1: valid variations.
func TestDecodeValid(t *testing.T) {
	ms := func(s string) int64 {
		tm, err := time.Parse(time.RFC3339Nano, s)
		require.NoError(t, err)
		return tm.UnixMilli()
	}
	tests := []struct {
		name, msg string
		check     func(t *testing.T, e clickstream.Event)
	}{
		{"§1 timestamp with an offset is held as UTC", `{"event_id":"e1","event_type":"page_view","event_ts":"2025-03-14T13:30:00.5+01:30","user_id":"u1"}`,
			func(t *testing.T, e clickstream.Event) { assert.Equal(t, ms("2025-03-14T12:00:00.5Z"), e.TS) }},
		{"§1 microseconds truncate to millis", `{"event_id":"e1","event_type":"page_view","event_ts":"2025-03-14T11:59:59.999999Z","user_id":"u1"}`,
			func(t *testing.T, e clickstream.Event) { assert.Equal(t, ms("2025-03-14T11:59:59.999Z"), e.TS) }},
		{"§1 negative offset", `{"event_id":"e1","event_type":"page_view","event_ts":"2025-03-14T07:00:00-05:00","user_id":"u1"}`,
			func(t *testing.T, e clickstream.Event) { assert.Equal(t, ms("2025-03-14T12:00:00Z"), e.TS) }},
		{"§1 unknown type flows through", `{"event_id":"e1","event_type":"search","event_ts":"2025-03-14T12:00:00Z","user_id":"u1"}`,
			func(t *testing.T, e clickstream.Event) {
				assert.Equal(t, "search", e.EventType)
				assert.Equal(t, clickstream.KindOther, e.Kind())
			}},
		{"§1 unknown fields are ignored", ev(`"extra":{"deep":[1,2,{"x":null}],"s":"\u00e9"},"n":-1.5e3`),
			func(t *testing.T, e clickstream.Event) { assert.Equal(t, "e1", e.EventID) }},
		{"§1 escapes decode", `{"event_id":"e\"1\u00e9\ud83d\ude00","event_type":"page_view","event_ts":"2025-03-14T12:00:00Z","user_id":"u1"}`,
			func(t *testing.T, e clickstream.Event) { assert.Equal(t, "e\"1é😀", e.EventID) }},
		{"§1 purchase with price 0", `{"event_id":"e1","event_type":"purchase","event_ts":"2025-03-14T12:00:00Z","user_id":"u1","price":0,"currency":"USD"}`,
			func(t *testing.T, e clickstream.Event) {
				assert.True(t, e.HasPrice)
				assert.Equal(t, 0.0, e.Price)
			}},
		{"§1 null optional is absent", ev(`"page":null,"utm":null`),
			func(t *testing.T, e clickstream.Event) { assert.Empty(t, e.Page) }},
		{"§1 exactly 5m ahead is not future", `{"event_id":"e1","event_type":"page_view","event_ts":"2025-03-14T12:05:00Z","user_id":"u1"}`,
			func(t *testing.T, e clickstream.Event) {}},
		{"§1 128-byte ids", `{"event_id":"` + strings.Repeat("a", 128) + `","event_type":"page_view","event_ts":"2025-03-14T12:00:00Z","user_id":"` + strings.Repeat("u", 128) + `"}`,
			func(t *testing.T, e clickstream.Event) { assert.Len(t, e.UserID, 128) }},
		{"§1 lower-case t and z", `{"event_id":"e1","event_type":"page_view","event_ts":"2025-03-14t12:00:00z","user_id":"u1"}`,
			func(t *testing.T, e clickstream.Event) { assert.Equal(t, ms("2025-03-14T12:00:00Z"), e.TS) }},
		{"§1 whitespace around", " \n" + ev("") + "\r\n ",
			func(t *testing.T, e clickstream.Event) {}},
	}
	d := decoder()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e clickstream.Event
			require.NoError(t, d.Decode([]byte(tt.msg), &e))
			tt.check(t, e)
		})
	}
}

// ParseTimestamp agrees with time.Parse on RFC 3339 inputs.
func TestParseTimestampAgreesWithTime(t *testing.T) {
	for _, s := range []string{
		"2025-03-14T12:00:04.235Z", "1970-01-01T00:00:00Z", "1969-12-31T23:59:59.999Z", "0001-01-01T00:00:00Z",
		"9999-12-31T23:59:59.999999999+23:59", "2024-02-29T00:00:00-00:30", "2000-02-29T12:00:00.1Z", "1900-03-01T00:00:00Z",
		"0000-01-01T00:00:00Z", "9999-12-31T23:59:59.999Z",
	} {
		want, err := time.Parse(time.RFC3339Nano, s)
		require.NoError(t, err)
		got, ok := clickstream.ParseTimestamp(s)
		require.True(t, ok, s)
		assert.Equal(t, want.Truncate(time.Millisecond).UnixMilli(), got, s)
	}
	for _, s := range []string{"2023-02-29T00:00:00Z", "2025-13-01T00:00:00Z", "2025-03-14T12:60:00Z", "2025-03-14T12:00:60Z", "2025-03-14T12:00:00+24:00", "2025-03-14 12:00:00Z",
		"0000-01-01T00:00:00+00:01", "9999-12-31T23:59:00-00:01"} { // UTC years -1 and 10000: RFC 3339 cannot write them
		_, ok := clickstream.ParseTimestamp(s)
		assert.False(t, ok, s)
	}
}

func TestAppendJSONRoundTrip(t *testing.T) {
	var e, back clickstream.Event
	d := decoder()
	require.NoError(t, d.Decode([]byte(seedEvent), &e))
	require.NoError(t, d.Decode(clickstream.AppendJSON(nil, &e), &back))
	assert.Equal(t, e, back)
	// and encoding/json reads the same fields
	var m map[string]any
	require.NoError(t, json.Unmarshal(clickstream.AppendJSON(nil, &e), &m))
	assert.Equal(t, "u_204983", m["user_id"])
	assert.InDelta(t, 29.90, m["price"].(float64), 0)
	assert.False(t, math.IsNaN(e.Price))
}

// NewDecoder refuses settings no message could pass.
func TestNewDecoderRefusesBadSettings(t *testing.T) {
	for name, opt := range map[string]clickstream.DecoderOption{
		"zero size":     clickstream.WithMaxEventBytes(0),
		"negative skew": clickstream.WithMaxFutureSkew(-time.Second),
		"nil clock":     clickstream.WithClock(nil),
	} {
		_, err := clickstream.NewDecoder(opt)
		assert.ErrorIs(t, err, clickstream.ErrDecoderConfig, name)
	}
	_, err := clickstream.NewDecoder(clickstream.WithMaxEventBytes(1), clickstream.WithMaxFutureSkew(0))
	assert.NoError(t, err)
}
