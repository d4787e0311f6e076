#!/usr/bin/env bash
# Prepares a CPU build of gotch against Debian's libtorch (1.13.1) in a git-ignored folder.
#
#   build/gotch/prepare.sh OUT            copy gotch into OUT, write the CPU lib.go, stub the
#                                         functions listed in build/gotch/stubs.txt
#   build/gotch/prepare.sh --discover     recompute stubs.txt: compile gotch's C++ API against
#                                         the installed headers and list every generated function
#                                         that fails to compile
#
# Why: gotch v0.7.0 targets libtorch 1.11 with CUDA and the pre-C++11 ABI. 38 of its generated
# wrappers (torch_api_generated.cpp.h) call functions that 1.13.1 renamed or removed; none is
# used by Voluntree. Their bodies become PROTECT(throw ...), so calling one returns a Go error.
# Idempotent: OUT is rebuilt only when this script, stubs.txt or the gotch version change.
set -euo pipefail

GOTCH_VERSION=v0.7.0
here=$(cd "$(dirname "$0")" && pwd)
stubs="$here/stubs.txt"
gen=libtch/torch_api_generated.cpp.h

gotch_src() {
  # Download into the module cache from outside any module, so that our own go.mod's replace
  # directive (which points at OUT) is not consulted.
  local tmp json
  tmp=$(mktemp -d)
  if ! json=$(cd "$tmp" && GOFLAGS=-mod=mod go mod download -json "github.com/sugarme/gotch@$GOTCH_VERSION" 2>&1); then
    rm -rf "$tmp"
    echo "prepare.sh: could not download gotch $GOTCH_VERSION:" >&2
    echo "$json" >&2
    return 1
  fi
  rm -rf "$tmp"
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p' <<< "$json"
}

cxx_flags=(-std=c++17 -D_GLIBCXX_USE_CXX11_ABI=1 -I/usr/include/torch/csrc/api/include -w)

if [ "${1:-}" = "--discover" ]; then
  src=$(gotch_src)
  # Every error line in the generated file, mapped to the function whose body contains it.
  { g++ -fsyntax-only -fmax-errors=0 "${cxx_flags[@]}" -I"$src/libtch" "$src/libtch/torch_api.cpp" 2>&1 || true; } |
    sed -n "s|^.*/$gen:\([0-9]*\):[0-9]*: error:.*|\1|p" | sort -n | uniq |
    awk -v file="$src/$gen" '
      BEGIN { n = 0; while ((getline line < file) > 0) { n++; if (match(line, /^[a-z_0-9]+ \*?atg_[A-Za-z0-9_]+\(/)) { name = substr(line, 1, RLENGTH - 1); sub(/^.* \*?/, "", name) } fn[n] = name } }
      { print fn[$1] }' | sort -u > "$stubs.tmp"
  mv "$stubs.tmp" "$stubs"
  echo "wrote $(wc -l < "$stubs") function names to $stubs" >&2
  exit 0
fi

out=${1:?usage: prepare.sh OUT | --discover}
stamp="$out/.voluntree-stamp"
want="$GOTCH_VERSION $(cat "$0" "$stubs" | sha256sum | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi

src=$(gotch_src)
[ -d "$src" ] || { echo "prepare.sh: could not download gotch $GOTCH_VERSION" >&2; exit 1; }
rm -rf "$out"
mkdir -p "$(dirname "$out")"
cp -r "$src" "$out"
chmod -R u+w "$out"

cat > "$out/libtch/lib.go" <<'GO'
package libtch

// CPU-only flags for Debian's libtorch (headers under /usr/include, C++11 ABI).
// Written by build/gotch/prepare.sh; do not edit.

// #cgo LDFLAGS: -lstdc++ -ltorch -lc10 -ltorch_cpu
// #cgo CFLAGS: -I${SRCDIR} -O3 -Wall -Wno-unused-variable -Wno-deprecated-declarations -Wno-c++11-narrowing -Wno-sign-compare -Wno-unused-function
// #cgo CFLAGS: -D_GLIBCXX_USE_CXX11_ABI=1
// #cgo CXXFLAGS: -std=c++17 -I${SRCDIR} -O2 -D_GLIBCXX_USE_CXX11_ABI=1 -w
// #cgo CXXFLAGS: -I/usr/include/torch/csrc/api/include
import "C"
GO

# Replace the PROTECT( ... ) block of each listed function by a throwing one; any trailing
# "return 0;" of non-void wrappers stays, so the signature and control flow are unchanged.
awk -v list="$stubs" '
  BEGIN { while ((getline n < list) > 0) if (n != "") stub[n] = 1 }
  match($0, /^[a-z_0-9]+ \*?atg_[A-Za-z0-9_]+\(/) {
    name = substr($0, 1, RLENGTH - 1); sub(/^.* \*?/, "", name); cur = (name in stub) ? name : ""
  }
  cur != "" && $0 == "  PROTECT(" { skipping = 1; next }
  skipping && $0 == "  )" {
    printf "  PROTECT(throw std::runtime_error(\"%s: not available in this libtorch build\");)\n", cur
    skipping = 0; done[cur] = 1; next
  }
  skipping { next }
  { print }
  END { for (n in stub) if (!(n in done)) { print "prepare.sh: stub target not found: " n > "/dev/stderr"; exit 1 } }
' "$src/$gen" > "$out/$gen"

# Every generated Go wrapper gets its result slot from C.malloc(0) and never frees it: one
# leaked chunk per tensor op (measured: RSS +128 MB per 200k predictions), and wrappers with 4-5
# outputs write past the chunk. Size the slots and free them when the wrapper returns (the
# wrappers copy the tensor handles out before that).
sed -i \
  -e 's|^\( *\)ptr := (\*lib.Ctensor)(unsafe.Pointer(C.malloc(0)))$|\1ptr := (*lib.Ctensor)(unsafe.Pointer(C.malloc(8)))\n\1defer C.free(unsafe.Pointer(ptr))|' \
  -e 's|^\( *\)ctensorPtr0 := (\*lib.Ctensor)(unsafe.Pointer(C.malloc(0)))$|\1ctensorPtr0 := (*lib.Ctensor)(unsafe.Pointer(C.malloc(64)))\n\1defer C.free(unsafe.Pointer(ctensorPtr0))|' \
  "$out/ts/tensor-generated.go"
if grep -q "C.malloc(0)" "$out/ts/tensor-generated.go"; then
  echo "prepare.sh: unpatched C.malloc(0) left in ts/tensor-generated.go" >&2; exit 1
fi

echo "$want" > "$stamp"
echo "prepared gotch $GOTCH_VERSION for CPU libtorch in $out ($(wc -l < "$stubs") stubbed functions)" >&2
