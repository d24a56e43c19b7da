// Package kpi holds the one-minute KPIs of SEMANTICS §6 as a mergeable
// per-partition [Partial] (the aggregate of a window.TumblingWindow), its
// output record [Minute] with [Merge] across partitions, the partition's
// [Users] that count each window's sessions, the mergeable latency [Sketch],
// and the conversion-rate anomaly [Detector] of §8.
//
// None of the types is safe for concurrent use.
package kpi
