#!/bin/bash
# Build the test API server (mini-kube-apiserver), etcd and fetch prometheus, from Debian packages.
#
#   BIN=$(bash tests/infra/build.sh | tail -1)     # last stdout line = the bin dir
#
# Why this way: nothing on PyPI/npm/Debian ships a kube-apiserver binary, but Debian sid ships the
# real k8s.io/apiserver + apiextensions-apiserver as Go source. We download those .debs with a
# PRIVATE apt state (the host's apt config and dpkg database are only read, never written),
# unpack them and build offline in GOPATH mode.
#
# Cache: ${MINI_KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-dlm/test-apiserver}/<key>, where
# key = hash(main.go, build.sh, resolved package versions). A warm run only refreshes the private
# package lists, sees the key exists and stops. Debs and the Go build cache are kept in work/ so a
# rebuild after editing main.go takes well under a minute. `rm -rf` the cache dir to reclaim disk.
set -euo pipefail
exec 3>&1 1>&2   # everything goes to stderr except the final bin dir line
log() { echo "build.sh: $(date +%T) $*"; }
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="${MINI_KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-dlm/test-apiserver}"
W="$ROOT/work"
mkdir -p "$W"/apt/lists/partial "$W"/apt/cache/archives/partial "$W"/debs

# Two builds at once (CI job + developer) share apt state and debs: serialise them.
exec 9>"$ROOT/.lock"
flock -w 1200 9

