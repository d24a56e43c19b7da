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
// It is meant for demos and tests, not production: the data lives in memory
// and goes with Close, and there is no replication. A [Broker] is safe for
// concurrent use; Close may be called more than once.
package embedkafka
