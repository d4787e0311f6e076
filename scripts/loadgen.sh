#!/usr/bin/env bash
# The pipeline figures of BENCHMARKS.md: starts a private redis-server configured like the
# embedded default (AOF, fsync on every write), a `voluntree serve` on it, and runs
# `loadgen` (cmd/loadgen) at each rate given (default: 2500 and 5000 comments/s), then stops both.
#   scripts/loadgen.sh [rate...]
#   env: DURATION (30s), WARMUP (5s), FSYNC (always or everysec), BIN (the server's binary),
#        REDIS_MODE (standalone, or cluster: a local Redis Cluster of 3 masters, each configured
#        like the standalone one, plus CLUSTER_REPLICAS replicas per master, default 0; serve
#        gets a redis-cluster:// URL and INGEST_SHARDS, default 3),
#        LOADGEN_BIN (the load generator, default bin/loadgen), JSON_DIR (keep each run's JSON report
#        there), SERVE_ARGS (extra flags of serve), LOADGEN_ARGS (extra flags of loadgen)
# A server whose live feed needs a ticket gets an organization "loadgen" owning the page the
# comments go to, and the loadgen an admin API token of it.
set -euo pipefail
BIN=${BIN:-bin/voluntree}
LOADGEN_BIN=${LOADGEN_BIN:-bin/loadgen}
DURATION=${DURATION:-30s}
WARMUP=${WARMUP:-5s}
RATES=("$@")
[ ${#RATES[@]} -gt 0 ] || RATES=(2500 5000)
SECRET=loadgen-secret
PAGE=loadgen-page
DIR=$(mktemp -d /tmp/voluntree-loadgen.XXXXXX)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# A cluster node also listens on its port + 10000 (the cluster bus): both must be free.
free_cluster_port() {
  python3 -c '
import random, socket
while True:
    p = random.randrange(20000, 55000)
    try:
        for q in (p, p + 10000):
            s = socket.socket(); s.bind(("127.0.0.1", q)); s.close()
        print(p); break
    except OSError:
        pass'
}
HTTP_PORT=$(free_port)
REDIS_MODE=${REDIS_MODE:-standalone}
PORTS=()
cleanup() {
  [ -n "${SERVE_PID:-}" ] && kill "$SERVE_PID" 2>/dev/null && wait "$SERVE_PID" 2>/dev/null || true
  for p in "${PORTS[@]}"; do redis-cli -p "$p" shutdown nosave >/dev/null 2>&1 || true; done
  rm -rf "$DIR"
}
trap cleanup EXIT
start_redis() { # port [extra args]
  local port=$1; shift
  mkdir -p "$DIR/$port"
  redis-server --port "$port" --bind 127.0.0.1 --dir "$DIR/$port" --save "" --appendonly yes \
    --appendfsync "${FSYNC:-always}" --daemonize yes --logfile "$DIR/$port/redis.log" "$@"
  for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  PORTS+=("$port")
}
case "$REDIS_MODE" in
standalone)
  start_redis "$(free_port)"
  REDIS_URL="redis://127.0.0.1:${PORTS[0]}"
  ;;
cluster)
  replicas=${CLUSTER_REPLICAS:-0}
  addrs=()
  for _ in $(seq $((3 * (1 + replicas)))); do
    start_redis "$(free_cluster_port)" --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 5000
    addrs+=("127.0.0.1:${PORTS[-1]}")
  done
  redis-cli --cluster create "${addrs[@]}" --cluster-replicas "$replicas" --cluster-yes >"$DIR/cluster-create.log"
  for _ in $(seq 100); do
    redis-cli -p "${PORTS[0]}" cluster info | grep -q 'cluster_state:ok' && break; sleep 0.1
  done
  REDIS_URL="redis-cluster://$(IFS=,; echo "${addrs[*]}")"
  SERVE_ARGS="-ingest-shards ${INGEST_SHARDS:-3} ${SERVE_ARGS:-}"
  ;;
*) echo "REDIS_MODE must be standalone or cluster" >&2; exit 2 ;;
esac
echo "redis $REDIS_MODE, appendfsync ${FSYNC:-always}; machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
n=0
for rate in "${RATES[@]}"; do
  n=$((n + 1))
  for p in "${PORTS[@]}"; do redis-cli -p "$p" flushall >/dev/null 2>&1 || true; done # (a replica refuses: its master's flush reaches it)
  # shellcheck disable=SC2086
  VOLUNTREE_REDIS_URL=$REDIS_URL VOLUNTREE_FB_APP_SECRET=$SECRET VOLUNTREE_LOG_LEVEL=warn \
    "$BIN" serve -addr "127.0.0.1:$HTTP_PORT" ${SERVE_ARGS:-} 2>"$DIR/serve.log" &
  SERVE_PID=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$HTTP_PORT/healthz" >/dev/null && break; sleep 0.1; done
  token_args=()
  if [ "$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$HTTP_PORT/api/v1/ws-tickets")" = 401 ]; then
    token=$("$BIN" admin create-token -org loadgen -create-org Loadgen -redis-url "$REDIS_URL")
    "$BIN" admin add-page -org loadgen -page "$PAGE" -name "Loadgen page" -redis-url "$REDIS_URL" >/dev/null
    token_args=(-token "$token")
  fi
  redis_args=() # the loadgen reads the ingest lag from a standalone Redis only
  [ "$REDIS_MODE" = standalone ] && redis_args=(-redis-url "$REDIS_URL")
  echo "== $rate comments/s for $DURATION (+ $WARMUP warmup)"
  json_args=()
  [ -n "${JSON_DIR:-}" ] && json_args=(-json)
  # shellcheck disable=SC2086
  if [ -n "${JSON_DIR:-}" ]; then
    "$LOADGEN_BIN" -url "http://127.0.0.1:$HTTP_PORT" -secret $SECRET -rate "$rate" -duration "$DURATION" \
      -warmup "$WARMUP" -page "$PAGE" "${token_args[@]}" "${json_args[@]}" ${LOADGEN_ARGS:-} >"$JSON_DIR/run-$n-$rate.json" || status=$?
  else
    "$LOADGEN_BIN" -url "http://127.0.0.1:$HTTP_PORT" -secret $SECRET -rate "$rate" -duration "$DURATION" \
      -warmup "$WARMUP" -page "$PAGE" "${token_args[@]}" "${redis_args[@]}" ${LOADGEN_ARGS:-} || status=$?
  fi
  kill "$SERVE_PID"; wait "$SERVE_PID" 2>/dev/null || true; SERVE_PID=
done
exit "${status:-0}"
