// Package sinks defines the [Sink] interface the pipeline writes its results
// to, the [Batch] it writes, an in-memory sink ([Memory]) for tests, and the
// JSON-lines directory sink ([JSONL]) that writes the replay outputs of
// SEMANTICS §9. MongoDB and Parquet live in the sub-packages mongo and parquet.
//
// Sinks in this package are safe for concurrent use.
package sinks
