#!/usr/bin/env bash
# The pipeline figures of BENCHMARKS.md: starts a private redis-server configured like the
# embedded default (AOF, fsync on every write), a `voluntree serve` on it, and runs
# `voluntree loadgen` at each rate given (default: 2500 and 5000 comments/s), then stops both.
#   scripts/loadgen.sh [rate...]   env: DURATION (30s), WARMUP (5s), FSYNC (always or everysec), BIN
set -euo pipefail
BIN=${BIN:-bin/voluntree}
DURATION=${DURATION:-30s}
WARMUP=${WARMUP:-5s}
RATES=("$@")
[ ${#RATES[@]} -gt 0 ] || RATES=(2500 5000)
SECRET=loadgen-secret
DIR=$(mktemp -d /tmp/voluntree-loadgen.XXXXXX)
REDIS_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
HTTP_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cleanup() {
  [ -n "${SERVE_PID:-}" ] && kill "$SERVE_PID" 2>/dev/null && wait "$SERVE_PID" 2>/dev/null || true
  redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
  rm -rf "$DIR"
}
trap cleanup EXIT
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$DIR" --save "" --appendonly yes \
  --appendfsync "${FSYNC:-always}" --daemonize yes --logfile "$DIR/redis.log"
for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
echo "redis appendfsync ${FSYNC:-always}; machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
for rate in "${RATES[@]}"; do
  redis-cli -p "$REDIS_PORT" flushall >/dev/null
  VOLUNTREE_REDIS_URL="redis://127.0.0.1:$REDIS_PORT" VOLUNTREE_FB_APP_SECRET=$SECRET VOLUNTREE_LOG_LEVEL=warn \
    "$BIN" serve -addr "127.0.0.1:$HTTP_PORT" 2>"$DIR/serve.log" &
  SERVE_PID=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$HTTP_PORT/healthz" >/dev/null && break; sleep 0.1; done
  echo "== $rate comments/s for $DURATION (+ $WARMUP warmup)"
  "$BIN" loadgen -url "http://127.0.0.1:$HTTP_PORT" -secret $SECRET -rate "$rate" -duration "$DURATION" \
    -warmup "$WARMUP" -redis-url "redis://127.0.0.1:$REDIS_PORT" || status=$?
  kill "$SERVE_PID"; wait "$SERVE_PID" 2>/dev/null || true; SERVE_PID=
done
exit "${status:-0}"
