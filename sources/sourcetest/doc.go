// Package sourcetest checks [sources.Source] implementations against the
// interface's contract, and wraps sources with faults for tests of what reads
// them.
//
// [Run] is the conformance suite: every source of the module (memory, file,
// Kafka in bounded mode) passes the same checks, given an [Opener] that makes
// a fresh source over the values the suite chooses.
//
// The wrappers, in the manner of testing/iotest, inject one fault each:
// [ErrAfter] fails Read after some batches, [FailCommit] fails the first
// commits, [OneMessage] splits batches into single messages, [RevokeAfter]
// takes a partition away as a consumer-group rebalance would, and [Record]
// keeps every Commit call.
//
// A wrapper is safe for the use its source allows: Read from one goroutine,
// Commit and Close from others.
package sourcetest
