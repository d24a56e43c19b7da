// Package replay sends JSON-lines clickstream events to Kafka (or any
// [Producer]) at a given rate: the `producer replay` command and the
// in-process feeder of examples/fullpipeline.
//
// Each message is keyed by the event's user_id (SEMANTICS §2: one user's
// events share a partition), found by a minimal scan of the line; a line
// without a readable string user_id gets no key. In [Options.Live] mode the
// events' event_ts are shifted so the data looks current, which lets a finite
// file drive a live dashboard forever (with [Options.Loop]).
//
// [Run] is meant to be called from one goroutine; a [Sarama] producer is safe
// for concurrent use.
package replay
