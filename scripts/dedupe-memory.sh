#!/usr/bin/env bash
# Measures the memory of the ingest's dedupe marks (BENCHMARKS.md, "The dedupe marks' memory"):
# a private redis-server without persistence, N marks of each id shape written as the enqueue
# script writes them (SET <prefix>:{ingest:N}:seen:<id> 1 NX EX 129600, over 3 shards), and
# used_memory before and after.  Usage: scripts/dedupe-memory.sh [N]
set -euo pipefail
n=${1:-100000}
dir=$(mktemp -d)
trap 'redis-cli -s "$dir/r.sock" shutdown nosave >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
redis-server --port 0 --unixsocket "$dir/r.sock" --save '' --appendonly no --daemonize yes --dir "$dir" --logfile "$dir/log"
r() { redis-cli -s "$dir/r.sock" "$@"; }
for _ in $(seq 50); do r ping >/dev/null 2>&1 && break; sleep 0.1; done
echo "redis $(redis-server --version | grep -o 'v=[0-9.]*'), $n marks of each shape"
for kind in comment mid max; do
  r flushall >/dev/null
  before=$(r info memory | tr -d '\r' | sed -n 's/^used_memory://p')
  python3 - "$kind" "$n" <<'PY' | r >/dev/null
import random, string, sys
kind, n = sys.argv[1], int(sys.argv[2])
random.seed(1)
for i in range(n):
    if kind == "comment":
        id = "%016d_%016d" % (random.randrange(10**15, 10**16), random.randrange(10**15, 10**16))
    elif kind == "mid":
        id = "m_" + "".join(random.choice(string.ascii_letters + string.digits + "-_") for _ in range(86))
    else:
        id = "".join(random.choice(string.ascii_letters + string.digits) for _ in range(256))
    tag = "{ingest}" if i % 3 == 0 else "{ingest:%d}" % (i % 3)
    print("SET voluntree:%s:seen:%s 1 NX EX 129600" % (tag, id))
PY
  after=$(r info memory | tr -d '\r' | sed -n 's/^used_memory://p')
  echo "$kind: $(( (after - before) / n )) bytes per mark (MEMORY USAGE of one: $(r memory usage "$(r randomkey)"))"
done
