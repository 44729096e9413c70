# Helpers for the cluster scripts: start/stop our own processes by pid file, wait for a condition.
export PATH="$PATH:/usr/sbin:/sbin"
mkdir -p "$K8S_HOME/log" "$K8S_HOME/run"

k8s_alive() { # name: our process (same pid and start time as recorded) is running
  local p st
  [ -f "$K8S_HOME/run/$1.pid" ] || return 1
  read -r p st <"$K8S_HOME/run/$1.pid"
  [ -n "$p" ] && [ "$(cut -d' ' -f22 "/proc/$p/stat" 2>/dev/null)" = "$st" ]
}

k8s_start() { # name cmd...: start in its own session unless already running; log to log/<name>.log
  local n=$1; shift
  k8s_alive "$n" && return 0
  setsid "$@" >>"$K8S_HOME/log/$n.log" 2>&1 </dev/null &
  echo "$! $(cut -d' ' -f22 /proc/$!/stat)" >"$K8S_HOME/run/$n.pid"
  echo "  started $n (log: $K8S_HOME/log/$n.log)"
}

k8s_stop() { # names...: SIGTERM our own processes, wait up to 10 s, then SIGKILL
  local n p st pids=()
  for n in "$@"; do
    [ -f "$K8S_HOME/run/$n.pid" ] || continue
    read -r p st <"$K8S_HOME/run/$n.pid"
    rm -f "$K8S_HOME/run/$n.pid"
    [ "$(cut -d' ' -f22 "/proc/$p/stat" 2>/dev/null)" = "$st" ] && pids+=("$p")
  done
  [ ${#pids[@]} -gt 0 ] || return 0
  kill "${pids[@]}" 2>/dev/null
  for _ in $(seq 50); do kill -0 "${pids[@]}" 2>/dev/null || return 0; sleep 0.2; done
  kill -9 "${pids[@]}" 2>/dev/null
  return 0
}

k8s_wait() { # what seconds cmd...
  local what=$1 t=$2; shift 2
  for _ in $(seq "$((t * 4))"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.25; done
  echo "timed out after ${t}s waiting for $what; logs: $K8S_HOME/log/" >&2
  return 1
}

kctl() { "$KUBE" kubectl --kubeconfig "$K8S_KUBECONFIG" "$@"; }

k8s_node_ready() { # node name
  [ "$(kctl get node "$1" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]
}

k8s_containerd_conf() { # dir registry-endpoint: a containerd config for a node's own containerd
  local c=$1 endpoint=$2 cni=$3
  cat <<TOML
# Written by mldeploy (scripts/kubernetes). Debian's containerd, its own socket and state.
version = 2
root = "$c/root"
state = "$c/state"
[grpc]
  address = "$c/containerd.sock"
[ttrpc]
  address = "$c/containerd.sock.ttrpc"
[debug]
  address = "$c/debug.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "$c/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # sandbox setting 1 (scripts/kubernetes/env.sh): no CAP_SYS_RESOURCE here
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$c/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$cni/net.d"
  # mldeploy's registry speaks plain HTTP on loopback; pods authenticate with an imagePullSecret.
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."$MLDEPLOY_REGISTRY"]
    endpoint = ["http://$endpoint"]
TOML
}

k8s_cni_conf() { # dir subnet gateway
  cat <<CNI
{"cniVersion": "0.4.0", "name": "mldeploy", "plugins": [
  {"type": "bridge", "bridge": "$K8S_CNI_BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "dataDir": "$1/ipam",
            "ranges": [[{"subnet": "$2", "gateway": "$3"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
  {"type": "portmap", "capabilities": {"portMappings": true}}
]}
CNI
}

k8s_cgroup_root() { # name: make <our memory cgroup>/<name> in every v1 hierarchy; print it
  local memcg root h p part
  memcg=$(awk -F: '$2=="memory"{print $3}' /proc/self/cgroup)
  root=${memcg%/}/$1
  for h in /sys/fs/cgroup/*/; do
    [ -d "$h" ] || continue
    p=""
    for part in $(echo "$root" | tr / ' '); do
      p="$p/$part"
      mkdir -p "$h$p" 2>/dev/null || continue
      if [ -f "$h$p/cpuset.cpus" ] && [ -z "$(cat "$h$p/cpuset.cpus")" ]; then
        cat "$(dirname "$h$p")/cpuset.cpus" >"$h$p/cpuset.cpus"
        cat "$(dirname "$h$p")/cpuset.mems" >"$h$p/cpuset.mems"
      fi
    done
  done
  echo "$root"
}
