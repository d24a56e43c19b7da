package parquet

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/clickstreamkit/clickstream"
	"github.com/clickstreamkit/clickstream/internal/snap"
	"github.com/clickstreamkit/clickstream/kpi"
)

// eventRow is the Parquet schema of the events files. Optional strings are
// null when absent (empty in [clickstream.Event]). The source columns are not
// named topic and partition, which the Hive-style directories already define.
type eventRow struct {
	EventID         string   `parquet:"name=event_id, type=BYTE_ARRAY, convertedtype=UTF8"`
	EventType       string   `parquet:"name=event_type, type=BYTE_ARRAY, convertedtype=UTF8, encoding=PLAIN_DICTIONARY"`
	EventTS         int64    `parquet:"name=event_ts, type=INT64, convertedtype=TIMESTAMP_MILLIS, isadjustedtoutc=true"`
	UserID          string   `parquet:"name=user_id, type=BYTE_ARRAY, convertedtype=UTF8"`
	SessionID       *string  `parquet:"name=session_id, type=BYTE_ARRAY, convertedtype=UTF8, repetitiontype=OPTIONAL"`
	Page            *string  `parquet:"name=page, type=BYTE_ARRAY, convertedtype=UTF8, repetitiontype=OPTIONAL"`
	ProductID       *string  `parquet:"name=product_id, type=BYTE_ARRAY, convertedtype=UTF8, repetitiontype=OPTIONAL, encoding=PLAIN_DICTIONARY"`
	Price           *float64 `parquet:"name=price, type=DOUBLE, repetitiontype=OPTIONAL"`
	Currency        *string  `parquet:"name=currency, type=BYTE_ARRAY, convertedtype=UTF8, repetitiontype=OPTIONAL, encoding=PLAIN_DICTIONARY"`
	UTMSource       *string  `parquet:"name=utm_source, type=BYTE_ARRAY, convertedtype=UTF8, repetitiontype=OPTIONAL, encoding=PLAIN_DICTIONARY"`
	UTMMedium       *string  `parquet:"name=utm_medium, type=BYTE_ARRAY, convertedtype=UTF8, repetitiontype=OPTIONAL, encoding=PLAIN_DICTIONARY"`
	UTMCampaign     *string  `parquet:"name=utm_campaign, type=BYTE_ARRAY, convertedtype=UTF8, repetitiontype=OPTIONAL, encoding=PLAIN_DICTIONARY"`
	DeviceUA        *string  `parquet:"name=device_ua, type=BYTE_ARRAY, convertedtype=UTF8, repetitiontype=OPTIONAL, encoding=PLAIN_DICTIONARY"`
	DeviceOS        *string  `parquet:"name=device_os, type=BYTE_ARRAY, convertedtype=UTF8, repetitiontype=OPTIONAL, encoding=PLAIN_DICTIONARY"`
	DeviceMobile    bool     `parquet:"name=device_mobile, type=BOOLEAN"`
	GeoCountry      *string  `parquet:"name=geo_country, type=BYTE_ARRAY, convertedtype=UTF8, repetitiontype=OPTIONAL, encoding=PLAIN_DICTIONARY"`
	GeoCity         *string  `parquet:"name=geo_city, type=BYTE_ARRAY, convertedtype=UTF8, repetitiontype=OPTIONAL, encoding=PLAIN_DICTIONARY"`
	SourceTopic     string   `parquet:"name=source_topic, type=BYTE_ARRAY, convertedtype=UTF8, encoding=PLAIN_DICTIONARY"`
	SourcePartition int32    `parquet:"name=source_partition, type=INT32"`
	SourceOffset    int64    `parquet:"name=source_offset, type=INT64"`
}

