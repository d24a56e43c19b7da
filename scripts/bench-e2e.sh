#!/usr/bin/env bash
# End-to-end throughput: N generated events produced to a fresh 4-partition
# topic on the real broker, then one bounded run of the full pipeline from
# Kafka into MongoDB (the MongoDB-wire server of scripts/services.sh, or
# $MONGODB_URI) and Parquet, with a CPU profile.
#   scripts/bench-e2e.sh [N] [extra fullpipeline flags...]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
N="${1:-2000000}"; shift || true
OUT="${BENCH_DIR:-/tmp/clickstream-bench}"
rm -rf "$OUT"; mkdir -p "$OUT"
eval "$(bash scripts/services.sh up | grep -E '^(KAFKA_BROKERS|MONGODB_URI)=' | sed 's/^/export /')"
topic="bench_$(date +%s)"
go build -o "$OUT/fullpipeline" ./examples/fullpipeline
go build -o "$OUT/producer" ./examples/producer
"$OUT/producer" generate -n "$N" -seed 7 -o "$OUT/events.jsonl"
"$OUT/producer" replay -file "$OUT/events.jsonl" -brokers "$KAFKA_BROKERS" -topic "$topic" -rate 0
start=$(date +%s.%N)
"$OUT/fullpipeline" -source "kafka://$KAFKA_BROKERS/$topic?group=bench&bounded=true" \
  -mongo "${MONGODB_URI}" -database "$topic" -parquet "$OUT/parquet" -checkpoints "$OUT/ckpt" \
  -http off -progress 10s -cpuprofile "$OUT/cpu.prof" "$@" 2>&1 | grep -E 'progress|done|error' || true
end=$(date +%s.%N)
python3 -c "import sys; n=$N; d=$end-$start; print(f'{n} events in {d:.1f}s: {n/d:,.0f} events/s')"
go tool pprof -top -nodecount 25 "$OUT/fullpipeline" "$OUT/cpu.prof" 2>/dev/null | head -35
