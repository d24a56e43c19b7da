package mongo

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/clickstreamkit/clickstream/kpi"
)

// unmarshaler is a pointer to a T that decodes itself.
type unmarshaler[T any] interface {
	*T
	UnmarshalBSONValue(byte, []byte) error
}

// decode decodes v into a new T, as the driver does.
func decode[T any, P unmarshaler[T]](v bson.RawValue) (T, error) {
	var x T
	err := P(&x).UnmarshalBSONValue(byte(v.Type), v.Value)
	return x, err
}

// roundTrip encodes in and decodes it back, checking that it travels as a
// binary.
func roundTrip[T ~[]E, E any, P unmarshaler[T]](t *testing.T, in T) {
	t.Helper()
	v := field(t, in)
	require.Equal(t, bson.TypeBinary, v.Type, "packed in a binary")
	got, err := decode[T, P](v)
	require.NoError(t, err)
	if len(in) == 0 {
		assert.Empty(t, got)
	} else {
		assert.Equal(t, in, got)
	}
}

// field marshals v as the only field of a document and returns the field's
// raw value, as a decoder meets it.
func field(t testing.TB, v any) bson.RawValue {
	t.Helper()
	raw, err := bson.Marshal(bson.D{{Key: "f", Value: v}})
	require.NoError(t, err)
	return bson.Raw(raw).Lookup("f")
}

func TestTimesRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   Times
	}{
		{"nil", nil},
		{"empty", Times{}},
		{"sorted", Times{0, 1, 1, 250, 61_000, 3_600_000}},
		{"unsorted and negative", Times{5, -3, 1 << 40, -1 << 40}},
		{"extremes", Times{math.MinInt64, math.MaxInt64, 0, math.MinInt64}},
	} {
		t.Run(tc.name, func(t *testing.T) { roundTrip(t, tc.in) })
	}
}

func TestTimesPackedSize(t *testing.T) {
	ts := make(Times, 2_700)
	for i := range ts {
		ts[i] = int64(i) * 222 // 2,700 times over 10 minutes
	}
	packed, array := field(t, ts), field(t, []int64(ts))
	assert.Less(t, len(packed.Value), 2*len(ts)+16, "two bytes a time")
	assert.Less(t, 5*len(packed.Value), len(array.Value), "a fifth of the array or less")
}

func TestLatencyBinsRoundTrip(t *testing.T) {
	var s kpi.Sketch
	for _, ms := range []float64{0, 0, 1, 3, 42.5, 250, 250, 1e4, 3.6e6} {
		s.Add(ms)
	}
	for _, tc := range []struct {
		name string
		in   LatencyBins
	}{
		{"nil", nil},
		{"sketch", s.Bins()},
		{"extremes", LatencyBins{{Index: math.MinInt32, Count: math.MaxUint64}, {Index: math.MaxInt32, Count: 1}, {Index: -1, Count: 0}}},
	} {
		t.Run(tc.name, func(t *testing.T) { roundTrip(t, tc.in) })
	}
}

func TestProductsRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   Products
	}{
		{"nil", nil},
		{"top", Products{{ProductID: "sku_00001", Views: 1146, Carts: 200, Purchases: 152, Revenue: 10856.34},
			{ProductID: "sku_00000", Views: 1094, Carts: 207, Purchases: 152, Revenue: 10476.89}}},
		{"odd ids", Products{{ProductID: ""}, {ProductID: "ünïcode/é", Views: 1}, {ProductID: string(make([]byte, 300))}}},
		{"extremes", Products{{ProductID: "x", Views: math.MaxInt64, Carts: math.MinInt64, Purchases: -1,
			Revenue: math.Inf(-1)}, {ProductID: "y", Revenue: math.SmallestNonzeroFloat64}}},
	} {
		t.Run(tc.name, func(t *testing.T) { roundTrip(t, tc.in) })
	}
}

func TestProductsPackedSize(t *testing.T) {
	ps := make(Products, 10)
	for i := range ps {
		ps[i] = kpi.Product{ProductID: "sku_0000" + string(rune('0'+i)), Views: 1_100, Carts: 200, Purchases: 150, Revenue: 10_856.34}
	}
	packed, array := field(t, ps), field(t, []kpi.Product(ps))
	assert.Less(t, len(packed.Value), 24*len(ps)+16, "24 bytes a product")
	assert.Less(t, 3*len(packed.Value), len(array.Value), "a third of the array or less")
}

