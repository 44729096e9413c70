#!/usr/bin/env bash
# make setup: install and start everything mldeploy needs on this machine.
#
# Idempotent: each step checks what is already in place and skips work that is
# done, so a warm run takes seconds. Each step prints what it does and how long
# it took; a failing step names itself and what to do.
#
# Steps: python, pulumi, docker, swarm, registry, base-os-image, wheelhouse, pulumi-backend, kubernetes.
# Run a subset with `scripts/setup.sh docker registry`.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$MLDEPLOY_ROOT"

PULUMI_VERSION=3.259.0
LANGHOST_SDK_VERSION=3.79.0
LOGS="$MLDEPLOY_HOME/logs"
REG="$MLDEPLOY_HOME/registry"
mkdir -p "$LOGS" "$REG" "$MLDEPLOY_WHEELHOUSE" "$MLDEPLOY_HOME/cache"
# Private to this user (README "Security model"): tighten what older setups left readable.
chmod 0700 "$MLDEPLOY_HOME"
find "$MLDEPLOY_HOME" "$MLDEPLOY_WHEELHOUSE" ! -type l -perm /077 -exec chmod go-rwx {} + 2>/dev/null || true

say() { printf '  %s\n' "$*"; }
fail() { printf '\nsetup step "%s" failed: %s\n' "$CURRENT_STEP" "$*" >&2; exit 1; }
run_step() {
  CURRENT_STEP="$1"
  local start=$SECONDS
  printf '==> %s\n' "$1"
  "step_${1//-/_}"
  printf '    %s: done in %ss\n' "$1" "$((SECONDS - start))"
}
sha() { cat "$@" | sha256sum | cut -c1-16; }
apt_install() {
  # apt_install PACKAGE... : install Debian packages that are missing.
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  say "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq >"$LOGS/apt.log" 2>&1 || fail "apt-get update failed, see $LOGS/apt.log"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >>"$LOGS/apt.log" 2>&1 \
    || fail "apt-get install ${missing[*]} failed, see $LOGS/apt.log"
}

