#!/usr/bin/env bash
# The project's test command: formatting and vet, then every unit test, the
# integration tests against a real Kafka broker and a MongoDB-wire server
# (started here and stopped at the end), and short fuzzing runs of the
# decoders (the event's, and the MongoDB sink's packed fields). Set KAFKA_BROKERS / MONGODB_URI beforehand to use services of your
# own instead (a real MongoDB, say); then none are started.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Fuzzing budgets are counts of executions, not durations: with a duration
# Go 1.26's fuzzing coordinator can report its own deadline as a failure
# ("context deadline exceeded", go.dev/issue/75804) on a loaded machine.
FUZZTIME="${FUZZTIME:-300000x}"

unformatted="$(gofmt -l $(git ls-files '*.go') 2>/dev/null || true)"
if [ -n "$unformatted" ]; then
  echo "gofmt would change:" >&2
  echo "$unformatted" >&2
  echo "FAIL"
  exit 1
fi
go vet ./... ./examples/...

# The dashboard's browser test drives Debian's Chromium, headless.
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  echo "test.sh: installing chromium for the browser test"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "test.sh: could not install chromium; the browser test will skip"
fi

started=""
if [ -z "${KAFKA_BROKERS:-}" ] || [ -z "${MONGODB_URI:-}" ]; then
  started=yes
  trap 'bash scripts/services.sh down >/dev/null 2>&1 || true' EXIT
  env_lines="$(bash scripts/services.sh up | grep -E '^(KAFKA_BROKERS|MONGODB_URI)=')"
  while IFS= read -r line; do
    name="${line%%=*}"
    if [ -z "${!name:-}" ]; then export "$line"; fi
  done <<<"$env_lines"
fi
echo "test.sh: KAFKA_BROKERS=$KAFKA_BROKERS MONGODB_URI=$MONGODB_URI${started:+ (started here)}"

go test -count=1 -timeout 20m ./... ./examples/...
go test -run '^$' -fuzz '^FuzzDecode$' -fuzztime "$FUZZTIME" .
go test -run '^$' -fuzz '^FuzzTimes$' -fuzztime 50000x ./sinks/mongo
go test -run '^$' -fuzz '^FuzzLatencyBins$' -fuzztime 50000x ./sinks/mongo
go test -run '^$' -fuzz '^FuzzProducts$' -fuzztime 50000x ./sinks/mongo
