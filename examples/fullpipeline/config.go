package main

import (
	"bytes"
	"fmt"
	"os"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/clickstreamkit/clickstream/funnel"
	"github.com/clickstreamkit/clickstream/pipeline"
)

// projectFile is project.yaml: every SEMANTICS setting, by its name there.
// Absent keys keep their defaults.
type projectFile struct {
	MaxEventBytes    *int               `yaml:"max_event_bytes"`
	MaxFutureSkew    *time.Duration     `yaml:"max_future_skew"`
	WatermarkDelay   *time.Duration     `yaml:"watermark_delay"`
	SessionGap       *time.Duration     `yaml:"session_gap"`
	WindowSize       *time.Duration     `yaml:"window_size"`
	UpdateInterval   *time.Duration     `yaml:"update_interval"`
	BaseCurrency     *string            `yaml:"base_currency"`
	CurrencyRates    map[string]float64 `yaml:"currency_rates"`
	FunnelSteps      []string           `yaml:"funnel_steps"`
	FunnelScope      *string            `yaml:"funnel_scope"`
	ConversionWindow *time.Duration     `yaml:"conversion_window"`
	AnomalyWindow    *int               `yaml:"anomaly_window"`
	AnomalyMinPoints *int               `yaml:"anomaly_min_points"`
	AnomalyZ         *float64           `yaml:"anomaly_z"`
	DeadletterTopic  *string            `yaml:"deadletter_topic"`
	IdleTimeout      *time.Duration     `yaml:"idle_timeout"`
}

// loadConfig reads project.yaml at path ("" for the defaults) into a
// validated pipeline configuration. Unknown keys are errors, so that a typo
// does not silently keep a default.
func loadConfig(path string) (pipeline.Config, error) {
	cfg := pipeline.DefaultConfig()
	if path == "" {
		return cfg, cfg.Validate()
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("config: %w", err)
	}
	var f projectFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && err.Error() != "EOF" {
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	set(&cfg.MaxEventBytes, f.MaxEventBytes)
	set(&cfg.MaxFutureSkew, f.MaxFutureSkew)
	set(&cfg.WatermarkDelay, f.WatermarkDelay)
	set(&cfg.SessionGap, f.SessionGap)
	set(&cfg.WindowSize, f.WindowSize)
	set(&cfg.UpdateInterval, f.UpdateInterval)
	set(&cfg.Currencies.Base, f.BaseCurrency)
	if f.CurrencyRates != nil {
		cfg.Currencies.Rates = f.CurrencyRates
	}
	if f.FunnelSteps != nil {
		cfg.FunnelSteps = f.FunnelSteps
	}
	if f.FunnelScope != nil {
		switch *f.FunnelScope {
		case "session":
			cfg.FunnelScope = funnel.ScopeSession
		case "user":
			cfg.FunnelScope = funnel.ScopeUser
		default:
			return cfg, fmt.Errorf("config %s: funnel_scope %q: want session or user", path, *f.FunnelScope)
		}
	}
	set(&cfg.ConversionWindow, f.ConversionWindow)
	set(&cfg.AnomalyWindow, f.AnomalyWindow)
	set(&cfg.AnomalyMinPoints, f.AnomalyMinPoints)
	set(&cfg.AnomalyZ, f.AnomalyZ)
	set(&cfg.DeadletterTopic, f.DeadletterTopic)
	set(&cfg.IdleTimeout, f.IdleTimeout)
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

func set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}