// TestPackedReadsEarlierDocuments decodes the arrays that earlier versions of
// the sink wrote, and null.
func TestPackedReadsEarlierDocuments(t *testing.T) {
	v := field(t, bson.A{int64(3), int32(7), int64(1_000)})
	var ts Times
	require.NoError(t, ts.UnmarshalBSONValue(byte(v.Type), v.Value))
	assert.Equal(t, Times{3, 7, 1_000}, ts)

	v = field(t, bson.A{bson.D{{Key: "i", Value: int32(-1)}, {Key: "n", Value: int64(2)}},
		bson.D{{Key: "i", Value: int32(5)}, {Key: "n", Value: int64(0)}}, bson.D{{Key: "i", Value: int32(9)}, {Key: "n", Value: int64(4)}}})
	var bins LatencyBins
	require.NoError(t, bins.UnmarshalBSONValue(byte(v.Type), v.Value))
	assert.Equal(t, LatencyBins{{Index: -1, Count: 2}, {Index: 9, Count: 4}}, bins, "bins of count 0 left out")

	v = field(t, bson.A{bson.D{{Key: "product_id", Value: "sku_1"}, {Key: "views", Value: int64(3)}, {Key: "carts", Value: int64(2)},
		{Key: "purchases", Value: int64(1)}, {Key: "revenue", Value: 9.5}}})
	var ps Products
	require.NoError(t, ps.UnmarshalBSONValue(byte(v.Type), v.Value))
	assert.Equal(t, Products{{ProductID: "sku_1", Views: 3, Carts: 2, Purchases: 1, Revenue: 9.5}}, ps)

	v = field(t, nil)
	ts, bins, ps = Times{1}, LatencyBins{{}}, Products{{}}
	require.NoError(t, ts.UnmarshalBSONValue(byte(v.Type), v.Value))
	require.NoError(t, bins.UnmarshalBSONValue(byte(v.Type), v.Value))
	require.NoError(t, ps.UnmarshalBSONValue(byte(v.Type), v.Value))
	assert.Nil(t, ts)
	assert.Nil(t, bins)
	assert.Nil(t, ps)

	var k kpiDoc // a window as earlier versions wrote it: top products as documents
	raw, err := bson.Marshal(bson.D{{Key: "_id", Value: "t/0/x"}, {Key: "final", Value: true}, {Key: "events", Value: int64(4)},
		{Key: "top_products", Value: bson.A{bson.D{{Key: "product_id", Value: "sku_2"}, {Key: "views", Value: int64(4)}}}}})
	require.NoError(t, err)
	require.NoError(t, bson.Unmarshal(raw, &k))
	assert.Equal(t, []kpi.Product{{ProductID: "sku_2", Views: 4}}, k.minute().TopProducts)

	var d funnelDoc
	raw, err = bson.Marshal(bson.D{{Key: "_id", Value: "t/0/x"}, {Key: "final", Value: true},
		{Key: "steps", Value: bson.A{int64(2), int64(1)}}, {Key: "times_ms", Value: bson.A{int64(10), int64(20)}},
		{Key: "by", Value: bson.A{bson.D{{Key: "value", Value: "google"}, {Key: "steps", Value: bson.A{int64(2), int64(1)}}, {Key: "times_ms", Value: bson.A{int64(20)}}}}}})
	require.NoError(t, err)
	require.NoError(t, bson.Unmarshal(raw, &d))
	r := d.record()
	assert.Equal(t, []int64{10, 20}, r.TimesMs)
	assert.Equal(t, []int64{20}, r.By[0].TimesMs)
}

