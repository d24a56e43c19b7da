package dashboardtest

import (
	"github.com/clickstreamkit/clickstream/examples/internal/readapi"
	"github.com/clickstreamkit/clickstream/sinks"
)

// The JSON shapes of docs/API.md that the tests read the page's data into:
// the fake's helpers decode the real handler's answers into them refusing
// unknown fields, so they cannot drift from it unnoticed.

// KPI is a KPI record: one minute's values, merged over partitions.
type KPI struct {
	Minute            string             `json:"minute"`
	Final             bool               `json:"final"`
	Events            int64              `json:"events"`
	PageViews         int64              `json:"page_views"`
	AddToCarts        int64              `json:"add_to_carts"`
	Purchases         int64              `json:"purchases"`
	Sessions          int64              `json:"sessions"`
	Revenue           float64            `json:"revenue"`
	RevenuePurchases  int64              `json:"revenue_purchases"`
	RevenueByCurrency map[string]float64 `json:"revenue_by_currency"`
	ConversionRate    float64            `json:"conversion_rate"`
	AOV               float64            `json:"aov"`
	TopProducts       []TopProduct       `json:"top_products"`
	LatencyMsP95      float64            `json:"latency_ms_p95"`
	// PartitionsComplete of PartitionsTotal have passed the window
	// (SEMANTICS §11).
	PartitionsComplete int `json:"partitions_complete"`
	PartitionsTotal    int `json:"partitions_total"`
}

// TopProduct is one entry of a top_products list.
type TopProduct struct {
	ProductID string  `json:"product_id"`
	Views     int64   `json:"views"`
	Carts     int64   `json:"carts"`
	Purchases int64   `json:"purchases"`
	Revenue   float64 `json:"revenue"`
}

// Funnel is the answer of /funnel.
type Funnel struct {
	MinutesBack           int                        `json:"minutes_back"`
	Steps                 []string                   `json:"steps"`
	Entered               int64                      `json:"entered"`
	Counts                []int64                    `json:"counts"`
	StepRates             []float64                  `json:"step_rates"`
	OverallRate           float64                    `json:"overall_rate"`
	MedianTimeToConvertMs *int64                     `json:"median_time_to_convert_ms"`
	Minutes               []sinks.GlobalFunnelRecord `json:"minutes"`
	Final                 bool                       `json:"final"`
	ProvisionalMinutes    int                        `json:"provisional_minutes"`
	Breakdown             Breakdown                  `json:"breakdown"`
}

// Breakdown is /funnel's breakdown by one event dimension: the top values
// and the others.
type Breakdown struct {
	Dimension string                   `json:"dimension"`
	Top       int                      `json:"top"`
	Values    []readapi.BreakdownValue `json:"values"`
}

// Anomaly is an anomaly record (SEMANTICS §8).
type Anomaly struct {
	Minute    string  `json:"minute"`
	Metric    string  `json:"metric"`
	Value     float64 `json:"value"`
	Mean      float64 `json:"mean"`
	Std       float64 `json:"std"`
	Z         float64 `json:"z"`
	Direction string  `json:"direction"`
}

// SessionsSummary is the answer of /sessions/summary.
type SessionsSummary struct {
	MinutesBack   int     `json:"minutes_back"`
	Sessions      int64   `json:"sessions"`
	Bounced       int64   `json:"bounced"`
	Converted     int64   `json:"converted"`
	BounceRate    float64 `json:"bounce_rate"`
	AvgDurationMs float64 `json:"avg_duration_ms"`
	Revenue       float64 `json:"revenue"`
	// Final is true once every partition has closed every session that
	// starts in the range; PartitionsComplete of PartitionsTotal have.
	Final              bool `json:"final"`
	PartitionsComplete int  `json:"partitions_complete"`
	PartitionsTotal    int  `json:"partitions_total"`
}

// FunnelSteps are the funnel's steps, in order.
var FunnelSteps = []string{"page_view", "add_to_cart", "purchase"}

// TimeLayout is the API's time format: RFC 3339 UTC with milliseconds.
const TimeLayout = "2006-01-02T15:04:05.000Z"