# 1. Python: .venv with mldeploy editable plus test dependencies; .venv-azure the same
#    plus the azure extra (for stacks/azure and tests/unit/azure). Kept apart: the language
#    host makes every program require the plugin of each pulumi-* package it finds.
make_venv() {  # make_venv DIR EXTRAS
  local dir=$1 stamp=$1/.mldeploy-stamp want
  want="$(sha pyproject.toml) $2"
  if [ -x "$dir/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    say "$dir is up to date ($("$dir/bin/python" --version))"; return
  fi
  # The interpreter to make virtualenvs from: python3 on PATH without the project's own .venv
  # (lib.sh puts it first; it may be the one being replaced).
  local py; py="$(PATH="${PATH//$MLDEPLOY_ROOT\/.venv\/bin:/}" command -v python3 || true)"
  [ -n "$py" ] || fail "python3 (3.11+) is required"
  py="$(readlink -f "$py")"
  # Older setups put the azure extra into .venv: start it afresh.
  if [ "$2" = test ] && compgen -G "$dir/lib/python3*/site-packages/pulumi_azure_native" >/dev/null; then rm -rf "$dir"; fi
  [ -x "$dir/bin/python" ] || { rm -rf "$dir"; "$py" -m venv "$dir"; } || fail "could not create $dir"
  say "installing mldeploy (editable) with extras [$2] into $dir"
  "$dir/bin/pip" install -q --upgrade pip >>"$LOGS/pip.log" 2>&1
  "$dir/bin/pip" install -q -e ".[$2]" >>"$LOGS/pip.log" 2>&1 || fail "pip install into $dir failed, see $LOGS/pip.log"
  echo "$want" >"$stamp"
}
step_python() {
  : >"$LOGS/pip.log"
  make_venv .venv test
  make_venv .venv-azure test,azure
  # The package's bytecode. An editable install leaves provider/ uncompiled, and where PYTHONDONTWRITEBYTECODE
  # is set (this machine kind, many images) nothing writes it: every program and provider process then compiled
  # mldeploy's modules from source, about 55 ms each on this machine kind, two processes per pulumi command.
  # compileall rewrites only what changed (.venv-azure's Python is the same version, so it shares it).
  .venv/bin/python -m compileall -q provider/mldeploy >>"$LOGS/pip.log" 2>&1 || fail "compileall of provider/mldeploy failed, see $LOGS/pip.log"
}

# 2. Pulumi engine: a v3 CLI at least as new as the SDK on PATH, else build it.
version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -1)" = "$2" ]; }
step_pulumi() {
  local existing
  # type -P: a pulumi executable on PATH. (Not command -v, which names lib.sh's pulumi function when there is
  # no executable at all: on a fresh machine setup then ran that function and failed with 127.)
  existing="$(PATH="${PATH#"$MLDEPLOY_ROOT/.venv/bin:$MLDEPLOY_ROOT/.tools/bin:"}" type -P pulumi || true)"
  if [ -n "$existing" ]; then
    local v; v="$("$existing" version 2>/dev/null | sed 's/^v//')"
    if [[ "$v" == 3.* ]] && version_ge "$v" "$PULUMI_VERSION"; then
      say "using $existing (v$v)"; return
    fi
    say "ignoring $existing (v$v): need v3 >= $PULUMI_VERSION"
  fi
  mkdir -p .tools/bin
  command -v go >/dev/null || [ ! -x /usr/local/go/bin/go ] || export PATH="$PATH:/usr/local/go/bin"  # go.dev's tarball
  command -v go >/dev/null || fail "Go is needed to build the Pulumi CLI (apt-get install golang, or install Pulumi $PULUMI_VERSION)"
  local want; want="$(sha tools/pulumi/go.mod tools/pulumi/go.sum tools/pulumi-language-python/go.mod)"
  if [ -x .tools/bin/pulumi ] && [ -x .tools/bin/pulumi-language-python ] \
     && [ "$(cat .tools/.stamp 2>/dev/null)" = "$want" ]; then
    say ".tools/bin/pulumi $(.tools/bin/pulumi version) is built"; return
  fi
  say "building the Pulumi CLI v$PULUMI_VERSION from the Go module proxy (about 5 min cold, log: $LOGS/go-build.log)"
  (cd tools/pulumi && go build -ldflags "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$PULUMI_VERSION" \
     -o "$MLDEPLOY_ROOT/.tools/bin/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi) >"$LOGS/go-build.log" 2>&1 \
     || fail "go build of the Pulumi CLI failed, see $LOGS/go-build.log"
  say "building the Python language host from sdk v$LANGHOST_SDK_VERSION"
  (cd tools/pulumi-language-python && go build -o "$MLDEPLOY_ROOT/.tools/bin/pulumi-language-python" \
     github.com/pulumi/pulumi/sdk/v3/python/cmd/pulumi-language-python) >>"$LOGS/go-build.log" 2>&1 \
     || fail "go build of pulumi-language-python failed, see $LOGS/go-build.log"
  local sdk; sdk="$(cd tools/pulumi && go list -m -f '{{.Dir}}' github.com/pulumi/pulumi/sdk/v3)"
  install -m 0755 "$sdk/python/cmd/pulumi-language-python-exec" .tools/bin/
  install -m 0755 "$sdk/python/dist/pulumi-resource-pulumi-python" .tools/bin/
  echo "$want" >.tools/.stamp
  say "built $(.tools/bin/pulumi version)"
}

# 3. Docker Engine: use a running one, else install Debian's docker.io and start dockerd.
step_docker() {
  if docker info >/dev/null 2>&1; then say "Docker Engine $(docker info -f '{{.ServerVersion}}') is running"; tcp_migrate_req; return; fi
  command -v dockerd >/dev/null || apt_install docker.io
  command -v docker >/dev/null || apt_install docker.io
  say "starting dockerd (log: $LOGS/dockerd.log)"
  nohup dockerd >"$LOGS/dockerd.log" 2>&1 &
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || fail "dockerd did not become ready in 30 s; see $LOGS/dockerd.log"
  say "Docker Engine $(docker info -f '{{.ServerVersion}}') is running"
  tcp_migrate_req
}

# The local target's swap: the new container listens beside the old one (SO_REUSEPORT). With
# net.ipv4.tcp_migrate_req=1 (Linux 5.14+), connections queued on the old one's socket when it closes move
# to the new one instead of being reset. A setting of this network namespace (the host's, where the
# containers listen), lost at reboot: every `make setup` sets it again.
tcp_migrate_req() {
  local f=/proc/sys/net/ipv4/tcp_migrate_req
  if [ ! -e "$f" ]; then
    say "note: this kernel has no net.ipv4.tcp_migrate_req (Linux < 5.14): a local swap may reset a request queued on the old container's socket"
  elif [ "$(cat "$f")" = 1 ]; then
    say "net.ipv4.tcp_migrate_req is 1 (local swaps hand queued connections to the new container)"
  elif echo 1 2>/dev/null >"$f"; then
    say "set net.ipv4.tcp_migrate_req=1: local swaps hand connections queued on the old container to the new one"
  else
    say "note: could not set net.ipv4.tcp_migrate_req=1 (needs root): a local swap may reset a request queued on the old container's socket"
  fi
}

# 3b. Swarm mode, for InferenceDeployment's swarm target: a single-node swarm when none is active.
#     MLDEPLOY_SWARM_ADVERTISE_ADDR: the address other nodes reach this manager on (default 127.0.0.1,
#     which only this machine can use; see README "Adding worker nodes").
step_swarm() {
  local state; state="$(docker info -f '{{.Swarm.LocalNodeState}}' 2>/dev/null || true)"
  case "$state" in
    active)
      say "swarm is active: node $(docker info -f '{{.Swarm.NodeID}}'), $(docker info -f '{{.Swarm.Nodes}}') node(s), manager: $(docker info -f '{{.Swarm.ControlAvailable}}')" ;;
    inactive|"")
      local addr="${MLDEPLOY_SWARM_ADVERTISE_ADDR:-127.0.0.1}"
      say "no swarm is active: initialising a single-node swarm (docker swarm init --advertise-addr $addr)"
      docker swarm init --advertise-addr "$addr" >"$LOGS/swarm-init.log" 2>&1 \
        || fail "docker swarm init failed: $(tail -2 "$LOGS/swarm-init.log")"
      say "this Docker Engine is now a swarm manager (node $(docker info -f '{{.Swarm.NodeID}}')); join workers with: docker swarm join-token worker" ;;
    *) fail "this Docker Engine's swarm state is '$state'; fix it (docker swarm leave --force, or unlock it) and rerun" ;;
  esac
  if [ ! -e /proc/net/ip_vs ]; then
    say "note: this kernel has no IPVS, so Swarm's routing mesh cannot publish ports; swarm deployments publish through their nginx front in host mode"
  fi
}

