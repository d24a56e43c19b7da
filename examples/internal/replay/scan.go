package replay

import "encoding/json"

// span is a value's bytes [start, end) in a line; end == 0 means absent.
type span struct{ start, end int }

func (s span) ok() bool { return s.end > 0 }

// fields are the spans of the top-level values Run looks at.
type fields struct {
	id, ts, user span
}

// scanFields finds the values of the top-level keys event_id, event_ts and
// user_id in a JSON object, the last occurrence of each. It checks only what
// it needs to find them; on a malformed line it returns what it found before
// the fault. Keys written with escapes are not recognised.
func scanFields(b []byte) fields {
	var f fields
	i := ws(b, 0)
	if i >= len(b) || b[i] != '{' {
		return f
	}
	i++
	for {
		i = ws(b, i)
		if i >= len(b) || b[i] != '"' {
			return f
		}
		kEnd := skipString(b, i)
		if kEnd < 0 {
			return f
		}
		key := b[i+1 : kEnd-1]
		i = ws(b, kEnd)
		if i >= len(b) || b[i] != ':' {
			return f
		}
		i = ws(b, i+1)
		vEnd := skipValue(b, i)
		if vEnd < 0 {
			return f
		}
		switch string(key) {
		case "event_id":
			f.id = span{i, vEnd}
		case "event_ts":
			f.ts = span{i, vEnd}
		case "user_id":
			f.user = span{i, vEnd}
		}
		i = ws(b, vEnd)
		if i >= len(b) {
			return f
		}
		switch b[i] {
		case ',':
			i++
		case '}':
			return f
		default:
			return f
		}
	}
}

func ws(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at b[i] == '"', or
// -1 if it does not end.
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return -1
}

// skipValue returns the index after the value starting at b[i], or -1. It
// balances brackets and skips strings; scalars run to the next delimiter.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				j := skipString(b, i)
				if j < 0 {
					return -1
				}
				i = j - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return -1
	}
	start := i
	for i < len(b) {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			if i == start {
				return -1
			}
			return i
		}
		i++
	}
	return -1 // a top-level object cannot end in a scalar
}

// stringValue returns the JSON string at s in b, unescaped, or false when s
// is absent or not a string. Without escapes it aliases b.
func stringValue(b []byte, s span) ([]byte, bool) {
	if !s.ok() || b[s.start] != '"' {
		return nil, false
	}
	raw := b[s.start+1 : s.end-1]
	for _, c := range raw {
		if c == '\\' {
			var v string
			if json.Unmarshal(b[s.start:s.end], &v) != nil {
				return nil, false
			}
			return []byte(v), true
		}
	}
	return raw, true
}
