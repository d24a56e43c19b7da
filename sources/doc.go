// Package sources defines the [Source] interface the pipeline reads from,
// with an in-memory source ([Memory]) for tests and a JSON-lines file source
// ([File]) for replays. Kafka lives in the sub-package kafka.
//
// Unless a type says otherwise, its methods are safe for use by one reader
// goroutine plus Commit and Close from another.
package sources
