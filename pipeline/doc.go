// Package pipeline wires the operators into the order of work of SEMANTICS
// §2, per source partition: decode and validate, late check, dedup,
// sessionize, then KPI windows and the funnel. A [Processor] holds one
// partition's state and can be snapshotted; a [Runner] reads a source, keeps a
// Processor per partition, writes to a sink and commits offsets only after
// the sink has made the results durable.
//
// A Processor is not safe for concurrent use; a Runner runs in the goroutine
// that calls Run, and its Stats method is safe to call from any goroutine.
package pipeline
