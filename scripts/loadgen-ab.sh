#!/usr/bin/env bash
# A/B of the live pipeline: builds REF (in a git worktree under .build/ab) and the working
# tree (HEAD plus any uncommitted change), then runs scripts/loadgen.sh against each in turn,
# interleaved (REF, HEAD, HEAD, REF, REF, HEAD, ...) in one sitting, with the working tree's
# load generator for both, and prints both sides side by side (loadgen compare).
#   scripts/loadgen-ab.sh REF [rate]
#   env: ROUNDS (3: each side runs ROUNDS times), DURATION (10s), WARMUP (3s), FSYNC,
#        SERVE_ARGS, LOADGEN_ARGS, OUT (keep the JSON reports there)
set -euo pipefail
REF=${1:?usage: scripts/loadgen-ab.sh REF [rate]}
RATE=${2:-2500}
ROUNDS=${ROUNDS:-3}
export DURATION=${DURATION:-10s} WARMUP=${WARMUP:-3s}
ROOT=$(git rev-parse --show-toplevel)
cd "$ROOT"
GO=${GO:-go}
REF_SHA=$(git rev-parse --verify "$REF^{commit}")
REF_NAME=$(git rev-parse --short "$REF_SHA")
HEAD_NAME=$(git rev-parse --short HEAD)
git diff --quiet HEAD -- . || HEAD_NAME="$HEAD_NAME+changes"
[ "$REF_NAME" != "$HEAD_NAME" ] || { echo "REF is HEAD: nothing to compare" >&2; exit 2; }

mkdir -p .build/ab
echo "== building HEAD ($HEAD_NAME)"
$GO build -o .build/ab/head/voluntree ./cmd/voluntree
$GO build -o .build/ab/head/loadgen ./cmd/loadgen
WT=.build/ab/$REF_SHA
if [ ! -e "$WT/.git" ]; then
  git worktree prune
  git worktree add --detach "$WT" "$REF_SHA" >/dev/null
fi
mkdir -p "$WT/.build"
if git diff --quiet "$REF_SHA" HEAD -- build/gotch; then
  ln -sfn "$ROOT/.build/gotch" "$WT/.build/gotch" # the same patched gotch
elif [ ! -e "$WT/.build/gotch/.voluntree-stamp" ]; then
  (cd "$WT" && build/gotch/prepare.sh .build/gotch)
fi
echo "== building REF ($REF_NAME)"
(cd "$WT" && $GO build -o bin/voluntree ./cmd/voluntree)

OUT=${OUT:-$(mktemp -d /tmp/voluntree-ab.XXXXXX)}
mkdir -p "$OUT/$REF_NAME" "$OUT/$HEAD_NAME"
run() { # name binary round
  echo "== round $3: $1"
  JSON_DIR="$OUT/$1" BIN="$2" LOADGEN_BIN=.build/ab/head/loadgen scripts/loadgen.sh "$RATE" >/dev/null 2>"$OUT/$1/stderr-$3.log" || true
  mv "$OUT/$1/run-1-$RATE.json" "$OUT/$1/round-$3.json" 2>/dev/null || echo "   (no report: see $OUT/$1/stderr-$3.log)"
}
for round in $(seq "$ROUNDS"); do
  if [ $((round % 2)) = 1 ]; then
    run "$REF_NAME" "$WT/bin/voluntree" "$round"; run "$HEAD_NAME" .build/ab/head/voluntree "$round"
  else
    run "$HEAD_NAME" .build/ab/head/voluntree "$round"; run "$REF_NAME" "$WT/bin/voluntree" "$round"
  fi
done
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); reports in $OUT"
.build/ab/head/loadgen compare -order "$REF_NAME,$HEAD_NAME" "$OUT"
