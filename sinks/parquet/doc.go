// Package parquet is a [sinks.Sink] that archives a pipeline's accepted
// events and final minute KPIs as Parquet files (SNAPPY-compressed, written
// with github.com/xitongsys/parquet-go), for cold storage and batch
// analytics.
//
// # Layout
//
// Under the sink's directory, per source topic (path-escaped) and partition:
//
//	events/topic=<t>/partition=<p>/<first>-<end>.parquet   offsets [first, end), 20 digits each
//	events/topic=<t>/partition=<p>/_staging                the open chunk's events
//	kpis/topic=<t>/partition=<p>/<yyyy-mm-dd>.parquet      one UTC day of final minutes
//	kpis/topic=<t>/partition=<p>/<yyyy-mm-dd>T<hhmmss.mmm>Z.parquet  the day up to that minute, at the end of an input
//	kpis/topic=<t>/partition=<p>/_staging                  the open day's minutes
//
// An events file holds, in offset order, one row per accepted event whose
// offset falls in its chunk: chunk k covers offsets [k*n, (k+1)*n), n the
// chunk size (WithChunkSize). Offsets of accepted events are sparse, so a
// file has at most n rows, and a chunk without accepted events has no
// file. Its columns are the event's fields of SEMANTICS §1 (event_ts as
// TIMESTAMP_MILLIS, UTC; optional fields null when absent; price an optional
// double) and source_topic, source_partition, source_offset (not named
// topic and partition, which the directories already are).
//
// A KPI file holds a partition's final minutes (Batch.KPIs with Final set;
// running updates are not archived) of one UTC day, in minute order, with
// the KPIs of SEMANTICS §6: minute (TIMESTAMP_MILLIS), events, page_views,
// add_to_carts, purchases, sessions, revenue, revenue_purchases,
// conversion_rate, aov, latency_ms_p95 (optional), revenue_by_currency and
// top_products (JSON strings, as in the JSON-lines output), source_topic,
// source_partition. A day rather than an hour: a partition's day is at most
// 1,440 rows, already a small file by Parquet's standards, and an hour
// would make 24 times more of them. The price is that a day's file appears
// once the day is over (or at the end of the input), which suits an archive:
// live values are the dashboard's.
//
// A staging file is a log of length-prefixed, CRC-checked records (offset
// or minute, then the event or the minute's KPIs) after a header naming its
// partition and period.
//
// Names starting with "_" or "." are not data: Hive-style readers (Spark,
// DuckDB's hive_partitioning, pyarrow datasets) skip them, and
// "events/**/*.parquet" does not match them.
//
// # Guarantees
//
// Write returns nil once the batch is durable. The events of chunks the
// batch completes (its NextOffset lies beyond them) go to their Parquet
// files, each written to a temporary name, fsynced, renamed and its
// directory fsynced; the events of the chunk still open are appended to the
// partition's staging file and fsynced. KPIs go the same way by day: a day's
// file is written when a final minute of a later day arrives. At the end of
// a finite input (Batch.End) the open chunk is written as a file ending at
// the batch's NextOffset, and the open day's file is written, named by its
// last final minute; both stay staged, so that a longer input later
// completes them under other names, removing these.
//
// The open chunk's Parquet file is encoded as its events are staged, into
// a temporary file that the chunk's completion ends, fsyncs and renames, so
// that no Write pays for encoding a whole chunk (about 0.6 s for the
// default 100,000 events, which held up every partition's round). The
// staging file stays the record: after a restart, or a replay that cuts
// staged events, the chunk's file is encoded whole from it, with the same
// bytes. The encoder holds the chunk's encoded pages in memory until then
// (a few tens of MB per partition at the default chunk size).
//
// A batch replaces whatever earlier writes put at or after its FirstOffset
// (for KPIs: at or after its first final minute), so the pipeline's replay
// after a crash, with any batch boundaries, writes the same files with the
// same rows and each accepted event is archived exactly once (SEMANTICS
// §10). The bytes are the same too: the files hold no time or host, and the
// writer runs single-threaded. A torn record at the end of a staging file (a
// crash during a Write that never returned nil) is dropped when the
// partition is next written; the replay brings it back.
//
// A Parquet file is never overwritten: a file whose name exists with the
// same bytes is kept as it is, and one with other content fails the Write
// with ErrConflict, a permanent error (clickstream.ErrPermanent), leaving
// the existing file alone. Such a replay accepts other events than the first
// run did (an event rejected as future_timestamp by one clock and not by
// the other), or reads another input under the same offsets (a topic
// re-created from scratch): its results are not the archive's. The one
// difference tolerated is latency_ms_p95 in KPI files, which is not
// deterministic (SEMANTICS §6): a day whose other values are the same keeps
// the file written first.
//
// Readers see complete chunks and days, and the end-of-input files. While a
// replay is under way, the files of periods after the one it restarted in
// stay as the crashed run left them until the replay rewrites them.
//
// The staging files are the state that makes this work: keep them with the
// Parquet files, and keep the chunk size of a directory (a sink refuses a
// directory written with another). Processes that own a partition in turn
// (a Kafka consumer group's rebalances) must share the directory; a sink
// notices that another wrote a partition since it last did and reloads it.
//
// Completing a chunk converts its events to Parquet in one Write: with the
// default chunk, on the order of half a second.
//
// A Sink is safe for concurrent use; the writes of one partition are
// serialized, those of different partitions run in parallel. ReadEvents
// and ReadKPIs read a directory back.
package parquet
