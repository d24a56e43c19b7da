package clickstream

import (
	"encoding/binary"
	"errors"
	"math"
	"math/bits"
	"strconv"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// Defaults of the decoder's settings (SEMANTICS §1).
const (
	DefaultMaxEventBytes = 64 << 10
	DefaultMaxFutureSkew = 5 * time.Minute
)

// maxDepth bounds the nesting of ignored JSON values.
const maxDepth = 512

// Decoder turns JSON messages into validated events. Its zero value is not
// usable; create one with [NewDecoder]. A Decoder is safe for concurrent use.
type Decoder struct {
	decoderConfig
}

// decoderConfig is what the decoder options set.
type decoderConfig struct {
	maxBytes int
	skewMs   int64
	now      func() time.Time
}

// DecoderOption configures a [Decoder].
type DecoderOption func(*decoderConfig)

// WithMaxEventBytes sets the largest accepted message. Default 64 KiB.
func WithMaxEventBytes(n int) DecoderOption { return func(c *decoderConfig) { c.maxBytes = n } }

// WithMaxFutureSkew sets how far event_ts may be ahead of the processing clock.
// Default 5m.
func WithMaxFutureSkew(skew time.Duration) DecoderOption {
	return func(c *decoderConfig) { c.skewMs = skew.Milliseconds() }
}

// WithClock sets the processing clock used by the future-timestamp guard.
// Default time.Now.
func WithClock(now func() time.Time) DecoderOption { return func(c *decoderConfig) { c.now = now } }

// ErrDecoderConfig is returned by NewDecoder for a size limit that is not
// positive, a negative skew or a nil clock.
var ErrDecoderConfig = errors.New("clickstream: max event bytes must be positive, max future skew not negative, the clock set")

// NewDecoder returns a decoder with the given options.
func NewDecoder(opts ...DecoderOption) (*Decoder, error) {
	c := decoderConfig{maxBytes: DefaultMaxEventBytes, skewMs: DefaultMaxFutureSkew.Milliseconds(), now: time.Now}
	for _, o := range opts {
		o(&c)
	}
	if c.maxBytes <= 0 || c.skewMs < 0 || c.now == nil {
		return nil, ErrDecoderConfig
	}
	return &Decoder{c}, nil
}

// Field indexes, in the order validation reports them.
const (
	fEventID = iota
	fEventType
	fEventTS
	fUserID
	fSessionID
	fPage
	fProductID
	fPrice
	fCurrency
	fUTMSource
	fUTMMedium
	fUTMCampaign
	fDeviceUA
	fDeviceOS
	fDeviceMobile
	fGeoCountry
	fGeoCity
	fUTM
	fDevice
	fGeo
	numFields
)

var fieldNames = [numFields]string{
	"event_id", "event_type", "event_ts", "user_id", "session_id", "page", "product_id", "price", "currency",
	"utm.source", "utm.medium", "utm.campaign", "device.ua", "device.os", "device.mobile",
	"geo.country", "geo.city", "utm", "device", "geo",
}

// Field states while scanning.
const (
	stAbsent uint8 = iota
	stOK
	stBadType
)

// scan holds the state of decoding one message.
type scan struct {
	s     string
	i     int
	err   string // syntax error, empty when none
	state [numFields]uint8
	str   [numFields]string
	num   string // the price literal
	bval  bool   // device.mobile
}

// Decode parses and validates one message into e, overwriting all of e,
// against the decoder's clock. It returns nil or a *ValidationError; e is
// meaningful only when it returns nil.
func (d *Decoder) Decode(data []byte, e *Event) error {
	return d.DecodeAt(data, e, d.now().UnixMilli())
}

// DecodeAt is Decode with the processing clock read by the caller: now is
// Unix milliseconds.
func (d *Decoder) DecodeAt(data []byte, e *Event, now int64) error {
	if len(data) > d.maxBytes {
		return &ValidationError{Reason: ReasonTooLarge, Detail: strconv.Itoa(len(data)) + " bytes, limit " + strconv.Itoa(d.maxBytes)}
	}
	var sc scan
	sc.s = string(data) // the one copy every string field of e points into
	sc.parse()
	if sc.err != "" {
		return &ValidationError{Reason: ReasonMalformedJSON, Detail: sc.err + " at byte " + strconv.Itoa(sc.i)}
	}
	if err := sc.validate(e); err != nil {
		return err
	}
	if e.TS-now > d.skewMs {
		return &ValidationError{Reason: ReasonFutureTimestamp, Field: "event_ts",
			Detail: "ahead of the processing clock by " + (time.Duration(e.TS-now) * time.Millisecond).String()}
	}
	return nil
}

func (sc *scan) fail(msg string) {
	if sc.err == "" {
		sc.err = msg
	}
}

func (sc *scan) ws() {
	if sc.i < len(sc.s) && sc.s[sc.i] > ' ' {
		return
	}
	for sc.i < len(sc.s) {
		switch sc.s[sc.i] {
		case ' ', '\t', '\n', '\r':
			sc.i++
		default:
			return
		}
	}
}

func (sc *scan) parse() {
	sc.ws()
	if sc.i >= len(sc.s) || sc.s[sc.i] != '{' {
		sc.fail("not a JSON object")
		return
	}
	sc.object(sc.topField)
	if sc.err != "" {
		return
	}
	sc.ws()
	if sc.i != len(sc.s) {
		sc.fail("data after the object")
	}
}

// object scans an object starting at '{', calling field for each member with
// the scanner positioned at its value; field must consume the value.
func (sc *scan) object(field func(key string)) {
	sc.i++ // '{'
	sc.ws()
	if sc.i < len(sc.s) && sc.s[sc.i] == '}' {
		sc.i++
		return
	}
	for sc.err == "" {
		sc.ws()
		if sc.i >= len(sc.s) || sc.s[sc.i] != '"' {
			sc.fail("expected a member name")
			return
		}
		key, ok := sc.string()
		if !ok {
			return
		}
		sc.ws()
		if sc.i >= len(sc.s) || sc.s[sc.i] != ':' {
			sc.fail("expected ':'")
			return
		}
		sc.i++
		sc.ws()
		field(key)
		sc.ws()
		if sc.i >= len(sc.s) {
			sc.fail("unterminated object")
			return
		}
		switch sc.s[sc.i] {
		case ',':
			sc.i++
		case '}':
			sc.i++
			return
		default:
			sc.fail("expected ',' or '}'")
			return
		}
	}
}

func (sc *scan) topField(key string) {
	switch key {
	case "event_id":
		sc.strField(fEventID)
	case "event_type":
		sc.strField(fEventType)
	case "event_ts":
		sc.strField(fEventTS)
	case "user_id":
		sc.strField(fUserID)
	case "session_id":
		sc.strField(fSessionID)
	case "page":
		sc.strField(fPage)
	case "product_id":
		sc.strField(fProductID)
	case "currency":
		sc.strField(fCurrency)
	case "price":
		if sc.i < len(sc.s) && (sc.s[sc.i] == '-' || (sc.s[sc.i] >= '0' && sc.s[sc.i] <= '9')) {
			start := sc.i
			sc.number()
			sc.num, sc.state[fPrice] = sc.s[start:sc.i], stOK
			return
		}
		sc.other(fPrice)
	case "utm":
		sc.objField(fUTM, sc.utmField)
	case "device":
		sc.objField(fDevice, sc.deviceField)
	case "geo":
		sc.objField(fGeo, sc.geoField)
	default:
		sc.skip(0)
	}
}

func (sc *scan) utmField(key string) {
	switch key {
	case "source":
		sc.strField(fUTMSource)
	case "medium":
		sc.strField(fUTMMedium)
	case "campaign":
		sc.strField(fUTMCampaign)
	default:
		sc.skip(1)
	}
}

func (sc *scan) deviceField(key string) {
	switch key {
	case "ua":
		sc.strField(fDeviceUA)
	case "os":
		sc.strField(fDeviceOS)
	case "mobile":
		if strings4(sc.s, sc.i, "true") {
			sc.i += 4
			sc.bval, sc.state[fDeviceMobile] = true, stOK
			return
		}
		if sc.i+5 <= len(sc.s) && sc.s[sc.i:sc.i+5] == "false" {
			sc.i += 5
			sc.bval, sc.state[fDeviceMobile] = false, stOK
			return
		}
		sc.other(fDeviceMobile)
	default:
		sc.skip(1)
	}
}

func (sc *scan) geoField(key string) {
	switch key {
	case "country":
		sc.strField(fGeoCountry)
	case "city":
		sc.strField(fGeoCity)
	default:
		sc.skip(1)
	}
}

func strings4(s string, i int, lit string) bool {
	return i+len(lit) <= len(s) && s[i:i+len(lit)] == lit
}

// other consumes a value of the wrong type for field f, or a null.
func (sc *scan) other(f int) {
	if strings4(sc.s, sc.i, "null") {
		sc.i += 4
		sc.state[f] = stAbsent
		return
	}
	sc.skip(1)
	sc.state[f] = stBadType
}

func (sc *scan) strField(f int) {
	if sc.i < len(sc.s) && sc.s[sc.i] == '"' {
		v, ok := sc.string()
		if ok {
			sc.str[f], sc.state[f] = v, stOK
		}
		return
	}
	sc.other(f)
}

func (sc *scan) objField(f int, member func(string)) {
	if sc.i < len(sc.s) && sc.s[sc.i] == '{' {
		sc.state[f] = stOK
		sc.object(member)
		return
	}
	sc.other(f)
}

// skip consumes any JSON value.
func (sc *scan) skip(depth int) {
	if depth > maxDepth {
		sc.fail("nesting too deep")
		return
	}
	if sc.i >= len(sc.s) {
		sc.fail("unexpected end of input")
		return
	}
	switch c := sc.s[sc.i]; {
	case c == '"':
		sc.string()
	case c == '{':
		sc.object(func(string) { sc.skip(depth + 1) })
	case c == '[':
		sc.i++
		sc.ws()
		if sc.i < len(sc.s) && sc.s[sc.i] == ']' {
			sc.i++
			return
		}
		for sc.err == "" {
			sc.ws()
			sc.skip(depth + 1)
			sc.ws()
			if sc.i >= len(sc.s) {
				sc.fail("unterminated array")
				return
			}
			if sc.s[sc.i] == ']' {
				sc.i++
				return
			}
			if sc.s[sc.i] != ',' {
				sc.fail("expected ',' or ']'")
				return
			}
			sc.i++
		}
	case c == '-' || (c >= '0' && c <= '9'):
		sc.number()
	case strings4(sc.s, sc.i, "true"), strings4(sc.s, sc.i, "null"):
		sc.i += 4
	case strings4(sc.s, sc.i, "false"):
		sc.i += 5
	default:
		sc.fail("unexpected character")
	}
}

// number consumes a JSON number (RFC 8259 grammar).
func (sc *scan) number() {
	s, i := sc.s, sc.i
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	default:
		sc.i = i
		sc.fail("bad number")
		return
	}
	if i < len(s) && s[i] == '.' {
		i++
		d := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == d {
			sc.i = i
			sc.fail("bad number")
			return
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		d := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == d {
			sc.i = i
			sc.fail("bad number")
			return
		}
	}
	sc.i = i
}

// string consumes a JSON string starting at '"' and returns its value. An
// unescaped value is a substring of the input; only escapes allocate.
func (sc *scan) string() (string, bool) {
	s := sc.s
	start := sc.i + 1
	i := start + plainPrefix(s[start:])
	ascii := true
	for ; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			v := s[start:i]
			if !ascii && !utf8.ValidString(v) {
				sc.i = start
				sc.fail("invalid UTF-8")
				return "", false
			}
			sc.i = i + 1
			return v, true
		case c == '\\':
			return sc.unescape(start, i)
		case c < 0x20:
			sc.i = i
			sc.fail("control character in string")
			return "", false
		case c >= 0x80:
			ascii = false
		}
	}
	sc.i = len(s)
	sc.fail("unterminated string")
	return "", false
}

