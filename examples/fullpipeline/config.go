package main

import (
	"bytes"
	"fmt"
	"os"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/clickstreamkit/clickstream/funnel"
	"github.com/clickstreamkit/clickstream/pipeline"
	"github.com/clickstreamkit/clickstream/sinks/kafkadl"
)

// projectFile is project.yaml: every SEMANTICS setting, by its name there,
// and the demo's own connect_timeout (see project). Absent keys keep their
// defaults.
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
	FunnelBreakdown  *funnel.Dimension  `yaml:"funnel_breakdown"`
	AnomalyWindow    *int               `yaml:"anomaly_window"`
	AnomalyMinPoints *int               `yaml:"anomaly_min_points"`
	AnomalyZ         *float64           `yaml:"anomaly_z"`
	DeadletterTopic  *string            `yaml:"deadletter_topic"`
	IdleTimeout      *time.Duration     `yaml:"idle_timeout"`
	ConnectTimeout   *time.Duration     `yaml:"connect_timeout"`
}

// defaultConnectTimeout is connect_timeout's default.
const defaultConnectTimeout = 30 * time.Second

// project is a -config file read: the pipeline's configuration and the
// settings of this program.
type project struct {
	pipeline pipeline.Config
	// connectTimeout (connect_timeout, -connect-timeout; default 30s) is how
	// long start-up waits for each external service (a MongoDB server's
	// ping, the metadata of a kafka:// source's brokers) before it fails
	// with an error naming the service: an address that answers nothing at
	// start is more likely wrong than down. Outages after start are retried
	// without end, as before. Zero when the file does not set it.
	connectTimeout time.Duration
	// deadletterTopic (deadletter_topic) is the Kafka topic the dead-letter
	// sink produces to.
	deadletterTopic string
}

// loadConfig reads project.yaml at path ("" for the defaults) into a
// validated pipeline configuration. Unknown keys are errors, so that a typo
// does not silently keep a default.
func loadConfig(path string) (pipeline.Config, error) {
	p, err := loadProject(path)
	return p.pipeline, err
}

// loadProject is loadConfig with the program's own settings.
func loadProject(path string) (project, error) {
	cfg := pipeline.DefaultConfig()
	if path == "" {
		return project{pipeline: cfg, deadletterTopic: kafkadl.DefaultTopic}, cfg.Validate()
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return project{pipeline: cfg}, fmt.Errorf("config: %w", err)
	}
	var f projectFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && err.Error() != "EOF" {
		return project{pipeline: cfg}, fmt.Errorf("config %s: %w", path, err)
	}
	p := project{deadletterTopic: kafkadl.DefaultTopic}
	set(&p.deadletterTopic, f.DeadletterTopic)
	if p.deadletterTopic == "" {
		return project{pipeline: cfg}, fmt.Errorf("config %s: deadletter_topic is empty", path)
	}
	if f.ConnectTimeout != nil {
		if *f.ConnectTimeout <= 0 {
			return project{pipeline: cfg}, fmt.Errorf("config %s: connect_timeout %v: want more than 0", path, *f.ConnectTimeout)
		}
		p.connectTimeout = *f.ConnectTimeout
	}
	p.pipeline, err = pipelineConfig(path, cfg, f)
	return p, err
}

// pipelineConfig applies f's SEMANTICS settings to cfg.
func pipelineConfig(path string, cfg pipeline.Config, f projectFile) (pipeline.Config, error) {
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
	set(&cfg.FunnelBreakdown, f.FunnelBreakdown)
	set(&cfg.AnomalyWindow, f.AnomalyWindow)
	set(&cfg.AnomalyMinPoints, f.AnomalyMinPoints)
	set(&cfg.AnomalyZ, f.AnomalyZ)
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
