// Package session holds the [Sessionizer] of SEMANTICS §5: per-user sessions
// split by an inactivity gap, in event time, whatever the order of arrival:
// an out-of-order event can extend a session or bridge and merge two. A
// session is emitted once final, and nothing changes it after.
//
// A Sessionizer is not safe for concurrent use: keep one per partition.
package session
