package parquet_test

import (
	"context"
	"fmt"
	"io/fs"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/clickstreamkit/clickstream"
	"github.com/clickstreamkit/clickstream/kpi"
	"github.com/clickstreamkit/clickstream/sinks"
	"github.com/clickstreamkit/clickstream/sinks/parquet"
)

func Example() {
	dir, err := os.MkdirTemp("", "archive")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sink, err := parquet.New(dir, parquet.WithChunkSize(1000))
	if err != nil {
		log.Fatal(err)
	}
	ts, _ := clickstream.ParseTimestamp("2025-03-14T12:00:05.250+01:00")
	view := clickstream.Event{EventID: "e1", EventType: "page_view", TS: ts,
		UserID: "u1", Page: "/p/42", ProductID: "sku-42"}
	buy := clickstream.Event{EventID: "e3", EventType: "purchase", TS: ts + 30_000,
		UserID: "u1", ProductID: "sku-42", Price: 19.99, HasPrice: true, Currency: "EUR"}
	// Offset 1 held an invalid message: no accepted event.
	b := &sinks.Batch{Topic: "clicks", Partition: 0, FirstOffset: 0, NextOffset: 3, End: true,
		Events: []sinks.Accepted{{Offset: 0, Event: view}, {Offset: 2, Event: buy}},
		KPIs: []kpi.Minute{{Minute: ts - ts%60_000, Final: true,
			Counts:            kpi.Counts{Events: 2, PageViews: 1, Purchases: 1, Sessions: 1, Revenue: 19.99, RevenuePurchases: 1},
			RevenueByCurrency: map[string]float64{"EUR": 19.99}}},
	}
	ctx := context.Background()
	if err := sink.Write(ctx, b); err != nil {
		log.Fatal(err)
	}
	if err := sink.Close(ctx); err != nil {
		log.Fatal(err)
	}

	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(path, ".parquet") {
			rel, _ := filepath.Rel(dir, path)
			fmt.Println(filepath.ToSlash(rel))
		}
		return err
	})
	events, err := parquet.ReadEvents(dir)
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range events {
		fmt.Printf("%d %s %s %q %v\n", r.Offset, r.Event.EventType, clickstream.FormatTime(r.Event.TS), r.Event.Currency, r.Event.Price)
	}
	kpis, err := parquet.ReadKPIs(dir)
	if err != nil {
		log.Fatal(err)
	}
	for _, k := range kpis {
		fmt.Println(clickstream.FormatTime(k.Minute), k.Events, k.Purchases, k.ConversionRate, k.RevenueByCurrency)
	}
	// Output:
	// events/topic=clicks/partition=0/00000000000000000000-00000000000000000003.parquet
	// kpis/topic=clicks/partition=0/2025-03-14T110000.000Z.parquet
	// 0 page_view 2025-03-14T11:00:05.250Z "" 0
	// 2 purchase 2025-03-14T11:00:35.250Z "EUR" 19.99
	// 2025-03-14T11:00:00.000Z 2 1 1 map[EUR:19.99]
}
