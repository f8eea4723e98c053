#!/bin/bash
# Build KubeVirt's virt-api, virt-controller and synchronization-controller from the pinned source.
#
#   KUBEVIRT_BIN=$(bash tests/infra/build-kubevirt.sh | tail -1)     # last stdout line = the bin dir
#
# KubeVirt's code is built unmodified, offline (its dependencies are vendored), CGO_ENABLED=0, with
# the Go toolchain from the Debian packages tests/infra/build.sh downloads (run that first; this
# script runs it if its debs are missing). The programs in tests/infra/kubevirt-cmd/<name>/ (ours:
# they only call KubeVirt's packages) are copied into the unpacked tree as cmd/<name> and built too.
#
# Source: ${DLM_SHARED_DIR:-../shared}/upstream/$KUBEVIRT_TARBALL, checked against the sha256 pinned
# in tests/infra/kubevirt.env. Cache: ${KUBEVIRT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-dlm/kubevirt}/<key>,
# key = hash(tarball sha256, this script, our programs, Go toolchain debs). Cold ~4 min on 2 cores;
# warm: seconds. work/ keeps the toolchain and the Go build cache (~2 GB) so a rebuild after
# editing our programs is quick. `rm -rf` the cache dir to reclaim disk.
set -euo pipefail
exec 3>&1 1>&2   # everything goes to stderr except the final bin dir line
log() { echo "build-kubevirt.sh: $(date +%T) $*"; }
die() { echo "build-kubevirt.sh: $*" >&2; exit 1; }
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=kubevirt.env
. "$HERE/kubevirt.env"
SHARED="${DLM_SHARED_DIR:-$HERE/../../../shared}"
TARBALL="$SHARED/upstream/$KUBEVIRT_TARBALL"
[ -f "$TARBALL" ] || die "$TARBALL not found: set DLM_SHARED_DIR"
ROOT="${KUBEVIRT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-dlm/kubevirt}"
W="$ROOT/work"
mkdir -p "$W"

exec 9>"$ROOT/.lock"   # a CI job and a developer building at once: one builds, the other reuses
flock -w 1800 9

# The Go toolchain debs, as downloaded by build.sh (same cache rules as there).
DEBS="${MINI_KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-dlm/test-apiserver}/work/debs"
toolchain() { ls "$DEBS"/golang-1.[0-9]*-go_*.deb "$DEBS"/golang-1.[0-9]*-src_*.deb 2>/dev/null | sort -V | tail -2; }
if [ "$(toolchain | wc -l)" -lt 2 ]; then
  log "no Go toolchain debs in $DEBS: running build.sh"
  bash "$HERE/build.sh" >/dev/null
fi
mapfile -t GODEBS < <(toolchain)
[ "${#GODEBS[@]}" -eq 2 ] || die "no golang-1.N-go/-src debs in $DEBS"

# Cheap part of the key first; hashing the 300 MB tarball (~1 s) is what proves the source.
SUM=$(sha256sum "$TARBALL" | cut -d' ' -f1)
[ "$SUM" = "$KUBEVIRT_SHA256" ] || die "$TARBALL has sha256 $SUM, tests/infra/kubevirt.env pins $KUBEVIRT_SHA256"
OURS=(); [ -d "$HERE/kubevirt-cmd" ] && mapfile -t OURS < <(find "$HERE/kubevirt-cmd" -type f | LC_ALL=C sort)
KEY=$( { echo "$SUM"; basename -a "${GODEBS[@]}"; cat "$HERE/build-kubevirt.sh" "$HERE/kubevirt.env" "${OURS[@]}"; } \
       | sha256sum | cut -c1-16)
OUT="$ROOT/$KEY"
PROGRAMS=(virt-api virt-controller synchronization-controller)
for d in "$HERE"/kubevirt-cmd/*/; do [ -d "$d" ] && PROGRAMS+=("$(basename "$d")"); done
ready() { for p in "${PROGRAMS[@]}"; do [ -x "$OUT/$p" ] || return 1; done; }
if ready; then
  touch "$OUT"   # mtime = last use (see the clean-up below)
  log "up to date: $OUT"
  echo "$OUT" >&3; exit 0
fi

# ---- cold path ----
GOVER=$(basename "${GODEBS[0]}" | sed 's/^golang-//; s/-go_.*//')   # golang-1.27-go_... -> 1.27
TC="$W/toolchain-$(basename "${GODEBS[0]}" .deb)"
if [ ! -x "$TC/usr/lib/go-$GOVER/bin/go" ]; then
  log "unpacking the Go toolchain (${GODEBS[*]##*/})"
  rm -rf "$TC.tmp" && mkdir -p "$TC.tmp"
  for f in "${GODEBS[@]}"; do dpkg-deb -x "$f" "$TC.tmp"; done
  rm -rf "$TC" && mv "$TC.tmp" "$TC"
  find "$W" -mindepth 1 -maxdepth 1 -name 'toolchain-*' ! -name "${TC##*/}" -exec rm -rf {} +
fi
export GOROOT="$TC/usr/lib/go-$GOVER"
export GOFLAGS= GOPROXY=off GOTOOLCHAIN=local CGO_ENABLED=0 GOCACHE="$W/gocache" GOPATH="$W/gopath" GOWORK=
SRC="$W/src"
log "unpacking $KUBEVIRT_TARBALL"
rm -rf "$SRC" && mkdir -p "$SRC"
tar -xzf "$TARBALL" -C "$SRC"
TREE="$SRC/kubevirt-$KUBEVIRT_VERSION"
[ -f "$TREE/go.work" ] || die "$TARBALL has no kubevirt-$KUBEVIRT_VERSION/go.work"
for d in "$HERE"/kubevirt-cmd/*/; do [ -d "$d" ] && cp -r "$d" "$TREE/cmd/"; done

TMP="$OUT.tmp.$$"; rm -rf "$TMP"; mkdir -p "$TMP"
V=kubevirt.io/client-go/version
log "compiling ${PROGRAMS[*]} with $("$GOROOT/bin/go" version)"
(cd "$TREE" && "$GOROOT/bin/go" build -trimpath \
   -ldflags "-s -w -X $V.gitVersion=$KUBEVIRT_VERSION -X $V.gitCommit=$KUBEVIRT_COMMIT -X $V.gitTreeState=clean" \
   -o "$TMP/" "${PROGRAMS[@]/#/./cmd/}")
{ echo "# KubeVirt $KUBEVIRT_VERSION ($KUBEVIRT_COMMIT), sha256 $SUM"
  echo "# $("$GOROOT/bin/go" version), from ${GODEBS[*]##*/}"; } > "$TMP/VERSIONS.txt"
# Lets the pytest fixture find a build for the current sources without hashing the tarball (tests/harness/kubevirt.py).
cat "$HERE/build-kubevirt.sh" "$HERE/kubevirt.env" "${OURS[@]}" | sha256sum | cut -d' ' -f1 > "$TMP/SOURCES.sha256"
rm -rf "$OUT" && mv "$TMP" "$OUT"
rm -rf "$SRC"
# drop builds unused for a week (not newer ones: a running test session may use them via KUBEVIRT_BIN)
find "$ROOT" -mindepth 1 -maxdepth 1 -type d ! -name work ! -name "$KEY" -mtime +7 -exec rm -rf {} +
log "done: $OUT"
echo "$OUT" >&3
