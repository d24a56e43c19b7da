// Package readapi serves the read API of examples/fullpipeline (docs/API.md)
// over a [Store], the merged views of sinks/mongo, with the dashboard page of
// package dashboard beside it:
//
//	h := readapi.New(sink, cfg, readapi.Options{Stats: stats, Token: token})
//	srv := &http.Server{Handler: h}
//
// The fullpipeline binary serves it over its MongoDB sink behind a cache; the
// dashboard's browser tests serve it over the synthetic store of package
// dashboardtest, so that the page is tested against the very JSON the demo
// answers. The handler keeps no state of its own: it is safe for concurrent
// use as far as the Store and the Stats function are.
package readapi