// plainPrefix returns the length of v's prefix free of '"', '\\', control
// characters and non-ASCII bytes, scanning eight bytes at a time.
func plainPrefix(v string) int {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	i := 0
	for ; i+8 <= len(v); i += 8 {
		x := binary.LittleEndian.Uint64([]byte(v[i : i+8]))
		q := x ^ (lo * '"')
		b := x ^ (lo * '\\')
		if m := ((q-lo)&^q | (b-lo)&^b | (x-lo*0x20)&^x | x) & hi; m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
	}
	for ; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			return i
		}
	}
	return i
}

// unescape decodes a string with escapes; s[start:i] holds no escape.
func (sc *scan) unescape(start, i int) (string, bool) {
	s := sc.s
	b := make([]byte, 0, len(s)-start)
	b = append(b, s[start:i]...)
	for i < len(s) {
		c := s[i]
		switch {
		case c == '"':
			sc.i = i + 1
			if !utf8.Valid(b) {
				sc.fail("invalid UTF-8")
				return "", false
			}
			return string(b), true
		case c < 0x20:
			sc.i = i
			sc.fail("control character in string")
			return "", false
		case c != '\\':
			b = append(b, c)
			i++
			continue
		}
		if i+1 >= len(s) {
			break
		}
		i++
		switch s[i] {
		case '"', '\\', '/':
			b = append(b, s[i])
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			r, ok := hex4(s, i+1)
			if !ok {
				sc.i = i
				sc.fail("bad \\u escape")
				return "", false
			}
			i += 4
			if utf16.IsSurrogate(r) {
				r2, ok2 := rune(0), false
				if i+6 < len(s) && s[i+1] == '\\' && s[i+2] == 'u' {
					r2, ok2 = hex4(s, i+3)
				}
				if dec := utf16.DecodeRune(r, r2); ok2 && dec != utf8.RuneError {
					r = dec
					i += 6
				} else {
					r = utf8.RuneError
				}
			}
			b = utf8.AppendRune(b, r)
		default:
			sc.i = i
			sc.fail("bad escape")
			return "", false
		}
		i++
	}
	sc.i = len(s)
	sc.fail("unterminated string")
	return "", false
}

