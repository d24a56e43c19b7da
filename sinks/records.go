package sinks

import (
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/clickstreamkit/clickstream"
	"github.com/clickstreamkit/clickstream/funnel"
	"github.com/clickstreamkit/clickstream/kpi"
	"github.com/clickstreamkit/clickstream/session"
)

// The JSON shapes of the outputs (SEMANTICS §9), shared by the JSON-lines
// sink and the read API. Times are RFC 3339 UTC with milliseconds.

// KPIRecord is a window's KPIs as JSON.
type KPIRecord struct {
	Minute string `json:"minute"`
	Final  bool   `json:"final"`
	kpi.Counts
	RevenueByCurrency map[string]float64 `json:"revenue_by_currency"`
	ConversionRate    float64            `json:"conversion_rate"`
	AOV               float64            `json:"aov"`
	TopProducts       []kpi.Product      `json:"top_products"`
	LatencyMsP95      *float64           `json:"latency_ms_p95,omitempty"`
}

// NewKPIRecord shapes m.
func NewKPIRecord(m *kpi.Minute) KPIRecord {
	r := KPIRecord{
		Minute: clickstream.FormatTime(m.Minute), Final: m.Final, Counts: m.Counts,
		RevenueByCurrency: m.RevenueByCurrency, ConversionRate: m.ConversionRate(), AOV: m.AOV(),
		TopProducts: m.TopProducts,
	}
	if r.RevenueByCurrency == nil {
		r.RevenueByCurrency = map[string]float64{}
	}
	if r.TopProducts == nil {
		r.TopProducts = []kpi.Product{}
	}
	if p95, ok := m.LatencyP95(); ok {
		r.LatencyMsP95 = &p95
	}
	return r
}

// SessionRecord is a final session as JSON.
type SessionRecord struct {
	SessionID  string  `json:"session_id"`
	UserID     string  `json:"user_id"`
	Start      string  `json:"start"`
	End        string  `json:"end"`
	DurationMs int64   `json:"duration_ms"`
	Events     int64   `json:"events"`
	PageViews  int64   `json:"page_views"`
	AddToCarts int64   `json:"add_to_carts"`
	Purchases  int64   `json:"purchases"`
	Revenue    float64 `json:"revenue"`
	Bounced    bool    `json:"bounced"`
	Converted  bool    `json:"converted"`
}

// NewSessionRecord shapes s.
func NewSessionRecord(s *session.Record) SessionRecord {
	return SessionRecord{
		SessionID: s.SessionID(), UserID: s.UserID,
		Start: clickstream.FormatTime(s.Start), End: clickstream.FormatTime(s.End), DurationMs: s.DurationMs,
		Events: s.Events, PageViews: s.PageViews, AddToCarts: s.AddToCarts, Purchases: s.Purchases,
		Revenue: s.Revenue, Bounced: s.Bounced, Converted: s.Converted,
	}
}

// FunnelRecord is a start minute's funnel as JSON.
type FunnelRecord struct {
	Minute                string    `json:"minute"`
	Entered               int64     `json:"entered"`
	Steps                 []int64   `json:"steps"`
	StepRates             []float64 `json:"step_rates"`
	OverallRate           float64   `json:"overall_rate"`
	MedianTimeToConvertMs *int64    `json:"median_time_to_convert_ms"`
}

// NewFunnelRecord shapes f.
func NewFunnelRecord(f *funnel.Record) FunnelRecord {
	r := FunnelRecord{Minute: clickstream.FormatTime(f.Minute), Entered: f.Entered, Steps: f.Steps,
		StepRates: f.StepRates, OverallRate: f.OverallRate}
	if f.HasMedian {
		m := f.MedianTimeToConvertMs
		r.MedianTimeToConvertMs = &m
	}
	return r
}

// AnomalyRecord is an anomaly as JSON.
type AnomalyRecord struct {
	Minute string `json:"minute"`
	kpi.Anomaly
}

// NewAnomalyRecord shapes a.
func NewAnomalyRecord(a *kpi.Anomaly) AnomalyRecord {
	return AnomalyRecord{Minute: clickstream.FormatTime(a.Minute), Anomaly: *a}
}

// DeadLetterRecord is a dead letter as JSON: raw holds the original bytes as
// a string, or, when they are not UTF-8, raw_base64 holds them.
type DeadLetterRecord struct {
	Reason    clickstream.Reason `json:"reason"`
	Field     string             `json:"field"`
	Detail    string             `json:"detail,omitempty"`
	Topic     string             `json:"topic,omitempty"`
	Partition int32              `json:"partition"`
	Offset    int64              `json:"offset"`
	Raw       *string            `json:"raw,omitempty"`
	RawBase64 []byte             `json:"raw_base64,omitempty"`
}

// NewDeadLetterRecord shapes d.
func NewDeadLetterRecord(d *DeadLetter) DeadLetterRecord {
	r := DeadLetterRecord{Reason: d.Reason, Field: d.Field, Detail: d.Detail, Topic: d.Topic,
		Partition: d.Partition, Offset: d.Offset}
	if utf8.Valid(d.Raw) {
		s := string(d.Raw)
		r.Raw = &s
	} else {
		r.RawBase64 = d.Raw
	}
	return r
}

// AppendSessionJSON appends s as SessionRecord's JSON, byte for byte what
// encoding/json writes for NewSessionRecord(s) without HTML escaping, at a
// fraction of the cost: a replay writes one line per session.
func AppendSessionJSON(dst []byte, s *session.Record) []byte {
	dst = append(dst, `{"session_id":`...)
	dst = clickstream.AppendString(dst, s.SessionID())
	dst = append(dst, `,"user_id":`...)
	dst = clickstream.AppendString(dst, s.UserID)
	dst = append(dst, `,"start":"`...)
	dst = clickstream.AppendTime(dst, s.Start)
	dst = append(dst, `","end":"`...)
	dst = clickstream.AppendTime(dst, s.End)
	dst = append(dst, `","duration_ms":`...)
	dst = strconv.AppendInt(dst, s.DurationMs, 10)
	dst = append(dst, `,"events":`...)
	dst = strconv.AppendInt(dst, s.Events, 10)
	dst = append(dst, `,"page_views":`...)
	dst = strconv.AppendInt(dst, s.PageViews, 10)
	dst = append(dst, `,"add_to_carts":`...)
	dst = strconv.AppendInt(dst, s.AddToCarts, 10)
	dst = append(dst, `,"purchases":`...)
	dst = strconv.AppendInt(dst, s.Purchases, 10)
	dst = append(dst, `,"revenue":`...)
	dst = appendJSONFloat(dst, s.Revenue)
	dst = append(dst, `,"bounced":`...)
	dst = strconv.AppendBool(dst, s.Bounced)
	dst = append(dst, `,"converted":`...)
	dst = strconv.AppendBool(dst, s.Converted)
	return append(dst, '}')
}

// appendJSONFloat formats f as encoding/json does (ES6 number formatting).
func appendJSONFloat(dst []byte, f float64) []byte {
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if n := len(dst); format == 'e' && n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
		dst[n-2] = dst[n-1] // e-07 becomes e-7
		dst = dst[:n-1]
	}
	return dst
}
