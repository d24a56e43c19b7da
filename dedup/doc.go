// Package dedup holds the [Deduper] of SEMANTICS §4: exact-by-fingerprint
// duplicate detection whose state is bounded by the watermark horizon, not by
// the stream's length.
//
// A Deduper is not safe for concurrent use: keep one per partition.
package dedup
