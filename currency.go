package clickstream

// Currencies says how purchases enter revenue (SEMANTICS §6): prices in Base
// count as they are; prices in a currency with a rate count multiplied by it;
// others enter only revenue_by_currency. The zero value has base EUR.
type Currencies struct {
	Base  string             // default "EUR"
	Rates map[string]float64 // currency -> value of one unit in Base
}

// DefaultBaseCurrency is SEMANTICS §6's base_currency.
const DefaultBaseCurrency = "EUR"

// Revenue returns what a purchase adds to revenue, and whether it counts
// there at all.
func (c Currencies) Revenue(e *Event) (float64, bool) {
	if e.Kind() != KindPurchase {
		return 0, false
	}
	base := c.Base
	if base == "" {
		base = DefaultBaseCurrency
	}
	if e.Currency == base {
		return e.Price, true
	}
	if r, ok := c.Rates[e.Currency]; ok {
		return e.Price * r, true
	}
	return 0, false
}