# 4. Local OCI registry: distribution on a unix socket, nginx in front on
#    127.0.0.1:$MLDEPLOY_REGISTRY_PORT doing bcrypt basic auth with per-role rules.
step_registry() {
  command -v docker-registry >/dev/null || apt_install docker-registry
  command -v nginx >/dev/null || apt_install nginx-light
  command -v htpasswd >/dev/null || apt_install apache2-utils
  # run/ holds the backend socket, the GC lock and the read-only flag: only this user enters it.
  mkdir -p "$REG/data" "$REG/nginx-tmp" "$REG/run" "$REG/scopes"
  chmod 0700 "$REG" "$REG/data" "$REG/nginx-tmp" "$REG/run" "$REG/scopes"
  touch "$REG/htpasswd" "$REG/htpasswd-push"
  chmod 0600 "$REG/htpasswd" "$REG/htpasswd-push"
  # A garbage collection killed mid-way must not leave the registry read-only (one running holds the lock).
  flock -n "$REG/run/gc.lock" rm -f "$REG/run/readonly" || true
  local user_line=""
  [ "$(id -u)" -eq 0 ] && user_line="user root;"
  sed -e "s|@STATE@|$REG|g" -e "s|@LOGS@|$LOGS|g" -e "s|@WHEELHOUSE@|$MLDEPLOY_WHEELHOUSE|g" \
      -e "s|@PORT@|$MLDEPLOY_REGISTRY_PORT|g" -e "s|@USER@|$user_line|g" \
      scripts/registry/nginx.conf.in >"$REG/nginx.conf.new"
  sed -e "s|@STATE@|$REG|g" scripts/registry/config.yml.in >"$REG/config.yml.new"
  local changed=0
  for f in nginx.conf config.yml; do
    if ! cmp -s "$REG/$f.new" "$REG/$f"; then mv "$REG/$f.new" "$REG/$f"; changed=1; else rm "$REG/$f.new"; fi
  done

  if ! pgrep -f "docker-registry serve $REG/config.yml" >/dev/null || [ $changed = 1 ]; then
    pkill -f "docker-registry serve $REG/config.yml" 2>/dev/null && sleep 0.5 || true
    rm -f "$REG/registry.sock" "$REG/run/registry.sock"
    say "starting docker-registry (storage: $REG/data, log: $LOGS/registry.log)"
    nohup docker-registry serve "$REG/config.yml" >>"$LOGS/registry.log" 2>&1 &
    for _ in $(seq 1 40); do [ -S "$REG/run/registry.sock" ] && break; sleep 0.25; done
    [ -S "$REG/run/registry.sock" ] || fail "docker-registry did not start; see $LOGS/registry.log"
  fi
  # Only nginx (same user) may talk to the backend: no credentials are checked behind it.
  chmod 0600 "$REG/run/registry.sock"
  if [ -f "$REG/nginx.pid" ] && kill -0 "$(cat "$REG/nginx.pid")" 2>/dev/null; then
    if [ $changed = 1 ]; then nginx -c "$REG/nginx.conf" -s reload; say "reloaded nginx"; fi
  else
    nginx -t -c "$REG/nginx.conf" >"$LOGS/nginx-test.log" 2>&1 || fail "nginx config invalid: $(tail -3 "$LOGS/nginx-test.log")"
    say "starting nginx on 127.0.0.1:$MLDEPLOY_REGISTRY_PORT"
    nginx -c "$REG/nginx.conf" || fail "nginx did not start (is port $MLDEPLOY_REGISTRY_PORT in use? set MLDEPLOY_REGISTRY_PORT); see $LOGS/nginx-error.log"
  fi
  local code
  for _ in $(seq 1 40); do
    code="$(curl -s -o /dev/null -w '%{http_code}' "http://$MLDEPLOY_REGISTRY/v2/" || true)"
    [ "$code" = 401 ] && break; sleep 0.25
  done
  [ "$code" = 401 ] || fail "registry at http://$MLDEPLOY_REGISTRY/v2/ answered '$code', expected 401; see $LOGS/nginx-error.log and $LOGS/registry.log"
  build_network
  say "registry http://$MLDEPLOY_REGISTRY requires credentials (anonymous /v2/ -> 401); backend socket $REG/run/registry.sock is $(stat -c '%a %U' "$REG/run/registry.sock") in a 0700 directory"
}

