#!/usr/bin/env bash
# Local single-node Apache Kafka 4.x broker (KRaft, combined broker+controller)
# for development and integration tests, built only from Maven Central jars.
#
#   scripts/kafka.sh fetch          fetch the broker jars (once) into the cache
#   scripts/kafka.sh start          fetch if needed, format storage once, start,
#                                   wait until the broker is really ready
#   scripts/kafka.sh stop [--clean] stop it; --clean also deletes its data
#   scripts/kafka.sh status         say whether it runs
#
# Environment:
#   CLICKSTREAM_CACHE  cache root  (default: $HOME/.cache/clickstream)
#   CLICKSTREAM_STATE  state root  (default: /tmp/clickstream-services)
#   KAFKA_HEAP_OPTS    JVM heap    (default: -Xms512m -Xmx1g)
#   KAFKA_START_TIMEOUT seconds to wait for readiness (default: 120)
#
# Listens on PLAINTEXT://127.0.0.1:19092 (clients) and
# CONTROLLER://127.0.0.1:19093 (KRaft quorum).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
POM="$SCRIPT_DIR/kafka/pom.xml"
LOG4J_CONF="$SCRIPT_DIR/kafka/log4j2.properties"
READY_SRC="$SCRIPT_DIR/kafka/KafkaReady.java"

HOST=127.0.0.1
PORT=19092
CONTROLLER_PORT=19093
BROKERS="$HOST:$PORT"

# Relative roots are taken from the caller's cwd.
abspath() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
CACHE="$(abspath "${CLICKSTREAM_CACHE:-${HOME:-/tmp}/.cache/clickstream}")/kafka"
LIBS="$CACHE/libs"
STATE="$(abspath "${CLICKSTREAM_STATE:-/tmp/clickstream-services}")/kafka"
DATA="$STATE/data"
LOGS="$STATE/logs"
PIDFILE="$STATE/kafka.pid"
CONF="$STATE/server.properties"
OUT="$STATE/kafka.out"
TIMEOUT="${KAFKA_START_TIMEOUT:-120}"

