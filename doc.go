// Package clickstream defines the clickstream event of SEMANTICS §1 and its
// fast decoder and validator. The operators live in the sub-packages window,
// dedup, session, funnel and kpi; sources, sinks and pipeline connect them to
// the outside.
//
// A [Decoder] is safe for concurrent use; an [Event] is a plain value.
package clickstream
