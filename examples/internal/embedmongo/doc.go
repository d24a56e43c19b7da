// Package embedmongo runs a MongoDB-wire-protocol server inside the current
// process, for the examples and their integration tests.
//
// It wraps FerretDB v1 (github.com/FerretDB/FerretDB/ferretdb) with its SQLite
// backend, so no MongoDB binary, PostgreSQL or container is needed: the data
// lives in one SQLite file per database under a directory of the caller's
// choice. Any MongoDB driver can connect to the URI that [Server.URI] returns.
//
// Two changes to FerretDB's defaults keep writes by _id, the MongoDB sink's
// and the checkpoint store's, at the same speed however large a collection
// grows: an SQLite index on the expression FerretDB's _id filter compares,
// which its own _id index does not serve ([WithIDIndex]), and SQLite's
// synchronous=NORMAL, safe against crashes of the process ([WithSynchronous]).
//
// It is meant for local development and tests (see examples/mongoserver and
// scripts/services.sh), not for production: FerretDB implements only a subset
// of MongoDB, has no replica sets and no transactions.
//
// A [Server]'s methods are safe for concurrent use.
package embedmongo