# 4b. Image builds do not run on the host network: they share the network namespace of a
#     wheelhouse container (busybox httpd, the wheelhouse mounted read-only) on the bridge network
#     mldeploy-build. So http://127.0.0.1:$MLDEPLOY_REGISTRY_PORT/wheels/ in a RUN step is the
#     wheelhouse, Debian's mirror is reached through the bridge, and the host's loopback services
#     (the registry API, local inference services, Pulumi's engine) are out of reach.
wheel_index() {  # pip --find-links reads this page; busybox httpd has no directory listing (the provider adds wheels a lock downloads)
  .venv/bin/python -c 'import sys, pathlib; from mldeploy.environment import index_wheelhouse; index_wheelhouse(pathlib.Path(sys.argv[1]))' "$MLDEPLOY_WHEELHOUSE"
}
build_network() {
  local net="${MLDEPLOY_BUILD_NETWORK:-mldeploy-build}" name="mldeploy-wheelhouse-$MLDEPLOY_REGISTRY_PORT"
  local image=mldeploy/wheelhouse-server:busybox
  [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1 || apt_install busybox-static
  ldd /bin/busybox >/dev/null 2>&1 && fail "/bin/busybox is not statically linked (the busybox package); install busybox-static"
  docker network inspect "$net" >/dev/null 2>&1 \
    || docker network create --driver bridge --label mldeploy.purpose=image-builds "$net" >/dev/null \
    || fail "could not create the Docker network $net for image builds"
  if ! docker image inspect "$image" >/dev/null 2>&1; then
    local d; d="$(mktemp -d)"; cp /bin/busybox "$d/busybox"
    tar -C "$d" -c busybox | docker import -c 'ENTRYPOINT ["/busybox"]' - "$image" >/dev/null; rm -rf "$d"
  fi
  wheel_index
  local want  # the inode too: a wheelhouse removed and made again (make clean-state) needs a new mount
  want="$MLDEPLOY_WHEELHOUSE:$(stat -c %i "$MLDEPLOY_WHEELHOUSE"):$net"
  if [ "$(docker inspect -f '{{index .Config.Labels "mldeploy.wheelhouse"}}' "$name" 2>/dev/null)" != "$want" ]; then
    docker rm -f "$name" >/dev/null 2>&1 || true
    docker run -d --name "$name" --network "$net" --restart unless-stopped --read-only --cap-drop ALL --cap-add DAC_OVERRIDE \
      --label mldeploy.purpose=wheelhouse --label "mldeploy.wheelhouse=$want" -v "$MLDEPLOY_WHEELHOUSE:/srv/wheels:ro" \
      "$image" httpd -f -p "127.0.0.1:$MLDEPLOY_REGISTRY_PORT" -h /srv >/dev/null || fail "could not start the wheelhouse container $name"
  elif [ "$(docker inspect -f '{{.State.Running}}' "$name")" != true ]; then
    docker start "$name" >/dev/null || fail "could not start the wheelhouse container $name"
  fi
  printf '{"network": "container:%s"}\n' "$name" >"$REG/build.json"
  say "image builds run in the network namespace of $name (Docker network $net): wheels at http://127.0.0.1:$MLDEPLOY_REGISTRY_PORT/wheels/, no host loopback"
}

# 5. Base OS image: debootstrap a minimal Debian bookworm and docker import it.
step_base_os_image() {
  if docker image inspect "$MLDEPLOY_BASE_OS_IMAGE" >/dev/null 2>&1; then
    say "$MLDEPLOY_BASE_OS_IMAGE is present"; return
  fi
  command -v debootstrap >/dev/null || apt_install debootstrap
  local mirror="${MLDEPLOY_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
  local root; root="$(mktemp -d "$MLDEPLOY_HOME/rootfs.XXXXXX")"
  say "debootstrap --variant=minbase bookworm from $mirror (about 30 s; log: $LOGS/debootstrap.log)"
  debootstrap --variant=minbase bookworm "$root" "$mirror" >"$LOGS/debootstrap.log" 2>&1 \
    || { rm -rf "$root"; fail "debootstrap failed; see $LOGS/debootstrap.log"; }
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  say "docker import -> $MLDEPLOY_BASE_OS_IMAGE"
  tar -C "$root" -c . | docker import -c 'CMD ["/bin/bash"]' -c 'ENV LANG=C.UTF-8' - "$MLDEPLOY_BASE_OS_IMAGE" >/dev/null
  rm -rf "$root"
}

# 6. Wheelhouse: wheels for the images' Python (Debian bookworm's 3.11), from PyPI on the host.
step_wheelhouse() {
  local want; want="$(sha scripts/wheelhouse.txt)"
  if [ "$(cat "$MLDEPLOY_WHEELHOUSE/.stamp" 2>/dev/null)" = "$want" ]; then
    say "wheelhouse is up to date ($(ls "$MLDEPLOY_WHEELHOUSE"/*.whl | wc -l) wheels, $(du -sh "$MLDEPLOY_WHEELHOUSE" | cut -f1))"; return
  fi
  say "pip download for cp311 manylinux x86_64 -> $MLDEPLOY_WHEELHOUSE"
  .venv/bin/pip download -q -d "$MLDEPLOY_WHEELHOUSE" --only-binary=:all: \
      --python-version 3.11 --implementation cp --abi cp311 \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      --platform linux_x86_64 --platform any \
      -r scripts/wheelhouse.txt >"$LOGS/wheelhouse.log" 2>&1 || fail "pip download failed; see $LOGS/wheelhouse.log"
  echo "$want" >"$MLDEPLOY_WHEELHOUSE/.stamp"
  wheel_index
  say "$(ls "$MLDEPLOY_WHEELHOUSE"/*.whl | wc -l) wheels, $(du -sh "$MLDEPLOY_WHEELHOUSE" | cut -f1)"
}

# 7. Pulumi state: a local file backend under the state directory.
#    Secrets passphrase: a random one per machine in $MLDEPLOY_PASSPHRASE_FILE (0600), which
#    lib.sh exports as PULUMI_CONFIG_PASSPHRASE_FILE unless you set your own. A backend that
#    already has stacks from before this file existed keeps their (old demo) passphrase.
step_pulumi_backend() {
  mkdir -p "$MLDEPLOY_HOME/pulumi"
  chmod 0700 "$MLDEPLOY_HOME/pulumi"
  say "backend $PULUMI_BACKEND_URL ($(pulumi version))"
  local pf="$MLDEPLOY_PASSPHRASE_FILE"
  if [ "$MLDEPLOY_PASSPHRASE_FROM" = user ]; then
    say "secrets passphrase: yours (PULUMI_CONFIG_PASSPHRASE${PULUMI_CONFIG_PASSPHRASE_FILE:+_FILE=$PULUMI_CONFIG_PASSPHRASE_FILE})"
  elif [ -f "$pf" ]; then
    chmod 0600 "$pf"
    say "secrets passphrase: $pf (mode 0600, readable only by $(id -un))"
  elif [ -n "$(find "$MLDEPLOY_HOME/pulumi/.pulumi/stacks" -name '*.json' -print -quit 2>/dev/null)" ]; then
    (umask 077 && printf '%s' mldeploy-demo >"$pf.tmp" && mv "$pf.tmp" "$pf")
    say "secrets passphrase: $pf (mode 0600), holding the OLD PUBLISHED demo passphrase 'mldeploy-demo',"
    say "  because this backend already has stacks encrypted with it: they keep working, protected only by"
    say "  the state directory's modes (now 0700). To leave it: destroy those stacks, remove $pf and"
    say "  rerun make setup (a random one is written), or re-key each with pulumi stack change-secrets-provider."
  else
    (umask 077 && head -c 32 /dev/urandom | base64 | tr -d '\n' >"$pf.tmp" && mv "$pf.tmp" "$pf")
    say "secrets passphrase: a new random one in $pf (mode 0600, readable only by $(id -un)); keep it to decrypt this backend's stacks"
  fi
}

# 8. Kubernetes: the embedded cluster of the kubernetes target (scripts/kubernetes/: build.sh,
#    up.sh; make cluster-down stops it). MLDEPLOY_KUBERNETES=0 skips it for your own cluster.
step_kubernetes() {
  if [ "${MLDEPLOY_KUBERNETES:-1}" = 0 ]; then
    say "skipped (MLDEPLOY_KUBERNETES=0): the kubernetes target uses your kubeconfig (mldeploy:kubeconfig, KUBECONFIG)"; return
  fi
  apt_install containerd runc containernetworking-plugins iptables conntrack socat openssl gcc libc6-dev
  local out
  out="$(bash scripts/kubernetes/build.sh 2>&1)" || fail "$out"
  printf '%s\n' "$out" | sed 's/^/  /'
  out="$(bash scripts/kubernetes/up.sh 2>&1)" || fail "$(printf '%s' "$out" | tail -5); logs: $MLDEPLOY_HOME/kubernetes/log/"
  printf '%s\n' "$out" | sed 's/^/  /'
}

STEPS=("$@")
[ ${#STEPS[@]} -gt 0 ] || STEPS=(python pulumi docker swarm registry base-os-image wheelhouse pulumi-backend kubernetes)
total=$SECONDS
for s in "${STEPS[@]}"; do run_step "$s"; done
printf 'setup complete in %ss (state: %s)\n' "$((SECONDS - total))" "$MLDEPLOY_HOME"
