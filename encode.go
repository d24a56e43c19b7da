package clickstream

import (
	"strconv"
	"unicode/utf8"
)

// AppendJSON appends e as one JSON object in the schema of SEMANTICS §1,
// omitting empty optional fields, and returns the extended buffer. What it
// writes decodes to an equal event.
func AppendJSON(dst []byte, e *Event) []byte {
	dst = append(dst, `{"event_id":`...)
	dst = AppendString(dst, e.EventID)
	dst = append(dst, `,"event_type":`...)
	dst = AppendString(dst, e.EventType)
	dst = append(dst, `,"event_ts":"`...)
	dst = AppendTime(dst, e.TS)
	dst = append(dst, `","user_id":`...)
	dst = AppendString(dst, e.UserID)
	dst = appendOpt(dst, "session_id", e.SessionID)
	dst = appendOpt(dst, "page", e.Page)
	dst = appendOpt(dst, "product_id", e.ProductID)
	if e.HasPrice {
		dst = append(dst, `,"price":`...)
		dst = strconv.AppendFloat(dst, e.Price, 'g', -1, 64)
	}
	dst = appendOpt(dst, "currency", e.Currency)
	if e.UTM != (UTM{}) {
		dst = append(dst, `,"utm":{"source":`...)
		dst = AppendString(dst, e.UTM.Source)
		dst = append(dst, `,"medium":`...)
		dst = AppendString(dst, e.UTM.Medium)
		dst = append(dst, `,"campaign":`...)
		dst = AppendString(dst, e.UTM.Campaign)
		dst = append(dst, '}')
	}
	if e.Device != (Device{}) {
		dst = append(dst, `,"device":{"ua":`...)
		dst = AppendString(dst, e.Device.UA)
		dst = append(dst, `,"os":`...)
		dst = AppendString(dst, e.Device.OS)
		dst = append(dst, `,"mobile":`...)
		dst = strconv.AppendBool(dst, e.Device.Mobile)
		dst = append(dst, '}')
	}
	if e.Geo != (Geo{}) {
		dst = append(dst, `,"geo":{"country":`...)
		dst = AppendString(dst, e.Geo.Country)
		dst = append(dst, `,"city":`...)
		dst = AppendString(dst, e.Geo.City)
		dst = append(dst, '}')
	}
	return append(dst, '}')
}

func appendOpt(dst []byte, name, v string) []byte {
	if v == "" {
		return dst
	}
	dst = append(dst, ',', '"')
	dst = append(dst, name...)
	dst = append(dst, '"', ':')
	return AppendString(dst, v)
}

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string, escaped as encoding/json does
// without HTML escaping. Invalid UTF-8 becomes U+FFFD.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			switch {
			case r == utf8.RuneError && size == 1:
				dst = append(dst, s[start:i]...)
				dst = append(dst, `\ufffd`...)
			case r == '\u2028' || r == '\u2029': // as encoding/json does, for JavaScript
				dst = append(dst, s[start:i]...)
				dst = append(dst, `\u202`...)
				dst = append(dst, hexDigits[r&0xf])
			default:
				i += size
				continue
			}
			i += size
			start = i
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		i++
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
