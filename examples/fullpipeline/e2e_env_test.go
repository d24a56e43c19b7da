package main

// Helpers of the end-to-end tests (e2e_test.go): where the services are,
// the fullpipeline binary built once, and small utilities.

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/require"
)

// e2eEnv is where the services are.
type e2eEnv struct {
	brokers  []string
	mongoURI string // "" when the test brings its own server
}

// e2eSetup skips the test in -short mode and when the services are not
// configured.
func e2eSetup(t *testing.T, needMongo bool) e2eEnv {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end integration test: skipped in -short mode")
	}
	b := os.Getenv("KAFKA_BROKERS")
	if b == "" {
		t.Skip("KAFKA_BROKERS not set: skipping an end-to-end test that needs Kafka (bash scripts/services.sh up prints KAFKA_BROKERS and MONGODB_URI)")
	}
	env := e2eEnv{brokers: strings.Split(b, ",")}
	if needMongo {
		env.mongoURI = os.Getenv("MONGODB_URI")
		if env.mongoURI == "" {
			t.Skip("MONGODB_URI not set: skipping an end-to-end test that needs MongoDB (bash scripts/services.sh up prints KAFKA_BROKERS and MONGODB_URI)")
		}
	}
	return env
}

var e2eBuild struct {
	once sync.Once
	path string
	err  error
}

// e2eBinary builds the fullpipeline binary once per test process, into
// tmp/fullpipeline (tmp/ holds a .gitignore that ignores it all).
// $FULLPIPELINE_BIN, when set, names a binary to use instead.
func e2eBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("FULLPIPELINE_BIN"); p != "" {
		return p
	}
	e2eBuild.once.Do(func() {
		dir, err := filepath.Abs("tmp")
		if err == nil {
			err = os.MkdirAll(dir, 0o755)
		}
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, ".gitignore"), []byte("*\n"), 0o644)
		}
		if err != nil {
			e2eBuild.err = err
			return
		}
		path := filepath.Join(dir, "fullpipeline")
		cmd := exec.Command("go", "build", "-o", path, ".")
		if out, err := cmd.CombinedOutput(); err != nil {
			e2eBuild.err = fmt.Errorf("go build: %w\n%s", err, out)
			return
		}
		e2eBuild.path = path
	})
	require.NoError(t, e2eBuild.err, "building the fullpipeline binary")
	return e2eBuild.path
}

// e2eName returns prefix + "_" + a random suffix.
func e2eName(prefix string) string {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	return prefix + "_" + hex.EncodeToString(b)
}

// e2eFreePort returns a TCP port that was free a moment ago.
func e2eFreePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// e2eWaitFor polls cond every interval until it returns true; it fails the
// test when timeout passes first.
func e2eWaitFor(t *testing.T, timeout, interval time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(interval)
	}
}

func e2eSaramaConfig() *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.ClientID = "clickstream-e2e-test"
	cfg.Metadata.Retry.Backoff = 100 * time.Millisecond
	return cfg
}
