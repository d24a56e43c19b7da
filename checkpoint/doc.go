// Package checkpoint stores each partition's operator state together with
// the input offset it covers (SEMANTICS §10), behind a small [Store]
// interface: [Dir] keeps one file per partition, [Memory] serves tests.
//
// Stores in this package are safe for concurrent use.
package checkpoint
