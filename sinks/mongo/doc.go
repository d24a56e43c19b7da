// Package mongo is a [sinks.Sink] for MongoDB, with queries that read the
// merged, global view back (SEMANTICS §6, §7, §10, §11).
//
// # Documents
//
// Each partition writes its own partials; nothing is incremented, every
// document is set whole with $set in an upsert keyed by what identifies it,
// so a replayed batch rewrites the same documents (idempotence). The _id is
// "<topic, path-escaped>/<partition>/<key>".
//
//   - kpis_minute, key the window start (RFC 3339 UTC millis): minute (date),
//     topic, partition, final, events, page_views, add_to_carts, purchases,
//     sessions, revenue, revenue_purchases, revenue_by_currency,
//     conversion_rate, aov, top_products [{product_id, views, carts,
//     purchases, revenue}], latency_bins [{i, n}] (the sparse latency
//     sketch, so partials merge), latency_ms_p95 (null without latency),
//     updated_at. Final windows replace anything. A running update (final
//     false) never replaces a final window: Write leaves out the updates of
//     windows it finds final, and filters the others on
//     {_id, final: {$ne: true}}, so that should a final land in between, the
//     upsert's insert meets the existing _id; that duplicate key error counts
//     as done when the server reports everything else applied (MongoDB),
//     else Write fails and the retried batch leaves the update out (FerretDB
//     stops an unordered bulk write at the first error).
//   - sessions, key the session_id: session_id, user_id, topic, partition,
//     start, end (dates), duration_ms, events, page_views, add_to_carts,
//     purchases, revenue, bounced, converted, updated_at.
//   - funnel_minute, key the start minute: minute (date), topic, partition,
//     entered, steps, step_rates, overall_rate, median_time_to_convert_ms
//     (null when none), times_ms (the sorted conversion times, so that the
//     merged median is exact), updated_at.
//   - progress, _id "<topic, path-escaped>/<partition>": topic, partition,
//     partitions, watermark, funnel_before (sinks.Progress; times as Unix
//     millis, math.MinInt64 for -inf and math.MaxInt64 for +inf),
//     updated_at. Written by an upsert on the _id alone, after the batch's
//     results are durable, with $max on the three progress fields so that
//     none moves backwards when a replay sends an older progress. A batch
//     without results writes it too when its progress is beyond what the
//     sink last published (an idle partition's watermark advancing).
//
// Indexes: {minute: 1} on kpis_minute and funnel_minute, {start: 1} on
// sessions, created by [Sink.EnsureIndexes] or the first Write.
//
// # Durability and outages
//
// Every write uses write concern majority: Write returns nil only once the
// batch is durable, and the pipeline commits offsets after that. Write does
// not retry; the pipeline's Runner retries the batch whole with back-off.
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
// merge the partitions' partials of each minute (kpi.Merge, funnel.Merge)
// and judge finality on the global view (SEMANTICS §11): they read the
// progress documents, then the results, and call a merged window final only
// when every partition of the topic has a watermark at or past its end
// (a partition without a progress document has passed nothing, whether it
// wrote the window or not), a merged funnel minute only when every
// partition's funnel_before is above it. Each merged record says how many
// partitions have passed it out of how many ([Completeness]); a topic's
// partition count is the largest its progress documents carry.
// [Sink.Anomalies] scores merged final windows in minute order and says
// where to go on from, so that each window is scored once. [KPIRecords] and
// [FunnelRecords] shape merged records as the JSON records of SEMANTICS §9
// with their completeness; [Sink.Progress] reads every partition's progress.
//
// A [Sink] is safe for concurrent use.
package mongo
