#!/usr/bin/env bash
# Build the Kubernetes control plane the tests run on (kube-apiserver, kube-controller-manager,
# kube-scheduler) from Debian's `kubernetes` source package, and install etcd from Debian.
#
# Why from source: nothing but the package registries is reachable here, and Debian ships the
# Kubernetes tree (v1.20.2 with its vendor/) only as a source package. Idempotent: the binaries
# are cached outside the repository, keyed by the source package version, so a rerun costs
# seconds. Prints the directory holding the binaries on its last line.
#
#   LEADTIME_CACHE   cache root (default ~/.cache/leadtime)
set -euo pipefail

CACHE="${LEADTIME_CACHE:-$HOME/.cache/leadtime}/kubernetes"
WANT_BINARIES=(kube-apiserver kube-controller-manager kube-scheduler)
export DEBIAN_FRONTEND=noninteractive

log() { echo "build.sh: $*" >&2; }

apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

ensure_deb_src() {
  # Source packages come from the same mirror as the binary ones.
  if ! grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ && ! grep -qs '^deb-src' /etc/apt/sources.list; then
    log "adding a deb-src entry for bookworm main"
    cat >/etc/apt/sources.list.d/leadtime-deb-src.sources <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    apt-get update -qq
  fi
}

# etcd and openssl are needed at run time even when the build is cached.
apt_install etcd-server openssl jq
command -v etcd >/dev/null || { log "etcd is missing after install"; exit 1; }

ensure_deb_src
VERSION="$(apt-cache showsrc kubernetes | awk '/^Version:/ {print $2}' | sort -V | tail -1)"
[ -n "$VERSION" ] || { log "no source package 'kubernetes' found"; exit 1; }
OUT="$CACHE/$VERSION/bin"

have_all() { for b in "${WANT_BINARIES[@]}"; do [ -x "$OUT/$b" ] || return 1; done; }
if have_all; then
  log "cached: $OUT"
  echo "$OUT"
  exit 0
fi

apt_install golang-go rsync golang-github-modern-go-reflect2-dev make

WORK="$CACHE/$VERSION/work"
mkdir -p "$WORK"
cd "$WORK"
if ! ls kubernetes_*.orig.tar.gz >/dev/null 2>&1; then
  log "downloading the source package kubernetes $VERSION"
  apt-get source --download-only -qq "kubernetes=$VERSION" >/dev/null
fi

TREE="$WORK/tree"
if [ ! -f "$TREE/.unpacked" ]; then
  rm -rf "$TREE" && mkdir -p "$TREE"
  tar -xzf kubernetes_*.orig.tar.gz -C "$TREE" --strip-components=1
  # The vendored reflect2 1.0.1 is broken on Go >= 1.18: the API server dies (SIGSEGV in map
  # iteration) on the first custom-resource request. Debian's 1.0.2 fixes it.
  rm -rf "$TREE/vendor/github.com/modern-go/reflect2"
  cp -r /usr/share/gocode/src/github.com/modern-go/reflect2 "$TREE/vendor/github.com/modern-go/reflect2"
  rm -f "$TREE/vendor/github.com/modern-go/reflect2/go.mod"
  touch "$TREE/.unpacked"
fi

# As Debian's own rules build it: a GOPATH whose k8s.io/kubernetes is the tree.
mkdir -p "$TREE/.go/src/k8s.io" "$WORK/home"
ln -sfn "$TREE" "$TREE/.go/src/k8s.io/kubernetes"
log "building ${WANT_BINARIES[*]} (several minutes from a cold Go cache)"
(
  cd "$TREE/.go/src/k8s.io/kubernetes"
  export GOPATH="$TREE/.go" GO111MODULE=off CGO_ENABLED=0 HOME="$WORK/home"
  export GOCACHE="$CACHE/go-build-cache" GOFLAGS=
  make WHAT="cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler" >&2
)
mkdir -p "$OUT"
for b in "${WANT_BINARIES[@]}"; do
  install -m 0755 "$TREE/_output/local/bin/linux/$(go env GOARCH)/$b" "$OUT/$b" 2>/dev/null \
    || install -m 0755 "$(find "$TREE/_output" -type f -name "$b" | head -1)" "$OUT/$b"
done
# The tree (~1 GB unpacked) is not needed once the binaries are cached.
rm -rf "$TREE"
log "built: $OUT"
echo "$OUT"
