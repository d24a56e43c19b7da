// Package kafkadl is a [sinks.Sink] that produces the dead letters of each
// batch (invalid and late events, SEMANTICS §1 and §3) to a Kafka topic,
// events_deadletter by default. It ignores everything else in a batch: tee it
// with the sinks that store the results (sinks.Tee).
//
// Each dead letter becomes one record: the value is the original message's
// bytes, the key is "source_topic/source_partition/source_offset", and the
// headers are reason, field, detail, source_topic, source_partition and
// source_offset (numbers in decimal). See [Message].
//
// The producer is idempotent (acks from all in-sync replicas, one request in
// flight, retries), so its own retries never duplicate a record, and Write
// returns only once every record of the batch is acknowledged. Kafka cannot
// deduplicate across producer sessions, though: when the pipeline replays a
// batch after a crash or a failed Write, its dead letters are produced again.
// The (source_topic, source_partition, source_offset) headers, which the key
// repeats, are unique per input message: consumers deduplicate on them, and
// on a compacted topic (cleanup.policy=compact) Kafka itself keeps one record
// per key. Records of one source partition may land in different partitions
// of the dead-letter topic; the source_offset header orders them.
//
// A Sink is safe for concurrent use.
package kafkadl
