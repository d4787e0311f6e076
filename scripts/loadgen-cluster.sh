#!/usr/bin/env bash
# The pipeline on a local 3-master Redis Cluster against the same pipeline on one standalone
# Redis (issue 14's target: the cluster at ≥ 90 % of the standalone figure): the same binary
# and load generator, scripts/loadgen.sh with REDIS_MODE=standalone and REDIS_MODE=cluster in
# turn (interleaved, one sitting), each side ROUNDS times, then both side by side.
#   scripts/loadgen-cluster.sh [rate]
#   env: ROUNDS (3), DURATION (10s), WARMUP (3s), CLUSTER_REPLICAS (0), INGEST_SHARDS (3),
#        BIN, LOADGEN_BIN, OUT (keep the JSON reports there)
set -euo pipefail
RATE=${1:-2500}
ROUNDS=${ROUNDS:-3}
export DURATION=${DURATION:-10s} WARMUP=${WARMUP:-3s}
BIN=${BIN:-bin/voluntree}
LOADGEN_BIN=${LOADGEN_BIN:-bin/loadgen}
OUT=${OUT:-$(mktemp -d /tmp/voluntree-cluster.XXXXXX)}
mkdir -p "$OUT/standalone" "$OUT/cluster"
run() { # mode round
  echo "== round $2: $1"
  REDIS_MODE=$1 JSON_DIR="$OUT/$1" BIN=$BIN LOADGEN_BIN=$LOADGEN_BIN scripts/loadgen.sh "$RATE" >/dev/null 2>"$OUT/$1/stderr-$2.log" || true
  mv "$OUT/$1/run-1-$RATE.json" "$OUT/$1/round-$2.json" 2>/dev/null || echo "   (no report: see $OUT/$1/stderr-$2.log)"
}
for round in $(seq "$ROUNDS"); do
  if [ $((round % 2)) = 1 ]; then run standalone "$round"; run cluster "$round"; else run cluster "$round"; run standalone "$round"; fi
done
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); cluster: 3 masters, ${CLUSTER_REPLICAS:-0} replicas each, ${INGEST_SHARDS:-3} ingest shards; reports in $OUT"
"$LOADGEN_BIN" compare -order standalone,cluster "$OUT"
