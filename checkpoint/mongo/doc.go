// Package mongo is a checkpoint.Store in a MongoDB collection ([Store]),
// one document per partition:
//
//	{_id: "<topic, path-escaped>/<partition>", topic, partition, next,
//	 state (binary), updated_at}
//
// Save replaces the document whole in an upsert with write concern
// majority, so it returns nil only once the checkpoint is durable, and a
// reader sees either the old or the new checkpoint. A state must fit in one
// BSON document: at most [MaxState] bytes.
//
// A [Store] is safe for concurrent use.
package mongo
