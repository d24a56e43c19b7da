// Package mongo is a [sinks.Sink] for MongoDB, with queries that read the
// merged, global view back (SEMANTICS §6, §7, §10, §11).
//
// # Documents
//
// Each partition writes its own partials; nothing is incremented, and every
// update is filtered on the _id alone, "<topic, path-escaped>/<partition>/<key>",
// so a replayed batch rewrites the same documents (idempotence) and the
// server finds each document by its primary key (FerretDB pushes down no
// other filter).
//
//   - kpis_minute, key the window start (RFC 3339 UTC millis): minute (date),
//     topic, partition, final (true), events, page_views, add_to_carts,
//     purchases, sessions, revenue, revenue_purchases, revenue_by_currency,
//     conversion_rate, aov, top_products (packed in a binary: [Products]),
//     latency_bins (the sparse latency sketch, so partials merge, packed in
//     a binary: [LatencyBins]), latency_ms_p95 (null without latency),
//     updated_at. Final windows only, inserted (see below); a running window
//     lives in the progress document. Documents of earlier versions of the
//     sink may be running windows (final false, the values under running or
//     at the top level): they read as before, until the final replaces them.
//   - sessions, key the start (RFC 3339 UTC millis) and the user_id,
//     "<start>/<user_id>", so that keys follow time and a round's sessions
//     land together in the server's indexes: session_id, user_id, topic,
//     partition, start, end (dates), duration_ms, events, page_views,
//     add_to_carts, purchases, revenue, bounced, converted, updated_at.
//     Final when written: inserted (see below). Earlier versions of the sink
//     keyed a session by its session_id; [Sink.Sessions] counts a session
//     stored under both keys once.
//   - funnel_minute, key the start minute: minute (date), topic, partition,
//     final, entered, steps, step_rates, overall_rate,
//     median_time_to_convert_ms (null when none), times_ms (the sorted
//     conversion times, so that the merged median is exact, packed in a
//     binary: [Times]), by (the breakdown, funnel.Part: [{value, steps,
//     times_ms}] by value, null without one), updated_at, and running: null.
//     That is a final record, inserted (see below). A minute still running
//     is _id, minute, topic, partition, final false, and its values from
//     entered to updated_at under running: a running update (SEMANTICS §7)
//     sets running.entered, running.steps and so on, one field at a time,
//     and on insert minute, topic, partition and final. In a final document
//     those paths cannot be created under null: the server refuses a
//     running update of a final record (write error 28, PathNotViable, on
//     MongoDB and FerretDB alike) and leaves it as it is, whoever sends it
//     and whenever (a replay's stale update, a previous owner's last
//     command), with no second filter key and no read before the write;
//     Write counts that refusal as done.
//   - progress, _id "<topic, path-escaped>/<partition>": topic, partition,
//     partitions, watermark, funnel_before (sinks.Progress; times as Unix
//     millis, math.MinInt64 for -inf and math.MaxInt64 for +inf),
//     updated_at, and the partition's running windows (SEMANTICS §6):
//     running_kpis, a document keyed "m<start in Unix millis>" of {minute,
//     and the values of a kpis_minute document}. One update statement per
//     partition and Write, on the _id alone, after the batch's other
//     results are durable: $set of the batch's running windows, $unset of
//     its final ones and of running ones the watermark has passed (stale:
//     their finals are in kpis_minute), and $max on the three progress
//     fields so that none moves backwards when a replay sends an older
//     progress. So a round of a partition writes its windows in one
//     statement however many it updates, and nothing running is written
//     over a final window; a stale running window (a replay's, a previous
//     owner's last command) that lands in the progress document loses to
//     the final on every read. A batch without results writes it too when
//     its progress is beyond what the sink last published (an idle
//     partition's watermark advancing). Running funnel minutes stay in
//     funnel_minute: each holds its conversion times (several KB at a few
//     thousand events a second), so a document of all of a partition's
//     running minutes would be rewritten whole for the few that change
//     (measured: a slower round, see the README).
//
// Final windows, sessions and final funnel minutes never change once
// written, so they are sent as unordered inserts, in commands of up to 1,000
// documents (or [WithMaxBulk]'s value if larger). A replay after a crash
// inserts documents that are there already: the server answers each with a
// duplicate key error (11000), names it and goes on with the others (MongoDB
// and FerretDB alike), and just those documents are then replaced on their
// _id, so that the last write of a key wins (a final that finds a running
// document replaces it the same way). Running funnel minutes, and those
// rewrites, go in update commands of at most [WithMaxBulk] statements
// (default 1,000; FerretDB needs 32). An answer that accounts for every
// statement is taken as it is; one that does not (FerretDB stops an update
// command at its first error and names it loosely) makes Write send each
// statement of the command again on its own, which their idempotence allows.
//
// Indexes: {minute: 1} on kpis_minute and funnel_minute, {start: 1} on
// sessions, created by [Sink.EnsureIndexes] or the first Write.
//
// # Durability and outages
//
// Every write uses write concern majority: Write returns nil only once the
// batch is durable, and the pipeline commits offsets after that. Write does
// not retry; the pipeline's Runner, or behind a [sinks.Tee] the Tee, retries
// the call whole with back-off.
// So that an outage surfaces as an error in seconds rather than hanging a
// Write, give the client short timeouts, for example
//
//	options.Client().ApplyURI(uri).
//		SetServerSelectionTimeout(5 * time.Second).
//		SetConnectTimeout(5 * time.Second)
//
// ([options.ClientOptions.SetTimeout] also works but bounds queries too),
// and keep [WithWriteTimeout] (default 60s) above the time the server needs
// for the largest batch.
//
// # Queries
//
// [Sink.Minutes], [Sink.LatestMinutes], [Sink.Funnel] and [Sink.Anomalies]
// merge the partitions' partials of each minute in a [sinks.View], as the
// JSON-lines sink does, and judge finality on the global view (SEMANTICS
// §11): they read the
// progress documents, then the results, and call a merged window final only
// when every partition of the topic has a watermark at or past its end
// (a partition without a progress document has passed nothing, whether it
// wrote the window or not), a merged funnel minute only when every
// partition's funnel_before is above it. Each merged record says how many
// partitions have passed it out of how many ([sinks.Completeness]); a topic's
// partition count is the largest its progress documents carry.
// [Sink.Anomalies] scores merged final windows in minute order and says
// where to go on from, so that each window is scored once;
// [Sink.Progress] reads every partition's progress.
//
// A [Sink] is safe for concurrent use.
package mongo
