#!/usr/bin/env bash
# Builds, without any image registry, the two Debian bookworm images the compose deployment
# starts from, and keeps them (a second run finds them and does nothing):
#   voluntree-base:bookworm   runtime: libtorch's libraries, redis-server, haproxy, prometheus,
#                             curl (the node image's base; in tests, Redis', the ingress' and
#                             Prometheus' too)
#   voluntree-build:bookworm  the base + g++, libtorch-dev and this machine's Go toolchain (the
#                             node image's build stage)
# debootstrap --variant=minbase into a folder, chroot … apt-get install, docker import.
#   env: CACHE (folder of the root filesystems, default /var/cache/voluntree),
#        MIRROR (default http://deb.debian.org/debian), FORCE=1 (build again)
set -euo pipefail
CACHE=${CACHE:-/var/cache/voluntree}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
GOROOT_HOST=$(go env GOROOT)
have() { [ -z "${FORCE:-}" ] && docker image inspect "$1" >/dev/null 2>&1; }
SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
if have voluntree-base:bookworm && have voluntree-build:bookworm; then
  echo "voluntree-base:bookworm and voluntree-build:bookworm are there"; exit 0
fi
command -v debootstrap >/dev/null || { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq debootstrap >/dev/null; }
$SUDO mkdir -p "$CACHE"
chroot_install() { # folder, packages...
  local dir=$1; shift
  $SUDO cp /etc/resolv.conf "$dir/etc/resolv.conf"
  $SUDO chroot "$dir" sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $* >/dev/null && apt-get clean && rm -rf /var/lib/apt/lists/*"
}
import() { # folder, tag
  $SUDO tar -C "$1" -c . | docker import -c 'ENV PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' - "$2" >/dev/null
  echo "built $2"
}
if ! have voluntree-base:bookworm; then
  echo "== debootstrap bookworm into $CACHE/rootfs"
  $SUDO rm -rf "$CACHE/rootfs"
  $SUDO debootstrap --variant=minbase bookworm "$CACHE/rootfs" "$MIRROR" >/dev/null
  chroot_install "$CACHE/rootfs" ca-certificates libtorch1.13 redis-server haproxy prometheus curl
  import "$CACHE/rootfs" voluntree-base:bookworm
fi
if ! have voluntree-build:bookworm; then
  [ -d "$CACHE/rootfs/usr" ] || { echo "the base's folder $CACHE/rootfs is gone: FORCE=1 $0" >&2; exit 1; }
  echo "== the build image: + g++, libtorch-dev, Go from $GOROOT_HOST"
  $SUDO rm -rf "$CACHE/buildfs"
  $SUDO cp -a "$CACHE/rootfs" "$CACHE/buildfs"
  chroot_install "$CACHE/buildfs" g++ libtorch-dev
  $SUDO rm -rf "$CACHE/buildfs/usr/local/go"
  $SUDO cp -a "$GOROOT_HOST" "$CACHE/buildfs/usr/local/go"
  import "$CACHE/buildfs" voluntree-build:bookworm
  $SUDO rm -rf "$CACHE/buildfs"
fi
