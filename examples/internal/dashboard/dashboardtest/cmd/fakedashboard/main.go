// Command fakedashboard serves the dashboard and the read API over the fake
// store of package dashboardtest, for working on the page without the
// pipeline:
//
//	go run ./internal/dashboard/dashboardtest/cmd/fakedashboard [-addr 127.0.0.1:8090] [-token T]
//
// then open http://127.0.0.1:8090/ (or /#token=T).
package main

import (
	"flag"
	"log"
	"net/http"
	"time"

	"github.com/clickstreamkit/clickstream/examples/internal/dashboard/dashboardtest"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8090", "listen address")
	token := flag.String("token", "", "require this bearer token on the API (open the page as /#token=T)")
	tick := flag.Duration("tick", time.Second, "period of one step of the fake clock")
	perMinute := flag.Int("ticks-per-minute", 15, "steps per virtual minute (60 = real time)")
	empty := flag.Bool("empty", false, "start without data; it appears after -empty-for")
	emptyFor := flag.Duration("empty-for", 10*time.Second, "with -empty: how long")
	flag.Parse()

	f := dashboardtest.NewFake(dashboardtest.Options{
		Tick: *tick, TicksPerMinute: *perMinute, Token: *token, Empty: *empty,
	})
	defer f.Stop()
	if *empty {
		time.AfterFunc(*emptyFor, f.Begin)
	}
	log.Printf("fake clickstream API and dashboard on http://%s/", *addr)
	log.Fatal(http.ListenAndServe(*addr, f))
}
