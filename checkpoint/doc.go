// Package checkpoint stores each partition's operator state together with
// the input offset it covers (SEMANTICS §10), behind a small [Store]
// interface: [Dir] keeps one file per partition, [Memory] serves tests, and
// the sub-package mongo keeps them in a MongoDB collection for many
// instances. The conformance suite every store passes is in checkpointtest.
//
// Stores in this package are safe for concurrent use.
package checkpoint
