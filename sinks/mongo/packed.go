package mongo

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/clickstreamkit/clickstream/kpi"
)

// packFormat is the first byte of a packed field, so that the layout can
// change without old documents being misread.
const packFormat = 1

// Times are integers as the sink stores a funnel record's conversion times
// (times_ms): a BSON binary of subtype 0 holding the byte 1 and then, per
// value, the zigzag varint (encoding/binary's AppendVarint) of its difference
// from the value before it (the first from 0). Sorted conversion times take
// one to three bytes each, where an array of int64 takes 12 to 14 on MongoDB
// and, on FerretDB, an entry of its type schema besides; FerretDB reads and
// rewrites a whole document on every update, so the size is its time.
//
// Decoding also takes null (nil) and the array of integers that earlier
// versions of the sink wrote. Declare a field of this type to read the
// sink's documents in your own code.
type Times []int64

// MarshalBSONValue encodes t packed.
func (t Times) MarshalBSONValue() (byte, []byte, error) {
	buf := make([]byte, 1, 1+2*len(t))
	buf[0] = packFormat
	var prev int64
	for _, v := range t {
		buf = binary.AppendVarint(buf, v-prev)
		prev = v
	}
	return marshalBinary(buf)
}

// UnmarshalBSONValue decodes t from a packed binary, an array of integers
// or null.
func (t *Times) UnmarshalBSONValue(typ byte, data []byte) error {
	out, err := unpack(typ, data, "times", 2,
		func(i int, e bson.RawValue) (int64, bool, error) {
			n, ok := e.AsInt64OK()
			if !ok {
				return 0, false, fmt.Errorf("element %d is a %s, not an integer", i, e.Type)
			}
			return n, true, nil
		},
		func(r *reader, prev *int64) (int64, error) {
			d, err := r.varint()
			*prev += d
			return *prev, err
		})
	*t = out
	return err
}

// LatencyBins are a latency sketch's sparse bins (kpi.Sketch.Bins) as the
// sink stores them (latency_bins): a BSON binary of subtype 0 holding the
// byte 1 and then, per bin, the zigzag varint of its index's difference from
// the index before it (the first from 0) and the unsigned varint of its
// count. Decoding also takes null (nil) and the array of {i, n} documents
// that earlier versions of the sink wrote, leaving out bins of count 0.
type LatencyBins []kpi.Bin

// MarshalBSONValue encodes b packed.
func (b LatencyBins) MarshalBSONValue() (byte, []byte, error) {
	buf := make([]byte, 1, 1+3*len(b))
	buf[0] = packFormat
	var prev int64
	for _, x := range b {
		buf = binary.AppendVarint(buf, int64(x.Index)-prev)
		buf = binary.AppendUvarint(buf, x.Count)
		prev = int64(x.Index)
	}
	return marshalBinary(buf)
}

// UnmarshalBSONValue decodes b from a packed binary, an array of {i, n}
// documents or null.
func (b *LatencyBins) UnmarshalBSONValue(typ byte, data []byte) error {
	out, err := unpack(typ, data, "latency bins", 3,
		func(i int, e bson.RawValue) (kpi.Bin, bool, error) {
			var d struct {
				I int32 `bson:"i"`
				N int64 `bson:"n"`
			}
			if err := e.Unmarshal(&d); err != nil {
				return kpi.Bin{}, false, fmt.Errorf("bin %d: %w", i, err)
			}
			return kpi.Bin{Index: d.I, Count: uint64(d.N)}, d.N > 0, nil
		},
		func(r *reader, prev *int64) (kpi.Bin, error) {
			d, err := r.varint()
			if err != nil {
				return kpi.Bin{}, err
			}
			n, err := r.uvarint()
			if err != nil {
				return kpi.Bin{}, err
			}
			if *prev += d; *prev < math.MinInt32 || *prev > math.MaxInt32 {
				return kpi.Bin{}, fmt.Errorf("index %d out of range at byte %d", *prev, r.at())
			}
			return kpi.Bin{Index: int32(*prev), Count: n}, nil
		})
	*b = out
	return err
}

// Products are a window's top products (kpi.Minute.TopProducts) as the sink
// stores them (top_products): a BSON binary of subtype 0 holding the byte 1
// and then, per product, the unsigned varint of its id's length, the id, the
// zigzag varints of its views, carts and purchases, and its revenue as the
// 8 bytes of its IEEE 754 bits, little endian. Ten products take about 200
// bytes, where ten documents take about 900 on MongoDB and, on FerretDB, an
// entry of its type schema per field besides: its updates of running windows
// took about 40 % less time (22-28 ms a round of the live demo, 13-17 ms). Decoding also takes null (nil) and the array of
// {product_id, views, carts, purchases, revenue} documents that earlier
// versions of the sink wrote.
type Products []kpi.Product

