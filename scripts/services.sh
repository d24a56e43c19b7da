#!/usr/bin/env bash
# Local services for examples and integration tests:
#   - Apache Kafka 4.x, single-node KRaft broker on 127.0.0.1:19092
#     (scripts/kafka.sh: jars from Maven Central, run with the local JDK)
#   - a MongoDB-wire server on 127.0.0.1:27018 (examples/mongoserver:
#     embedded FerretDB with its SQLite backend)
#
#   scripts/services.sh up            start both (idempotent), wait until ready,
#                                     then print KAFKA_BROKERS=... and MONGODB_URI=...
#   scripts/services.sh down [--clean] stop both (idempotent); --clean also
#                                     deletes their data
#   scripts/services.sh status        say what runs (exit 0 if both run, 3 if not)
#
# Environment: CLICKSTREAM_STATE (default /tmp/clickstream-services) holds pid
# files, logs and data; CLICKSTREAM_CACHE (default ~/.cache/clickstream) holds
# the Kafka jars.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"

# Absolute state dir (a relative CLICKSTREAM_STATE is taken from the caller's
# cwd), shared with scripts/kafka.sh.
STATE="${CLICKSTREAM_STATE:-/tmp/clickstream-services}"
mkdir -p "$STATE"
STATE="$(cd "$STATE" && pwd)"
export CLICKSTREAM_STATE="$STATE"
cd "$ROOT"

MONGO_HOST=127.0.0.1
MONGO_PORT=27018
MONGO_URI="mongodb://$MONGO_HOST:$MONGO_PORT/"
MONGO_STATE="$STATE/mongo"
MONGO_BIN="$STATE/bin/mongoserver"
MONGO_PIDFILE="$MONGO_STATE/mongoserver.pid"
MONGO_LOG="$MONGO_STATE/mongoserver.log"
MONGO_TIMEOUT="${MONGO_START_TIMEOUT:-60}"

KAFKA_BROKERS=127.0.0.1:19092

log() { printf 'services.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

mongo_running() {
  [ -f "$MONGO_PIDFILE" ] || return 1
  local pid
  pid="$(cat "$MONGO_PIDFILE" 2>/dev/null || true)"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  grep -q 'mongoserver' "/proc/$pid/cmdline" 2>/dev/null || return 1
  echo "$pid"
}

mongo_fail() {
  log "error: $1"
  log "---- last lines of $MONGO_LOG ----"
  tail -n 30 "$MONGO_LOG" >&2 2>/dev/null || true
  exit 1
}

mongo_up() {
  local pid
  if pid="$(mongo_running)"; then
    log "mongoserver already running (pid $pid)"
  else
    rm -f "$MONGO_PIDFILE"
    port_open "$MONGO_HOST" "$MONGO_PORT" && die "port $MONGO_PORT is already in use by another process"
    command -v go >/dev/null 2>&1 || die "go is not on PATH"
    mkdir -p "$MONGO_STATE/data" "$(dirname "$MONGO_BIN")"
    log "building examples/mongoserver"
    (cd "$ROOT/examples" && go build -o "$MONGO_BIN" ./mongoserver) || die "go build ./mongoserver failed"
    log "starting mongoserver (state in $MONGO_STATE)"
    # Own session (outlives this shell); the wrapper writes its pid, then
    # execs the server, so the pid file names the server itself.
    # shellcheck disable=SC2016
    setsid bash -c 'echo $$ >"$0"; exec "$@"' "$MONGO_PIDFILE" \
      "$MONGO_BIN" -addr "$MONGO_HOST:$MONGO_PORT" -dir "$MONGO_STATE/data" \
      >>"$MONGO_LOG" 2>&1 </dev/null &
    for _ in $(seq 1 50); do
      [ -s "$MONGO_PIDFILE" ] && break
      sleep 0.1
    done
    pid="$(cat "$MONGO_PIDFILE" 2>/dev/null || true)"
    [ -n "$pid" ] || mongo_fail "could not start mongoserver"
  fi
  local deadline=$((SECONDS + MONGO_TIMEOUT))
  until port_open "$MONGO_HOST" "$MONGO_PORT"; do
    kill -0 "$pid" 2>/dev/null || mongo_fail "mongoserver (pid $pid) exited during startup"
    [ "$SECONDS" -lt "$deadline" ] || mongo_fail "mongoserver not listening after ${MONGO_TIMEOUT}s"
    sleep 0.2
  done
  log "mongoserver ready (pid $pid)"
}

mongo_down() {
  local pid
  if pid="$(mongo_running)"; then
    log "stopping mongoserver (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 150); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "mongoserver did not stop within 15s, killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    log "mongoserver stopped"
  else
    log "mongoserver not running"
  fi
  rm -f "$MONGO_PIDFILE"
}

up() {
  bash "$SCRIPT_DIR/kafka.sh" start >/dev/null
  mongo_up
  log "all services up (${SECONDS}s; logs in $STATE)"
  echo "KAFKA_BROKERS=$KAFKA_BROKERS"
  echo "MONGODB_URI=$MONGO_URI"
}

down() {
  local clean="${1:-}"
  mongo_down
  bash "$SCRIPT_DIR/kafka.sh" stop ${clean:+"$clean"}
  if [ "$clean" = "--clean" ]; then
    log "deleting $MONGO_STATE and $STATE/bin"
    rm -rf "${MONGO_STATE:?}" "${STATE:?}/bin"
  fi
}

status() {
  local rc=0 pid
  bash "$SCRIPT_DIR/kafka.sh" status || rc=3
  if pid="$(mongo_running)"; then
    echo "mongoserver: running (pid $pid) MONGODB_URI=$MONGO_URI"
  else
    echo "mongoserver: not running"
    rc=3
  fi
  return "$rc"
}

case "${1:-}" in
  up) up ;;
  down)
    case "${2:-}" in
      ""|--clean) down "${2:-}" ;;
      *) echo "usage: $0 down [--clean]" >&2; exit 2 ;;
    esac
    ;;
  status) status ;;
  *) echo "usage: $0 up|down [--clean]|status" >&2; exit 2 ;;
esac
