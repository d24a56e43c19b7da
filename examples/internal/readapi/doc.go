// Package readapi serves the read API of examples/fullpipeline (docs/API.md)
// over a [Store], the global view of SEMANTICS §11 as sinks/mongo's queries
// and package memstore answer it, with the dashboard page of
// package dashboard beside it:
//
//	h := readapi.New(sink, cfg, readapi.Options{Stats: stats, Token: token})
//	srv := &http.Server{Handler: h}
//
// The fullpipeline binary serves it over package memstore's view, fed by the
// sinks' writes and loaded from its MongoDB sink at start; the
// dashboard's browser tests serve it over the synthetic store of package
// dashboardtest, so that the page is tested against the very JSON the demo
// answers. The handler keeps no state of its own: it is safe for concurrent
// use as far as the Store and the Stats function are.
package readapi