# The Debian mirror this machine's apt already uses (deb822 or one-line format), never a fixed host.
mirror() {
  [ -z "${DEBIAN_MIRROR:-}" ] || { echo "$DEBIAN_MIRROR"; return; }
  { cat /etc/apt/sources.list.d/*.sources 2>/dev/null || true; } | sed -n 's/^URIs:[[:space:]]*//p' | tr ' ' '\n'
  { cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true; } \
    | awk '$1=="deb" {for (i=2;i<=NF;i++) if ($i ~ /^(https?|file):/) {print $i; break}}'
}
MIRROR=$(mirror | grep -E '^(https?|file):' | grep -v -- '-security' | head -1 || true)
[ -n "$MIRROR" ] || { echo "build.sh: no Debian mirror in the apt configuration (set DEBIAN_MIRROR)" >&2; exit 1; }
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
cat > "$W/apt/sources.list" <<LIST
deb [signed-by=$KEYRING] $MIRROR sid main
deb [signed-by=$KEYRING] $MIRROR bookworm main
LIST
APT=(-o Dir::Etc::SourceList="$W/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
     -o Dir::Etc::Preferences=/dev/null -o Dir::Etc::PreferencesParts=/dev/null
     -o Dir::State::Lists="$W/apt/lists" -o Dir::Cache="$W/apt/cache" -o Dir::State::extended_states="$W/apt/extended_states"
     -o APT::Default-Release=sid -o Acquire::Languages=none -o APT::Sandbox::User=root -o Debug::NoLocking=1)

# Refresh the lists; offline with lists from an earlier run is fine (same versions as then).
apt-get "${APT[@]}" -qq update || [ -n "$(ls "$W"/apt/lists/*Packages* 2>/dev/null)" ] \
  || { echo "build.sh: apt-get update failed and no earlier package lists exist" >&2; exit 1; }

# Go sources: every golang-* package apiextensions-apiserver needs, plus the Go toolchain (sid).
# etcd from sid; prometheus (for scraping the simulator's metrics) from bookworm, which runs on this host.
apt-cache "${APT[@]}" depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
    --no-replaces --no-enhances golang-k8s-apiextensions-apiserver-dev golang-go \
  | grep -E '^golang-' | sort -u > "$W/pkgs.txt"
echo etcd-server prometheus/bookworm >> "$W/pkgs.txt"
# URI lines ("'url' file size hash") name every .deb with its version: they are the version fingerprint.
# (Run in an empty dir: apt leaves out files that are already downloaded.)
mkdir -p "$W/empty" && (cd "$W/empty" && apt-get "${APT[@]}" -qq --print-uris download $(cat "$W/pkgs.txt")) | sort > "$W/uris.txt"
[ "$(wc -l < "$W/uris.txt")" -gt 100 ] || { echo "build.sh: dependency resolution found too few packages" >&2; exit 1; }
KEY=$(cat "$HERE/mini-kube-apiserver/main.go" "$HERE/build.sh" "$W/uris.txt" | sha256sum | cut -c1-16)
OUT="$ROOT/$KEY"
if [ -x "$OUT/mini-kube-apiserver" ]; then
  log "up to date: $OUT"
  echo "$OUT" >&3; exit 0
fi

# ---- cold path ----
log "building $KEY: downloading $(wc -l < "$W/uris.txt") packages"
cd "$W/debs"
awk '{print $2}' "$W/uris.txt" > "$W/want.txt"
for f in *.deb; do   # drop superseded versions
  if [ -e "$f" ] && ! grep -qxF "$f" "$W/want.txt"; then rm -f "$f"; fi
done
apt-get "${APT[@]}" -qq download $(cat "$W/pkgs.txt")   # skips files already present with the right hash
log "unpacking"
rm -rf "$W/root" && mkdir -p "$W/root"
xargs -P "$(nproc)" -n 16 sh -c 'for f; do dpkg-deb -x "$f" "$0"; done' "$W/root" < "$W/want.txt"
# Debian builds k8s.io/apiserver against json-patch v5; upstream uses gopkg.in/evanphx/json-patch.v4,
# whose `replace` of a missing key succeeds (v5 refuses it). KubeVirt relies on that: virt-controller
# adds its finalizer with test+replace of /metadata/finalizers (kubevirt v1.9.0
# pkg/virt-controller/watch/vm/vm.go:2307). Debian's github.com/evanphx/json-patch has v4's semantics.
for f in pkg/endpoints/handlers/patch.go pkg/admission/plugin/webhook/mutating/dispatcher.go pkg/server/config.go; do
  sed -i 's#"github.com/evanphx/json-patch/v5"#"github.com/evanphx/json-patch"#' "$W/root/usr/share/gocode/src/k8s.io/apiserver/$f"
  grep -q '"github.com/evanphx/json-patch"' "$W/root/usr/share/gocode/src/k8s.io/apiserver/$f" \
    || { echo "build.sh: k8s.io/apiserver/$f: json-patch import not found" >&2; exit 1; }
done

GOROOT=$(ls -d "$W"/root/usr/lib/go-1.* | sort -V | tail -1)
export GOROOT GOPATH="$W/root/usr/share/gocode" GO111MODULE=off GOPROXY=off GOTOOLCHAIN=local GOFLAGS= \
       GOCACHE="$W/gocache" CGO_ENABLED=0
KVER=$(dpkg-deb -f golang-k8s-apiextensions-apiserver-dev_*.deb Version | sed 's/^0\./1./; s/-.*//')   # 0.36.4-1 -> 1.36.4
TMP="$OUT.tmp.$$"; rm -rf "$TMP"; mkdir -p "$TMP"
log "compiling with $("$GOROOT/bin/go" version)"
V=k8s.io/component-base/version
"$GOROOT/bin/go" build -trimpath -ldflags "-s -w -X $V.gitVersion=v$KVER-mini -X $V.gitMajor=1 -X $V.gitMinor=$(echo "$KVER" | cut -d. -f2)" \
  -o "$TMP/mini-kube-apiserver" "$HERE/mini-kube-apiserver/main.go"
cp "$W/root/usr/bin/etcd" "$W/root/usr/bin/prometheus" "$TMP/"
{ echo "# mini-kube-apiserver v$KVER-mini, $("$GOROOT/bin/go" version); mirror $MIRROR"
  for f in $(cat "$W/want.txt"); do dpkg-deb -f "$f" Package Version | paste -sd' '; done | sed 's/^Package: //; s/ Version: / /'; } > "$TMP/VERSIONS.txt"
# Lets the pytest fixture find a build for the current sources without running apt (see tests/harness/clusters.py).
cat "$HERE/mini-kube-apiserver/main.go" "$HERE/build.sh" | sha256sum | cut -d' ' -f1 > "$TMP/SOURCES.sha256"
rm -rf "$OUT" && mv "$TMP" "$OUT"
rm -rf "$W/root"   # 2.5 GB of sources; debs + Go cache are enough to rebuild quickly
# drop builds unused for a week (not newer ones: a running test session may use them via MINI_KUBE_BIN)
find "$ROOT" -mindepth 1 -maxdepth 1 -type d ! -name work ! -name "$KEY" -atime +7 -exec rm -rf {} +
log "done: $OUT"
echo "$OUT" >&3