// MarshalBSONValue encodes p packed.
func (p Products) MarshalBSONValue() (byte, []byte, error) {
	buf := make([]byte, 1, 1+24*len(p))
	buf[0] = packFormat
	for _, x := range p {
		buf = binary.AppendUvarint(buf, uint64(len(x.ProductID)))
		buf = append(buf, x.ProductID...)
		buf = binary.AppendVarint(buf, x.Views)
		buf = binary.AppendVarint(buf, x.Carts)
		buf = binary.AppendVarint(buf, x.Purchases)
		buf = binary.LittleEndian.AppendUint64(buf, math.Float64bits(x.Revenue))
	}
	return marshalBinary(buf)
}

// UnmarshalBSONValue decodes p from a packed binary, an array of documents
// or null.
func (p *Products) UnmarshalBSONValue(typ byte, data []byte) error {
	out, err := unpack(typ, data, "top products", 24,
		func(i int, e bson.RawValue) (kpi.Product, bool, error) {
			var d struct {
				ProductID string  `bson:"product_id"`
				Views     int64   `bson:"views"`
				Carts     int64   `bson:"carts"`
				Purchases int64   `bson:"purchases"`
				Revenue   float64 `bson:"revenue"`
			}
			if err := e.Unmarshal(&d); err != nil {
				return kpi.Product{}, false, fmt.Errorf("product %d: %w", i, err)
			}
			return kpi.Product(d), true, nil
		},
		func(r *reader, _ *int64) (kpi.Product, error) {
			var x kpi.Product
			n, err := r.uvarint()
			if err != nil {
				return x, err
			}
			id, err := r.bytes(n)
			if err != nil {
				return x, err
			}
			x.ProductID = string(id)
			for _, v := range []*int64{&x.Views, &x.Carts, &x.Purchases} {
				if *v, err = r.varint(); err != nil {
					return x, err
				}
			}
			bits, err := r.bytes(8)
			if err != nil {
				return x, err
			}
			x.Revenue = math.Float64frombits(binary.LittleEndian.Uint64(bits))
			return x, nil
		})
	*p = out
	return err
}

// unpack decodes a packed field named name: null as nil; an array of an
// earlier version element by element with elem, which says whether to keep
// each; a packed binary with next, value by value, from prev 0 (about size
// bytes a value).
func unpack[E any](typ byte, data []byte, name string, size int,
	elem func(i int, e bson.RawValue) (E, bool, error), next func(r *reader, prev *int64) (E, error)) ([]E, error) {
	v := bson.RawValue{Type: bson.Type(typ), Value: data}
	if v.Type == bson.TypeNull {
		return nil, nil
	}
	if v.Type == bson.TypeArray {
		arr, ok := v.ArrayOK()
		if !ok {
			return nil, fmt.Errorf("%s: malformed array", name)
		}
		vals, err := arr.Values()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out := make([]E, 0, len(vals))
		for i, e := range vals {
			x, keep, err := elem(i, e)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			if keep {
				out = append(out, x)
			}
		}
		return out, nil
	}
	r, err := packed(v)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	out := make([]E, 0, len(r.rest)/size)
	var prev int64
	for len(r.rest) > 0 {
		x, err := next(r, &prev)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out = append(out, x)
	}
	return out, nil
}

func marshalBinary(buf []byte) (byte, []byte, error) {
	typ, data, err := bson.MarshalValue(bson.Binary{Data: buf})
	return byte(typ), data, err
}

// reader reads the varints of a packed field.
type reader struct {
	rest []byte
	size int
}

// packed returns a reader of v's varints: v must be a binary of subtype 0
// in packFormat.
func packed(v bson.RawValue) (*reader, error) {
	if v.Type != bson.TypeBinary {
		return nil, fmt.Errorf("a %s, not a binary or an array", v.Type)
	}
	sub, data, ok := v.BinaryOK()
	switch {
	case !ok:
		return nil, errors.New("malformed binary")
	case sub != 0:
		return nil, fmt.Errorf("binary of subtype %d, not 0", sub)
	case len(data) == 0 || data[0] != packFormat:
		return nil, errors.New("unknown packed format")
	}
	return &reader{rest: data[1:], size: len(data)}, nil
}

func (r *reader) at() int { return r.size - len(r.rest) }

func (r *reader) varint() (int64, error) {
	v, n := binary.Varint(r.rest)
	if n <= 0 {
		return 0, fmt.Errorf("bad varint at byte %d", r.at())
	}
	r.rest = r.rest[n:]
	return v, nil
}

// bytes returns the next n bytes.
func (r *reader) bytes(n uint64) ([]byte, error) {
	if n > uint64(len(r.rest)) {
		return nil, fmt.Errorf("%d bytes wanted at byte %d, %d left", n, r.at(), len(r.rest))
	}
	b := r.rest[:n]
	r.rest = r.rest[n:]
	return b, nil
}

func (r *reader) uvarint() (uint64, error) {
	v, n := binary.Uvarint(r.rest)
	if n <= 0 {
		return 0, fmt.Errorf("bad varint at byte %d", r.at())
	}
	r.rest = r.rest[n:]
	return v, nil
}
