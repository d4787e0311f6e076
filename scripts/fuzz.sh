#!/usr/bin/env bash
# Runs every Go fuzz target of the repository for FUZZTIME each (default 1m), one after the
# other; a crasher is written under the package's testdata/fuzz/<target>/ and fails the run:
# commit it, and `make test` replays it as a regression case from then on.
#   scripts/fuzz.sh [package...]   env: FUZZTIME (e.g. 10m), FUZZ_PARALLEL (workers, default: cores)
set -euo pipefail
FUZZTIME=${FUZZTIME:-1m}
PKGS=("$@")
[ ${#PKGS[@]} -gt 0 ] || PKGS=(./facebook ./redisstore ./httpapi ./ml ./internal/redisconn ./cmd/voluntree)
par=()
[ -n "${FUZZ_PARALLEL:-}" ] && par=(-parallel "$FUZZ_PARALLEL")
failed=0
for pkg in "${PKGS[@]}"; do
  for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
    echo "== $pkg $target for $FUZZTIME"
    if ! go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "${par[@]}" "$pkg"; then
      echo "!! $pkg $target failed: see the crasher under $pkg/testdata/fuzz/$target/" >&2
      failed=1
    fi
  done
done
exit $failed
