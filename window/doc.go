// Package window holds the event-time operators of SEMANTICS §3 and §6: the
// per-partition [Watermark] and the epoch-aligned [TumblingWindow] (and its
// hopping form) that is generic over the aggregate it keeps per window.
//
// Times are Unix milliseconds. Operators are not safe for concurrent use: keep
// one per partition and drive it from one goroutine.
package window