// kpiRow is the Parquet schema of the KPI files. revenue_by_currency and
// top_products hold JSON as in the JSON-lines output (SEMANTICS §9).
type kpiRow struct {
	Minute            int64    `parquet:"name=minute, type=INT64, convertedtype=TIMESTAMP_MILLIS, isadjustedtoutc=true"`
	Events            int64    `parquet:"name=events, type=INT64"`
	PageViews         int64    `parquet:"name=page_views, type=INT64"`
	AddToCarts        int64    `parquet:"name=add_to_carts, type=INT64"`
	Purchases         int64    `parquet:"name=purchases, type=INT64"`
	Sessions          int64    `parquet:"name=sessions, type=INT64"`
	Revenue           float64  `parquet:"name=revenue, type=DOUBLE"`
	RevenuePurchases  int64    `parquet:"name=revenue_purchases, type=INT64"`
	ConversionRate    float64  `parquet:"name=conversion_rate, type=DOUBLE"`
	AOV               float64  `parquet:"name=aov, type=DOUBLE"`
	LatencyMsP95      *float64 `parquet:"name=latency_ms_p95, type=DOUBLE, repetitiontype=OPTIONAL"`
	RevenueByCurrency string   `parquet:"name=revenue_by_currency, type=BYTE_ARRAY, convertedtype=UTF8"`
	TopProducts       string   `parquet:"name=top_products, type=BYTE_ARRAY, convertedtype=UTF8"`
	SourceTopic       string   `parquet:"name=source_topic, type=BYTE_ARRAY, convertedtype=UTF8, encoding=PLAIN_DICTIONARY"`
	SourcePartition   int32    `parquet:"name=source_partition, type=INT32"`
}

// Row is an archived accepted event and where it came from.
type Row struct {
	Topic     string
	Partition int32
	Offset    int64
	Event     clickstream.Event
}

// KPIRow is a final minute's KPIs of one partition, as archived.
type KPIRow struct {
	Topic     string
	Partition int32
	Minute    int64 // window start, Unix millis UTC
	kpi.Counts
	ConversionRate    float64
	AOV               float64
	LatencyMsP95      *float64 // nil when no latency was measured
	RevenueByCurrency map[string]float64
	TopProducts       []kpi.Product
}

func newKPIRow(topic string, partition int32, m *kpi.Minute) KPIRow {
	r := KPIRow{Topic: topic, Partition: partition, Minute: m.Minute, Counts: m.Counts,
		RevenueByCurrency: m.RevenueByCurrency, TopProducts: m.TopProducts}
	r.rates()
	if p95, ok := m.LatencyP95(); ok {
		r.LatencyMsP95 = &p95
	}
	return r
}

// rates sets the ratios from the counts, as kpi.Minute computes them.
func (r *KPIRow) rates() {
	m := kpi.Minute{Counts: r.Counts}
	r.ConversionRate, r.AOV = m.ConversionRate(), m.AOV()
}

// optionals backs one row's optional values: one allocation per row
// instead of one per present value.
type optionals struct {
	s     [11]string
	price float64
}

