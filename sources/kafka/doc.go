// Package kafka is a [sources.Source] over a Kafka topic, read through a
// consumer group with IBM/sarama.
//
// A [Source] delivers batches of one partition in offset order. It never
// commits on its own: auto-commit is off, and an offset is marked and
// committed, synchronously, only inside [Source.Commit], which the pipeline
// calls once the sinks and the checkpoint covering the offset are durable
// (SEMANTICS §10). When a rebalance takes a partition away, Read first returns
// a notice (Batch.Revoked) and the source keeps the partition, so that the
// reader can still commit, until the reader calls Release.
//
// Batches also tell the reader what the global view needs (SEMANTICS §11):
// the topic's partition count (Batch.Partitions), the consumer-group
// generation they were read in (Batch.Generation, for fencing checkpoints)
// and whether they reach the partition's high watermark (Batch.CaughtUp). A
// partition claimed at its end is announced by a CaughtUp notice without
// messages, so that the reader can tell it idle.
//
// [WithBounded] turns the source into a finite one for backfills and tests:
// it reads every partition up to the end offsets it saw when it connected,
// then Read returns [sources.ErrEndOfInput].
//
// [ParseURL] reads the kafka://HOST:PORT/TOPIC?group=NAME form the examples'
// -source flag takes.
//
// Read is for one goroutine at a time; Commit, Lag and Close are safe to call
// from other goroutines concurrently with it.
package kafka
