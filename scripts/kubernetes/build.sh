#!/usr/bin/env bash
# Build the `kube` multi-call binary (kube-apiserver, kube-controller-manager,
# kube-scheduler, kubelet, kube-proxy, kubectl, etcd) from tools/kubebin through
# the Go module proxy, into $MLDEPLOY_HOME/kubernetes/bin/kube.
#
# Cached: a stamp of go.mod/go.sum/main.go next to the binary; a warm run is a
# hash check. Cold: about 7-9 min and 2.4 GB RAM on 2 cores (Go's build cache
# under ~/.cache/go-build keeps a rebuild after an edit to minutes).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/../lib.sh"
KUBE_VERSION="${KUBE_VERSION:-1.35.4}"
SRC="$MLDEPLOY_ROOT/tools/kubebin"
BIN="$MLDEPLOY_HOME/kubernetes/bin"
mkdir -p "$BIN" "$MLDEPLOY_HOME/logs" "$MLDEPLOY_HOME/kubernetes/images"
want="$(cat "$SRC/go.mod" "$SRC/go.sum" "$SRC/main.go" | sha256sum | cut -c1-16)-$KUBE_VERSION"
command -v go >/dev/null || export PATH="$PATH:/usr/local/go/bin"
pause_image() {
  # The pause (sandbox) image: pause.c ships inside the k8s.io/kubernetes module; a static binary in a
  # one-layer image tar that up.sh imports into containerd (no registry serves it here).
  local tar="$MLDEPLOY_HOME/kubernetes/images/pause.tar"
  [ -s "$tar" ] && return 0
  local src root
  src="$(cd "$SRC" && go list -m -f '{{.Dir}}' k8s.io/kubernetes)/build/pause/linux/pause.c"
  root="$(mktemp -d)"
  gcc -Os -Wall -Werror -static -DVERSION=v3.10.1-mldeploy -o "$root/pause" "$src" && strip "$root/pause" \
    || { rm -rf "$root"; echo "compiling the pause binary failed (needs gcc and libc6-dev)" >&2; exit 1; }
  python3 "$MLDEPLOY_ROOT/scripts/kubernetes/mkimage.py" "$root" localhost/pause:3.10.1 "$tar.new" --entrypoint '["/pause"]' >/dev/null
  mv "$tar.new" "$tar"
  rm -rf "$root"
  echo "built the pause image ($tar)"
}
if [ -x "$BIN/kube" ] && [ "$(cat "$BIN/.stamp" 2>/dev/null)" = "$want" ]; then
  [ -L "$BIN/kubectl" ] || ln -sf kube "$BIN/kubectl"  # the binary dispatches on its name
  echo "kube v$KUBE_VERSION is built ($BIN/kube)"; pause_image; exit 0
fi
command -v go >/dev/null || { echo "Go (1.25+) is needed to build Kubernetes: apt-get install golang-1.25 or see go.dev/dl" >&2; exit 1; }
minor="$(echo "$KUBE_VERSION" | cut -d. -f2)"
ld="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ld="$ld -X $p.gitVersion=v$KUBE_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
done
log="$MLDEPLOY_HOME/logs/kube-build.log"
echo "building kube v$KUBE_VERSION from the Go module proxy (about 8 min cold on 2 cores; log: $log)"
start=$SECONDS
(cd "$SRC" && CGO_ENABLED=0 go build -trimpath -tags selinux,notest,grpcnotrace -ldflags "$ld" -o "$BIN/kube.new" .) >"$log" 2>&1 \
  || { echo "go build of kube failed, see $log" >&2; exit 1; }
mv "$BIN/kube.new" "$BIN/kube"
ln -sf kube "$BIN/kubectl"  # the binary dispatches on its name
echo "$want" >"$BIN/.stamp"
echo "built $BIN/kube ($(du -h "$BIN/kube" | cut -f1)) in $((SECONDS - start))s"
pause_image
