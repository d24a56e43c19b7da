package sinks_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/clickstreamkit/clickstream/kpi"
	"github.com/clickstreamkit/clickstream/sinks"
)

func ExampleJSONL() {
	dir, _ := os.MkdirTemp("", "replay")
	defer os.RemoveAll(dir)
	sink, _ := sinks.NewJSONL(dir, time.Minute, func() (*kpi.Detector, error) { return kpi.NewDetector(30, 10, 3) })
	ctx := context.Background()
	b := &sinks.Batch{Topic: "events", KPIs: []kpi.Minute{{Minute: 0, Final: true,
		Counts: kpi.Counts{Events: 3, Sessions: 2, Purchases: 1, Revenue: 9.5, RevenuePurchases: 1}}},
		Counters: sinks.Counters{Read: 4, Accepted: 3, Invalid: 1},
		End:      true} // the partition's last batch: its windows are final in the global view
	sink.Write(ctx, b)
	sink.Write(ctx, b) // a replayed batch overwrites: the sink is idempotent
	sink.Close(ctx)
	kpis, _ := os.ReadFile(filepath.Join(dir, sinks.FileKPIs))
	summary, _ := os.ReadFile(filepath.Join(dir, sinks.FileSummary))
	fmt.Print(string(kpis), string(summary))
	// Output:
	// {"minute":"1970-01-01T00:00:00.000Z","final":true,"events":3,"page_views":0,"add_to_carts":0,"purchases":1,"sessions":2,"revenue":9.5,"revenue_purchases":1,"revenue_by_currency":{},"conversion_rate":0.5,"aov":9.5,"top_products":[]}
	// {"read":4,"accepted":3,"invalid":1,"late":0,"duplicates":0}
}
