package clickstream

import (
	"errors"
	"fmt"
)

// Kind classifies an event's type. Only the three known types feed the
// type-specific KPIs; every other valid type is KindOther and counts in
// "events" only.
type Kind uint8

// The known event kinds.
const (
	KindOther Kind = iota
	KindPageView
	KindAddToCart
	KindPurchase
)

// Known event type names.
const (
	TypePageView  = "page_view"
	TypeAddToCart = "add_to_cart"
	TypePurchase  = "purchase"
)

// KindOf returns the kind of an event type name.
func KindOf(eventType string) Kind {
	switch eventType {
	case TypePageView:
		return KindPageView
	case TypeAddToCart:
		return KindAddToCart
	case TypePurchase:
		return KindPurchase
	}
	return KindOther
}

// Kind returns the kind of the event's type: it is derived, never stored, so
// that an event however decoded counts the same.
func (e *Event) Kind() Kind { return KindOf(e.EventType) }

// Event is one validated clickstream event (SEMANTICS §1).
//
// Times are milliseconds since the Unix epoch, UTC. Strings produced by
// [Decoder.Decode] may share memory with one copy of the input message; they
// are immutable like every Go string.
type Event struct {
	EventID   string
	EventType string
	TS        int64 // event_ts, Unix milliseconds UTC
	UserID    string
	SessionID string // the client's own; never used for sessionization
	Page      string
	ProductID string
	Price     float64
	HasPrice  bool
	Currency  string
	UTM       UTM
	Device    Device
	Geo       Geo
}

// UTM holds the optional campaign parameters.
type UTM struct{ Source, Medium, Campaign string }

// Device holds the optional device description. Mobile false and absent are
// the same.
type Device struct {
	UA, OS string
	Mobile bool
}

// Geo holds the optional location.
type Geo struct{ Country, City string }

// Reason is a machine-readable code saying why an event was rejected.
type Reason string

// Reasons for rejecting a message (SEMANTICS §1, §3).
const (
	ReasonMalformedJSON   Reason = "malformed_json"   // not a single UTF-8 JSON object
	ReasonTooLarge        Reason = "too_large"        // over max_event_bytes
	ReasonMissingField    Reason = "missing_field"    // a required field is absent or null
	ReasonBadType         Reason = "bad_type"         // a field has the wrong JSON type
	ReasonBadValue        Reason = "bad_value"        // a string outside its length or pattern
	ReasonBadTimestamp    Reason = "bad_timestamp"    // event_ts is not RFC 3339 with a zone offset
	ReasonBadPrice        Reason = "bad_price"        // negative or not finite
	ReasonBadCurrency     Reason = "bad_currency"     // not three upper-case letters
	ReasonFutureTimestamp Reason = "future_timestamp" // event_ts beyond max_future_skew
	ReasonLate            Reason = "late"             // event_ts below the watermark
)

// ErrInvalidEvent is matched (errors.Is) by every *ValidationError.
var ErrInvalidEvent = errors.New("invalid event")

// ValidationError says why a message is not a valid event.
type ValidationError struct {
	Reason Reason
	Field  string // the JSON field at fault ("device.mobile"); empty when none
	Detail string
}

func (e *ValidationError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("invalid event: %s: %s", e.Reason, e.Detail)
	}
	return fmt.Sprintf("invalid event: %s (%s): %s", e.Reason, e.Field, e.Detail)
}

// Unwrap makes errors.Is(err, ErrInvalidEvent) hold.
func (e *ValidationError) Unwrap() error { return ErrInvalidEvent }

// ReasonOf returns the reason of the *ValidationError in err's chain, and
// false when there is none.
func ReasonOf(err error) (Reason, bool) {
	var ve *ValidationError
	if errors.As(err, &ve) {
		return ve.Reason, true
	}
	return "", false
}
