package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clickstreamkit/clickstream/funnel"
	"github.com/clickstreamkit/clickstream/pipeline"
)

func TestProjectYAMLHoldsTheDefaults(t *testing.T) {
	cfg, err := loadConfig("../../project.yaml")
	require.NoError(t, err)
	def := pipeline.DefaultConfig()
	require.NoError(t, def.Validate())
	cfg.Clock, def.Clock, cfg.Logger, def.Logger = nil, nil, nil, nil
	cfg.Currencies.Rates = nil
	assert.Equal(t, def, cfg)
}

func TestConfigOverridesAndErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) string {
		p := filepath.Join(dir, "p.yaml")
		require.NoError(t, os.WriteFile(p, []byte(s), 0o644))
		return p
	}
	cfg, err := loadConfig(write("watermark_delay: 2m\nfunnel_scope: user\ncurrency_rates: {USD: 0.9}\nidle_timeout: 20s\n"))
	require.NoError(t, err)
	assert.Equal(t, 2*time.Minute, cfg.WatermarkDelay)
	assert.Equal(t, 20*time.Second, cfg.IdleTimeout)
	assert.Equal(t, funnel.ScopeUser, cfg.FunnelScope)
	assert.Equal(t, 0.9, cfg.Currencies.Rates["USD"])

	_, err = loadConfig(write("watermark_dely: 2m\n"))
	assert.ErrorContains(t, err, "watermark_dely", "a typo is an error")
	_, err = loadConfig(write("session_gap: 10s\n"))
	assert.ErrorIs(t, err, pipeline.ErrConfig)
	_, err = loadConfig(write("funnel_scope: visit\n"))
	assert.Error(t, err)

	cfg, err = loadConfig(write("funnel_breakdown: device.os\n"))
	require.NoError(t, err)
	assert.Equal(t, funnel.DeviceOS, cfg.FunnelBreakdown)
	cfg, err = loadConfig(write("funnel_breakdown: \"\"\n"))
	require.NoError(t, err)
	assert.Equal(t, funnel.Dimension(""), cfg.FunnelBreakdown, "none")
	_, err = loadConfig(write("funnel_breakdown: utm.medium\n"))
	assert.ErrorIs(t, err, pipeline.ErrConfig)

	p, err := loadProject(write("deadletter_topic: dl2\n"))
	require.NoError(t, err)
	assert.Equal(t, "dl2", p.deadletterTopic)
	p, err = loadProject("")
	require.NoError(t, err)
	assert.Equal(t, "events_deadletter", p.deadletterTopic, "the default")
	_, err = loadProject(write("deadletter_topic: \"\"\n"))
	assert.ErrorContains(t, err, "deadletter_topic")
}

func TestConfigConnectTimeout(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) string {
		p := filepath.Join(dir, "p.yaml")
		require.NoError(t, os.WriteFile(p, []byte(s), 0o644))
		return p
	}
	p, err := loadProject(write("connect_timeout: 3s\nwatermark_delay: 2m\n"))
	require.NoError(t, err)
	assert.Equal(t, 3*time.Second, p.connectTimeout)
	assert.Equal(t, 2*time.Minute, p.pipeline.WatermarkDelay, "the SEMANTICS settings beside it")

	o, err := parseFlags([]string{"-http", "off"})
	require.NoError(t, err)
	assert.Equal(t, 3*time.Second, o.connectTimeoutFor(p), "the file's, when the flag is not given")
	o, err = parseFlags([]string{"-http", "off", "-connect-timeout", "30s"})
	require.NoError(t, err)
	assert.Equal(t, 30*time.Second, o.connectTimeoutFor(p), "the flag's when given, even equal to the default")

	p, err = loadProject(write("watermark_delay: 2m\n"))
	require.NoError(t, err)
	o, err = parseFlags([]string{"-http", "off"})
	require.NoError(t, err)
	assert.Equal(t, defaultConnectTimeout, o.connectTimeoutFor(p), "neither: the default")
	p, err = loadProject("")
	require.NoError(t, err)
	assert.Equal(t, defaultConnectTimeout, o.connectTimeoutFor(p))

	_, err = loadProject(write("connect_timeout: 0s\n"))
	assert.ErrorContains(t, err, "connect_timeout")
}
