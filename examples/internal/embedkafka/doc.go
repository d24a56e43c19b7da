// Package embedkafka runs a Kafka-protocol broker inside the current process,
// for the one-command demo (examples/fullpipeline) and integration tests that
// should not need a JVM.
//
// It wraps franz-go's kfake (github.com/twmb/franz-go/pkg/kfake): one broker
// node, data held in memory, consumer groups, committed offsets and
// idempotent producers supported. IBM/sarama clients work against it with
// their usual settings; [SaramaConfig] is the configuration the tests check
// (produce idempotently, consume in a group with manual commits, re-join and
// resume from the committed offsets).
//
// The broker holds its data in memory, and it goes with Close. To keep a
// topic across restarts, produce to it through a [Producer], which appends
// every record to a [Log] (a file per partition, fsynced before the record
// is produced) and checks that the broker gives it its offset in the log; at
// the next start, [Log.Restore] refills the new broker's topic from the
// files, so every record is back at its old offset and consumers resume
// from their checkpoints. Committed consumer-group offsets are not kept.
//
// It is meant for demos and tests, not production: there is no replication,
// and a restored topic is held in memory whole. A [Broker] and a [Producer]
// are safe for concurrent use, a [Log] is not; Close may be called more than
// once.
package embedkafka
