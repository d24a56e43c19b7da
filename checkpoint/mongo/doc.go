// Package mongo is a checkpoint.Store in MongoDB ([Store]): a head document
// per partition in one collection (default "checkpoints"),
//
//	{_id: "<topic, path-escaped>/<partition>", topic, partition, next,
//	 generation, rev, segments: [ids], state (binary), updated_at}
//
// and a document per segment in a second one (default
// "checkpoints_segments"),
//
//	{_id: "<head _id>/<segment id>", topic, partition, seg, generation,
//	 next, data (binary)}
//
// where generation and next are those of the Save that wrote the segment.
//
// Save inserts the new segments in unordered batches, then replaces the
// head if its rev is still the one it read (a compare-and-swap: another
// Save landing in between makes it read again and check the fence anew),
// then deletes the segments it dropped, one _id at a time. Writes use write
// concern majority, so Save returns nil only once the checkpoint is
// durable, and a reader sees the old or the new head whole. Load reads the
// head, then the partition's segments in one query on a range of _id, and
// removes the unlisted ones a Save left that can no longer land (the head
// is of a later generation or offset). A head or a segment must fit in one
// BSON document: at most [MaxState] bytes.
//
// On FerretDB 1.24, an update is a read then a write, not one atomic step,
// so the compare-and-swap holds only between Saves that do not overlap in
// time: overlapping Saves of one partition may land out of order (the last
// to write wins), and one may drop a segment the other keeps. A single
// writer per partition, which fencing is for, is unaffected.
//
// A [Store] is safe for concurrent use.
package mongo
