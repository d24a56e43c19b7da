// Package funnel holds the ordered funnel of SEMANTICS §7: configurable
// steps, counted per session (fed the session package's final sessions) or
// per user within a conversion window, matched greedily in event time, with
// one record per start minute once every entity of that minute is final.
// In session scope it also keeps running values: the open sessions set with
// SetOpen (as session.Sessionizer.Changes reports them) plus the final ones,
// emitted by Updates for the minutes that changed.
//
// A Funnel is not safe for concurrent use: keep one per partition.
package funnel