log() { printf 'kafka.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ensure_tools installs a JDK and Maven from Debian when they are missing and
# we are allowed to (root with apt-get); otherwise it explains what is needed.
ensure_tools() {
  local missing=()
  command -v java >/dev/null 2>&1 || missing+=(default-jdk-headless)
  command -v mvn >/dev/null 2>&1 || missing+=(maven)
  [ "${#missing[@]}" -eq 0 ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing ${missing[*]} with apt-get"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
  else
    die "need java (17+) and mvn on PATH (missing: ${missing[*]})"
  fi
}

pom_stamp() { sha256sum "$POM" | cut -c1-16; }

fetch() {
  local stamp marker tmp
  stamp="$(pom_stamp)"
  marker="$LIBS/.fetched-$stamp"
  if [ -f "$marker" ]; then
    log "jars already fetched in $LIBS"
    return 0
  fi
  ensure_tools
  log "fetching Kafka jars from Maven Central into $LIBS"
  mkdir -p "$CACHE"
  tmp="$(mktemp -d "$CACHE/libs.tmp.XXXXXX")"
  if ! mvn -B -Dstyle.color=never -f "$POM" dependency:copy-dependencies \
      -DoutputDirectory="$tmp" >"$CACHE/mvn.log" 2>&1; then
    rm -rf "$tmp"
    tail -n 40 "$CACHE/mvn.log" >&2
    die "mvn could not fetch the Kafka jars (full log: $CACHE/mvn.log)"
  fi
  ls "$tmp"/kafka_2.13-*.jar >/dev/null 2>&1 || { rm -rf "$tmp"; die "kafka_2.13 jar missing after fetch"; }
  touch "$tmp/.fetched-$stamp"
  rm -rf "$LIBS"
  mv "$tmp" "$LIBS"
  local jars=("$LIBS"/*.jar) core=("$LIBS"/kafka_2.13-*.jar)
  log "fetched ${#jars[@]} jars ($(basename "${core[0]}"))"
}

# running prints the broker's pid and succeeds when the pid file names a live
# Kafka process.
running() {
  [ -f "$PIDFILE" ] || return 1
  local pid
  pid="$(cat "$PIDFILE" 2>/dev/null || true)"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  grep -q 'kafka.Kafka' "/proc/$pid/cmdline" 2>/dev/null || return 1
  echo "$pid"
}

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

write_config() {
  mkdir -p "$DATA" "$LOGS"
  cat >"$CONF" <<EOF
# Written by scripts/kafka.sh: single-node KRaft broker+controller.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=$HOST:$CONTROLLER_PORT
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CONTROLLER_PORT
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DATA

num.partitions=4
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=true
delete.topic.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0

num.network.threads=2
num.io.threads=4
log.retention.hours=24
log.segment.bytes=67108864
EOF
}

format_storage() {
  if [ -f "$DATA/meta.properties" ]; then
    return 0
  fi
  local cid
  cid="$(java -cp "$LIBS/*" kafka.tools.StorageTool random-uuid)"
  log "formatting $DATA (cluster id $cid)"
  java -cp "$LIBS/*" -Dlog4j2.configurationFile="$LOG4J_CONF" -Dkafka.logs.dir="$LOGS" \
    kafka.tools.StorageTool format --standalone --cluster-id "$cid" --config "$CONF" >&2 \
    || die "storage format failed"
}

probe() {
  java -Dlog4j2.level=error -cp "$LIBS/*" "$READY_SRC" "$BROKERS" >/dev/null 2>&1
}

fail_start() {
  log "error: $1"
  log "---- last lines of $LOGS/server.log ----"
  tail -n 40 "$LOGS/server.log" >&2 2>/dev/null || true
  log "---- last lines of $OUT ----"
  tail -n 20 "$OUT" >&2 2>/dev/null || true
  exit 1
}

wait_ready() {
  local pid="$1" deadline=$((SECONDS + TIMEOUT))
  while :; do
    kill -0 "$pid" 2>/dev/null || fail_start "broker (pid $pid) exited during startup"
    if port_open "$PORT" && probe; then
      return 0
    fi
    [ "$SECONDS" -lt "$deadline" ] || fail_start "broker not ready after ${TIMEOUT}s"
    sleep 1
  done
}

start() {
  local pid
  if pid="$(running)"; then
    log "already running (pid $pid)"
    wait_ready "$pid"
    echo "KAFKA_BROKERS=$BROKERS"
    return 0
  fi
  rm -f "$PIDFILE"
  for p in "$PORT" "$CONTROLLER_PORT"; do
    port_open "$p" && die "port $p is already in use by another process"
  done
  fetch
  ensure_tools
  write_config
  format_storage

  log "starting broker (state in $STATE)"
  local heap="${KAFKA_HEAP_OPTS:--Xms512m -Xmx1g}"
  # setsid: own session, so the broker outlives the calling shell and is not
  # hit by its terminal's signals. The bash wrapper writes its pid and then
  # execs java, so the pid file names the JVM itself.
  # shellcheck disable=SC2086,SC2016
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$PIDFILE" \
    java $heap -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
      -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent \
      -Djava.awt.headless=true \
      -Dkafka.logs.dir="$LOGS" -Dlog4j2.configurationFile="$LOG4J_CONF" \
      -cp "$LIBS/*" kafka.Kafka "$CONF" \
      >"$OUT" 2>&1 </dev/null &
  for _ in $(seq 1 50); do
    [ -s "$PIDFILE" ] && break
    sleep 0.1
  done
  pid="$(cat "$PIDFILE" 2>/dev/null || true)"
  [ -n "$pid" ] || fail_start "could not start the broker"
  wait_ready "$pid"
  log "ready (pid $pid, ${SECONDS}s)"
  echo "KAFKA_BROKERS=$BROKERS"
}

stop() {
  local clean=0 pid
  [ "${1:-}" = "--clean" ] && clean=1
  if pid="$(running)"; then
    log "stopping broker (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 600); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "broker did not stop within 60s, killing it"
      kill -KILL "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    log "stopped"
  else
    log "not running"
  fi
  rm -f "$PIDFILE"
  if [ "$clean" = 1 ]; then
    log "deleting $STATE"
    rm -rf "$STATE"
  fi
}

status() {
  local pid
  if pid="$(running)"; then
    echo "kafka: running (pid $pid) KAFKA_BROKERS=$BROKERS"
  else
    echo "kafka: not running"
    return 1
  fi
}

cd "$ROOT"
case "${1:-}" in
  fetch) fetch ;;
  start) start ;;
  stop) shift; stop "${1:-}" ;;
  status) status ;;
  *) echo "usage: $0 fetch|start|stop [--clean]|status" >&2; exit 2 ;;
esac
