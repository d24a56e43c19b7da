// Package checkpoint stores each partition's operator state together with
// the input offset it covers (SEMANTICS §10), behind a small [Store]
// interface: [Dir] keeps files in a directory, [Memory] serves tests, and
// the sub-package mongo keeps them in MongoDB collections for many
// instances. The conformance suite every store passes is in checkpointtest.
//
// A checkpoint is incremental: a small head rewritten by each Save, and
// immutable segments written once and shared by the checkpoints that
// follow, so a Save costs the head plus what changed. Saves are fenced by
// the consumer-group generation and the offset: a writer that was replaced
// gets [ErrFenced] and changes nothing.
//
// Stores in this package are safe for concurrent use.
package checkpoint
