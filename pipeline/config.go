package pipeline

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/clickstreamkit/clickstream"
	"github.com/clickstreamkit/clickstream/funnel"
	"github.com/clickstreamkit/clickstream/kpi"
	"github.com/clickstreamkit/clickstream/session"
	"github.com/clickstreamkit/clickstream/window"
)

// Config holds every setting of SEMANTICS but deadletter_topic, which is the
// dead-letter sink's (sinks/kafkadl.WithTopic). Start from DefaultConfig.
type Config struct {
	MaxEventBytes    int                    // max_event_bytes [64 KiB]
	MaxFutureSkew    time.Duration          // max_future_skew [5m]
	WatermarkDelay   time.Duration          // watermark_delay [10m]
	SessionGap       time.Duration          // session_gap [30m]
	WindowSize       time.Duration          // window_size [1m]
	UpdateInterval   time.Duration          // update_interval [1s]
	Currencies       clickstream.Currencies // base_currency [EUR], currency_rates [none]
	FunnelSteps      []string               // funnel steps [page_view, add_to_cart, purchase]
	FunnelScope      funnel.Scope           // funnel scope [session]
	ConversionWindow time.Duration          // conversion_window, user scope [30m]
	FunnelBreakdown  funnel.Dimension       // funnel_breakdown, session scope [utm.source; "" none, device.os, device.mobile, geo.country]
	AnomalyWindow    int                    // anomaly_window [30]
	AnomalyMinPoints int                    // anomaly_min_points [10]
	AnomalyZ         float64                // anomaly_z [3.0]
	IdleTimeout      time.Duration          // idle_timeout [1m]

	// KeepEvents puts the accepted events into each batch, for archive sinks.
	KeepEvents bool
	// MaxPending is how many results a partition gathers before it writes
	// them without waiting for the next update tick. Default 50,000.
	MaxPending int
	// Clock is the processing clock. Default time.Now.
	Clock func() time.Time
	// Logger receives progress and retries. Default: discard.
	Logger *slog.Logger
}

// DefaultConfig returns SEMANTICS' defaults.
func DefaultConfig() Config {
	return Config{
		MaxEventBytes:    clickstream.DefaultMaxEventBytes,
		MaxFutureSkew:    clickstream.DefaultMaxFutureSkew,
		WatermarkDelay:   window.DefaultWatermarkDelay,
		SessionGap:       session.DefaultGap,
		WindowSize:       time.Minute,
		UpdateInterval:   time.Second,
		Currencies:       clickstream.Currencies{Base: clickstream.DefaultBaseCurrency},
		FunnelSteps:      funnel.DefaultSteps,
		FunnelScope:      funnel.ScopeSession,
		ConversionWindow: 30 * time.Minute,
		FunnelBreakdown:  funnel.UTMSource,
		AnomalyWindow:    kpi.DefaultAnomalyWindow,
		AnomalyMinPoints: kpi.DefaultAnomalyMinPoints,
		AnomalyZ:         kpi.DefaultAnomalyZ,
		IdleTimeout:      time.Minute,
		MaxPending:       50_000,
	}
}

// ErrConfig is wrapped by every configuration error.
var ErrConfig = errors.New("pipeline: bad config")

// withDefaults returns c with the optional fields left empty filled:
// Clock, Logger, the base currency and MaxPending.
func (c Config) withDefaults() Config {
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Currencies.Base == "" {
		c.Currencies.Base = clickstream.DefaultBaseCurrency
	}
	if c.MaxPending <= 0 {
		c.MaxPending = 50_000
	}
	return c
}

// Validate reports whether c's settings are usable (the optional fields
// may be left empty: NewProcessor and NewRunner fill them). It changes
// nothing.
func (c Config) Validate() error {
	switch {
	case c.MaxEventBytes <= 0:
		return fmt.Errorf("%w: max_event_bytes must be positive", ErrConfig)
	case c.MaxFutureSkew < 0 || c.WatermarkDelay < 0:
		return fmt.Errorf("%w: max_future_skew and watermark_delay must not be negative", ErrConfig)
	case c.WindowSize < time.Millisecond || c.SessionGap < time.Millisecond || c.UpdateInterval <= 0 || c.IdleTimeout <= 0:
		return fmt.Errorf("%w: window_size, session_gap, update_interval and idle_timeout must be positive", ErrConfig)
	case c.SessionGap < c.WindowSize:
		// Then a user has one session per window and "sessions" counts users.
		return fmt.Errorf("%w: session_gap must be >= window_size", ErrConfig)
	}
	if _, err := c.newDetector(); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if _, err := c.newFunnel(); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return nil
}

// horizon is how far past the newest event_ts the results emitted at the end
// of a finite input reach: a later event closer than that could have
// changed one (a window, a session, a funnel minute).
func (c *Config) horizon() int64 {
	h := max(c.WindowSize, c.SessionGap, time.Minute)
	if c.FunnelScope == funnel.ScopeUser {
		h = max(h, time.Minute+c.ConversionWindow)
	}
	return h.Milliseconds()
}

// NewDecoder returns the event decoder the settings describe.
func (c *Config) NewDecoder() (*clickstream.Decoder, error) {
	return clickstream.NewDecoder(clickstream.WithMaxEventBytes(c.MaxEventBytes),
		clickstream.WithMaxFutureSkew(c.MaxFutureSkew), clickstream.WithClock(c.Clock))
}

// NewDetector returns the anomaly detector the settings describe.
func (c *Config) NewDetector() (*kpi.Detector, error) { return c.newDetector() }

func (c *Config) newDetector() (*kpi.Detector, error) {
	return kpi.NewDetector(c.AnomalyWindow, c.AnomalyMinPoints, c.AnomalyZ)
}

func (c *Config) newFunnel() (*funnel.Funnel, error) {
	opts := []funnel.Option{funnel.WithSteps(c.FunnelSteps...)}
	if c.FunnelScope == funnel.ScopeUser {
		opts = append(opts, funnel.WithUserScope(c.ConversionWindow))
	} else if c.FunnelBreakdown != "" {
		opts = append(opts, funnel.WithBreakdown(c.FunnelBreakdown))
	}
	return funnel.New(opts...)
}
