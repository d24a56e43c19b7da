// Package funnel holds the ordered funnel of SEMANTICS §7: configurable
// steps, counted per session (fed the session package's final sessions) or
// per user within a conversion window, matched greedily in event time, with
// one record per start minute once every entity of that minute is final,
// optionally broken down by one event dimension (WithBreakdown). Until then
// Updates emits running values for the minutes that changed: in session
// scope the final sessions plus the open ones set with SetOpen (as
// session.Sessionizer.Changes reports them), in user scope the final
// entities plus those the buffered events would make.
//
// A Funnel is not safe for concurrent use: keep one per partition.
package funnel