func hex4(s string, i int) (rune, bool) {
	if i+4 > len(s) {
		return 0, false
	}
	var r rune
	for _, c := range []byte(s[i : i+4]) {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// validate applies SEMANTICS §1 to the scanned fields, reporting the first
// fault in field order.
func (sc *scan) validate(e *Event) error {
	for f := range numFields {
		if sc.state[f] == stBadType {
			want := "a string"
			switch f {
			case fPrice:
				want = "a number"
			case fDeviceMobile:
				want = "a boolean"
			case fUTM, fDevice, fGeo:
				want = "an object"
			}
			return &ValidationError{Reason: ReasonBadType, Field: fieldNames[f], Detail: "must be " + want}
		}
	}
	for _, f := range [...]int{fEventID, fEventType, fEventTS, fUserID} {
		if sc.state[f] == stAbsent {
			return &ValidationError{Reason: ReasonMissingField, Field: fieldNames[f], Detail: "required"}
		}
	}
	if n := len(sc.str[fEventID]); n < 1 || n > 128 {
		return &ValidationError{Reason: ReasonBadValue, Field: "event_id", Detail: "must be 1..128 bytes"}
	}
	if !validType(sc.str[fEventType]) {
		return &ValidationError{Reason: ReasonBadValue, Field: "event_type", Detail: "must match [a-z][a-z0-9_]{0,63}"}
	}
	ts, ok := ParseTimestamp(sc.str[fEventTS])
	if !ok {
		return &ValidationError{Reason: ReasonBadTimestamp, Field: "event_ts", Detail: "must be RFC 3339 with a zone offset"}
	}
	if n := len(sc.str[fUserID]); n < 1 || n > 128 {
		return &ValidationError{Reason: ReasonBadValue, Field: "user_id", Detail: "must be 1..128 bytes"}
	}
	kind := KindOf(sc.str[fEventType])
	var price float64
	if sc.state[fPrice] == stOK {
		p, err := strconv.ParseFloat(sc.num, 64)
		if err != nil || p < 0 || math.IsInf(p, 0) || math.IsNaN(p) {
			return &ValidationError{Reason: ReasonBadPrice, Field: "price", Detail: "must be a finite number >= 0"}
		}
		price = p
	} else if kind == KindPurchase {
		return &ValidationError{Reason: ReasonMissingField, Field: "price", Detail: "required for purchase"}
	}
	if sc.state[fCurrency] == stOK {
		if !validCurrency(sc.str[fCurrency]) {
			return &ValidationError{Reason: ReasonBadCurrency, Field: "currency", Detail: "must be 3 upper-case letters"}
		}
	} else if sc.state[fPrice] == stOK {
		return &ValidationError{Reason: ReasonMissingField, Field: "currency", Detail: "required with a price"}
	}
	*e = Event{
		EventID:   sc.str[fEventID],
		EventType: sc.str[fEventType],
		TS:        ts,
		UserID:    sc.str[fUserID],
		SessionID: sc.str[fSessionID],
		Page:      sc.str[fPage],
		ProductID: sc.str[fProductID],
		Price:     price,
		HasPrice:  sc.state[fPrice] == stOK,
		Currency:  sc.str[fCurrency],
		UTM:       UTM{Source: sc.str[fUTMSource], Medium: sc.str[fUTMMedium], Campaign: sc.str[fUTMCampaign]},
		Device:    Device{UA: sc.str[fDeviceUA], OS: sc.str[fDeviceOS], Mobile: sc.bval},
		Geo:       Geo{Country: sc.str[fGeoCountry], City: sc.str[fGeoCity]},
	}
	return nil
}

func validType(t string) bool {
	if len(t) < 1 || len(t) > 64 || t[0] < 'a' || t[0] > 'z' {
		return false
	}
	for i := 1; i < len(t); i++ {
		c := t[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func validCurrency(c string) bool {
	return len(c) == 3 && c[0] >= 'A' && c[0] <= 'Z' && c[1] >= 'A' && c[1] <= 'Z' && c[2] >= 'A' && c[2] <= 'Z'
}