func (o *optionals) opt(i int, s string) *string {
	if s == "" {
		return nil
	}
	o.s[i] = s
	return &o.s[i]
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func toEventRow(topic string, partition int32, offset int64, e *clickstream.Event) eventRow {
	o := new(optionals)
	r := eventRow{
		EventID: e.EventID, EventType: e.EventType, EventTS: e.TS, UserID: e.UserID,
		SessionID: o.opt(0, e.SessionID), Page: o.opt(1, e.Page), ProductID: o.opt(2, e.ProductID),
		Currency:  o.opt(3, e.Currency),
		UTMSource: o.opt(4, e.UTM.Source), UTMMedium: o.opt(5, e.UTM.Medium), UTMCampaign: o.opt(6, e.UTM.Campaign),
		DeviceUA: o.opt(7, e.Device.UA), DeviceOS: o.opt(8, e.Device.OS), DeviceMobile: e.Device.Mobile,
		GeoCountry: o.opt(9, e.Geo.Country), GeoCity: o.opt(10, e.Geo.City),
		SourceTopic: topic, SourcePartition: partition, SourceOffset: offset,
	}
	if e.HasPrice {
		o.price = e.Price
		r.Price = &o.price
	}
	return r
}

func (r *eventRow) row() Row {
	e := clickstream.Event{
		EventID: r.EventID, EventType: r.EventType, TS: r.EventTS,
		UserID: r.UserID, SessionID: deref(r.SessionID), Page: deref(r.Page), ProductID: deref(r.ProductID),
		Currency: deref(r.Currency),
		UTM:      clickstream.UTM{Source: deref(r.UTMSource), Medium: deref(r.UTMMedium), Campaign: deref(r.UTMCampaign)},
		Device:   clickstream.Device{UA: deref(r.DeviceUA), OS: deref(r.DeviceOS), Mobile: r.DeviceMobile},
		Geo:      clickstream.Geo{Country: deref(r.GeoCountry), City: deref(r.GeoCity)},
	}
	if r.Price != nil {
		e.Price, e.HasPrice = *r.Price, true
	}
	return Row{Topic: r.SourceTopic, Partition: r.SourcePartition, Offset: r.SourceOffset, Event: e}
}

func toKPIRow(r *KPIRow) (kpiRow, error) {
	byCur := r.RevenueByCurrency
	if byCur == nil {
		byCur = map[string]float64{}
	}
	top := r.TopProducts
	if top == nil {
		top = []kpi.Product{}
	}
	cur, err := json.Marshal(byCur) // keys sorted
	if err != nil {
		return kpiRow{}, fmt.Errorf("parquet: revenue_by_currency of minute %d: %w", r.Minute, err)
	}
	prods, err := json.Marshal(top)
	if err != nil {
		return kpiRow{}, fmt.Errorf("parquet: top_products of minute %d: %w", r.Minute, err)
	}
	c := r.Counts
	return kpiRow{Minute: r.Minute, Events: c.Events, PageViews: c.PageViews, AddToCarts: c.AddToCarts,
		Purchases: c.Purchases, Sessions: c.Sessions, Revenue: c.Revenue, RevenuePurchases: c.RevenuePurchases,
		ConversionRate: r.ConversionRate, AOV: r.AOV, LatencyMsP95: r.LatencyMsP95,
		RevenueByCurrency: string(cur), TopProducts: string(prods),
		SourceTopic: r.Topic, SourcePartition: r.Partition}, nil
}

func (r *kpiRow) row() (KPIRow, error) {
	out := KPIRow{Topic: r.SourceTopic, Partition: r.SourcePartition, Minute: r.Minute,
		Counts: kpi.Counts{Events: r.Events, PageViews: r.PageViews, AddToCarts: r.AddToCarts,
			Purchases: r.Purchases, Sessions: r.Sessions, Revenue: r.Revenue, RevenuePurchases: r.RevenuePurchases},
		ConversionRate: r.ConversionRate, AOV: r.AOV, LatencyMsP95: r.LatencyMsP95}
	if err := json.Unmarshal([]byte(r.RevenueByCurrency), &out.RevenueByCurrency); err != nil {
		return out, fmt.Errorf("parquet: revenue_by_currency of minute %d: %w", r.Minute, err)
	}
	if err := json.Unmarshal([]byte(r.TopProducts), &out.TopProducts); err != nil {
		return out, fmt.Errorf("parquet: top_products of minute %d: %w", r.Minute, err)
	}
	return out, nil
}

// Staged record bodies, after the key (see staging).

const (
	flagPrice = 1 << iota
	flagMobile
)

func appendEventRecord(dst []byte, offset int64, e *clickstream.Event) []byte {
	dst, at := beginFrame(dst)
	dst = snap.AppendInt(dst, offset)
	var flags byte
	if e.HasPrice {
		flags |= flagPrice
	}
	if e.Device.Mobile {
		flags |= flagMobile
	}
	dst = append(dst, flags)
	dst = snap.AppendInt(dst, e.TS)
	if e.HasPrice {
		dst = snap.AppendFloat(dst, e.Price)
	}
	for _, s := range [...]string{e.EventID, e.EventType, e.UserID, e.SessionID, e.Page, e.ProductID, e.Currency,
		e.UTM.Source, e.UTM.Medium, e.UTM.Campaign, e.Device.UA, e.Device.OS, e.Geo.Country, e.Geo.City} {
		dst = snap.AppendString(dst, s)
	}
	return endFrame(dst, at)
}

func decodeEvent(body string, e *clickstream.Event) error {
	r := strReader{s: body}
	flags := r.byte()
	*e = clickstream.Event{TS: r.int(), HasPrice: flags&flagPrice != 0}
	if e.HasPrice {
		e.Price = r.float()
	}
	e.Device.Mobile = flags&flagMobile != 0
	for _, p := range [...]*string{&e.EventID, &e.EventType, &e.UserID, &e.SessionID, &e.Page, &e.ProductID, &e.Currency,
		&e.UTM.Source, &e.UTM.Medium, &e.UTM.Campaign, &e.Device.UA, &e.Device.OS, &e.Geo.Country, &e.Geo.City} {
		*p = r.string()
	}
	if !r.done() {
		return fmt.Errorf("parquet: staged event: %w", ErrCorrupt)
	}
	return nil
}

func appendKPIRecord(dst []byte, r *KPIRow) []byte {
	dst, at := beginFrame(dst)
	dst = snap.AppendInt(dst, r.Minute)
	c := &r.Counts
	for _, v := range [...]int64{c.Events, c.PageViews, c.AddToCarts, c.Purchases, c.Sessions, c.RevenuePurchases} {
		dst = snap.AppendInt(dst, v)
	}
	dst = snap.AppendFloat(dst, c.Revenue)
	dst = snap.AppendBool(dst, r.LatencyMsP95 != nil)
	if r.LatencyMsP95 != nil {
		dst = snap.AppendFloat(dst, *r.LatencyMsP95)
	}
	keys := make([]string, 0, len(r.RevenueByCurrency))
	for k := range r.RevenueByCurrency {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	dst = snap.AppendUint(dst, uint64(len(keys)))
	for _, k := range keys {
		dst = snap.AppendString(dst, k)
		dst = snap.AppendFloat(dst, r.RevenueByCurrency[k])
	}
	dst = snap.AppendUint(dst, uint64(len(r.TopProducts)))
	for _, p := range r.TopProducts {
		dst = snap.AppendString(dst, p.ProductID)
		dst = snap.AppendInt(dst, p.Views)
		dst = snap.AppendInt(dst, p.Carts)
		dst = snap.AppendInt(dst, p.Purchases)
		dst = snap.AppendFloat(dst, p.Revenue)
	}
	return endFrame(dst, at)
}

func decodeKPI(topic string, partition int32, minute int64, body string) (KPIRow, error) {
	r := strReader{s: body}
	out := KPIRow{Topic: topic, Partition: partition, Minute: minute}
	c := &out.Counts
	c.Events, c.PageViews, c.AddToCarts, c.Purchases, c.Sessions, c.RevenuePurchases = r.int(), r.int(), r.int(), r.int(), r.int(), r.int()
	c.Revenue = r.float()
	if r.bool() {
		p95 := r.float()
		out.LatencyMsP95 = &p95
	}
	out.RevenueByCurrency = map[string]float64{}
	for range r.count() {
		k := r.string()
		out.RevenueByCurrency[k] = r.float()
	}
	out.TopProducts = make([]kpi.Product, r.count())
	for i := range out.TopProducts {
		p := &out.TopProducts[i]
		p.ProductID, p.Views, p.Carts, p.Purchases, p.Revenue = r.string(), r.int(), r.int(), r.int(), r.float()
	}
	if !r.done() {
		return out, fmt.Errorf("parquet: staged minute %d: %w", minute, ErrCorrupt)
	}
	out.rates()
	return out, nil
}