func TestPackedErrors(t *testing.T) {
	bin := func(sub byte, data ...byte) bson.RawValue { return field(t, bson.Binary{Subtype: sub, Data: data}) }
	for _, tc := range []struct {
		name string
		v    bson.RawValue
		want string
	}{
		{"string", field(t, "x"), "a string, not a binary or an array"},
		{"array of strings", field(t, bson.A{"x"}), "element 0 is a string"},
		{"subtype", bin(4, packFormat), "subtype 4"},
		{"empty binary", bin(0), "unknown packed format"},
		{"format", bin(0, 2, 0), "unknown packed format"},
		{"truncated varint", bin(0, packFormat, 0x80), "bad varint at byte 1"},
		{"overlong varint", bin(0, packFormat, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01), "bad varint at byte 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ts Times
			assert.ErrorContains(t, ts.UnmarshalBSONValue(byte(tc.v.Type), tc.v.Value), tc.want)
		})
	}
	var bins LatencyBins
	v := bin(0, packFormat, 2) // an index without a count
	assert.ErrorContains(t, bins.UnmarshalBSONValue(byte(v.Type), v.Value), "bad varint at byte 2")
	v = bin(0, packFormat, 0xfe, 0xff, 0xff, 0xff, 0x0f, 1) // index 2^31 - 1 ... then past it
	require.NoError(t, bins.UnmarshalBSONValue(byte(v.Type), v.Value))
	v = bin(0, packFormat, 0xfe, 0xff, 0xff, 0xff, 0x0f, 1, 2, 1)
	assert.ErrorContains(t, bins.UnmarshalBSONValue(byte(v.Type), v.Value), "index 2147483648 out of range")
	v = field(t, bson.A{"x"})
	assert.ErrorContains(t, bins.UnmarshalBSONValue(byte(v.Type), v.Value), "bin 0")

	var ps Products
	for _, tc := range []struct {
		name string
		v    bson.RawValue
		want string
	}{
		{"id past the end", bin(0, packFormat, 3, 'a', 'b'), "3 bytes wanted at byte 2, 2 left"},
		{"no counts", bin(0, packFormat, 1, 'a'), "bad varint at byte 3"},
		{"short revenue", bin(0, packFormat, 1, 'a', 2, 2, 2, 0, 0, 0), "8 bytes wanted at byte 6, 3 left"},
		{"array of strings", field(t, bson.A{"x"}), "product 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.ErrorContains(t, ps.UnmarshalBSONValue(byte(tc.v.Type), tc.v.Value), tc.want)
		})
	}
}

// FuzzTimes decodes arbitrary packed bytes (fuzzPacked).
func FuzzTimes(f *testing.F) {
	for _, ts := range []Times{nil, {1, 2, 3}, {math.MinInt64, math.MaxInt64}} {
		v := field(f, ts)
		_, data, _ := v.BinaryOK()
		f.Add(data)
	}
	f.Add([]byte{packFormat, 0x80})
	f.Fuzz(fuzzPacked[Times])
}

// FuzzLatencyBins is FuzzTimes for LatencyBins.
func FuzzLatencyBins(f *testing.F) {
	var s kpi.Sketch
	for _, ms := range []float64{0, 3, 42.5, 1e4} {
		s.Add(ms)
	}
	for _, b := range []LatencyBins{nil, s.Bins(), {{Index: math.MaxInt32, Count: math.MaxUint64}}} {
		v := field(f, b)
		_, data, _ := v.BinaryOK()
		f.Add(data)
	}
	f.Fuzz(fuzzPacked[LatencyBins])
}

// FuzzProducts is FuzzTimes for Products.
func FuzzProducts(f *testing.F) {
	for _, p := range []Products{nil, {{ProductID: "sku_1", Views: 3, Carts: 2, Purchases: 1, Revenue: 9.5}},
		{{ProductID: "", Views: math.MinInt64, Revenue: math.NaN()}, {ProductID: "é"}}} {
		v := field(f, p)
		_, data, _ := v.BinaryOK()
		f.Add(data)
	}
	f.Fuzz(fuzzPacked[Products])
}

// fuzzPacked decodes data as a packed binary: no panic, and what decodes
// encodes back to a value that decodes and encodes the same (bytes are
// compared, since a revenue may be NaN).
func fuzzPacked[T any, P unmarshaler[T]](t *testing.T, data []byte) {
	x, err := decode[T, P](field(t, bson.Binary{Data: data}))
	if err != nil {
		return
	}
	enc := field(t, x)
	again, err := decode[T, P](enc)
	require.NoError(t, err)
	require.Equal(t, enc.Value, field(t, again).Value)
}
