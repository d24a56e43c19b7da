package sinks_test

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clickstreamkit/clickstream/session"
	"github.com/clickstreamkit/clickstream/sinks"
)

func encodingJSON(t *testing.T, v any) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	require.NoError(t, enc.Encode(v))
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// The fast session encoder writes exactly what encoding/json writes.
func TestAppendSessionJSONMatchesEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	users := []string{"u_1", "ü\u2028\u2029", "a\"b\\c", "ctl\x00\x01\b\f\n\r\t\x1f", "<&>", "\xff bad"}
	floats := []float64{0, 1e-7, 1.5e-6, 123.456, 9123.4, 1e20, 1e21, 3.4e300, math.SmallestNonzeroFloat64}
	for i := range 2000 {
		s := session.Record{UserID: users[i%len(users)], Start: r.Int64N(1 << 42), End: r.Int64N(1 << 42),
			DurationMs: r.Int64N(1 << 30), Events: r.Int64N(100), PageViews: r.Int64N(50), AddToCarts: r.Int64N(9),
			Purchases: r.Int64N(4), Revenue: floats[i%len(floats)] * r.Float64(), Bounced: r.IntN(2) == 0, Converted: r.IntN(2) == 0}
		if i%len(floats) == 0 {
			s.Revenue = floats[i/len(floats)%len(floats)]
		}
		want := encodingJSON(t, sinks.NewSessionRecord(&s))
		assert.Equal(t, string(want), string(sinks.AppendSessionJSON(nil, &s)))
	}
}
