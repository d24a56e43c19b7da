// Package sinktest is the conformance suite of sinks whose results can be
// read back ([Run]), with the keyed [Reference] sink it compares them with
// and deterministic results to write ([Window], [SessionRecord], [FunnelRecord]).
//
// A sink passes it with a Target that reads back the current value per key:
//
//	func TestConformance(t *testing.T) {
//		sinktest.Run(t, func(t *testing.T) sinktest.Target {
//			s := newSink(t)
//			return sinktest.Target{Sink: s, Read: s.readBack, PerPartition: true}
//		})
//	}
//
// A [Reference] is safe for concurrent use.
package sinktest
